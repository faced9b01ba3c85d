/**
 * Document access applied where answers are made: the same questions over the same corpus,
 * asked by people with different roles and groups (access tokens of a REAL OpenID provider —
 * the certified `oidc-provider` package on this machine — and API keys), each seeing exactly
 * the passages — in Search and in Run's retrieval and citations — that the grants allow. The
 * filter runs inside the search SQL: top-k is the best k the caller may see, and a revoked grant
 * is in force for the very next query.
 */
import { randomBytes } from "node:crypto";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Role } from "../gen/nexus/auth/v1/api_key_pb.js";
import { Plan } from "../gen/nexus/auth/v1/tenant_pb.js";
import { GranteeKind, SearchMode } from "../gen/nexus/retrieval/v1/retrieval_service_pb.js";
import type { NexusClient } from "../services/client/index.js";
import { ingestCorpus } from "./support/agent-mesh.js";
import { type AuthHarness, failure, startAuthHarness } from "./support/auth-harness.js";
import { NEXUS_AUDIENCE, startOpenIdProvider, type TestOpenIdProvider } from "./support/oidc-provider.js";
import { describeWithPostgres } from "./support/services.js";

const PROVIDER_PORT = 15631;
const people = [
  { clientId: "eng-alice", email: "alice@example.com", groups: ["engineering"] },
  { clientId: "sales-bob", email: "bob@example.com", groups: ["sales"] },
  { clientId: "admin-ann", email: "ann@example.com", groups: [] as string[] },
];

const DOCS = [
  { id: "handbook", text: "The quarterly report of the company handbook: holidays and travel." },
  { id: "eng-roadmap", text: "The quarterly report of engineering: the roadmap and the migration plan." },
  { id: "sales-pipeline", text: "The quarterly report of sales: the pipeline and the largest deals." },
  { id: "board-minutes", text: "The quarterly report of the board: minutes reserved to administrators." },
  { id: "bob-review", text: "The quarterly report on Bob: his performance review." },
  { id: "old-secret", text: "The quarterly report of an old project whose grant has expired." },
];

