import { afterAll, beforeAll, expect, it } from "vitest";
import { DocumentStatus } from "../../../gen/nexus/ingestion/v1/document_pb.js";
import { SearchMode } from "../../../gen/nexus/retrieval/v1/retrieval_service_pb.js";
import { deleteSuiteStreams, suiteStreams } from "../../../tests/support/nats-streams.js";
import { settled } from "../../../tests/support/rag/calls.js";
import { clientsFor, openRag, type Rag, type RagClients, tenantPrincipal } from "../../../tests/support/rag/harness.js";
import {
  createTestDatabase,
  describeWithPostgresAndNats,
  TEST_NATS_URL,
  type TestDatabase,
  uniqueToken,
} from "../../../tests/support/services.js";
import { createPgDatabase } from "../../kernel/db/pg-database.js";
import type { Database } from "../../kernel/db/ports.js";
import { createNatsEventBus, type NatsEventBus } from "../../kernel/events/nats-bus.js";
import { chunkText } from "./chunking/chunker.js";

const text = (i: number) =>
  Array.from({ length: 20 + i * 3 }, (_, j) => `Document ${i} sentence ${j} describes warehouse ${i} and its inventory rules.`).join(" ");

describeWithPostgresAndNats("ingestion workers on PostgreSQL (lexical-only) and NATS JetStream", () => {
  let testDb: TestDatabase;
  let dbs: Database[] = [];
  let buses: NatsEventBus[] = [];
  let rags: Rag[] = [];
  let api: RagClients;
  const token = uniqueToken("ing");

  beforeAll(async () => {
    testDb = await createTestDatabase();
    for (const relay of [true, false]) {
      // Two processes' worth of workers: separate pools and NATS connections, one durable consumer.
      const db = await createPgDatabase({ url: testDb.url, poolSize: 5 });
      const bus = await createNatsEventBus({
        db,
        nats: { servers: TEST_NATS_URL, name: `ingestion-test-${relay}` },
        subjectPrefix: `p${token}`,
        ...suiteStreams(token),
        relay: relay ? { pollIntervalMs: 50 } : false,
        consumerHeartbeatMs: 1_000,
      });
      dbs.push(db);
      buses.push(bus);
      rags.push(await openRag({ db, bus, vectors: false, concurrency: 2 }));
    }
    api = clientsFor(rags[0]!, tenantPrincipal("tenant-nats"));
    await api.retrieval.createCorpus({ corpusId: "warehouse", displayName: "Warehouse" });
  });
  afterAll(async () => {
    for (const r of rags) await r.close();
    await deleteSuiteStreams(token);
    for (const b of buses) await b.close();
    for (const d of dbs) await d.close();
    await testDb?.drop();
    rags = [];
    buses = [];
    dbs = [];
  });

  it("distributes documents over the workers; each ends SUCCEEDED with exactly its chunks", async () => {
    const ids = Array.from({ length: 12 }, (_, i) => `wh-${i}`);
    await Promise.all(ids.map((id, i) => api.ingestion.ingestText({ corpusId: "warehouse", documentId: id, text: text(i) })));
    for (const [i, id] of ids.entries()) {
      const d = await settled(api, id, 60_000);
      expect(d.status, d.failureMessage).toBe(DocumentStatus.SUCCEEDED);
      const expected = chunkText(text(i)).length;
      expect(d.chunkCount).toBe(expected);
      const { rows } = await dbs[0]!.query<{ n: number; distinct_ordinals: number }>(
        "SELECT count(*)::int AS n, count(DISTINCT ordinal)::int AS distinct_ordinals FROM retrieval.chunks WHERE tenant_id = $1 AND document_id = $2",
        ["tenant-nats", id],
      );
      expect(rows[0]).toEqual({ n: expected, distinct_ordinals: expected });
    }
    const { rows } = await dbs[0]!.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM ingestion.processed_events WHERE consumer = 'ingestion-worker'",
    );
    expect(rows[0]?.n).toBe(ids.length);
  });

  it("searches by full-text rank only, and says so", async () => {
    const res = await api.retrieval.search({ corpusId: "warehouse", query: "warehouse 7 inventory" });
    expect(res.mode).toBe(SearchMode.LEXICAL);
    expect(res.embeddingModel).toBe("");
    expect(res.hits[0]?.documentId).toBe("wh-7");
    expect(res.hits[0]?.vectorScore).toBeUndefined();
    expect(res.hits[0]?.lexicalScore).toBeGreaterThan(0);
    const hybrid = await api.retrieval.search({ corpusId: "warehouse", query: "warehouse 7", mode: SearchMode.HYBRID });
    expect(hybrid.mode).toBe(SearchMode.LEXICAL);
    await expect(api.retrieval.search({ corpusId: "warehouse", query: "x", mode: SearchMode.VECTOR })).rejects.toThrow(/lexical-only/);
  });
});
