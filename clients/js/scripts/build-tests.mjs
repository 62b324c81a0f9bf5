// Bundles test/*.test.ts for Node's built-in test runner (no Vite/rollup needed); the client
// itself is built beside them unbundled, so each test can load a fresh copy of it.
import { build } from "esbuild";
import { readdirSync } from "node:fs";

const tests = readdirSync("test").filter((f) => f.endsWith(".test.ts")).map((f) => `test/${f}`);
const common = { format: "esm", platform: "node", target: "node20", outbase: ".", outdir: "build-test", outExtension: { ".js": ".mjs" } };
await build({ ...common, entryPoints: tests, bundle: true, packages: "external" });
await build({ ...common, entryPoints: ["src/index.ts"] });