describeWithPostgres("document access in Search and Run", () => {
  let h: AuthHarness;
  let idp: TestOpenIdProvider;
  let owner: NexusClient;
  let as: Record<string, NexusClient>;

  const visible = async (client: NexusClient, topK = 10) =>
    (await client.retrieval.search({ corpusId: "kb", query: "quarterly report", topK, mode: SearchMode.LEXICAL })).hits
      .map((h) => h.documentId)
      .sort();

  beforeAll(async () => {
    h = await startAuthHarness({
      services: ["auth", "ingestion", "retrieval", "agent"],
      env: { NEXUS_MASTER_KEYS: `1:${randomBytes(32).toString("base64")}`, NEXUS_AUTH_CACHE_TTL_MS: "600000" },
    });
    idp = await startOpenIdProvider(PROVIDER_PORT, people);
    const t = await h.tenant(Plan.PRO);
    owner = h.client(t.ownerKey);
    await owner.identity.addMember({ email: "alice@example.com", role: Role.EDITOR });
    const bob = (await owner.identity.addMember({ email: "bob@example.com", role: Role.VIEWER })).member!;
    await owner.identity.addMember({ email: "ann@example.com", role: Role.ADMIN });
    await owner.identity.setIdentityProvider({ issuer: idp.issuer, audience: NEXUS_AUDIENCE, clientId: "nexus", enabled: true });
    await ingestCorpus(owner, "kb", DOCS);
    const set = (documentId: string, grants: { kind: GranteeKind; grantee?: string; expiresAt?: Date }[]) =>
      owner.retrieval.setDocumentAccess({
        documentId,
        restricted: true,
        grants: grants.map((g) => ({
          kind: g.kind,
          grantee: g.grantee ?? "",
          ...(g.expiresAt ? { expiresAt: timestampFromDate(g.expiresAt) } : {}),
        })),
      });
    await set("eng-roadmap", [{ kind: GranteeKind.GROUP, grantee: "engineering" }]);
    await set("sales-pipeline", [{ kind: GranteeKind.GROUP, grantee: "sales" }]);
    await set("board-minutes", [{ kind: GranteeKind.ROLE, grantee: "admin" }]);
    await set("bob-review", [{ kind: GranteeKind.USER, grantee: bob.userId }]);
    await set("old-secret", [{ kind: GranteeKind.GROUP, grantee: "engineering", expiresAt: new Date(Date.now() - 60_000) }]);
    as = {
      owner,
      viewerKey: h.client((await h.key(t.tenant.id, Role.VIEWER, "viewer")).plaintext),
      alice: h.client(await idp.token("eng-alice")),
      bob: h.client(await idp.token("sales-bob")),
      ann: h.client(await idp.token("admin-ann")),
    };
  }, 120_000);
  afterAll(async () => {
    await idp?.close();
    await h?.close();
  });

  it("each person sees exactly the documents the grants allow (admins do not bypass)", async () => {
    const expected: Record<string, string[]> = {
      // Owners pass role grants ("at least admin") but no group or user grant names them.
      owner: ["board-minutes", "handbook"],
      viewerKey: ["handbook"],
      alice: ["eng-roadmap", "handbook"],
      bob: ["bob-review", "handbook", "sales-pipeline"],
      ann: ["board-minutes", "handbook"],
    };
    for (const [who, docs] of Object.entries(expected)) expect(await visible(as[who]!), who).toEqual(docs);
  });

  it("top-k is the best k the caller may see, not k minus what was filtered", async () => {
    // Five restricted documents outrank nothing for the viewer: its top-1 is still a hit.
    expect(await visible(as.viewerKey!, 1)).toEqual(["handbook"]);
    expect(await visible(as.bob!, 3)).toEqual(["bob-review", "handbook", "sales-pipeline"]);
  });

  it("Run retrieves and cites only what the caller may read", async () => {
    for (const [who, allowed] of [
      ["alice", ["eng-roadmap", "handbook"]],
      ["viewerKey", ["handbook"]],
    ] as const) {
      const retrieved = new Set<string>();
      const cited = new Set<string>();
      for await (const r of as[who]!.agent.run({ corpusId: "kb", message: "What does the quarterly report say?" })) {
        if (r.event.case === "retrieval") for (const hit of r.event.value.hits) retrieved.add(hit.documentId);
        if (r.event.case === "messageFinal") for (const c of r.event.value.citations) cited.add(c.documentId);
      }
      expect(retrieved.size, who).toBeGreaterThan(0);
      for (const d of [...retrieved, ...cited]) expect(allowed, `${who} got ${d}`).toContain(d);
    }
  });

  it("ListDocuments, GetDocument and WatchDocument obey the same rule; each refusal is recorded with its rule", async () => {
    const listed = async (client: NexusClient) =>
      (await client.ingestion.listDocuments({ corpusId: "kb" })).documents.map((d) => d.id).sort();
    expect(await listed(as.alice!)).toEqual(["eng-roadmap", "handbook"]);
    expect(await listed(as.viewerKey!)).toEqual(["handbook"]);
    expect((await as.bob!.ingestion.getDocument({ documentId: "bob-review" })).document?.id).toBe("bob-review");
    expect(await failure(() => as.alice!.ingestion.getDocument({ documentId: "bob-review" }))).toMatchObject({ code: "NotFound" });
    expect(
      await failure(async () => {
        for await (const _ of as.alice!.ingestion.watchDocument({ documentId: "sales-pipeline" })) break;
      }),
    ).toMatchObject({ code: "NotFound" });
    const denied = (await h.events("DocumentAccessDenied")).map(
      (e) => e.payload as { documentId: string; rule: string; procedure: string },
    );
    expect(denied).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          documentId: "bob-review",
          rule: expect.stringContaining("restricted"),
          procedure: expect.stringContaining("GetDocument"),
        }),
        expect.objectContaining({ documentId: "sales-pipeline", procedure: expect.stringContaining("WatchDocument") }),
      ]),
    );
  });

  it("GetDocumentText gives the full text with chunk spans (sealed at rest) under the same rule", async () => {
    const doc = await as.bob!.retrieval.getDocumentText({ documentId: "bob-review" });
    expect(doc.text).toBe(DOCS.find((d) => d.id === "bob-review")!.text);
    expect(doc.corpusId).toBe("kb");
    expect(doc.chunks.length).toBeGreaterThan(0);
    for (const c of doc.chunks) expect(c.charEnd).toBeGreaterThan(c.charStart);
    expect(await failure(() => as.alice!.retrieval.getDocumentText({ documentId: "bob-review" }))).toMatchObject({ code: "NotFound" });
    expect(await failure(() => as.alice!.retrieval.getDocumentText({ documentId: "no-such-doc" }))).toMatchObject({ code: "NotFound" });
    const denied = (await h.events("DocumentAccessDenied")).map((e) => e.payload as { documentId: string; procedure: string });
    expect(denied).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ documentId: "bob-review", procedure: expect.stringContaining("GetDocumentText") }),
      ]),
    );
    const other = h.client((await h.tenant(Plan.PRO)).ownerKey);
    expect(await failure(() => other.retrieval.getDocumentText({ documentId: "handbook" }))).toMatchObject({ code: "NotFound" });
  });

  it("the uploader keeps reading what they uploaded; changing or deleting needs the right to read", async () => {
    await as.alice!.ingestion.ingestText({ corpusId: "kb", documentId: "alice-notes", text: "The quarterly report notes of Alice." });
    await owner.retrieval.setDocumentAccess({
      documentId: "alice-notes",
      restricted: true,
      grants: [{ kind: GranteeKind.ROLE, grantee: "owner" }],
    });
    const access = (await owner.retrieval.getDocumentAccess({ documentId: "alice-notes" })).access!;
    expect(access.ownerUserId).not.toBe("");
    expect((await as.alice!.ingestion.getDocument({ documentId: "alice-notes" })).document?.id).toBe("alice-notes");
    expect(await failure(() => as.bob!.ingestion.getDocument({ documentId: "alice-notes" }))).toMatchObject({ code: "NotFound" });
    // Alice (an editor) may not overwrite, reindex or delete a restricted document she cannot read.
    expect(
      await failure(() => as.alice!.ingestion.ingestText({ corpusId: "kb", documentId: "board-minutes", text: "x", overwrite: true })),
    ).toMatchObject({ code: "NotFound" });
    expect(await failure(() => as.alice!.ingestion.deleteDocument({ documentId: "board-minutes" }))).toMatchObject({ code: "NotFound" });
    expect(await failure(() => as.alice!.ingestion.reindexDocument({ documentId: "sales-pipeline" }))).toMatchObject({ code: "NotFound" });
    await owner.ingestion.deleteDocument({ documentId: "alice-notes" });
  });

  it("admins bypass only when the tenant's owner says so", async () => {
    expect(await visible(as.ann!)).toEqual(["board-minutes", "handbook"]);
    expect(await failure(() => as.ann!.retrieval.setDocumentAccessSettings({ adminsBypass: true }))).toMatchObject({
      reason: "RBAC_FORBIDDEN",
    });
    await owner.retrieval.setDocumentAccessSettings({ adminsBypass: true });
    try {
      expect(await visible(as.ann!)).toEqual(DOCS.map((d) => d.id).sort());
      expect(await visible(as.alice!)).toEqual(["eng-roadmap", "handbook"]);
    } finally {
      await owner.retrieval.setDocumentAccessSettings({ adminsBypass: false });
    }
    expect(await visible(as.ann!)).toEqual(["board-minutes", "handbook"]);
  });

  it("a revoked grant is in force for the very next query; access lists are admin-only", async () => {
    expect(await visible(as.alice!)).toContain("eng-roadmap");
    await owner.retrieval.setDocumentAccess({ documentId: "eng-roadmap", restricted: true, grants: [] });
    expect(await visible(as.alice!)).not.toContain("eng-roadmap");
    await owner.retrieval.setDocumentAccess({ documentId: "eng-roadmap", restricted: false, grants: [] });
    expect(await visible(as.viewerKey!)).toContain("eng-roadmap");
    const read = await owner.retrieval.getDocumentAccess({ documentId: "bob-review" });
    expect(read.access).toMatchObject({ restricted: true, grants: [{ kind: GranteeKind.USER }] });
    expect(await failure(() => as.alice!.retrieval.getDocumentAccess({ documentId: "bob-review" }))).toMatchObject({
      reason: "RBAC_FORBIDDEN",
    });
    expect(await failure(() => owner.retrieval.setDocumentAccess({ documentId: "no-such-doc", restricted: true }))).toMatchObject({
      code: "NotFound",
    });
    expect((await h.events("DocumentAccessChanged")).length).toBeGreaterThanOrEqual(7);
  });
});
