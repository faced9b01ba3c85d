import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * The import rule (.dependency-cruiser.cjs, run in CI by `npm run lint:deps`) must catch what it
 * claims to: this test writes a small repository that breaks each rule once, next to imports the
 * rule allows, and runs the same dependency-cruiser command on it.
 */

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, "..");
const DEPCRUISE = join(ROOT, "node_modules", ".bin", "depcruise");
const CONFIG = join(ROOT, ".dependency-cruiser.cjs");

/** path → source. Comments say which rule each import breaks, or that it is allowed. */
const TREE: Record<string, string> = {
  "gen/contract_pb.ts": "export const contract = 1;\n",
  "gen/bad.ts": 'import { shared } from "../services/kernel/shared.js"; // gen-imports-ours\nexport const x = shared;\n',
  "services/kernel/shared.ts": 'import { contract } from "../../gen/contract_pb.js"; // allowed\nexport const shared = contract;\n',
  "services/kernel/bad.ts": 'import { alpha } from "../alpha/alpha.js"; // kernel-imports-a-service\nexport const x = alpha;\n',
  "services/kernel/bad.test.ts": 'import { alpha } from "../alpha/alpha.js"; // allowed: tests are free\nexport const x = alpha;\n',
  "services/alpha/alpha.ts": [
    'import { contract } from "../../gen/contract_pb.js"; // allowed',
    'import { shared } from "../kernel/shared.js"; // allowed',
    'import { helper } from "./inner/helper.js"; // allowed: own folder',
    "export const alpha = contract + shared + helper;",
  ].join("\n"),
  "services/alpha/inner/helper.ts": "export const helper = 1;\n",
  // A type-only import couples as much as a value import.
  "services/alpha/reaches.ts": 'import type { Beta } from "../beta/beta.js"; // service-reaches-outside\nexport type X = Beta;\n',
  "services/alpha/uses-runtime.ts":
    'import { runtime } from "../runtime/runtime.js"; // service-reaches-outside\nexport const x = runtime;\n',
  "services/alpha/uses-tests.ts":
    'import { helper } from "../../tests/support/helper.js"; // service-reaches-outside + production-imports-tests\nexport const x = helper;\n',
  "services/alpha/unresolved.ts": 'import { gone } from "./gone.js"; // not-to-unresolvable\nexport const x = gone;\n',
  "services/alpha/alpha.test.ts": 'import { beta } from "../beta/beta.js"; // allowed: tests are free\nexport const x = beta;\n',
  // A service added later is held to the same rule without editing the configuration.
  "services/beta/beta.ts":
    'import { alpha } from "../alpha/alpha.js"; // service-reaches-outside\nexport type Beta = number;\nexport const beta = alpha;\n',
  "services/client/client.ts": 'import { contract } from "../../gen/contract_pb.js"; // allowed\nexport const client = contract;\n',
  "services/client/bad.ts":
    'import { shared } from "../kernel/shared.js"; // client-imports-more-than-contracts\nexport const x = shared;\n',
  "services/runtime/runtime.ts": 'import { alpha } from "../alpha/alpha.js"; // allowed: composition root\nexport const runtime = alpha;\n',
  "services/runtime/bad.ts": 'import { cli } from "../cli/cli.js"; // runtime-imports-outside-services\nexport const x = cli;\n',
  "services/cli/cli.ts": [
    'import { runtime } from "../runtime/runtime.js"; // allowed: composition root',
    'import { beta } from "../beta/beta.js"; // allowed',
    'import { operator } from "../../operator/operator.js"; // allowed',
    "export const cli = runtime + beta + operator;",
  ].join("\n"),
  "operator/operator.ts": [
    'import { client } from "../services/client/client.js"; // allowed',
    'import { shared } from "../services/kernel/shared.js"; // allowed',
    "export const operator = client + shared;",
  ].join("\n"),
  "operator/bad.ts": 'import { alpha } from "../services/alpha/alpha.js"; // operator-imports-a-service\nexport const x = alpha;\n',
  "tests/support/helper.ts": 'import { alpha } from "../../services/alpha/alpha.js"; // allowed\nexport const helper = alpha;\n',
};

interface Violation {
  rule: { name: string };
  from: string;
  to: string;
}

/** The folders `npm run lint:deps` cruises. */
const FOLDERS = ["services", "operator", "gen", "scripts", "bench", "tests"];

/** Runs dependency-cruiser as CI does; with `json` the report is parsed, with `err` only the exit code matters. */
async function depcruise(cwd: string, folders: string[], output: "json" | "err") {
  const args = ["--config", CONFIG, "--output-type", output, ...folders];
  try {
    const { stdout } = await run(DEPCRUISE, args, { cwd, maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, stdout };
  } catch (error) {
    const failed = error as { code: number; stdout: string };
    return { code: failed.code, stdout: failed.stdout };
  }
}

async function violations(cwd: string, folders: string[]): Promise<string[]> {
  const { stdout } = await depcruise(cwd, folders, "json");
  const found: Violation[] = JSON.parse(stdout).summary.violations;
  return found.map((v) => `${v.rule.name}: ${v.from} → ${v.to}`).sort();
}

describe("the import rule (npm run lint:deps)", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "nexus-import-rule-"));
    for (const [path, source] of Object.entries(TREE)) {
      await mkdir(dirname(join(dir, path)), { recursive: true });
      await writeFile(join(dir, path), source);
    }
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reports every broken import, by rule, and nothing the rule allows", async () => {
    const folders = ["services", "operator", "gen", "tests"];
    expect(await violations(dir, folders)).toEqual(
      [
        "client-imports-more-than-contracts: services/client/bad.ts → services/kernel/shared.ts",
        "gen-imports-ours: gen/bad.ts → services/kernel/shared.ts",
        "kernel-imports-a-service: services/kernel/bad.ts → services/alpha/alpha.ts",
        "not-to-unresolvable: services/alpha/unresolved.ts → ./gone.js",
        "operator-imports-a-service: operator/bad.ts → services/alpha/alpha.ts",
        "production-imports-tests: services/alpha/uses-tests.ts → tests/support/helper.ts",
        "runtime-imports-outside-services: services/runtime/bad.ts → services/cli/cli.ts",
        "service-reaches-outside: services/alpha/reaches.ts → services/beta/beta.ts",
        "service-reaches-outside: services/alpha/uses-runtime.ts → services/runtime/runtime.ts",
        "service-reaches-outside: services/alpha/uses-tests.ts → tests/support/helper.ts",
        "service-reaches-outside: services/beta/beta.ts → services/alpha/alpha.ts",
      ].sort(),
    );
    // The CI step fails on them.
    expect((await depcruise(dir, folders, "err")).code).not.toBe(0);
  });

  it("holds on this repository", async () => {
    expect(await violations(ROOT, FOLDERS)).toEqual([]);
  });
});
