import { clone, fromJson, type JsonValue } from "@bufbuild/protobuf";
import { type ModuleManifest, ModuleManifestSchema, type ModuleTest, ModuleTestSchema } from "../../../gen/nexus/modules/v1/module_pb.js";
import { domainError } from "../../kernel/errors.js";
import type { TestResult } from "../domain/module.js";
import { type BuildSpec, type ModuleDraft, templateDraft } from "./templates.js";

/**
 * Who writes a module's code and tests from a spec (REQ-013/016): `draft` from the template
 * (code and tests), `repair` the code from the failing test results (a repair never changes
 * the tests, so a drafter cannot pass by weakening them). The offline `template` drafter
 * returns the template's code and generated tests and repairs with a fixed list of known
 * rewrites; the `openai` drafter asks an OpenAI-compatible Chat Completions server for the
 * code and further tests.
 */
export interface ModuleDrafter {
  readonly name: string;
  draft(spec: BuildSpec, template: ModuleDraft): Promise<ModuleDraft>;
  repair(spec: BuildSpec, draft: ModuleDraft, failures: readonly TestResult[]): Promise<ModuleDraft>;
}

/**
 * The offline drafter's repairs: deterministic rewrites of mistakes templates' first drafts
 * may contain, applied when tests failed (a draft none applies to comes back unchanged).
 */
export const KNOWN_REPAIRS: readonly { mistake: string; find: RegExp; replace: string }[] = [
  {
    mistake: "Array.prototype.sort() without a comparator orders numbers as strings",
    find: /\.sort\(\)/g,
    replace: ".sort((a, b) => a - b)",
  },
];

/** The offline drafter: the template's code and generated tests; repairs from {@link KNOWN_REPAIRS}. */
export const templateDrafter: ModuleDrafter = {
  name: "template",
  draft: async (_spec, template) => template,
  repair: async (_spec, draft, failures) => {
    if (!failures.some((f) => !f.passed)) return draft;
    const code = KNOWN_REPAIRS.reduce((c, r) => c.replace(r.find, r.replace), draft.code);
    return { manifest: draft.manifest, code };
  },
};

/** At most this many tests a model adds to the template's generated ones. */
const MAX_MODEL_TESTS = 16;

/**
 * The tests a model drafted, as manifest tests: each must name a tool of the draft and have a
 * name not already used; others are left out. They are added to the template's tests.
 */
export function modelTests(manifest: ModuleManifest, tests: unknown): ModuleTest[] {
  if (!Array.isArray(tests)) return [];
  const tools = new Set(manifest.tools.map((t) => t.name));
  const names = new Set(manifest.tests.map((t) => t.name));
  const out: ModuleTest[] = [];
  for (const raw of tests.slice(0, MAX_MODEL_TESTS)) {
    let t: ModuleTest;
    try {
      t = fromJson(ModuleTestSchema, raw as JsonValue, { ignoreUnknownFields: true });
    } catch {
      continue;
    }
    if (!t.name || t.name.length > 200 || names.has(t.name) || !tools.has(t.tool) || t.expectError.length > 64) continue;
    names.add(t.name);
    out.push(t);
  }
  return out;
}

/** Connection to an OpenAI-compatible server. */
export interface OpenAiDrafterOptions {
  baseUrl: string;
  apiKey?: string;
  model: string;
  timeoutMs: number;
}

const SYSTEM = `You write tools for the Nexus agent platform as JavaScript run in a QuickJS sandbox.
Rules: define each tool as a top-level function declaration \`async function <tool>(input, ctx)\`; return a JSON object;
no require, import, process, timers or globals beyond ECMAScript; the only network access is
\`await ctx.fetch(url, {method, headers, body})\` (returns {status, ok, text(), json()}) to the declared hosts;
credentials are written \`ctx.credential("NAME")\` inside header values.
Answer with one JSON object {"code": "<the whole module source>", "tests": [{"name", "tool", "input", "expect" | "expect_error"}]}
and nothing else; "tests" are further tests of the spec (the given tests stay); when repairing, answer with the code only.`;

