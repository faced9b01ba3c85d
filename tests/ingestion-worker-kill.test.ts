/**
 * Ingestion workers as separate `nexus serve --service ingestion` processes on PostgreSQL
 * (lexical-only: the native server has no pgvector) and NATS JetStream, killed with SIGKILL in
 * the middle of a document. The test process plays the API: it queues documents through the
 * real handler against the same database; only the worker processes consume.
 */
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { DocumentStatus } from "../gen/nexus/ingestion/v1/document_pb.js";
import { createPgDatabase } from "../services/kernel/db/pg-database.js";
import type { Database } from "../services/kernel/db/ports.js";
import { createNatsEventBus, type NatsEventBus } from "../services/kernel/events/nats-bus.js";
import { chunkText } from "../services/knowledge/ingestion/chunking/chunker.js";
import { eventually } from "./support/eventually.js";
import { deleteSuiteStreams, suiteStreams } from "./support/nats-streams.js";
import { type NexusProcess, startNexus } from "./support/nexus-process.js";
import { settled, uploadMessages } from "./support/rag/calls.js";
import { clientsFor, openRag, type Rag, type RagClients, tenantPrincipal } from "./support/rag/harness.js";
import { createTestDatabase, describeWithPostgresAndNats, TEST_NATS_URL, type TestDatabase, uniqueToken } from "./support/services.js";

const TENANT = "tenant-kill";

/** A document big enough that storing its chunks takes a while (about 25k chunks). */
function bigDocument(seed: string): string {
  const lines: string[] = [];
  for (let i = 0; i < 26_000; i++) {
    lines.push(`Section ${seed}-${i}. The pump ${i % 113} in hall ${i % 17} must be checked every ${(i % 9) + 1} days by the night shift.`);
    if (i % 8 === 7) lines.push("");
  }
  return lines.join("\n");
}

