import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DocumentStatus } from "../../../gen/nexus/ingestion/v1/document_pb.js";
import { eventually } from "../../../tests/support/eventually.js";
import { settled } from "../../../tests/support/rag/calls.js";
import { type EmbeddingsStandIn, startEmbeddingsStandIn } from "../../../tests/support/rag/embeddings-stand-in.js";
import { clientsFor, openRag, platformPrincipal, type Rag, type RagClients, tenantPrincipal } from "../../../tests/support/rag/harness.js";
import { createPgliteDatabase } from "../../kernel/db/pglite-database.js";
import type { Database } from "../../kernel/db/ports.js";
import { createLocalEventBus } from "../../kernel/events/local-bus.js";
import type { EventBus } from "../../kernel/events/ports.js";

describe("repeated failures end in FAILED + dead letter, visible in GetDocument, and can be replayed", () => {
  let db: Database;
  let bus: EventBus;
  let rag: Rag;
  let api: RagClients;
  let ops: RagClients;
  let standIn: EmbeddingsStandIn;

  beforeAll(async () => {
    standIn = await startEmbeddingsStandIn();
    db = await createPgliteDatabase();
    bus = await createLocalEventBus({ db, pollIntervalMs: 20 });
    rag = await openRag({
      db,
      bus,
      vectors: true,
      maxDeliver: 3,
      backoff: { initialMs: 20, maxMs: 50 },
      sweepIntervalMs: 100,
      modelOptions: { remote: { baseUrl: standIn.baseUrl, maxRetries: 0, breaker: { failureThreshold: 1000 } } },
    });
    api = clientsFor(rag, tenantPrincipal("tenant-dlq"));
    ops = clientsFor(rag, platformPrincipal());
    await api.retrieval.createCorpus({
      corpusId: "remote",
      displayName: "Remote embeddings",
      embeddingModel: "stand-in",
      embeddingDimensions: 32,
    });
  });
  afterAll(async () => {
    await rag?.close();
    await bus?.close();
    await db?.close();
    await standIn?.close();
  });

  it("an embeddings server that keeps failing → retried, then FAILED with EMBEDDING_FAILED and dead_lettered", async () => {
    standIn.behaviour = { failWith: 503 };
    await api.ingestion.ingestText({
      corpusId: "remote",
      documentId: "unlucky",
      text: "A refund request that cannot be embedded right now.",
    });
    const failed = await settled(api, "unlucky");
    expect(failed.status).toBe(DocumentStatus.FAILED);
    expect(failed.failureReason).toBe("EMBEDDING_FAILED");
    expect(failed.failureMessage).toMatch(/HTTP 503/);
    expect(failed.deadLettered).toBe(true);
    expect(failed.attempts).toBe(3);
    expect(standIn.requests.length).toBe(3);
    const { deadLetters } = await ops.ingestion.listDeadLetters({ consumer: "ingestion-worker" });
    expect(deadLetters.length).toBe(1);
    expect(deadLetters[0]?.payload?.documentId).toBe("unlucky");
    expect(deadLetters[0]?.tenantId).toBe("tenant-dlq");
    expect(deadLetters[0]?.deliveries).toBe(3);
    expect(deadLetters[0]?.lastError).toMatch(/^EMBEDDING_FAILED: /);
  });

  it("tenants cannot see the dead-letter queue", async () => {
    await expect(api.ingestion.listDeadLetters({})).rejects.toThrow(/platform/);
  });

  it("replaying the dead letter after the server recovers ingests the document", async () => {
    standIn.behaviour = {};
    const { deadLetters } = await ops.ingestion.listDeadLetters({});
    const replayed = await ops.ingestion.replayDeadLetter({ sequence: deadLetters[0]!.sequence });
    expect(replayed.consumer).toBe("ingestion-worker");
    const done = await eventually("the replayed document to succeed", async () => {
      const d = (await api.ingestion.getDocument({ documentId: "unlucky" })).document!;
      return d.status === DocumentStatus.SUCCEEDED ? d : undefined;
    });
    expect(done.deadLettered).toBe(false);
    expect(done.failureReason).toBe("");
    expect(done.chunkCount).toBe(1);
    expect((await ops.ingestion.listDeadLetters({})).deadLetters).toEqual([]);
    expect((await api.retrieval.search({ corpusId: "remote", query: "money back" })).hits[0]?.documentId).toBe("unlucky");
  });
});
