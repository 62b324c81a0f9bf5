// Prints the min+gzip size of the IIFE; fails above the 2.5 KB budget.
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const bytes = gzipSync(readFileSync("dist/telemetry.iife.js"), { level: 9 }).length;
const budget = 2560;
if (bytes > budget) {
  console.error(`over budget: ${bytes} > ${budget} bytes`);
  process.exitCode = 1;
}
console.log(`js client: ${bytes} bytes min+gzip`);
