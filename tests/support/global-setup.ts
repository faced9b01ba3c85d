import { spawnSync } from "node:child_process";
import { makeCliExecutable } from "../../scripts/cli-executable.js";

/**
 * Builds dist/ once before the suites run: end-to-end tests start `nexus` as separate
 * processes (node dist/services/cli/main.js), exactly as a user would. Type errors do not stop
 * the tests (tsc still emits; `npm run typecheck` is the gate for them) — they are printed.
 */
export default function setup(): void {
  const r = spawnSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.json"], { encoding: "utf8" });
  if (r.error) throw r.error;
  if (r.status !== 0) {
    console.warn(`[nexus tests] tsc reported type errors (dist/ was still emitted):\n${(r.stdout + r.stderr).slice(0, 4000)}`);
  }
  // As `npm run build` does: the bin runs directly, as npx and a global install run it.
  makeCliExecutable();
}
