import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DocumentStatus } from "../../../gen/nexus/ingestion/v1/document_pb.js";
import { eventually } from "../../../tests/support/eventually.js";
import { expectRpcError, settled, uploadMessages } from "../../../tests/support/rag/calls.js";
import { corruptPdf, makeDocx, makePdf } from "../../../tests/support/rag/documents.js";
import {
  clientsFor,
  documentsCipher,
  openRag,
  platformPrincipal,
  type Rag,
  type RagClients,
  tenantPrincipal,
} from "../../../tests/support/rag/harness.js";
import { createPgliteDatabase } from "../../kernel/db/pglite-database.js";
import type { Database } from "../../kernel/db/ports.js";
import { createLocalEventBus } from "../../kernel/events/local-bus.js";
import type { EventBus } from "../../kernel/events/ports.js";
import { chunkText } from "./chunking/chunker.js";

const paragraph = (topic: string, n: number) =>
  Array.from({ length: n }, (_, i) => `${topic} fact ${i}: the handbook explains ${topic} rule number ${i} in plain words.`).join(" ");

async function chunkRows(db: Database, tenantId: string, documentId: string) {
  const { rows } = await db.query<{ version: bigint; ordinal: number; char_start: number; char_end: number; text: string }>(
    "SELECT version, ordinal, char_start, char_end, text FROM retrieval.chunks WHERE tenant_id = $1 AND document_id = $2 ORDER BY ordinal",
    [tenantId, documentId],
  );
  // The texts are sealed at rest (docs/governance.md); open them as the search does.
  const texts = await documentsCipher(db).openTexts(
    tenantId,
    rows.map((r) => r.text),
  );
  return rows.map((r, i) => ({ ...r, text: texts[i]! }));
}

