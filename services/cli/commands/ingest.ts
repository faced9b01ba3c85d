import { createHash } from "node:crypto";
import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import { create, type JsonObject } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { type Document, DocumentStatus } from "../../../gen/nexus/ingestion/v1/document_pb.js";
import { type UploadDocumentRequest, UploadDocumentRequestSchema } from "../../../gen/nexus/ingestion/v1/ingestion_service_pb.js";
import type { NexusClient } from "../../client/create-nexus-client.js";
import { withRetry } from "../../client/retry.js";
import type { Command } from "../command.js";
import { UsageError } from "../command.js";
import { describeError } from "../output.js";
import { CLI_RETRY, CLIENT_OPTIONS, clientFrom } from "./client-options.js";
import { integerOption, jsonObjectOption } from "./corpora.js";
import { statusLabel, waitForDocument } from "./docs.js";

/** Extensions picked up when walking a folder (files named explicitly are always sent). */
const FOLDER_EXTENSIONS = new Set([".txt", ".text", ".md", ".markdown", ".mdx", ".html", ".htm", ".json", ".pdf", ".docx", ".csv", ".log"]);

/** Bytes per upload message (well under the 4 MiB message limit). */
const UPLOAD_CHUNK = 1 << 20;

/** A document id for a file path: stable across runs, so ingesting a folder again changes nothing. */
export function documentIdForPath(relative: string): string {
  const cleaned = relative
    .split(path.sep)
    .join(":")
    .replace(/[^A-Za-z0-9._:-]+/g, "-")
    .replace(/^[^A-Za-z0-9]+/, "");
  if (cleaned.length > 0 && cleaned.length <= 128) return cleaned;
  const digest = createHash("sha256").update(relative).digest("hex").slice(0, 16);
  return `${(cleaned || "doc").slice(0, 110)}-${digest}`;
}

async function collect(inputs: readonly string[]): Promise<string[]> {
  const files: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true });
    entries.sort((a, b) => a.name.localeCompare(b.name));
    for (const e of entries) {
      if (e.name.startsWith(".") || e.name === "node_modules") continue;
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile() && FOLDER_EXTENSIONS.has(path.extname(e.name).toLowerCase())) files.push(p);
    }
  };
  for (const input of inputs) {
    const s = await stat(input).catch(() => undefined);
    if (!s) throw new UsageError(`${input}: no such file or folder`);
    if (s.isDirectory()) await walk(input);
    else files.push(input);
  }
  return [...new Set(files)];
}

async function* uploadStream(
  header: UploadDocumentRequest["part"] & { case: "header" },
  bytes: Uint8Array,
): AsyncGenerator<UploadDocumentRequest> {
  yield create(UploadDocumentRequestSchema, { part: header });
  for (let i = 0; i < bytes.byteLength; i += UPLOAD_CHUNK) {
    yield create(UploadDocumentRequestSchema, { part: { case: "chunk", value: bytes.subarray(i, i + UPLOAD_CHUNK) } });
  }
}

/** One file's line on the screen. */
interface Row {
  file: string;
  id: string;
  state: string;
  done: number;
  total: number;
  note: string;
  final: boolean;
  ok: boolean;
}

/**
 * The per-file progress display: on a terminal a block of bars redrawn in place; otherwise
 * one line per state change (logs and CI stay readable).
 */
class ProgressBoard {
  private drawn = 0;
  private readonly printed = new Map<string, string>();
  constructor(
    private readonly rows: Row[],
    private readonly tty: boolean,
  ) {}

  private line(r: Row): string {
    const width = 24;
    const ratio = r.final && r.ok ? 1 : r.total > 0 ? Math.min(1, r.done / r.total) : 0;
    const filled = Math.round(ratio * width);
    const bar = `[${"#".repeat(filled)}${"-".repeat(width - filled)}]`;
    const chunks = r.total > 0 ? ` ${r.done}/${r.total} chunks` : "";
    return `${bar} ${String(Math.round(ratio * 100)).padStart(3)}% ${r.state.padEnd(10)}${chunks}  ${r.file}${r.note ? `  ${r.note}` : ""}`;
  }

  render(): void {
    if (this.tty) {
      if (this.drawn > 0) process.stdout.write(`\x1b[${this.drawn}A`);
      for (const r of this.rows) process.stdout.write(`\x1b[2K${this.line(r)}\n`);
      this.drawn = this.rows.length;
      return;
    }
    for (const r of this.rows) {
      const key = `${r.state}|${r.note}`;
      if (this.printed.get(r.file) === key) continue;
      this.printed.set(r.file, key);
      console.log(`${r.file}: ${r.state}${r.total > 0 ? ` (${r.done}/${r.total} chunks)` : ""}${r.note ? ` ${r.note}` : ""}`);
    }
  }
}

