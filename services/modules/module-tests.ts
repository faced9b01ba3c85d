import type { ModuleManifest } from "../../gen/nexus/modules/v1/module_pb.js";
import type { TestResult } from "./domain/module.js";
import type { ModulesSettings } from "./modules-settings.js";
import { invokeTool, type SandboxRunner } from "./tool-runner.js";

/**
 * Runs a version's tests in the sandbox, one after the other, exactly as CallTool would run
 * the tools (same limits, same broker, same schemas). A test passes when the call succeeds
 * and its output contains `expect` (a deep subset), or — with `expect_error` — when the call
 * fails with that reason. A version without tests fails: an untested module is not reviewable.
 */
export async function runModuleTests(
  manifest: ModuleManifest,
  code: string,
  credentials: ReadonlyMap<string, string>,
  settings: ModulesSettings,
  sandbox?: SandboxRunner,
): Promise<TestResult[]> {
  if (manifest.tests.length === 0) {
    return [{ name: "(no tests)", passed: false, message: "the manifest has no tests: add at least one", durationMs: 0 }];
  }
  const results: TestResult[] = [];
  const budgetEnds = performance.now() + settings.testBudgetMs;
  for (const t of manifest.tests) {
    if (performance.now() > budgetEnds) {
      results.push({
        name: t.name,
        passed: false,
        message: `not run: the tests took longer than ${settings.testBudgetMs} ms together`,
        durationMs: 0,
      });
      continue;
    }
    const r = await invokeTool({ manifest, code, tool: t.tool, input: t.input ?? {}, credentials }, settings, sandbox);
    const durationMs = Math.round(r.durationMs * 1000) / 1000;
    if (t.expectError) {
      results.push(
        r.kind === "failed" && r.reason === t.expectError
          ? { name: t.name, passed: true, message: "", durationMs }
          : {
              name: t.name,
              passed: false,
              message:
                r.kind === "ok"
                  ? `expected ${t.expectError}, the call succeeded`
                  : `expected ${t.expectError}, got ${r.reason}: ${r.message}`,
              durationMs,
            },
      );
      continue;
    }
    if (r.kind === "failed") {
      results.push({ name: t.name, passed: false, message: `${r.reason}: ${r.message}`, durationMs });
      continue;
    }
    const mismatch = t.expect ? subsetMismatch(t.expect, r.output, "") : undefined;
    results.push({ name: t.name, passed: mismatch === undefined, message: mismatch ?? "", durationMs });
  }
  return results;
}

/** Where `actual` does not contain `expected` (a path and both values), or undefined when it does. */
export function subsetMismatch(expected: unknown, actual: unknown, path: string): string | undefined {
  if (expected !== null && typeof expected === "object" && !Array.isArray(expected)) {
    if (actual === null || typeof actual !== "object" || Array.isArray(actual))
      return `${path || "(root)"}: expected an object, got ${JSON.stringify(actual)}`;
    for (const [k, v] of Object.entries(expected)) {
      const m = subsetMismatch(v, (actual as Record<string, unknown>)[k], `${path}/${k}`);
      if (m) return m;
    }
    return undefined;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length)
      return `${path || "(root)"}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`;
    for (let i = 0; i < expected.length; i++) {
      const m = subsetMismatch(expected[i], actual[i], `${path}/${i}`);
      if (m) return m;
    }
    return undefined;
  }
  return expected === actual ? undefined : `${path || "(root)"}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`;
}
