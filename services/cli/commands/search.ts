import { parseArgs } from "node:util";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { SearchMode, SearchResponseSchema } from "../../../gen/nexus/retrieval/v1/retrieval_service_pb.js";
import type { Command } from "../command.js";
import { UsageError } from "../command.js";
import { CLIENT_OPTIONS, clientFrom, printJson } from "./client-options.js";
import { integerOption } from "./corpora.js";

const MODES: Record<string, SearchMode> = { hybrid: SearchMode.HYBRID, vector: SearchMode.VECTOR, lexical: SearchMode.LEXICAL };

/** `key=value` filters: the value is JSON when it parses (numbers, booleans), else a string. */
function metadataFilter(pairs: readonly string[]): JsonObject | undefined {
  if (pairs.length === 0) return undefined;
  const out: JsonObject = {};
  for (const pair of pairs) {
    const i = pair.indexOf("=");
    if (i <= 0) throw new UsageError("--where takes key=value, e.g. --where lang=en --where year=2024");
    const raw = pair.slice(i + 1);
    let value: JsonValue;
    try {
      value = JSON.parse(raw) as JsonValue;
    } catch {
      value = raw;
    }
    out[pair.slice(0, i)] = value;
  }
  return out;
}

const snippet = (text: string, width = 160) => {
  const one = text.replace(/\s+/g, " ").trim();
  return one.length > width ? `${one.slice(0, width - 1)}…` : one;
};

/** `nexus search`. */
export const searchCommand: Command = {
  path: ["search"],
  summary: "Search a corpus (hybrid vector + full-text by default) and print the best passages with their citations",
  usage: 'nexus search "QUERY" --corpus C [--top-k 5] [--mode hybrid|vector|lexical] [--doc ID]… [--where key=value]… [--json]',
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      options: {
        ...CLIENT_OPTIONS,
        corpus: { type: "string" },
        "top-k": { type: "string" },
        mode: { type: "string" },
        doc: { type: "string", multiple: true },
        where: { type: "string", multiple: true },
      },
      allowPositionals: true,
      strict: true,
    });
    if (!values.corpus) throw new UsageError("--corpus is required");
    const query = positionals.join(" ").trim();
    if (!query) throw new UsageError("give the query text");
    const mode = values.mode === undefined ? SearchMode.HYBRID : MODES[values.mode.toLowerCase()];
    if (mode === undefined) throw new UsageError("--mode takes hybrid, vector or lexical");
    const topK = integerOption(values["top-k"], "--top-k", 1, 50);
    const metadataEquals = metadataFilter(values.where ?? []);
    const res = await clientFrom(values).retrieval.search({
      corpusId: values.corpus,
      query,
      mode,
      ...(topK !== undefined ? { topK } : {}),
      filter: { documentIds: values.doc ?? [], ...(metadataEquals ? { metadataEquals } : {}) },
    });
    if (values.json) {
      printJson(SearchResponseSchema, res);
      return 0;
    }
    const how = SearchMode[res.mode]?.toLowerCase() ?? "?";
    console.log(`${res.hits.length} hit(s), ${how} ranking${res.embeddingModel ? ` (${res.embeddingModel})` : ""}`);
    res.hits.forEach((h, i) => {
      const scores = [
        `fused ${h.fusedScore.toFixed(4)}`,
        h.vectorScore !== undefined ? `vector ${h.vectorScore.toFixed(3)}` : undefined,
        h.lexicalScore !== undefined ? `lexical ${h.lexicalScore.toFixed(3)}` : undefined,
      ].filter(Boolean);
      console.log(
        `\n${i + 1}. ${h.filename || h.documentId} [${h.documentId} #${h.chunkOrdinal}, chars ${h.charStart}-${h.charEnd}] ${scores.join(", ")}`,
      );
      console.log(`   ${snippet(h.text)}`);
    });
    return 0;
  },
};
