import { parseArgs } from "node:util";
import { toJson } from "@bufbuild/protobuf";
import { type Document, DocumentSchema, DocumentStatus } from "../../../gen/nexus/ingestion/v1/document_pb.js";
import type { NexusClient } from "../../client/create-nexus-client.js";
import type { Command } from "../command.js";
import { UsageError } from "../command.js";
import { printTable } from "../output.js";
import { CLIENT_OPTIONS, clientFrom, parseNameList, printJson, when } from "./client-options.js";
import { integerOption } from "./corpora.js";

const STATUS: Record<string, DocumentStatus> = {
  queued: DocumentStatus.QUEUED,
  processing: DocumentStatus.PROCESSING,
  succeeded: DocumentStatus.SUCCEEDED,
  failed: DocumentStatus.FAILED,
};

/** "succeeded", "failed", … */
export function statusLabel(s: DocumentStatus): string {
  return DocumentStatus[s]?.toLowerCase() ?? "?";
}

function printDocument(d: Document): void {
  console.log(
    [
      `id:            ${d.id}`,
      `corpus:        ${d.corpusId}`,
      `file:          ${d.filename || "-"} (${d.mediaType}, ${d.sizeBytes} bytes, sha256 ${d.contentSha256.slice(0, 12)}…)`,
      `status:        ${statusLabel(d.status)}${d.progress ? ` (${d.progress.chunksDone}/${d.progress.chunksTotal} chunks)` : ""}`,
      ...(d.status === DocumentStatus.FAILED
        ? [
            `failure:       ${d.failureReason}: ${d.failureMessage}${d.deadLettered ? " (job in the dead-letter queue: nexus dlq list)" : ""}`,
          ]
        : []),
      `version:       ${d.version}  attempts: ${d.attempts}`,
      `chunks:        ${d.chunkCount} (size ${d.chunking?.chunkSize ?? "-"}, overlap ${d.chunking?.chunkOverlap ?? "-"})`,
      `metadata:      ${JSON.stringify(d.metadata ?? {})}`,
      `created:       ${when(d.createdAt)}`,
      `queued:        ${when(d.queuedAt)}`,
      `completed:     ${when(d.completedAt)}`,
    ].join("\n"),
  );
}

/** Follows a document with WatchDocument until it succeeds or fails; returns the final state. */
export async function waitForDocument(client: NexusClient, documentId: string, onUpdate?: (d: Document) => void): Promise<Document> {
  let last: Document | undefined;
  for await (const update of client.ingestion.watchDocument({ documentId })) {
    last = update.document;
    if (last) onUpdate?.(last);
  }
  if (!last) throw new Error(`no state received for document ${documentId}`);
  return last;
}

/** `nexus docs list`. */
export const docsListCommand: Command = {
  path: ["docs", "list"],
  summary: "List documents, newest first (optionally of one corpus and in some states)",
  usage: "nexus docs list [--corpus C] [--status queued,processing,succeeded,failed] [--limit 50] [--json]",
  async run(args) {
    const { values } = parseArgs({
      args,
      options: { ...CLIENT_OPTIONS, corpus: { type: "string" }, status: { type: "string" }, limit: { type: "string" } },
      strict: true,
    });
    const statuses = parseNameList(values.status, STATUS, "--status takes queued, processing, succeeded and failed");
    const limit = integerOption(values.limit, "--limit", 1, 100_000) ?? 50;
    const client = clientFrom(values);
    const docs: Document[] = [];
    let pageToken = "";
    do {
      const page = await client.ingestion.listDocuments({
        corpusId: values.corpus ?? "",
        statuses,
        pageSize: Math.min(200, limit - docs.length),
        pageToken,
      });
      docs.push(...page.documents);
      pageToken = page.nextPageToken;
    } while (pageToken && docs.length < limit);
    if (values.json) {
      console.log(
        JSON.stringify(
          docs.map((d) => toJson(DocumentSchema, d)),
          null,
          2,
        ),
      );
      return 0;
    }
    if (docs.length === 0) {
      console.log("no documents");
      return 0;
    }
    printTable(
      ["ID", "CORPUS", "STATUS", "VERSION", "CHUNKS", "FILE", "UPDATED", "FAILURE"],
      docs.map((d) => [
        d.id,
        d.corpusId,
        statusLabel(d.status),
        String(d.version),
        String(d.chunkCount),
        d.filename || "-",
        when(d.updatedAt),
        d.status === DocumentStatus.FAILED ? `${d.failureReason}${d.deadLettered ? " (dlq)" : ""}` : "",
      ]),
    );
    if (pageToken) console.log(`… more: raise --limit`);
    return 0;
  },
};

/** `nexus docs get`. */
export const docsGetCommand: Command = {
  path: ["docs", "get"],
  summary: "Show a document's state (failure reason, dead letter, progress)",
  usage: "nexus docs get ID [--json]",
  async run(args) {
    const { values, positionals } = parseArgs({ args, options: { ...CLIENT_OPTIONS }, allowPositionals: true, strict: true });
    if (positionals.length !== 1) throw new UsageError("give one document id");
    const { document } = await clientFrom(values).ingestion.getDocument({ documentId: positionals[0]! });
    if (values.json) printJson(DocumentSchema, document!);
    else printDocument(document!);
    return 0;
  },
};

/** `nexus docs delete`. */
export const docsDeleteCommand: Command = {
  path: ["docs", "delete"],
  summary: "Delete a finished document and all its chunks",
  usage: "nexus docs delete ID",
  async run(args) {
    const { values, positionals } = parseArgs({ args, options: { ...CLIENT_OPTIONS }, allowPositionals: true, strict: true });
    if (positionals.length !== 1) throw new UsageError("give one document id");
    await clientFrom(values).ingestion.deleteDocument({ documentId: positionals[0]! });
    console.log(`deleted document ${positionals[0]}`);
    return 0;
  },
};

/** `nexus docs reindex`. */
export const docsReindexCommand: Command = {
  path: ["docs", "reindex"],
  summary: "Re-chunk and re-embed a finished document as a new version (and wait for it)",
  usage: "nexus docs reindex ID [--chunk-size 1200] [--chunk-overlap 150] [--no-wait] [--json]",
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      options: { ...CLIENT_OPTIONS, "chunk-size": { type: "string" }, "chunk-overlap": { type: "string" }, "no-wait": { type: "boolean" } },
      allowPositionals: true,
      strict: true,
    });
    if (positionals.length !== 1) throw new UsageError("give one document id");
    const chunkSize = integerOption(values["chunk-size"], "--chunk-size", 100, 20_000);
    const chunkOverlap = integerOption(values["chunk-overlap"], "--chunk-overlap", 0, 10_000);
    const client = clientFrom(values);
    const { document } = await client.ingestion.reindexDocument({
      documentId: positionals[0]!,
      ...(chunkSize !== undefined ? { chunkSize } : {}),
      ...(chunkOverlap !== undefined ? { chunkOverlap } : {}),
    });
    let final = document!;
    if (!values["no-wait"]) final = await waitForDocument(client, final.id);
    if (values.json) printJson(DocumentSchema, final);
    else printDocument(final);
    return final.status === DocumentStatus.FAILED ? 1 : 0;
  },
};

/** Every `nexus docs` command. */
export const docsCommands: readonly Command[] = [docsListCommand, docsGetCommand, docsDeleteCommand, docsReindexCommand];