describe("document lifecycle (PGlite + local bus, real worker)", () => {
  let db: Database;
  let bus: EventBus;
  let rag: Rag;
  let api: RagClients;
  const tenant = tenantPrincipal("tenant-life");

  beforeAll(async () => {
    db = await createPgliteDatabase();
    bus = await createLocalEventBus({ db, pollIntervalMs: 50 });
    rag = await openRag({ db, bus, vectors: true });
    api = clientsFor(rag, tenant);
    await api.retrieval.createCorpus({ corpusId: "handbook", displayName: "Handbook" });
  });
  afterAll(async () => {
    await rag?.close();
    await bus?.close();
    await db?.close();
  });

  it("queues, processes and succeeds with exactly the chunker's chunks and exact offsets", async () => {
    const text = [paragraph("vacation", 12), paragraph("expenses", 12), paragraph("security", 12)].join("\n\n");
    const { document, unchanged } = await api.ingestion.ingestText({
      corpusId: "handbook",
      documentId: "doc-1",
      text,
      filename: "handbook.txt",
    });
    expect(unchanged).toBe(false);
    expect(document?.status).toBe(DocumentStatus.QUEUED);
    expect(document?.version).toBe(1n);
    const done = await settled(api, "doc-1");
    expect(done.status).toBe(DocumentStatus.SUCCEEDED);
    const expected = chunkText(text, { size: 1200, overlap: 150 });
    expect(done.chunkCount).toBe(expected.length);
    const rows = await chunkRows(db, tenant.tenantId, "doc-1");
    expect(rows.map((r) => [r.ordinal, r.char_start, r.char_end, r.text])).toEqual(
      expected.map((c) => [c.ordinal, c.charStart, c.charEnd, c.text]),
    );
    expect(done.attempts).toBe(1);
    expect(done.completedAt).toBeDefined();
    const corpus = (await api.retrieval.getCorpus({ corpusId: "handbook" })).corpus!;
    expect(corpus.documentCount).toBe(1n);
    expect(corpus.chunkCount).toBe(BigInt(expected.length));
  });

  it("re-ingesting the same id and content changes nothing; other content needs overwrite", async () => {
    const text = paragraph("travel", 30);
    await api.ingestion.ingestText({ corpusId: "handbook", documentId: "doc-2", text });
    const first = await settled(api, "doc-2");
    const again = await api.ingestion.ingestText({ corpusId: "handbook", documentId: "doc-2", text });
    expect(again.unchanged).toBe(true);
    expect(again.document?.version).toBe(1n);
    expect(again.document?.status).toBe(DocumentStatus.SUCCEEDED);
    expect((await chunkRows(db, tenant.tenantId, "doc-2")).length).toBe(first.chunkCount);
    await expectRpcError(
      api.ingestion.ingestText({ corpusId: "handbook", documentId: "doc-2", text: "different" }),
      Code.AlreadyExists,
      "ALREADY_EXISTS",
    );

    const replaced = await api.ingestion.ingestText({
      corpusId: "handbook",
      documentId: "doc-2",
      text: paragraph("parking", 5),
      overwrite: true,
    });
    expect(replaced.document?.version).toBe(2n);
    const second = await settled(api, "doc-2");
    expect(second.status).toBe(DocumentStatus.SUCCEEDED);
    const rows = await chunkRows(db, tenant.tenantId, "doc-2");
    expect(rows.length).toBe(second.chunkCount);
    expect(new Set(rows.map((r) => r.version))).toEqual(new Set([2n]));
    expect(rows.every((r) => r.text.includes("parking"))).toBe(true);
  });

  it("reindexes with new chunking as a new version; overlap >= size is refused up front", async () => {
    await expectRpcError(api.ingestion.reindexDocument({ documentId: "doc-1", chunkSize: 300, chunkOverlap: 300 }), Code.InvalidArgument);
    await expectRpcError(api.ingestion.reindexDocument({ documentId: "doc-1", chunkOverlap: 1500 }), Code.InvalidArgument);
    const before = (await api.ingestion.getDocument({ documentId: "doc-1" })).document!;
    const { document } = await api.ingestion.reindexDocument({ documentId: "doc-1", chunkSize: 300, chunkOverlap: 50 });
    expect(document?.version).toBe(before.version + 1n);
    expect(document?.status).toBe(DocumentStatus.QUEUED);
    const after = await settled(api, "doc-1");
    expect(after.chunkCount).toBeGreaterThan(before.chunkCount);
    expect(after.chunking?.chunkSize).toBe(300);
    const rows = await chunkRows(db, tenant.tenantId, "doc-1");
    expect(rows.length).toBe(after.chunkCount);
    expect(rows.every((r) => r.text.length <= 300 && r.version === after.version)).toBe(true);
  });

  it("deletes a finished document with all its chunks; GetDocument is then NOT_FOUND", async () => {
    await api.ingestion.ingestText({ corpusId: "handbook", documentId: "doc-del", text: paragraph("deletion", 20) });
    await settled(api, "doc-del");
    expect((await chunkRows(db, tenant.tenantId, "doc-del")).length).toBeGreaterThan(0);
    const before = (await api.retrieval.getCorpus({ corpusId: "handbook" })).corpus!;
    await api.ingestion.deleteDocument({ documentId: "doc-del" });
    await expectRpcError(api.ingestion.getDocument({ documentId: "doc-del" }), Code.NotFound, "NOT_FOUND");
    expect(await chunkRows(db, tenant.tenantId, "doc-del")).toEqual([]);
    const after = (await api.retrieval.getCorpus({ corpusId: "handbook" })).corpus!;
    expect(after.documentCount).toBe(before.documentCount - 1n);
    await expectRpcError(api.ingestion.deleteDocument({ documentId: "doc-del" }), Code.NotFound);
  });

  it("WatchDocument streams the state until the document finishes, then ends", async () => {
    await api.ingestion.ingestText({ corpusId: "handbook", documentId: "doc-watch", text: paragraph("watching", 80) });
    const seen: Array<{ status: DocumentStatus; done?: number; total?: number }> = [];
    for await (const update of api.ingestion.watchDocument({ documentId: "doc-watch" })) {
      seen.push({
        status: update.document!.status,
        done: update.document!.progress?.chunksDone,
        total: update.document!.progress?.chunksTotal,
      });
    }
    expect(seen.length).toBeGreaterThan(0);
    expect(seen[seen.length - 1]!.status).toBe(DocumentStatus.SUCCEEDED);
    expect(seen.slice(0, -1).every((s) => s.status === DocumentStatus.QUEUED || s.status === DocumentStatus.PROCESSING)).toBe(true);
    // A finished document: one message, then the end.
    const again = [];
    for await (const update of api.ingestion.watchDocument({ documentId: "doc-watch" })) again.push(update);
    expect(again.length).toBe(1);
  });

  it("lists newest first with cursor pagination and a status filter; a cursor is bound to its filters", async () => {
    for (let i = 0; i < 5; i++) await api.ingestion.ingestText({ corpusId: "handbook", documentId: `page-${i}`, text: `page ${i} text` });
    await eventually("all pages done", async () => {
      const { documents } = await api.ingestion.listDocuments({ statuses: [DocumentStatus.QUEUED, DocumentStatus.PROCESSING] });
      return documents.length === 0;
    });
    const first = await api.ingestion.listDocuments({ pageSize: 3 });
    expect(first.documents.map((d) => d.id)).toEqual(["page-4", "page-3", "page-2"]);
    const second = await api.ingestion.listDocuments({ pageSize: 3, pageToken: first.nextPageToken });
    expect(second.documents.map((d) => d.id)).toEqual(["page-1", "page-0", "doc-watch"]);
    const succeeded = await api.ingestion.listDocuments({ statuses: [DocumentStatus.SUCCEEDED], pageSize: 200 });
    expect(succeeded.documents.every((d) => d.status === DocumentStatus.SUCCEEDED)).toBe(true);
    const failed = await api.ingestion.listDocuments({ statuses: [DocumentStatus.FAILED] });
    expect(failed.documents).toEqual([]);
    await expectRpcError(
      api.ingestion.listDocuments({ statuses: [DocumentStatus.SUCCEEDED], pageToken: first.nextPageToken }),
      Code.InvalidArgument,
      "INVALID_CURSOR",
    );
    await expectRpcError(api.ingestion.listDocuments({ pageToken: "garbage!" }), Code.InvalidArgument, "INVALID_CURSOR");
  });

  it("uploads every format as a client stream and makes each searchable", async () => {
    const files: Array<[string, Uint8Array, string, string]> = [
      ["notes.txt", new TextEncoder().encode("The pelican migrates every spring."), "", "pelican"],
      ["guide.md", new TextEncoder().encode("# Guide\n\nThe *walrus* sleeps on ice."), "text/markdown", "walrus"],
      [
        "page.html",
        new TextEncoder().encode("<html><body><h2>Zoo</h2><p>The <em>okapi</em> hides in forests.</p></body></html>"),
        "",
        "okapi",
      ],
      ["data.json", new TextEncoder().encode(JSON.stringify({ text: "The axolotl regrows its limbs." })), "application/json", "axolotl"],
      ["report.pdf", makePdf(["The narwhal has a long tusk."]), "application/pdf", "narwhal"],
      ["memo.docx", makeDocx(["The pangolin is covered in scales."]), "", "pangolin"],
    ];
    for (const [filename, bytes, mediaType, word] of files) {
      const { document } = await api.ingestion.uploadDocument(
        uploadMessages({ corpusId: "handbook", filename, documentId: `up-${word}`, mediaType }, bytes, 16),
      );
      expect(document?.status).toBe(DocumentStatus.QUEUED);
      expect(document?.sizeBytes).toBe(BigInt(bytes.byteLength));
    }
    for (const [filename, , , word] of files) {
      const done = await settled(api, `up-${word}`);
      expect(done.status, `${filename}: ${done.failureMessage}`).toBe(DocumentStatus.SUCCEEDED);
      const { hits } = await api.retrieval.search({ corpusId: "handbook", query: word, topK: 3 });
      expect(hits[0]?.documentId, filename).toBe(`up-${word}`);
      expect(hits[0]?.filename).toBe(filename);
    }
    const pdf = (await api.ingestion.getDocument({ documentId: "up-narwhal" })).document!;
    expect(pdf.mediaType).toBe("application/pdf");
    expect((await api.ingestion.getDocument({ documentId: "up-pangolin" })).document!.mediaType).toBe(
      "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    );
  });

  it("refuses unsupported and unreadable uploads with INVALID_ARGUMENT, and fails corrupt files as FAILED with a reason", async () => {
    await expectRpcError(
      api.ingestion.uploadDocument(
        uploadMessages({ corpusId: "handbook", filename: "cat.png", mediaType: "image/png" }, Uint8Array.from([137, 80, 78, 71, 1, 2])),
      ),
      Code.InvalidArgument,
      "UNSUPPORTED_MEDIA_TYPE",
    );
    await expectRpcError(
      api.ingestion.uploadDocument(
        uploadMessages({ corpusId: "handbook", filename: "fake.pdf" }, new TextEncoder().encode("this is not a pdf")),
      ),
      Code.InvalidArgument,
      "DOCUMENT_UNREADABLE",
    );
    await expectRpcError(
      api.ingestion.ingestText({ corpusId: "handbook", text: '{"title": "no text"}', mediaType: "application/json" }),
      Code.InvalidArgument,
      "DOCUMENT_UNREADABLE",
    );
    const { document } = await api.ingestion.uploadDocument(
      uploadMessages({ corpusId: "handbook", filename: "broken.pdf", documentId: "broken" }, corruptPdf()),
    );
    expect(document?.status).toBe(DocumentStatus.QUEUED);
    const failed = await settled(api, "broken");
    expect(failed.status).toBe(DocumentStatus.FAILED);
    expect(failed.failureReason).toBe("DOCUMENT_UNREADABLE");
    expect(failed.failureMessage).toMatch(/PDF/);
    expect(failed.deadLettered).toBe(false);
    expect(failed.attempts).toBe(1);
    // A failed document can be deleted.
    await api.ingestion.deleteDocument({ documentId: "broken" });
  });

  it("checks the caller: no principal → UNAUTHENTICATED, platform key → PERMISSION_DENIED, other corpus ids → NOT_FOUND", async () => {
    await expectRpcError(clientsFor(rag, undefined).ingestion.getDocument({ documentId: "doc-1" }), Code.Unauthenticated);
    await expectRpcError(clientsFor(rag, platformPrincipal()).ingestion.getDocument({ documentId: "doc-1" }), Code.PermissionDenied);
    await expectRpcError(api.ingestion.ingestText({ corpusId: "no-such-corpus", text: "x" }), Code.NotFound);
  });
});

describe("busy documents and upload limits (no worker running)", () => {
  let db: Database;
  let bus: EventBus;
  let rag: Rag;
  let api: RagClients;

  beforeAll(async () => {
    db = await createPgliteDatabase();
    bus = await createLocalEventBus({ db, pollIntervalMs: 50 });
    rag = await openRag({ db, bus, vectors: true, workers: false, maxUploadBytes: 2048 });
    api = clientsFor(rag, tenantPrincipal("tenant-busy"));
    await api.retrieval.createCorpus({ corpusId: "c", displayName: "C" });
  });
  afterAll(async () => {
    await rag?.close();
    await bus?.close();
    await db?.close();
  });

  it("refuses delete and reindex of a queued document with FAILED_PRECONDITION DOCUMENT_BUSY", async () => {
    await api.ingestion.ingestText({ corpusId: "c", documentId: "waiting", text: "nobody will process me" });
    await expectRpcError(api.ingestion.deleteDocument({ documentId: "waiting" }), Code.FailedPrecondition, "DOCUMENT_BUSY");
    await expectRpcError(api.ingestion.reindexDocument({ documentId: "waiting" }), Code.FailedPrecondition, "DOCUMENT_BUSY");
    expect((await api.ingestion.getDocument({ documentId: "waiting" })).document?.status).toBe(DocumentStatus.QUEUED);
  });

  it("refuses uploads over the size limit with RESOURCE_EXHAUSTED REQUEST_TOO_LARGE", async () => {
    await expectRpcError(
      api.ingestion.uploadDocument(uploadMessages({ corpusId: "c", filename: "big.txt" }, new Uint8Array(4096).fill(65), 1024)),
      Code.ResourceExhausted,
      "REQUEST_TOO_LARGE",
    );
  });
});
