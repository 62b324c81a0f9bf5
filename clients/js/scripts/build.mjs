// Builds dist/index.js (ESM), dist/telemetry.iife.js (a <script> tag: window.Telemetry) and
// the type declarations.
import { build } from "esbuild";
import { execFileSync } from "node:child_process";

const common = { entryPoints: ["src/index.ts"], bundle: true, minify: true, target: "es2020", legalComments: "none" };
await build({ ...common, format: "esm", outfile: "dist/index.js" });
await build({ ...common, format: "iife", globalName: "Telemetry", outfile: "dist/telemetry.iife.js" });
execFileSync("node", ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" });
