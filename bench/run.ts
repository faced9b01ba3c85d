import { benchAgent } from "./agent.js";
import { benchIngestion } from "./ingestion.js";
import { benchRateLimits } from "./rate-limits.js";
import { benchMemory, benchRpc } from "./rpc.js";
import { benchSearch } from "./search.js";

/**
 * `npm run bench`: every benchmark, one after the other, each printing its measurements and
 * its ratio against the baseline it measures in the same run. Timings live here, never in
 * tests. Add a benchmark by adding one line to this list.
 */
const BENCHES: ReadonlyArray<[name: string, run: () => Promise<unknown>]> = [
  ["ingestion", () => benchIngestion()],
  ["search", () => benchSearch()],
  ["agent", () => benchAgent()],
  ["rate-limits", () => benchRateLimits()],
  ["rpc", () => benchRpc()],
  ["memory", () => benchMemory()],
];

const only = process.argv.slice(2);
for (const [name, run] of BENCHES) {
  if (only.length > 0 && !only.includes(name)) continue;
  console.log(`\n== ${name} ==`);
  await run();
}
