/**
 * The document and corpus aggregates under the kernel's command helper, on a real PostgreSQL:
 * what each command leaves in the state tables (rows, corpus counters, stored content) and in
 * the event store, and that writers of one document serialise instead of conflicting.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, it } from "vitest";
import { DocumentDeletedSchema } from "../../../gen/nexus/events/v1/ingestion_events_pb.js";
import { createTestDatabase, describeWithPostgres, type TestDatabase } from "../../../tests/support/services.js";
import { executeCommand, executeInTransaction } from "../../kernel/commands/index.js";
import { createPgDatabase } from "../../kernel/db/pg-database.js";
import type { Database } from "../../kernel/db/ports.js";
import { errorMetadata, errorReason } from "../../kernel/errors.js";
import { readStream } from "../../kernel/events/event-store.js";
import { migratePlatform } from "../../kernel/events/platform-migrations.js";
import { payloadOf } from "../../kernel/events/protobuf-event.js";
import { migrateSchemas } from "../../kernel/service/index.js";
import { createPgChunkIndex } from "../retrieval/adapters/postgres-chunk-index.js";
import { createPgCorpusRepository } from "../retrieval/adapters/postgres-corpus-repository.js";
import type { CreateCorpus } from "../retrieval/corpus.js";
import { corpusAggregate } from "../retrieval/corpus-aggregate.js";
import { corpusStreamId } from "../retrieval/corpus-events.js";
import { retrievalMigrations } from "../retrieval/migrations.js";
import { normalizeProviderConfig } from "../retrieval/provider-config.js";
import { createPgContentStore } from "./adapters/postgres-content-store.js";
import { createPgDocumentRepository } from "./adapters/postgres-document-repository.js";
import type { IngestDocument } from "./document.js";
import { documentAggregate } from "./document-aggregate.js";
import { documentStreamId } from "./document-events.js";
import { ingestionMigrations } from "./migrations.js";

const TENANT = "tenant-agg";
const meta = { metadata: { tenantId: TENANT, actor: "key-test" } };
const documents = createPgDocumentRepository();
const contents = createPgContentStore();
const chunkIndex = createPgChunkIndex({ vectors: false });
const docs = documentAggregate({ documents, contents, chunkIndex });
const corpora = corpusAggregate({ corpora: createPgCorpusRepository(), vectors: false });

function createCorpus(corpusId: string): CreateCorpus {
  const config = normalizeProviderConfig(undefined);
  if (config.kind === "invalid") throw new Error(config.message);
  return {
    type: "CreateCorpus",
    tenantId: TENANT,
    corpusId,
    displayName: corpusId,
    description: "",
    providerConfig: config.config,
    embeddingModel: "hash-64",
    embeddingDimensions: 64,
    at: new Date(),
  };
}

function ingest(corpusId: string, sha: string, overwrite = false): IngestDocument {
  return {
    type: "IngestDocument",
    corpusId,
    filename: "a.txt",
    mediaType: "text/plain",
    sizeBytes: 5,
    contentSha256: sha,
    metadata: {},
    overwrite,
    chunking: { size: 1200, overlap: 150 },
    at: new Date(),
  };
}

describeWithPostgres("document and corpus aggregates on the kernel's command helper", () => {
  let testDb: TestDatabase;
  let db: Database;

  const documentCount = async (corpusId: string) =>
    (
      await db.query<{ n: number }>("SELECT document_count::int AS n FROM retrieval.corpus_index WHERE tenant_id = $1 AND corpus_id = $2", [
        TENANT,
        corpusId,
      ])
    ).rows[0]?.n;
  const storedContents = async () =>
    (await db.query<{ sha256: string }>("SELECT sha256 FROM ingestion.contents WHERE tenant_id = $1 ORDER BY sha256", [TENANT])).rows.map(
      (r) => r.sha256,
    );
  const streamTypes = async (streamId: string) =>
    (await readStream(db, streamId)).map((e) => `${e.version}:${e.type.replace("nexus.events.v1.", "")}`);
  /** Stores content the way the ingestion handler does before it runs IngestDocument. */
  const ingestWithContent = (documentId: string, command: IngestDocument) =>
    db.transaction(async (tx) => {
      await contents.put(tx, TENANT, command.contentSha256, Buffer.from(command.contentSha256));
      return executeInTransaction(tx, docs, { tenantId: TENANT, documentId }, command, meta);
    });

  beforeAll(async () => {
    testDb = await createTestDatabase("nexus_knowledge_aggregates");
    db = await createPgDatabase({ url: testDb.url, poolSize: 4 });
    await migratePlatform(db);
    await migrateSchemas(db, [retrievalMigrations, ingestionMigrations]);
    await executeCommand(db, corpora, { tenantId: TENANT, corpusId: "manuals" }, createCorpus("manuals"), meta);
  });
  afterAll(async () => {
    await db?.close();
    await testDb?.drop();
  });

  it("keeps rows, counters, content and the stream together through a document's life", async () => {
    const key = { tenantId: TENANT, documentId: "pumps" };
    const first = await ingestWithContent("pumps", ingest("manuals", "sha-a"));
    expect(first.state).toMatchObject({ tenantId: TENANT, documentId: "pumps", status: "queued", version: 1n });
    expect(await documentCount("manuals")).toBe(1);

    // The same content again: nothing recorded, the document comes back as it is.
    const again = await ingestWithContent("pumps", ingest("manuals", "sha-a"));
    expect(again.events).toEqual([]);
    expect(again.state?.version).toBe(1n);

    // Overwritten with other content: the old content is released, the count stays.
    await ingestWithContent("pumps", ingest("manuals", "sha-b", true));
    expect(await storedContents()).toEqual(["sha-b"]);
    expect(await documentCount("manuals")).toBe(1);

    // A worker's outcome for the superseded version is stale; the current one completes.
    const complete = (version: bigint) => ({ type: "CompleteIngestion" as const, version, chunkCount: 3, attempts: 1, at: new Date() });
    expect((await executeCommand(db, docs, key, complete(1n), meta)).events).toEqual([]);
    expect((await executeCommand(db, docs, key, complete(2n), meta)).state?.status).toBe("succeeded");

    await executeCommand(db, docs, key, { type: "DeleteDocument" }, meta);
    expect(await documents.get(db, key)).toBeUndefined();
    expect(await documentCount("manuals")).toBe(0);
    expect(await storedContents()).toEqual([]);
    const deleted = (await readStream(db, documentStreamId(TENANT, "pumps"))).at(-1)!;
    expect(payloadOf(DocumentDeletedSchema, deleted)).toMatchObject({ corpusId: "manuals", documentId: "pumps", version: 2n });
    expect(deleted.metadata).toMatchObject({ tenantId: TENANT, actor: "key-test" });

    // The id is free again: its stream goes on where it stopped instead of conflicting.
    const reborn = await ingestWithContent("pumps", ingest("manuals", "sha-c"));
    expect(reborn.version).toBe(5);
    expect(await streamTypes(documentStreamId(TENANT, "pumps"))).toEqual([
      "1:DocumentQueued",
      "2:DocumentQueued",
      "3:DocumentIngested",
      "4:DocumentDeleted",
      "5:DocumentQueued",
    ]);
  });

  it("refuses with a domain error naming the document, and records nothing", async () => {
    const err = await executeCommand(db, docs, { tenantId: TENANT, documentId: "missing" }, { type: "DeleteDocument" }, meta).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.NotFound);
    expect(errorMetadata(err)).toMatchObject({ document_id: "missing" });

    await ingestWithContent("busy", ingest("manuals", "sha-busy"));
    const busy = await executeCommand(db, docs, { tenantId: TENANT, documentId: "busy" }, { type: "DeleteDocument" }, meta).catch(
      (e: unknown) => e,
    );
    expect(errorReason(busy)).toBe("DOCUMENT_BUSY");
    expect(await streamTypes(documentStreamId(TENANT, "busy"))).toEqual(["1:DocumentQueued"]);
  });

  it("serialises writers of one document on its row: concurrent outcomes record one event, never a conflict", async () => {
    await ingestWithContent("race", ingest("manuals", "sha-race"));
    const key = { tenantId: TENANT, documentId: "race" };
    const outcomes = await Promise.all(
      [1, 2, 3, 4].map((attempts) =>
        executeCommand(db, docs, key, { type: "CompleteIngestion", version: 1n, chunkCount: 1, attempts, at: new Date() }, meta),
      ),
    );
    expect(outcomes.filter((o) => o.events.length > 0)).toHaveLength(1);
    expect(await streamTypes(documentStreamId(TENANT, "race"))).toEqual(["1:DocumentQueued", "2:DocumentIngested"]);
  });

  it("purges a document whatever its status once its corpus is gone, and a second purge does nothing", async () => {
    await executeCommand(db, corpora, { tenantId: TENANT, corpusId: "old" }, createCorpus("old"), meta);
    await ingestWithContent("orphan", ingest("old", "sha-orphan"));
    await executeCommand(db, corpora, { tenantId: TENANT, corpusId: "old" }, { type: "DeleteCorpus", force: true }, meta);
    const key = { tenantId: TENANT, documentId: "orphan" };
    expect((await executeCommand(db, docs, key, { type: "PurgeDocument" }, meta)).events).toHaveLength(1);
    expect((await executeCommand(db, docs, key, { type: "PurgeDocument" }, meta)).events).toEqual([]);
    expect(await documents.get(db, key)).toBeUndefined();
    expect(await storedContents()).not.toContain("sha-orphan");
  });

  it("continues a re-created corpus's stream and refuses a second create with ALREADY_EXISTS", async () => {
    const key = { tenantId: TENANT, corpusId: "cycle" };
    await executeCommand(db, corpora, key, createCorpus("cycle"), meta);
    const twice = await executeCommand(db, corpora, key, createCorpus("cycle"), meta).catch((e: unknown) => e);
    expect(errorReason(twice)).toBe("ALREADY_EXISTS");
    expect(errorMetadata(twice)).toMatchObject({ corpus_id: "cycle" });
    await executeCommand(db, corpora, key, { type: "DeleteCorpus", force: false }, meta);
    const again = await executeCommand(db, corpora, key, createCorpus("cycle"), meta);
    expect(again.version).toBe(3);
    expect(await streamTypes(corpusStreamId(TENANT, "cycle"))).toEqual(["1:CorpusCreated", "2:CorpusDeleted", "3:CorpusCreated"]);
  });
});
