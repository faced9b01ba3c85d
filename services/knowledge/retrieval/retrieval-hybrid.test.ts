import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DocumentStatus } from "../../../gen/nexus/ingestion/v1/document_pb.js";
import { SearchMode } from "../../../gen/nexus/retrieval/v1/retrieval_service_pb.js";
import { expectRpcError, settled } from "../../../tests/support/rag/calls.js";
import { type EmbeddingsStandIn, startEmbeddingsStandIn } from "../../../tests/support/rag/embeddings-stand-in.js";
import { clientsFor, openRag, type Rag, type RagClients, tenantPrincipal } from "../../../tests/support/rag/harness.js";
import { createPgliteDatabase } from "../../kernel/db/pglite-database.js";
import type { Database } from "../../kernel/db/ports.js";
import { createLocalEventBus } from "../../kernel/events/local-bus.js";
import type { EventBus } from "../../kernel/events/ports.js";

/** A small fixture corpus: each document is about one thing. */
const CORPUS: Record<string, { text: string; metadata: Record<string, string | number> }> = {
  refunds: {
    text: "Refunds are issued to the original payment method within 30 days of purchase.",
    metadata: { team: "billing", year: 2024 },
  },
  errors: {
    text: "Error ZX-4471 means the ingestion worker lost its database connection; restart the worker.",
    metadata: { team: "ops", year: 2024 },
  },
  shipping: {
    text: "Parcels leave our warehouse in Rotterdam; delivery takes three to five business days.",
    metadata: { team: "logistics", year: 2023 },
  },
  security: { text: "API keys are hashed with SHA-256 and shown only once when created.", metadata: { team: "ops", year: 2023 } },
  vacation: { text: "Employees accrue twenty-five days of paid leave per year.", metadata: { team: "people", year: 2024 } },
};