describeWithPostgresAndNats("kill -9 of an ingestion worker in the middle of a document", () => {
  let testDb: TestDatabase;
  let db: Database;
  let bus: NatsEventBus;
  let rag: Rag;
  let api: RagClients;
  const token = uniqueToken("kill");
  const workers: NexusProcess[] = [];

  const env = (extra: Record<string, string> = {}) => ({
    DATABASE_URL: testDb.url,
    NATS_URL: TEST_NATS_URL,
    NEXUS_NATS_STREAM: suiteStreams(token).stream,
    NEXUS_DLQ_STREAM: suiteStreams(token).dlqStream,
    NEXUS_SUBJECT_PREFIX: `p${token}`,
    NEXUS_LEXICAL_ONLY: "true",
    NEXUS_INGEST_ACK_WAIT_MS: "2000",
    NEXUS_INGEST_CONCURRENCY: "1",
    NEXUS_INGEST_SWEEP_INTERVAL_MS: "200",
    // The worker process serves no RPC in this test; the gate only needs an address.
    NEXUS_AUTH_URL: "http://127.0.0.1:9",
    NEXUS_HOST: "127.0.0.1",
    NEXUS_PORT: "0",
    ...extra,
  });
  const startWorker = async (extra?: Record<string, string>) => {
    const w = await startNexus({ args: ["serve", "--service", "ingestion"], env: env(extra) });
    workers.push(w);
    return w;
  };
  const row = async (documentId: string) =>
    (
      await db.query<{ status: string; progress_done: number; attempts: number; version: bigint }>(
        "SELECT status, progress_done, attempts, version FROM ingestion.documents WHERE tenant_id = $1 AND document_id = $2",
        [TENANT, documentId],
      )
    ).rows[0];
  const chunkStats = async (documentId: string) =>
    (
      await db.query<{ n: number; ordinals: number; versions: number }>(
        `SELECT count(*)::int AS n, count(DISTINCT ordinal)::int AS ordinals, count(DISTINCT version)::int AS versions
         FROM retrieval.chunks WHERE tenant_id = $1 AND document_id = $2`,
        [TENANT, documentId],
      )
    ).rows[0]!;
  /** Waits until a worker is visibly half-way through the document, then SIGKILLs it. */
  /** Kills `worker` once it has started a NEW attempt at the document and made progress in it. */
  const killMidDocument = async (worker: NexusProcess, documentId: string, attemptsBefore = 0): Promise<number> => {
    let attempts = 0;
    await eventually(
      `${documentId} to be half-way processed by attempt ${attemptsBefore + 1}`,
      async () => {
        const r = await row(documentId);
        attempts = r?.attempts ?? 0;
        return r?.status === "processing" && attempts > attemptsBefore && r.progress_done > 0;
      },
      60_000,
    );
    worker.child.kill("SIGKILL");
    await new Promise((resolve) => worker.child.once("exit", resolve));
    return attempts;
  };

  beforeAll(async () => {
    testDb = await createTestDatabase();
    db = await createPgDatabase({ url: testDb.url, poolSize: 4 });
    // The API side: queues documents, runs no worker and no relay (the worker processes relay).
    bus = await createNatsEventBus({
      db,
      nats: { servers: TEST_NATS_URL, name: "kill-test-api" },
      subjectPrefix: `p${token}`,
      ...suiteStreams(token),
      relay: false,
    });
    rag = await openRag({ db, bus, vectors: false, workers: false });
    api = clientsFor(rag, tenantPrincipal(TENANT));
    await api.retrieval.createCorpus({ corpusId: "manuals", displayName: "Manuals" });
  });
  afterEach(async () => {
    for (const w of workers.splice(0)) await w.stop("SIGKILL");
  });
  afterAll(async () => {
    await rag?.close();
    await deleteSuiteStreams(token);
    await bus?.close();
    await db?.close();
    await testDb?.drop();
  });

  it("loses nothing: the document is redelivered to another worker and ends with exactly its chunks", async () => {
    const text = bigDocument("a");
    const expected = chunkText(text).length;
    const first = await startWorker();
    await api.ingestion.uploadDocument(
      uploadMessages({ corpusId: "manuals", documentId: "pumps", filename: "pumps.txt" }, Buffer.from(text), 1 << 20),
    );
    await killMidDocument(first, "pumps");

    // The killed transaction left nothing behind, and the document is not lost.
    expect((await row("pumps"))?.status).toBe("processing");
    expect((await chunkStats("pumps")).n).toBe(0);

    // Any number of workers: two new ones join; the job goes to one of them after the ack wait.
    await startWorker();
    await startWorker();
    const done = await settled(api, "pumps", 120_000);
    expect(done.status, done.failureMessage).toBe(DocumentStatus.SUCCEEDED);
    expect(done.attempts).toBeGreaterThanOrEqual(2);
    expect(done.chunkCount).toBe(expected);
    expect(await chunkStats("pumps")).toEqual({ n: expected, ordinals: expected, versions: 1 });
    const { hits } = await api.retrieval.search({ corpusId: "manuals", query: "Section a-12345 pump" });
    expect(hits[0]?.text).toContain("Section a-12345.");
  }, 180_000);

  it("nothing stays processing forever: a document that kills every worker ends FAILED and dead-lettered", async () => {
    const text = bigDocument("b");
    const extra = { NEXUS_MAX_DELIVER: "2" };
    await api.ingestion.uploadDocument(
      uploadMessages({ corpusId: "manuals", documentId: "cursed", filename: "cursed.txt" }, Buffer.from(text), 1 << 20),
    );
    const firstAttempt = await killMidDocument(await startWorker(extra), "cursed");
    // The first attempt's progress is still recorded: wait for the second attempt itself.
    await killMidDocument(await startWorker(extra), "cursed", firstAttempt);
    // The next delivery is one too many: the job goes to the dead-letter queue (parked by the bus
    // or refused by the worker, which counts attempts itself) and the document fails.
    await startWorker(extra);
    const failed = await settled(api, "cursed", 120_000);
    expect(failed.status).toBe(DocumentStatus.FAILED);
    expect(failed.deadLettered).toBe(true);
    expect(["INGESTION_ABANDONED", "INGESTION_FAILED"]).toContain(failed.failureReason);
    expect(failed.failureMessage).toMatch(/started \d+ times without finishing|delivered \d+ times without an outcome/);
    const letters = await bus.deadLetters.list({ consumer: "ingestion-worker" });
    expect(letters.map((l) => (l.payload as { documentId?: string }).documentId)).toContain("cursed");
    expect((await chunkStats("cursed")).n).toBe(0);
  }, 180_000);
});