function apply(row: Row, d: Document): void {
  row.state = statusLabel(d.status);
  if (d.progress) {
    row.done = d.progress.chunksDone;
    row.total = d.progress.chunksTotal;
  }
  if (d.status === DocumentStatus.SUCCEEDED) {
    row.final = row.ok = true;
    row.done = row.total = d.chunkCount;
    row.note = `${d.chunkCount} chunks, version ${d.version}`;
  } else if (d.status === DocumentStatus.FAILED) {
    row.final = true;
    row.note = `${d.failureReason}: ${d.failureMessage}${d.deadLettered ? " (dead-lettered)" : ""}`;
  }
}

async function runPool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/** `nexus ingest`. */
export const ingestCommand: Command = {
  path: ["ingest"],
  summary: "Upload files or folders into a corpus and show each one's progress until it succeeds or fails",
  usage:
    "nexus ingest <files or folders…> --corpus C [--id ID] [--metadata JSON] [--overwrite] [--chunk-size 1200] [--chunk-overlap 150] [--concurrency 4] [--no-wait]",
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      options: {
        ...CLIENT_OPTIONS,
        corpus: { type: "string" },
        id: { type: "string" },
        metadata: { type: "string" },
        overwrite: { type: "boolean" },
        "chunk-size": { type: "string" },
        "chunk-overlap": { type: "string" },
        concurrency: { type: "string" },
        "no-wait": { type: "boolean" },
      },
      allowPositionals: true,
      strict: true,
    });
    if (!values.corpus) throw new UsageError("--corpus is required");
    if (positionals.length === 0) throw new UsageError("give at least one file or folder");
    const metadata: JsonObject = jsonObjectOption(values.metadata, "--metadata") ?? {};
    const chunkSize = integerOption(values["chunk-size"], "--chunk-size", 100, 20_000);
    const chunkOverlap = integerOption(values["chunk-overlap"], "--chunk-overlap", 0, 10_000);
    const concurrency = integerOption(values.concurrency, "--concurrency", 1, 64) ?? 4;
    const files = await collect(positionals);
    if (files.length === 0) throw new UsageError("no supported files found (txt, md, html, json, pdf, docx)");
    if (values.id && files.length > 1) throw new UsageError("--id names one document: give exactly one file");
    const client: NexusClient = clientFrom(values);
    const rows: Row[] = files.map((file) => ({
      file,
      id: values.id ?? documentIdForPath(path.relative(process.cwd(), path.resolve(file))),
      state: "waiting",
      done: 0,
      total: 0,
      note: "",
      final: false,
      ok: false,
    }));
    const board = new ProgressBoard(rows, process.stdout.isTTY === true);
    board.render();
    await runPool(rows, concurrency, async (row) => {
      try {
        row.state = "uploading";
        board.render();
        const bytes = await readFile(row.file);
        // A client stream cannot be replayed by the SDK: a refusal before any work (rate limit)
        // re-sends the whole upload here.
        const res = await withRetry(
          () =>
            client.ingestion.uploadDocument(
              uploadStream(
                {
                  case: "header",
                  value: {
                    corpusId: values.corpus!,
                    documentId: row.id,
                    filename: path.basename(row.file),
                    metadata,
                    overwrite: values.overwrite === true,
                    sizeBytes: BigInt(bytes.byteLength),
                    sha256: createHash("sha256").update(bytes).digest("hex"),
                    ...(chunkSize !== undefined || chunkOverlap !== undefined
                      ? {
                          chunking: {
                            ...(chunkSize !== undefined ? { chunkSize } : {}),
                            ...(chunkOverlap !== undefined ? { chunkOverlap } : {}),
                          },
                        }
                      : {}),
                  },
                } as UploadDocumentRequest["part"] & { case: "header" },
                bytes,
              ),
            ),
          CLI_RETRY,
        );
        apply(row, res.document!);
        if (res.unchanged) {
          row.note = `unchanged (same content already ingested as ${row.id})${row.final && !row.ok ? `; it failed before: ${row.note} — pass --overwrite to retry` : ""}`;
        }
        board.render();
        if (values["no-wait"] || row.final) {
          if (values["no-wait"] && !row.final) row.ok = true;
          return;
        }
        await waitForDocument(client, row.id, (d) => {
          apply(row, d);
          board.render();
        });
      } catch (err) {
        row.final = true;
        row.state = "error";
        row.note = err instanceof ConnectError ? describeError(err) : (err as Error).message;
      }
      board.render();
    });
    const failed = rows.filter((r) => !r.ok);
    console.log(
      `${rows.length - failed.length} of ${rows.length} file(s) ${values["no-wait"] ? "queued" : "ingested"} into corpus ${values.corpus}`,
    );
    if (failed.some((r) => /ALREADY_EXISTS/.test(r.note)))
      console.log("Changed files keep their document id: pass --overwrite to replace them.");
    return failed.length > 0 ? 1 : 0;
  },
};
