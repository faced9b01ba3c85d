import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DocumentStatus } from "../../../gen/nexus/ingestion/v1/document_pb.js";
import { SearchMode } from "../../../gen/nexus/retrieval/v1/retrieval_service_pb.js";
import { expectRpcError, settled } from "../../../tests/support/rag/calls.js";
import { clientsFor, openRag, type Rag, type RagClients, tenantPrincipal } from "../../../tests/support/rag/harness.js";
import { createPgliteDatabase } from "../../kernel/db/pglite-database.js";
import type { Database } from "../../kernel/db/ports.js";
import { createLocalEventBus } from "../../kernel/events/local-bus.js";
import type { EventBus } from "../../kernel/events/ports.js";
import { buildSearchStatement } from "./adapters/postgres-search-index.js";

describe("tenant isolation of corpora, documents and search", () => {
  let db: Database;
  let bus: EventBus;
  let rag: Rag;
  let alice: RagClients;
  let bob: RagClients;

  beforeAll(async () => {
    db = await createPgliteDatabase();
    bus = await createLocalEventBus({ db, pollIntervalMs: 50 });
    rag = await openRag({ db, bus, vectors: true });
    alice = clientsFor(rag, tenantPrincipal("alice"));
    bob = clientsFor(rag, tenantPrincipal("bob"));
    // The same corpus id and document id in both tenants, with different secrets.
    for (const [api, secret] of [
      [alice, "alice owns the orange submarine"],
      [bob, "bob owns the purple zeppelin"],
    ] as const) {
      await api.retrieval.createCorpus({ corpusId: "shared-name", displayName: "Same name" });
      await api.ingestion.ingestText({
        corpusId: "shared-name",
        documentId: "same-doc",
        text: secret,
        metadata: { owner: secret.split(" ")[0]! },
      });
      expect((await settled(api, "same-doc")).status).toBe(DocumentStatus.SUCCEEDED);
    }
    await alice.ingestion.ingestText({ corpusId: "shared-name", documentId: "alice-only", text: "alice keeps a purple notebook" });
    await settled(alice, "alice-only");
  });
  afterAll(async () => {
    await rag?.close();
    await bus?.close();
    await db?.close();
  });

  it("search only ever returns the caller's chunks, in every mode and with every filter", async () => {
    for (const mode of [SearchMode.HYBRID, SearchMode.VECTOR, SearchMode.LEXICAL]) {
      const hits = (await bob.retrieval.search({ corpusId: "shared-name", query: "orange submarine purple notebook", mode, topK: 50 }))
        .hits;
      expect(hits.map((h) => h.text).join(" "), SearchMode[mode]).not.toMatch(/alice/);
      expect(hits.length).toBeGreaterThan(0);
    }
    const filtered = await bob.retrieval.search({ corpusId: "shared-name", query: "notebook", filter: { documentIds: ["alice-only"] } });
    expect(filtered.hits).toEqual([]);
    const byMeta = await bob.retrieval.search({ corpusId: "shared-name", query: "owns", filter: { metadataEquals: { owner: "alice" } } });
    expect(byMeta.hits).toEqual([]);
  });

  it("another tenant's document is NOT_FOUND for every call; same ids stay separate", async () => {
    await expectRpcError(bob.ingestion.getDocument({ documentId: "alice-only" }), Code.NotFound);
    await expectRpcError(bob.ingestion.deleteDocument({ documentId: "alice-only" }), Code.NotFound);
    await expectRpcError(bob.ingestion.reindexDocument({ documentId: "alice-only" }), Code.NotFound);
    const watch = async () => {
      for await (const _ of bob.ingestion.watchDocument({ documentId: "alice-only" })) void _;
    };
    await expectRpcError(watch(), Code.NotFound);
    const aliceDoc = (await alice.ingestion.getDocument({ documentId: "same-doc" })).document!;
    const bobDoc = (await bob.ingestion.getDocument({ documentId: "same-doc" })).document!;
    expect(aliceDoc.tenantId).toBe("alice");
    expect(bobDoc.tenantId).toBe("bob");
    expect(aliceDoc.contentSha256).not.toBe(bobDoc.contentSha256);
    expect((await bob.ingestion.listDocuments({})).documents.map((d) => d.id)).toEqual(["same-doc"]);
    expect((await bob.retrieval.listCorpora({})).corpora.map((c) => c.tenantId)).toEqual(["bob"]);
    expect((await bob.retrieval.getCorpus({ corpusId: "shared-name" })).corpus?.documentCount).toBe(1n);
    // Deleting bob's same-named document leaves alice's alone.
    await bob.ingestion.deleteDocument({ documentId: "same-doc" });
    expect((await alice.ingestion.getDocument({ documentId: "same-doc" })).document?.status).toBe(DocumentStatus.SUCCEEDED);
    expect((await alice.retrieval.search({ corpusId: "shared-name", query: "submarine" })).hits[0]?.documentId).toBe("same-doc");
  });

  it("every ranking of the search statement is scoped by tenant and corpus in SQL", () => {
    const { sql, params } = buildSearchStatement({
      tenantId: "t",
      corpusId: "c",
      text: "q",
      topK: 5,
      ranking: "hybrid",
      vector: new Float32Array(8).fill(0.1),
      model: "hash-8",
      dimensions: 8,
    });
    expect(params.slice(0, 2)).toEqual(["t", "c"]);
    // Two lexical scans (all terms, some terms), the vector scan and the final join: each starts from the scope.
    const scans = [...sql.matchAll(/retrieval\.chunks c\b[^\n]*\n?\s*(?:WHERE|ON)?([^\n]*)/g)].map((m) => m[0]);
    expect(scans.length).toBe(4);
    for (const scan of scans) expect(scan).toMatch(/c\.tenant_id = \$1 AND c\.corpus_id = \$2/);
  });
});
