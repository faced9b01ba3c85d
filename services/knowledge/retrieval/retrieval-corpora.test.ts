import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DocumentStatus } from "../../../gen/nexus/ingestion/v1/document_pb.js";
import { SearchMode } from "../../../gen/nexus/retrieval/v1/retrieval_service_pb.js";
import { eventually } from "../../../tests/support/eventually.js";
import { expectRpcError, settled } from "../../../tests/support/rag/calls.js";
import { clientsFor, openRag, type Rag, type RagClients, tenantPrincipal } from "../../../tests/support/rag/harness.js";
import { createPgliteDatabase } from "../../kernel/db/pglite-database.js";
import type { Database } from "../../kernel/db/ports.js";
import { readAll } from "../../kernel/events/event-store.js";
import { createLocalEventBus } from "../../kernel/events/local-bus.js";
import type { EventBus } from "../../kernel/events/ports.js";

describe("corpora: provider config, entitlements, embedding settings and deletion", () => {
  let db: Database;
  let bus: EventBus;
  let rag: Rag;
  let free: RagClients;
  let pro: RagClients;
  let enterprise: RagClients;

  beforeAll(async () => {
    db = await createPgliteDatabase();
    bus = await createLocalEventBus({ db, pollIntervalMs: 50 });
    rag = await openRag({ db, bus, vectors: true });
    free = clientsFor(rag, tenantPrincipal("t-free", "free"));
    pro = clientsFor(rag, tenantPrincipal("t-pro", "pro"));
    enterprise = clientsFor(rag, tenantPrincipal("t-ent", "enterprise"));
  });
  afterAll(async () => {
    await rag?.close();
    await bus?.close();
    await db?.close();
  });

  it("normalises {} to the local provider with top_k_default 5 and the default embedding model", async () => {
    const { corpus } = await free.retrieval.createCorpus({
      corpusId: "docs",
      displayName: "Docs",
      description: "All docs",
      providerConfig: {},
    });
    expect(corpus?.providerConfig).toEqual({ retrieval: { provider: "local_pgvector", top_k_default: 5 } });
    expect(corpus?.embeddingModel).toBe("hash-256");
    expect(corpus?.embeddingDimensions).toBe(256);
    expect(corpus?.reindexRequired).toBe(false);
    expect(corpus?.tenantId).toBe("t-free");
    const generated = await free.retrieval.createCorpus({ displayName: "No id given" });
    expect(generated.corpus?.id).toMatch(/^corpus-[0-9a-f]{16}$/);
    await expectRpcError(free.retrieval.createCorpus({ corpusId: "docs", displayName: "Again" }), Code.AlreadyExists, "ALREADY_EXISTS");
    await expectRpcError(free.retrieval.getCorpus({ corpusId: "missing" }), Code.NotFound, "NOT_FOUND");
  });

  it("checks the provider against the plan and refuses bad or credential-bearing configs", async () => {
    const aws = { retrieval: { provider: "aws_bedrock_kb", knowledge_base_id: "KB123", region: "us-east-1" } };
    const err = await expectRpcError(
      free.retrieval.createCorpus({ corpusId: "aws", displayName: "AWS", providerConfig: aws }),
      Code.PermissionDenied,
      "FEATURE_NOT_ENABLED",
    );
    expect(err.message).toContain("feature.retrieval.aws_bedrock_kb");
    await expectRpcError(
      pro.retrieval.createCorpus({ corpusId: "aws", displayName: "AWS", providerConfig: aws }),
      Code.PermissionDenied,
      "FEATURE_NOT_ENABLED",
    );
    const created = await enterprise.retrieval.createCorpus({ corpusId: "aws", displayName: "AWS", providerConfig: aws });
    expect(created.corpus?.providerConfig).toEqual({ retrieval: { ...aws.retrieval, top_k_default: 5 } });
    await expectRpcError(enterprise.retrieval.search({ corpusId: "aws", query: "x" }), Code.FailedPrecondition);
    await expectRpcError(
      enterprise.retrieval.createCorpus({
        corpusId: "bad1",
        displayName: "x",
        providerConfig: { retrieval: { provider: "aws_bedrock_kb", region: "eu" } },
      }),
      Code.InvalidArgument,
    );
    await expectRpcError(
      enterprise.retrieval.createCorpus({
        corpusId: "bad2",
        displayName: "x",
        providerConfig: { retrieval: { provider: "local_pgvector", top_k_default: 99 } },
      }),
      Code.InvalidArgument,
    );
    await expectRpcError(
      enterprise.retrieval.createCorpus({
        corpusId: "bad3",
        displayName: "x",
        providerConfig: { retrieval: { provider: "gcp_vertex", project: "p", location: "l", resource_id: "r", api_key: "sk-123" } },
      }),
      Code.InvalidArgument,
    );
    await expectRpcError(
      free.retrieval.createCorpus({ corpusId: "remote", displayName: "x", embeddingModel: "text-embedding-3-small" }),
      Code.InvalidArgument,
    );
  });

  it("changing provider_config needs feature.corpora_patch_provider_config", async () => {
    const patch = {
      corpusId: "docs",
      providerConfig: { retrieval: { provider: "local_pgvector", top_k_default: 8 } },
      updateMask: { paths: ["provider_config"] },
    };
    await expectRpcError(free.retrieval.updateCorpus(patch), Code.PermissionDenied, "FEATURE_NOT_ENABLED");
    await pro.retrieval.createCorpus({ corpusId: "docs", displayName: "Pro docs" });
    const { corpus } = await pro.retrieval.updateCorpus(patch);
    expect(corpus?.providerConfig).toEqual({ retrieval: { provider: "local_pgvector", top_k_default: 8 } });
    const renamed = await free.retrieval.updateCorpus({
      corpusId: "docs",
      displayName: "Renamed",
      updateMask: { paths: ["display_name"] },
    });
    expect(renamed.corpus?.displayName).toBe("Renamed");
    await expectRpcError(free.retrieval.updateCorpus({ corpusId: "docs", updateMask: { paths: [] } }), Code.InvalidArgument);
  });

  it("changing the embedding model marks a non-empty corpus reindex_required until its documents are reindexed", async () => {
    await free.retrieval.createCorpus({ corpusId: "models", displayName: "Models" });
    for (const id of ["m1", "m2"])
      await free.ingestion.ingestText({ corpusId: "models", documentId: id, text: `Document ${id} about tides and moons.` });
    for (const id of ["m1", "m2"]) await settled(free, id);
    const changed = await free.retrieval.updateCorpus({
      corpusId: "models",
      embeddingDimensions: 128,
      updateMask: { paths: ["embedding_dimensions"] },
    });
    expect(changed.reindexRequired).toBe(true);
    expect(changed.corpus?.reindexRequired).toBe(true);
    expect(changed.corpus?.embeddingModel).toBe("hash-128");
    // Until the reindex, search keeps using the old vectors.
    const before = await free.retrieval.search({ corpusId: "models", query: "tides", mode: SearchMode.VECTOR });
    expect(before.embeddingModel).toBe("hash-256");
    expect(before.hits.length).toBe(2);
    await free.ingestion.reindexDocument({ documentId: "m1" });
    await settled(free, "m1");
    expect((await free.retrieval.getCorpus({ corpusId: "models" })).corpus?.reindexRequired).toBe(true);
    await free.ingestion.reindexDocument({ documentId: "m2" });
    await settled(free, "m2");
    const after = (await free.retrieval.getCorpus({ corpusId: "models" })).corpus!;
    expect(after.reindexRequired).toBe(false);
    const search = await free.retrieval.search({ corpusId: "models", query: "tides", mode: SearchMode.VECTOR });
    expect(search.embeddingModel).toBe("hash-128");
    expect(search.hits.length).toBe(2);
    // An empty corpus switches at once.
    await free.retrieval.createCorpus({ corpusId: "empty", displayName: "Empty" });
    expect(
      (await free.retrieval.updateCorpus({ corpusId: "empty", embeddingDimensions: 64, updateMask: { paths: ["embedding_dimensions"] } }))
        .reindexRequired,
    ).toBe(false);
  });

  it("refuses to delete a corpus with documents unless forced; forced, its documents and chunks go too", async () => {
    await free.retrieval.createCorpus({ corpusId: "doomed", displayName: "Doomed" });
    await free.ingestion.ingestText({ corpusId: "doomed", documentId: "d1", text: "soon gone" });
    expect((await settled(free, "d1")).status).toBe(DocumentStatus.SUCCEEDED);
    await expectRpcError(free.retrieval.deleteCorpus({ corpusId: "doomed" }), Code.FailedPrecondition, "FAILED_PRECONDITION");
    await free.retrieval.deleteCorpus({ corpusId: "doomed", force: true });
    await expectRpcError(free.retrieval.getCorpus({ corpusId: "doomed" }), Code.NotFound);
    await eventually("the document of the deleted corpus to go", async () => {
      try {
        await free.ingestion.getDocument({ documentId: "d1" });
        return false;
      } catch {
        return true;
      }
    });
    const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM retrieval.chunks WHERE corpus_id = 'doomed'");
    expect(rows[0]?.n).toBe(0);
    const types = (await readAll(db, 0n, 10_000)).filter((e) => e.metadata.tenantId === "t-free").map((e) => e.type);
    expect(types).toContain("nexus.events.v1.CorpusCreated");
    expect(types).toContain("nexus.events.v1.CorpusUpdated");
    expect(types).toContain("nexus.events.v1.CorpusDeleted");
    expect(types).toContain("nexus.events.v1.DocumentDeleted");
  });

  it("lists the tenant's corpora oldest first, page by page", async () => {
    const first = await free.retrieval.listCorpora({ pageSize: 2 });
    expect(first.corpora.map((c) => c.id)).toEqual(["docs", first.corpora[1]!.id]);
    const all: string[] = [];
    let token = "";
    do {
      const page = await free.retrieval.listCorpora({ pageSize: 2, pageToken: token });
      all.push(...page.corpora.map((c) => c.id));
      token = page.nextPageToken;
    } while (token);
    expect(all).toContain("models");
    expect(all).not.toContain("doomed");
    expect(all).not.toContain("aws");
  });
});