describe("hybrid search on PGlite with pgvector (HNSW) and full-text, fused by RRF", () => {
  let db: Database;
  let bus: EventBus;
  let rag: Rag;
  let api: RagClients;
  let standIn: EmbeddingsStandIn;

  beforeAll(async () => {
    standIn = await startEmbeddingsStandIn();
    db = await createPgliteDatabase();
    bus = await createLocalEventBus({ db, pollIntervalMs: 50 });
    rag = await openRag({
      db,
      bus,
      vectors: true,
      modelOptions: { remote: { baseUrl: standIn.baseUrl, retryBaseMs: 10, maxRetries: 1, breaker: { failureThreshold: 1000 } } },
    });
    api = clientsFor(rag, tenantPrincipal("tenant-hybrid"));
    await api.retrieval.createCorpus({
      corpusId: "kb",
      displayName: "Knowledge base",
      embeddingModel: "stand-in-semantic",
      embeddingDimensions: 64,
    });
    for (const [id, doc] of Object.entries(CORPUS)) {
      await api.ingestion.ingestText({ corpusId: "kb", documentId: id, text: doc.text, filename: `${id}.txt`, metadata: doc.metadata });
    }
    for (const id of Object.keys(CORPUS)) expect((await settled(api, id)).status).toBe(DocumentStatus.SUCCEEDED);
  });
  afterAll(async () => {
    await rag?.close();
    await bus?.close();
    await db?.close();
    await standIn?.close();
  });

  it("finds a lexical-only match (an error code the embedding model knows nothing about)", async () => {
    const lexical = await api.retrieval.search({ corpusId: "kb", query: "ZX-4471", mode: SearchMode.LEXICAL });
    expect(lexical.hits.map((h) => h.documentId)).toEqual(["errors"]);
    const vector = await api.retrieval.search({ corpusId: "kb", query: "ZX-4471", mode: SearchMode.VECTOR, topK: 1 });
    expect(vector.hits[0]?.documentId).not.toBe("errors");
    const hybrid = await api.retrieval.search({ corpusId: "kb", query: "ZX-4471" });
    expect(hybrid.mode).toBe(SearchMode.HYBRID);
    expect(hybrid.hits[0]?.documentId).toBe("errors");
    expect(hybrid.hits[0]?.lexicalScore).toBeGreaterThan(0);
  });

  it("finds a paraphrase-only match (no query word occurs in the passage)", async () => {
    const query = "how can I get my money back";
    const lexical = await api.retrieval.search({ corpusId: "kb", query, mode: SearchMode.LEXICAL });
    expect(lexical.hits).toEqual([]);
    const hybrid = await api.retrieval.search({ corpusId: "kb", query });
    expect(hybrid.hits[0]?.documentId).toBe("refunds");
    expect(hybrid.hits[0]?.lexicalScore).toBeUndefined();
    expect(hybrid.hits[0]?.vectorScore).toBeGreaterThan(0.5);
    expect(hybrid.embeddingModel).toBe("stand-in-semantic");
  });

  it("ranks both kinds of match on top of one hybrid query, with scores and citable spans", async () => {
    const { hits } = await api.retrieval.search({ corpusId: "kb", query: "ZX-4471 money back", topK: 5 });
    expect(
      hits
        .slice(0, 2)
        .map((h) => h.documentId)
        .sort(),
    ).toEqual(["errors", "refunds"]);
    for (const h of hits) {
      expect(h.fusedScore).toBeGreaterThan(0);
      expect(h.chunkOrdinal).toBe(0);
      expect(h.charStart).toBe(0);
      expect(h.charEnd).toBe(Array.from(CORPUS[h.documentId]!.text).length);
      expect(h.text).toBe(CORPUS[h.documentId]!.text);
      expect(h.chunkId).toBe(`${h.documentId}:1:0`);
    }
    const fused = hits.map((h) => h.fusedScore);
    expect([...fused].sort((a, b) => b - a)).toEqual(fused);
  });

  it("honours top_k, document id filters and metadata equality filters", async () => {
    expect((await api.retrieval.search({ corpusId: "kb", query: "days", topK: 2 })).hits.length).toBe(2);
    const byId = await api.retrieval.search({
      corpusId: "kb",
      query: "worker database refunds",
      filter: { documentIds: ["refunds", "vacation"] },
    });
    expect(new Set(byId.hits.map((h) => h.documentId))).toEqual(new Set(["refunds", "vacation"]));
    const ops = await api.retrieval.search({
      corpusId: "kb",
      query: "keys error worker refunds",
      filter: { metadataEquals: { team: "ops" } },
    });
    expect(new Set(ops.hits.map((h) => h.documentId))).toEqual(new Set(["errors", "security"]));
    expect(ops.hits.every((h) => h.documentMetadata?.team === "ops")).toBe(true);
    const year = await api.retrieval.search({ corpusId: "kb", query: "days", filter: { metadataEquals: { team: "ops", year: 2023 } } });
    expect(year.hits.map((h) => h.documentId)).toEqual(["security"]);
    await expectRpcError(api.retrieval.search({ corpusId: "kb", query: "x", topK: 51 }), Code.InvalidArgument);
  });

  it("falls back to full-text ranking when the embeddings server is down, and says so", async () => {
    standIn.behaviour = { failWith: 503 };
    try {
      const degraded = await api.retrieval.search({ corpusId: "kb", query: "ZX-4471" });
      expect(degraded.mode).toBe(SearchMode.LEXICAL);
      expect(degraded.hits[0]?.documentId).toBe("errors");
      await expectRpcError(
        api.retrieval.search({ corpusId: "kb", query: "ZX-4471", mode: SearchMode.VECTOR }),
        Code.Unavailable,
        "DEPENDENCY_UNAVAILABLE",
      );
    } finally {
      standIn.behaviour = {};
    }
  });

  it("uses the HNSW index for the vector ranking", async () => {
    const plan = await db.transaction(async (tx) => {
      await tx.exec("SET LOCAL enable_seqscan = off");
      const v = `[${Array.from({ length: 64 }, (_, i) => (i === 0 ? 1 : 0)).join(",")}]`;
      const { rows } = await tx.query<{ "QUERY PLAN": string }>(
        `EXPLAIN SELECT document_id FROM retrieval.chunks WHERE tenant_id = 't' AND corpus_id = 'kb' AND dims = 64
         ORDER BY embedding::vector(64) <=> '${v}'::vector(64) LIMIT 5`,
      );
      return rows.map((r) => r["QUERY PLAN"]).join("\n");
    });
    expect(plan).toContain("chunks_hnsw_64");
  });
});
