import { create } from "@bufbuild/protobuf";
import { ModuleKind, type ModuleManifest, ModuleManifestSchema } from "../../../gen/nexus/modules/v1/module_pb.js";

/** What a builder is asked for. */
export interface BuildSpec {
  name: string;
  version: string;
  spec: string;
  template: "transform" | "http-json";
  egressHost: string;
}

/** A draft: the manifest (tools, schemas, generated tests) and the code. */
export interface ModuleDraft {
  manifest: ModuleManifest;
  code: string;
}

type Operation = {
  op: "sum" | "average" | "max" | "min" | "count" | "median";
  expr: string;
  expected: number;
  /** A further generated test of the statistic. */
  extra?: { name: string; values: number[]; expected: number };
};

const OPERATIONS: readonly { words: RegExp; op: Operation }[] = [
  // The median's first draft sorts with the default comparator (as strings), which the
  // generated "median of 10, 9, 2" test catches; the template drafter's known repairs fix it
  // (module-builder.ts), so the offline provider exercises the repair loop too.
  {
    words: /\bmedian\b/i,
    op: {
      op: "median",
      expr: "(() => { const s = values.slice().sort(); const m = Math.floor(s.length / 2); return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; })()",
      expected: 2.5,
      extra: { name: "median of 10, 9, 2", values: [10, 9, 2], expected: 9 },
    },
  },
  { words: /\b(average|mean)\b/i, op: { op: "average", expr: "values.reduce((a, b) => a + b, 0) / values.length", expected: 2.5 } },
  { words: /\b(max|maximum|largest|highest|biggest)\b/i, op: { op: "max", expr: "Math.max(...values)", expected: 4 } },
  { words: /\b(min|minimum|smallest|lowest)\b/i, op: { op: "min", expr: "Math.min(...values)", expected: 1 } },
  { words: /\b(count|how many|number of)\b/i, op: { op: "count", expr: "values.length", expected: 4 } },
  { words: /\b(sum|total|add)\b/i, op: { op: "sum", expr: "values.reduce((a, b) => a + b, 0)", expected: 10 } },
];

/** The operation a transform spec asks for (the first keyword found; sum when none). */
export function operationOf(spec: string): Operation {
  return OPERATIONS.find((o) => o.words.test(spec))?.op ?? (OPERATIONS.at(-1) as (typeof OPERATIONS)[number]).op;
}

/**
 * The templates the builder starts from. Each gives the manifest (tool, JSON schemas, the
 * generated tests) and a first draft of the code; the offline provider uses the draft as it
 * is, a model provider rewrites the code from the spec.
 *
 * - `transform`: numbers in → one statistic, the data as rows and a chart specification
 *   (`{type, title, x, y}`) the console renders;
 * - `http-json`: GET a JSON API on the one declared host, returning its status and data.
 */
export function templateDraft(b: BuildSpec): ModuleDraft {
  if (b.template === "http-json") {
    const scheme = /^(localhost|127\.|\[::1\])/.test(b.egressHost) ? "http" : "https";
    const manifest = create(ModuleManifestSchema, {
      name: b.name,
      version: b.version,
      description: b.spec.slice(0, 2000),
      kind: ModuleKind.CODE,
      tools: [
        {
          name: "fetch_json",
          description: `GET a path of ${b.egressHost} and return its JSON. ${b.spec}`.slice(0, 2000),
          inputSchema: {
            type: "object",
            required: ["path"],
            properties: { path: { type: "string", pattern: "^/" } },
            additionalProperties: false,
          },
          outputSchema: { type: "object", required: ["status"], properties: { status: { type: "number" }, data: {} } },
        },
      ],
      egressHosts: [b.egressHost],
      tests: [
        { name: "fetches the root", tool: "fetch_json", input: { path: "/" }, expect: { status: 200 } },
        { name: "refuses a path that is not absolute", tool: "fetch_json", input: { path: "x" }, expectError: "TOOL_INPUT_INVALID" },
      ],
    });
    const code = `// ${oneLine(b.spec)}
async function fetch_json(input, ctx) {
  const res = await ctx.fetch(${JSON.stringify(`${scheme}://${b.egressHost}`)} + input.path, { headers: { accept: "application/json" } });
  const text = await res.text();
  let data = null;
  try { data = JSON.parse(text); } catch { data = text; }
  return { status: res.status, data };
}
`;
    return { manifest, code };
  }
  const op = operationOf(b.spec);
  const manifest = create(ModuleManifestSchema, {
    name: b.name,
    version: b.version,
    description: b.spec.slice(0, 2000),
    kind: ModuleKind.CODE,
    tools: [
      {
        name: "compute",
        description: `${b.spec} Returns the ${op.op} of the values, the values as rows and a bar chart specification.`.slice(0, 2000),
        inputSchema: {
          type: "object",
          required: ["values"],
          properties: {
            values: { type: "array", minItems: 1, maxItems: 10000, items: { type: "number" } },
            labels: { type: "array", items: { type: "string" } },
          },
          additionalProperties: false,
        },
        outputSchema: {
          type: "object",
          required: ["result", "data", "chart"],
          properties: {
            result: { type: "number" },
            data: { type: "array", items: { type: "object", required: ["label", "value"] } },
            chart: { type: "object", required: ["type", "x", "y"] },
          },
        },
      },
    ],
    tests: [
      { name: `${op.op} of 1, 2, 3, 4`, tool: "compute", input: { values: [1, 2, 3, 4] }, expect: { result: op.expected } },
      ...(op.extra
        ? [{ name: op.extra.name, tool: "compute", input: { values: op.extra.values }, expect: { result: op.extra.expected } }]
        : []),
      {
        name: "returns rows and a bar chart",
        tool: "compute",
        input: { values: [5, 7], labels: ["a", "b"] },
        expect: {
          data: [
            { label: "a", value: 5 },
            { label: "b", value: 7 },
          ],
          chart: { type: "bar", x: "label", y: "value" },
        },
      },
      { name: "refuses values that are not numbers", tool: "compute", input: { values: ["x"] }, expectError: "TOOL_INPUT_INVALID" },
    ],
  });
  const code = `// ${oneLine(b.spec)}
function compute(input) {
  const values = input.values;
  const labels = input.labels || [];
  const result = ${op.expr};
  return {
    result,
    data: values.map((value, i) => ({ label: labels[i] !== undefined ? labels[i] : String(i + 1), value })),
    chart: { type: "bar", title: ${JSON.stringify(`${op.op} of the values`)}, x: "label", y: "value" },
  };
}
`;
  return { manifest, code };
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, " ").slice(0, 200);
}
