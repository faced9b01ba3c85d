import { parseArgs } from "node:util";
import { type JsonObject, toJson } from "@bufbuild/protobuf";
import type { Corpus } from "../../../gen/nexus/retrieval/v1/corpus_pb.js";
import { CorpusSchema } from "../../../gen/nexus/retrieval/v1/corpus_pb.js";
import type { Command } from "../command.js";
import { UsageError } from "../command.js";
import { printTable } from "../output.js";
import { CLIENT_OPTIONS, clientFrom, printJson, when } from "./client-options.js";

/** Parses a JSON object option such as --provider-config or --metadata. */
export function jsonObjectOption(text: string | undefined, option: string): JsonObject | undefined {
  if (text === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new UsageError(`${option} must be a JSON object, e.g. '{"retrieval": {"provider": "local_pgvector"}}'`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new UsageError(`${option} must be a JSON object`);
  return value as JsonObject;
}

/** Parses a positive integer option. */
export function integerOption(text: string | undefined, option: string, min = 1, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`${option} must be an integer from ${min} to ${max}`);
  return n;
}

function provider(c: Corpus): string {
  const r = c.providerConfig?.retrieval as JsonObject | undefined;
  return typeof r?.provider === "string" ? r.provider : "?";
}

function printCorpora(corpora: Corpus[]): void {
  printTable(
    ["ID", "NAME", "PROVIDER", "MODEL", "DIMS", "DOCS", "CHUNKS", "REINDEX", "CREATED"],
    corpora.map((c) => [
      c.id,
      c.displayName,
      provider(c),
      c.embeddingModel,
      String(c.embeddingDimensions),
      String(c.documentCount),
      String(c.chunkCount),
      c.reindexRequired ? "required" : "-",
      when(c.createdAt),
    ]),
  );
}

function printCorpus(c: Corpus): void {
  console.log(
    [
      `id:                ${c.id}`,
      `name:              ${c.displayName}`,
      `description:       ${c.description || "-"}`,
      `provider config:   ${JSON.stringify(c.providerConfig ?? {})}`,
      `embedding model:   ${c.embeddingModel} (${c.embeddingDimensions} dimensions)`,
      `documents:         ${c.documentCount}`,
      `chunks:            ${c.chunkCount}`,
      `reindex required:  ${c.reindexRequired ? "yes (search uses the old vectors until every document is reindexed)" : "no"}`,
      `created:           ${when(c.createdAt)}`,
      `updated:           ${when(c.updatedAt)}`,
    ].join("\n"),
  );
}

const SETTINGS = {
  name: { type: "string" },
  description: { type: "string" },
  "provider-config": { type: "string" },
  "embedding-model": { type: "string" },
  dimensions: { type: "string" },
} as const;

/** `nexus corpora create`. */
export const corporaCreateCommand: Command = {
  path: ["corpora", "create"],
  summary: "Create a corpus (provider config defaults to the local pgvector + full-text provider)",
  usage:
    "nexus corpora create [ID] --name NAME [--description TEXT] [--provider-config JSON] [--embedding-model M] [--dimensions N] [--json]",
  async run(args) {
    const { values, positionals } = parseArgs({ args, options: { ...CLIENT_OPTIONS, ...SETTINGS }, allowPositionals: true, strict: true });
    if (positionals.length > 1) throw new UsageError("give at most one corpus id");
    if (!values.name) throw new UsageError("--name is required");
    const providerConfig = jsonObjectOption(values["provider-config"], "--provider-config");
    const { corpus } = await clientFrom(values).retrieval.createCorpus({
      corpusId: positionals[0] ?? "",
      displayName: values.name,
      description: values.description ?? "",
      ...(providerConfig ? { providerConfig } : {}),
      embeddingModel: values["embedding-model"] ?? "",
      embeddingDimensions: integerOption(values.dimensions, "--dimensions", 8, 4096) ?? 0,
    });
    if (values.json) printJson(CorpusSchema, corpus!);
    else printCorpus(corpus!);
    return 0;
  },
};

/** `nexus corpora list`. */
export const corporaListCommand: Command = {
  path: ["corpora", "list"],
  summary: "List the tenant's corpora",
  usage: "nexus corpora list [--json]",
  async run(args) {
    const { values } = parseArgs({ args, options: { ...CLIENT_OPTIONS }, strict: true });
    const client = clientFrom(values);
    const all: Corpus[] = [];
    let pageToken = "";
    do {
      const page = await client.retrieval.listCorpora({ pageSize: 200, pageToken });
      all.push(...page.corpora);
      pageToken = page.nextPageToken;
    } while (pageToken);
    if (values.json)
      console.log(
        JSON.stringify(
          all.map((c) => toJson(CorpusSchema, c)),
          null,
          2,
        ),
      );
    else if (all.length === 0) console.log("no corpora yet: nexus corpora create ID --name NAME");
    else printCorpora(all);
    return 0;
  },
};

/** `nexus corpora get`. */
export const corporaGetCommand: Command = {
  path: ["corpora", "get"],
  summary: "Show one corpus",
  usage: "nexus corpora get ID [--json]",
  async run(args) {
    const { values, positionals } = parseArgs({ args, options: { ...CLIENT_OPTIONS }, allowPositionals: true, strict: true });
    if (positionals.length !== 1) throw new UsageError("give one corpus id");
    const { corpus } = await clientFrom(values).retrieval.getCorpus({ corpusId: positionals[0]! });
    if (values.json) printJson(CorpusSchema, corpus!);
    else printCorpus(corpus!);
    return 0;
  },
};

/** `nexus corpora update`. */
export const corporaUpdateCommand: Command = {
  path: ["corpora", "update"],
  summary: "Change a corpus's name, description, provider config or embedding model (model changes need a reindex)",
  usage:
    "nexus corpora update ID [--name NAME] [--description TEXT] [--provider-config JSON] [--embedding-model M] [--dimensions N] [--json]",
  async run(args) {
    const { values, positionals } = parseArgs({ args, options: { ...CLIENT_OPTIONS, ...SETTINGS }, allowPositionals: true, strict: true });
    if (positionals.length !== 1) throw new UsageError("give one corpus id");
    const paths: string[] = [];
    if (values.name !== undefined) paths.push("display_name");
    if (values.description !== undefined) paths.push("description");
    if (values["provider-config"] !== undefined) paths.push("provider_config");
    if (values["embedding-model"] !== undefined) paths.push("embedding_model");
    if (values.dimensions !== undefined) paths.push("embedding_dimensions");
    if (paths.length === 0)
      throw new UsageError("nothing to change: give --name, --description, --provider-config, --embedding-model or --dimensions");
    const providerConfig = jsonObjectOption(values["provider-config"], "--provider-config");
    const res = await clientFrom(values).retrieval.updateCorpus({
      corpusId: positionals[0]!,
      displayName: values.name ?? "",
      description: values.description ?? "",
      ...(providerConfig ? { providerConfig } : {}),
      embeddingModel: values["embedding-model"] ?? "",
      embeddingDimensions: integerOption(values.dimensions, "--dimensions", 8, 4096) ?? 0,
      updateMask: { paths },
    });
    if (values.json) printJson(CorpusSchema, res.corpus!);
    else {
      printCorpus(res.corpus!);
      if (res.reindexRequired)
        console.log(`\nThe embedding settings changed: reindex the documents (nexus docs reindex ID) for search to use them.`);
    }
    return 0;
  },
};

/** `nexus corpora delete`. */
export const corporaDeleteCommand: Command = {
  path: ["corpora", "delete"],
  summary: "Delete a corpus (--force also deletes its documents and chunks)",
  usage: "nexus corpora delete ID [--force]",
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      options: { ...CLIENT_OPTIONS, force: { type: "boolean" } },
      allowPositionals: true,
      strict: true,
    });
    if (positionals.length !== 1) throw new UsageError("give one corpus id");
    await clientFrom(values).retrieval.deleteCorpus({ corpusId: positionals[0]!, force: values.force === true });
    console.log(`deleted corpus ${positionals[0]}`);
    return 0;
  },
};

/** Every `nexus corpora` command. */
export const corporaCommands: readonly Command[] = [
  corporaCreateCommand,
  corporaListCommand,
  corporaGetCommand,
  corporaUpdateCommand,
  corporaDeleteCommand,
];