/** The OpenAI-compatible drafter (a local stand-in in tests: no cloud model runs here). */
export function openAiDrafter(o: OpenAiDrafterOptions): ModuleDrafter {
  const ask = async (user: string): Promise<{ code: string; tests?: unknown }> => {
    let response: Response;
    try {
      response = await fetch(`${o.baseUrl.replace(/\/$/, "")}/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(o.apiKey ? { authorization: `Bearer ${o.apiKey}` } : {}) },
        body: JSON.stringify({
          model: o.model,
          stream: false,
          temperature: 0,
          messages: [
            { role: "system", content: SYSTEM },
            { role: "user", content: user },
          ],
        }),
        signal: AbortSignal.timeout(o.timeoutMs),
      });
    } catch (e) {
      throw domainError(
        "DEPENDENCY_UNAVAILABLE",
        `the openai drafter could not be reached: ${e instanceof Error ? e.message : String(e)}`,
        { provider: "openai" },
        { retryAfterMs: 1000 },
      );
    }
    if (!response.ok)
      throw domainError(
        "DEPENDENCY_UNAVAILABLE",
        `the openai drafter answered HTTP ${response.status}`,
        { provider: "openai" },
        { retryAfterMs: 1000 },
      );
    const body = (await response.json()) as { choices?: { message?: { content?: string } }[] };
    const content = body.choices?.[0]?.message?.content ?? "";
    const json = content.slice(content.indexOf("{"), content.lastIndexOf("}") + 1);
    try {
      const answer = JSON.parse(json) as { code?: unknown; tests?: unknown };
      if (typeof answer.code === "string" && answer.code.trim() !== "") return { code: answer.code, tests: answer.tests };
    } catch {
      // fall through
    }
    throw domainError("DEPENDENCY_UNAVAILABLE", 'the openai drafter\'s answer is not {"code": ...}', { provider: "openai" });
  };
  const describe = (spec: BuildSpec, d: ModuleDraft) =>
    `Spec: ${spec.spec}\nManifest (tools, JSON schemas, tests): ${JSON.stringify(d.manifest.tools.map((t) => ({ name: t.name, description: t.description, input_schema: t.inputSchema, output_schema: t.outputSchema })))}\nTests: ${JSON.stringify(d.manifest.tests)}\nEgress hosts: ${d.manifest.egressHosts.join(", ") || "none"}`;
  return {
    name: "openai",
    async draft(spec, template) {
      const { code, tests } = await ask(
        `${describe(spec, template)}\nA starting point from the template:\n${template.code}\nWrite the module and further tests of the spec.`,
      );
      const manifest = clone(ModuleManifestSchema, template.manifest);
      manifest.tests.push(...modelTests(manifest, tests));
      return { manifest, code };
    },
    async repair(spec, draft, failures) {
      const failed = failures
        .filter((f) => !f.passed)
        .map((f) => `- ${f.name}: ${f.message}`)
        .join("\n");
      const { code } = await ask(
        `${describe(spec, draft)}\nThe current code:\n${draft.code}\nThese tests failed in the sandbox:\n${failed}\nFix the code.`,
      );
      return { manifest: draft.manifest, code };
    },
  };
}

/** The outcome of a build: the last draft, its test results and the repairs made. */
export interface BuildOutcome {
  draft: ModuleDraft;
  results: TestResult[];
  repairs: number;
}

/**
 * The build loop: draft from the template, run the generated tests in the sandbox, and while
 * some fail and repairs remain, feed the failures back to the drafter.
 */
export async function buildModule(
  spec: BuildSpec,
  drafter: ModuleDrafter,
  maxRepairs: number,
  test: (draft: ModuleDraft) => Promise<TestResult[]>,
): Promise<BuildOutcome> {
  let draft = await drafter.draft(spec, templateDraft(spec));
  let results = await test(draft);
  let repairs = 0;
  while (results.some((r) => !r.passed) && repairs < maxRepairs) {
    repairs += 1;
    draft = await drafter.repair(spec, draft, results);
    results = await test(draft);
  }
  return { draft, results, repairs };
}
