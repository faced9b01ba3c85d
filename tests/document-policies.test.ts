/**
 * Cedar policies on documents, applied where answers are made (issue 16): the same questions over
 * the same labelled corpus, asked by people with different roles and groups (access tokens of a
 * REAL OpenID provider — the certified `oidc-provider` package on this machine — and API keys),
 * each seeing exactly the passages — in Search, in Run's retrieval and citations, and in
 * ListDocuments — that the access lists and the tenant's enabled policies allow. Policies are
 * validated against the tenant's Cedar schema when saved, simulated before being enabled, and a
 * change is in force for the very next query. Real PostgreSQL.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Role } from "../gen/nexus/auth/v1/api_key_pb.js";
import { Plan } from "../gen/nexus/auth/v1/tenant_pb.js";
import { DocumentStatus } from "../gen/nexus/ingestion/v1/document_pb.js";
import { GranteeKind, SearchMode } from "../gen/nexus/retrieval/v1/retrieval_service_pb.js";
import type { NexusClient } from "../services/client/index.js";
import { type AuthHarness, failure, startAuthHarness } from "./support/auth-harness.js";
import { eventually } from "./support/eventually.js";
import { NEXUS_AUDIENCE, startOpenIdProvider, type TestOpenIdProvider } from "./support/oidc-provider.js";
import { describeWithPostgres } from "./support/services.js";

const PROVIDER_PORT = 19611;
const people = [
  { clientId: "eng-alice", email: "alice@example.com", groups: ["engineering"] },
  { clientId: "sales-bob", email: "bob@example.com", groups: ["sales"] },
  { clientId: "legal-lee", email: "lee@example.com", groups: ["legal"] },
];

const DOCS: { id: string; labels: Record<string, string>; text: string }[] = [
  { id: "handbook", labels: { sensitivity: "public" }, text: "The quarterly report of the company handbook: holidays and travel." },
  { id: "eng-design", labels: { sensitivity: "internal" }, text: "The quarterly report of engineering: the design of the platform." },
  { id: "legal-memo", labels: { sensitivity: "secret" }, text: "The quarterly report of legal: a memo on the pending litigation." },
  { id: "eu-deals", labels: { sensitivity: "internal", region: "eu" }, text: "The quarterly report of sales in Europe: the deals." },
  { id: "us-pricing", labels: { region: "us-west" }, text: "The quarterly report of pricing in the west: the price list." },
  { id: "bob-review", labels: {}, text: "The quarterly report on Bob: his performance review." },
];

const POLICIES = {
  "no-secret": `forbid(principal, action, resource)
  when { resource.labels has sensitivity && resource.labels.sensitivity == "secret" }
  unless { principal in Group::"legal" || principal.role == "owner" };`,
  "eu-sales-only": `forbid(principal, action in [Action::"Read", Action::"Search", Action::"Run"], resource)
  when { resource.labels has region && resource.labels.region == "eu" } unless { principal in Group::"sales" };`,
  // Only for Run: internal documents may be searched but ground no answer (except for owners).
  "run-no-internal": `forbid(principal, action == Action::"Run", resource)
  when { resource.labels has sensitivity && resource.labels.sensitivity == "internal" } unless { principal.role == "owner" };`,
  // Not compilable into SQL (`like`): decided by Cedar per candidate document.
  "us-owners-only": `forbid(principal, action, resource)
  when { resource.labels has region && resource.labels.region like "us-*" } unless { principal.role == "owner" };`,
};

describeWithPostgres("Cedar policies in Search, Run and the document calls", () => {
  let h: AuthHarness;
  let idp: TestOpenIdProvider;
  let owner: NexusClient;
  let as: Record<string, NexusClient>;
  let bobId: string;

  const visible = async (client: NexusClient, topK = 10) =>
    (await client.retrieval.search({ corpusId: "kb", query: "quarterly report", topK, mode: SearchMode.LEXICAL })).hits
      .map((h) => h.documentId)
      .sort();
  const listed = async (client: NexusClient) =>
    (await client.ingestion.listDocuments({ corpusId: "kb" })).documents.map((d) => d.id).sort();
  const ran = async (client: NexusClient) => {
    const retrieved = new Set<string>();
    const cited = new Set<string>();
    for await (const r of client.agent.run({ corpusId: "kb", message: "What does the quarterly report say?" })) {
      if (r.event.case === "retrieval") for (const hit of r.event.value.hits) retrieved.add(hit.documentId);
      if (r.event.case === "messageFinal") for (const c of r.event.value.citations) cited.add(c.documentId);
    }
    return { retrieved: [...retrieved].sort(), cited: [...cited] };
  };
  const ingest = async (client: NexusClient, d: (typeof DOCS)[number]) => {
    await client.ingestion.ingestText({ corpusId: "kb", documentId: d.id, text: d.text, mediaType: "text/plain", metadata: d.labels });
    await eventually(`document ${d.id} ingested`, async () => {
      const { document } = await client.ingestion.getDocument({ documentId: d.id });
      return document?.status === DocumentStatus.SUCCEEDED;
    });
  };

  beforeAll(async () => {
    h = await startAuthHarness({
      services: ["auth", "ingestion", "retrieval", "agent"],
      env: { NEXUS_MASTER_KEYS: `1:${randomBytes(32).toString("base64")}`, NEXUS_AUTH_CACHE_TTL_MS: "600000" },
    });
    idp = await startOpenIdProvider(PROVIDER_PORT, people);
    const t = await h.tenant(Plan.PRO);
    owner = h.client(t.ownerKey);
    await owner.identity.addMember({ email: "alice@example.com", role: Role.EDITOR });
    bobId = (await owner.identity.addMember({ email: "bob@example.com", role: Role.VIEWER })).member!.userId;
    await owner.identity.addMember({ email: "lee@example.com", role: Role.VIEWER });
    await owner.identity.setIdentityProvider({ issuer: idp.issuer, audience: NEXUS_AUDIENCE, clientId: "nexus", enabled: true });
    await owner.retrieval.setLabelRules({
      rules: [
        { key: "sensitivity", allowedValues: ["public", "internal", "secret"] },
        { key: "region", allowedValues: [] },
      ],
    });
    await owner.retrieval.createCorpus({ corpusId: "kb", displayName: "kb" });
    for (const d of DOCS) await ingest(owner, d);
    await owner.retrieval.setDocumentAccess({
      documentId: "bob-review",
      restricted: true,
      grants: [{ kind: GranteeKind.USER, grantee: bobId }],
    });
    as = {
      owner,
      viewerKey: h.client((await h.key(t.tenant.id, Role.VIEWER, "viewer")).plaintext),
      alice: h.client(await idp.token("eng-alice")),
      bob: h.client(await idp.token("sales-bob")),
      lee: h.client(await idp.token("legal-lee")),
    };
  }, 180_000);
  afterAll(async () => {
    await idp?.close();
    await h?.close();
  });

  it("labels are checked against the label rules at upload", async () => {
    expect(
      await failure(() => owner.ingestion.ingestText({ corpusId: "kb", documentId: "bad", text: "x", metadata: { sensitivity: "top" } })),
    ).toMatchObject({ code: "InvalidArgument", message: expect.stringContaining("public, internal, secret") });
  });

  it("a policy is validated against the tenant's Cedar schema when saved, with the validator's messages", async () => {
    const bad = async (text: string) => failure(() => owner.retrieval.savePolicy({ policyId: "bad", text }));
    expect(await bad(`permit(principal, action, resource) when { resource.labels.colour == "red" };`)).toMatchObject({
      code: "InvalidArgument",
      message: expect.stringContaining("labels.colour"),
    });
    expect(await bad(`permit(principal, action == Action::"Delete", resource);`)).toMatchObject({
      code: "InvalidArgument",
      message: expect.stringContaining("Delete"),
    });
    expect(await bad("permit(principal, action, resource) when { nonsense };")).toMatchObject({ code: "InvalidArgument" });
    expect(await bad("permit(principal, action, resource); forbid(principal, action, resource);")).toMatchObject({
      message: expect.stringContaining("exactly one policy"),
    });
    // Editors may not manage policies; a label a saved policy reads cannot be dropped.
    expect(await failure(() => as.alice!.retrieval.listPolicies({}))).toMatchObject({ reason: "RBAC_FORBIDDEN" });
    const { schema } = await owner.retrieval.listPolicies({});
    expect(schema).toContain('"sensitivity"?: String');
  });

  it("simulate answers allow or deny with the deciding policies before a policy is enabled", async () => {
    for (const [id, text] of Object.entries(POLICIES)) {
      const saved = await owner.retrieval.savePolicy({ policyId: id, text, description: `test ${id}` });
      expect(saved.policy).toMatchObject({ policyId: id, version: 1, enabled: false });
    }
    const alice = { userId: "u-alice", role: "editor", groups: ["engineering"] };
    // Disabled: nothing decides but the default.
    expect(
      await owner.retrieval.simulatePolicy({ principal: alice, action: "Search", resource: { case: "documentId", value: "legal-memo" } }),
    ).toMatchObject({
      allowed: true,
      rule: "default allow",
      decidingPolicyIds: [],
    });
    expect(
      await owner.retrieval.simulatePolicy({
        principal: alice,
        action: "Search",
        resource: { case: "documentId", value: "legal-memo" },
        includePolicyIds: ["no-secret"],
      }),
    ).toMatchObject({ allowed: false, rule: "policy", decidingPolicyIds: ["no-secret"] });
    expect(
      await owner.retrieval.simulatePolicy({
        principal: { ...alice, groups: ["legal"] },
        action: "Search",
        resource: { case: "document", value: { labels: { sensitivity: "secret" }, corpusId: "kb" } },
        includePolicyIds: ["no-secret"],
      }),
    ).toMatchObject({ allowed: true, decidingPolicyIds: [] });
    expect(
      await owner.retrieval.simulatePolicy({
        principal: alice,
        action: "Run",
        resource: { case: "documentId", value: "eng-design" },
        includePolicyIds: ["run-no-internal"],
      }),
    ).toMatchObject({ allowed: false, decidingPolicyIds: ["run-no-internal"] });
    // The access list decides before policies.
    expect(
      await owner.retrieval.simulatePolicy({ principal: alice, action: "Read", resource: { case: "documentId", value: "bob-review" } }),
    ).toMatchObject({ allowed: false, rule: expect.stringMatching(/^acl: restricted/) });
    for (const id of Object.keys(POLICIES)) await owner.retrieval.setPolicyEnabled({ policyId: id, enabled: true });
    expect((await owner.retrieval.listPolicies({})).policies.map((p) => [p.policyId, p.enabled, p.version])).toEqual(
      Object.keys(POLICIES)
        .sort()
        .map((id) => [id, true, 1]),
    );
  });

  it("each person sees exactly what grants and policies allow, in Search, Run and ListDocuments", async () => {
    const expected: Record<string, string[]> = {
      owner: ["eng-design", "handbook", "legal-memo", "us-pricing"],
      viewerKey: ["eng-design", "handbook"],
      alice: ["eng-design", "handbook"],
      bob: ["bob-review", "eng-design", "eu-deals", "handbook"],
      lee: ["eng-design", "handbook", "legal-memo"],
    };
    for (const [who, docs] of Object.entries(expected)) {
      expect(await visible(as[who]!), `${who} Search`).toEqual(docs);
      expect(await listed(as[who]!), `${who} ListDocuments`).toEqual(docs);
    }
    // Run: the same, less the internal documents for everyone but the owner (run-no-internal).
    for (const [who, docs] of Object.entries(expected)) {
      const allowed = who === "owner" ? docs : docs.filter((d) => d !== "eng-design" && d !== "eu-deals");
      const { retrieved, cited } = await ran(as[who]!);
      expect(retrieved.length, who).toBeGreaterThan(0);
      for (const d of [...retrieved, ...cited]) expect(allowed, `${who} Run got ${d}`).toContain(d);
    }
    // top-k is the best k the caller may see (the residual policy over-fetches, bounded).
    expect(await visible(as.alice!, 1)).toHaveLength(1);
    expect(await visible(as.viewerKey!, 2)).toEqual(["eng-design", "handbook"]);
  });

  it("GetDocument and WatchDocument refuse with the deciding policy; withheld search results are audited once per call", async () => {
    expect(await failure(() => as.alice!.ingestion.getDocument({ documentId: "legal-memo" }))).toMatchObject({ code: "NotFound" });
    expect(
      await failure(async () => {
        for await (const _ of as.alice!.ingestion.watchDocument({ documentId: "us-pricing" })) break;
      }),
    ).toMatchObject({ code: "NotFound" });
    expect((await as.lee!.ingestion.getDocument({ documentId: "legal-memo" })).document?.id).toBe("legal-memo");
    const denied = (await h.events("DocumentAccessDenied")).map((e) => e.payload as { documentId: string; rule: string });
    expect(denied).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ documentId: "legal-memo", rule: "policy:no-secret" }),
        expect.objectContaining({ documentId: "us-pricing", rule: "policy:us-owners-only" }),
      ]),
    );
    const before = (await h.events("DocumentsWithheld")).length;
    await visible(as.viewerKey!);
    const record = await eventually("one withheld record for the search", async () => {
      const all = await h.events("DocumentsWithheld");
      return all.length > before && (all[all.length - 1]!.payload as { withheldDocuments: number; rules: string[]; procedure: string });
    });
    expect(record.procedure).toContain("RetrievalService/Search");
    expect(record.rules).toEqual(
      expect.arrayContaining(["acl: 1", "policy:eu-sales-only: 1", "policy:no-secret: 1", "policy:us-owners-only: 1"]),
    );
    expect(record.withheldDocuments).toBe(4);
    // ListDocuments: one record too, over the whole listing.
    const seen = (await h.events("DocumentsWithheld")).length;
    await listed(as.viewerKey!);
    const listing = await eventually("one withheld record for the listing", async () => {
      const all = await h.events("DocumentsWithheld");
      return all.length > seen && (all[all.length - 1]!.payload as { withheldDocuments: number; rules: string[]; procedure: string });
    });
    expect(listing.procedure).toContain("IngestionService/ListDocuments");
    expect(listing.rules.sort()).toEqual(["acl: 1", "policy:eu-sales-only: 1", "policy:no-secret: 1", "policy:us-owners-only: 1"]);
  });

  it("a disabled policy or a revoked grant is in force for the very next query", async () => {
    expect(await visible(as.alice!)).not.toContain("legal-memo");
    await owner.retrieval.setPolicyEnabled({ policyId: "no-secret", enabled: false });
    expect(await visible(as.alice!)).toContain("legal-memo");
    await owner.retrieval.setPolicyEnabled({ policyId: "no-secret", enabled: true });
    expect(await visible(as.alice!)).not.toContain("legal-memo");
    await owner.retrieval.setDocumentAccess({ documentId: "bob-review", restricted: true, grants: [] });
    expect(await visible(as.bob!)).not.toContain("bob-review");
    await owner.retrieval.setDocumentAccess({
      documentId: "bob-review",
      restricted: true,
      grants: [{ kind: GranteeKind.USER, grantee: bobId }],
    });
    const changes = (await h.events("PolicyEnabledChanged")).length;
    expect(changes).toBeGreaterThanOrEqual(Object.keys(POLICIES).length + 2);
  });

  it("default deny: only grants and permit policies open documents", async () => {
    await owner.retrieval.savePolicy({
      policyId: "public-ok",
      text: `permit(principal, action, resource) when { resource.labels has sensitivity && resource.labels.sensitivity == "public" };`,
      enabled: true,
    });
    expect((await owner.retrieval.setDocumentAccessSettings({ adminsBypass: false, defaultDeny: true })).defaultDeny).toBe(true);
    try {
      expect(await visible(as.viewerKey!)).toEqual(["handbook"]);
      expect(await visible(as.bob!)).toEqual(["bob-review", "handbook"]);
      expect(await listed(as.alice!)).toEqual(["handbook"]);
      // A permit the compiler leaves to Cedar (`like`): decided per candidate document.
      await owner.retrieval.savePolicy({
        policyId: "eu-permit",
        text: `permit(principal, action, resource) when { resource.labels has region && resource.labels.region like "eu*" };`,
        enabled: true,
      });
      expect(await visible(as.bob!)).toEqual(["bob-review", "eu-deals", "handbook"]);
      expect(await listed(as.bob!)).toEqual(["bob-review", "eu-deals", "handbook"]);
      expect(await visible(as.viewerKey!)).toEqual(["handbook"]);
      expect(await listed(as.alice!)).toEqual(["handbook"]);
    } finally {
      await owner.retrieval.setPolicyEnabled({ policyId: "eu-permit", enabled: false }).catch(() => undefined);
      // Unset keeps it: only an explicit false turns it off.
      expect((await owner.retrieval.setDocumentAccessSettings({ adminsBypass: false })).defaultDeny).toBe(true);
      await owner.retrieval.setDocumentAccessSettings({ adminsBypass: false, defaultDeny: false });
      await owner.retrieval.setPolicyEnabled({ policyId: "public-ok", enabled: false });
    }
    expect(await visible(as.viewerKey!)).toEqual(["eng-design", "handbook"]);
  });

  it("a policy can be deleted (admins only, audited), in force for the next query", async () => {
    await owner.retrieval.savePolicy({
      policyId: "no-handbook",
      text: `forbid(principal, action, resource == Document::"handbook");`,
      enabled: true,
    });
    expect(await visible(as.viewerKey!)).not.toContain("handbook");
    expect(await failure(() => as.alice!.retrieval.deletePolicy({ policyId: "no-handbook" }))).toMatchObject({
      code: "PermissionDenied",
      reason: "RBAC_FORBIDDEN",
    });
    const { policy } = await owner.retrieval.deletePolicy({ policyId: "no-handbook" });
    expect(policy).toMatchObject({ policyId: "no-handbook", enabled: true });
    expect(await visible(as.viewerKey!)).toContain("handbook");
    expect((await owner.retrieval.listPolicies({})).policies.map((p) => p.policyId)).not.toContain("no-handbook");
    expect(await failure(() => owner.retrieval.deletePolicy({ policyId: "no-handbook" }))).toMatchObject({ code: "NotFound" });
    expect(await failure(() => owner.retrieval.setPolicyEnabled({ policyId: "no-handbook", enabled: true }))).toMatchObject({
      code: "NotFound",
    });
    const deleted = (await h.events("PolicyDeleted")).map((e) => e.payload as { policyId: string; text: string });
    expect(deleted).toEqual([expect.objectContaining({ policyId: "no-handbook", text: expect.stringContaining("handbook") })]);
  });

  it("a deleted document's access list goes with it", async () => {
    await owner.retrieval.setDocumentAccess({
      documentId: "bob-review",
      restricted: true,
      grants: [{ kind: GranteeKind.ROLE, grantee: "owner" }],
    });
    await owner.ingestion.deleteDocument({ documentId: "bob-review" });
    await ingest(owner, DOCS.find((d) => d.id === "bob-review")!);
    expect((await owner.retrieval.getDocumentAccess({ documentId: "bob-review" })).access).toMatchObject({ restricted: false, grants: [] });
    expect(await visible(as.viewerKey!)).toContain("bob-review");
  });
});
