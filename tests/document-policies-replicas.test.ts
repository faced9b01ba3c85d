/**
 * A policy change or a revoked grant is in force within a second on EVERY replica: separate
 * processes on one PostgreSQL and NATS — `nexus serve --service auth,ingestion,retrieval`
 * (replica A, where the changes are made) and `nexus serve --service retrieval` (replica B,
 * where a viewer searches). Each process caches the tenants' policies and settings and drops
 * them on the retrieval events (PolicySaved, PolicyEnabledChanged, PolicyDeleted, …) it observes
 * on NATS; access lists are read inside the search statement. The test measures from the moment
 * A acknowledged the change until B's answer shows it, and asserts the issue's 1 s bound — also
 * for a person removed from a SCIM group (Okta's PATCH) at A, whose group grant ends at B, and a
 * watch of a document at A that ends when its reader loses access.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Role } from "../gen/nexus/auth/v1/api_key_pb.js";
import { Plan } from "../gen/nexus/auth/v1/tenant_pb.js";
import { DocumentStatus } from "../gen/nexus/ingestion/v1/document_pb.js";
import { GranteeKind, SearchMode } from "../gen/nexus/retrieval/v1/retrieval_service_pb.js";
import { generateApiKey } from "../services/auth/domain/api-key-secret.js";
import { createNexusClient, type NexusClient } from "../services/client/create-nexus-client.js";
import { eventually } from "./support/eventually.js";
import { bootstrapKeyEnv, deleteSuiteStreams, suiteServeEnv } from "./support/nats-streams.js";
import { type NexusProcess, startNexus } from "./support/nexus-process.js";
import { createTestDatabase, describeWithPostgresAndNats, type TestDatabase, uniqueToken } from "./support/services.js";

const BOUND_MS = 1_000;

describeWithPostgresAndNats("document policies across replicas (separate processes)", () => {
  let db: TestDatabase;
  let a: NexusProcess;
  let b: NexusProcess;
  let ownerAtA: NexusClient;
  let viewerAtB: NexusClient;
  let viewerKey = "";
  const token = uniqueToken("p").toUpperCase();
  const platform = generateApiKey();

  /** A statement on the suite's database (test fixtures only). */
  const sql = async (text: string) => {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      await client.query(text);
    } finally {
      await client.end();
    }
  };

  const seenAtB = async () =>
    (await viewerAtB.retrieval.search({ corpusId: "kb", query: "quarterly report", topK: 10, mode: SearchMode.LEXICAL })).hits
      .map((h) => h.documentId)
      .sort();

  /** Applies a change at A and measures until B's search answers `expected`. */
  async function timeUntilSeenAtB(change: () => Promise<unknown>, expected: string[]): Promise<number> {
    await change();
    const acknowledged = performance.now();
    await eventually(
      `replica B to answer ${expected.join(", ")}`,
      async () => JSON.stringify(await seenAtB()) === JSON.stringify(expected),
      10_000,
      10,
    );
    return performance.now() - acknowledged;
  }

  beforeAll(async () => {
    db = await createTestDatabase("nexus_policy_replicas");
    const env = suiteServeEnv(db.url, token, "polrep");
    a = await startNexus({
      args: ["serve", "--service", "auth,ingestion,retrieval", "--port", "0", "--host", "127.0.0.1"],
      env: { ...env, ...bootstrapKeyEnv(platform) },
    });
    b = await startNexus({
      args: ["serve", "--service", "retrieval", "--port", "0", "--host", "127.0.0.1"],
      env: { ...env, NEXUS_AUTH_URL: a.url },
    });
    const ops = createNexusClient({ baseUrl: a.url, apiKey: platform.plaintext });
    const { tenant } = await ops.auth.createTenant({ slug: uniqueToken("polrep"), displayName: "Policies", plan: Plan.PRO });
    const owner = await ops.auth.createApiKey({ tenantId: tenant!.id, name: "owner", role: Role.OWNER });
    const viewer = await ops.auth.createApiKey({ tenantId: tenant!.id, name: "viewer", role: Role.VIEWER });
    viewerKey = viewer.plaintextKey;
    ownerAtA = createNexusClient({ baseUrl: a.url, apiKey: owner.plaintextKey });
    viewerAtB = createNexusClient({ baseUrl: b.url, apiKey: viewer.plaintextKey });
    await ownerAtA.retrieval.setLabelRules({ rules: [{ key: "sensitivity", allowedValues: [] }] });
    await ownerAtA.retrieval.createCorpus({ corpusId: "kb", displayName: "kb" });
    for (const [id, sensitivity] of [
      ["plan", "internal"],
      ["secret", "secret"],
    ] as const) {
      await ownerAtA.ingestion.ingestText({
        corpusId: "kb",
        documentId: id,
        text: `The quarterly report: ${id}.`,
        metadata: { sensitivity },
      });
      await eventually(
        `${id} ingested`,
        async () => (await ownerAtA.ingestion.getDocument({ documentId: id })).document?.status === DocumentStatus.SUCCEEDED,
      );
    }
    await ownerAtA.retrieval.savePolicy({
      policyId: "no-secret",
      text: `forbid(principal, action, resource) when { resource.labels has sensitivity && resource.labels.sensitivity == "secret" } unless { principal.role == "owner" };`,
      enabled: true,
    });
  }, 180_000);

  afterAll(async () => {
    await b?.stop();
    await a?.stop();
    await deleteSuiteStreams(token);
    await db?.drop();
  });

  it("a policy disabled or enabled at replica A is in force at replica B within a second", async () => {
    expect(await seenAtB()).toEqual(["plan"]);
    const disabled = await timeUntilSeenAtB(
      () => ownerAtA.retrieval.setPolicyEnabled({ policyId: "no-secret", enabled: false }),
      ["plan", "secret"],
    );
    const enabled = await timeUntilSeenAtB(() => ownerAtA.retrieval.setPolicyEnabled({ policyId: "no-secret", enabled: true }), ["plan"]);
    expect(disabled).toBeLessThan(BOUND_MS);
    expect(enabled).toBeLessThan(BOUND_MS);
  });

  it("a policy deleted at replica A is in force at replica B within a second", async () => {
    expect(await seenAtB()).toEqual(["plan"]);
    const deleted = await timeUntilSeenAtB(() => ownerAtA.retrieval.deletePolicy({ policyId: "no-secret" }), ["plan", "secret"]);
    expect(deleted).toBeLessThan(BOUND_MS);
    expect((await ownerAtA.retrieval.listPolicies({})).policies).toEqual([]);
    const refused = await ownerAtA.retrieval.deletePolicy({ policyId: "no-secret" }).catch((e: unknown) => e);
    expect(ConnectError.from(refused).code).toBe(Code.NotFound);
    // Saved again under the same id: a fresh policy, in force at B as well.
    const saved = await timeUntilSeenAtB(
      () =>
        ownerAtA.retrieval.savePolicy({
          policyId: "no-secret",
          text: `forbid(principal, action, resource) when { resource.labels has sensitivity && resource.labels.sensitivity == "secret" } unless { principal.role == "owner" };`,
          enabled: true,
        }),
      ["plan"],
    );
    expect(saved).toBeLessThan(BOUND_MS);
  });

  it("an open WatchDocument ends NOT_FOUND when its reader loses access", async () => {
    const viewerAtA = createNexusClient({ baseUrl: a.url, apiKey: viewerKey });
    // A document still being processed (the watch stays open until it finishes).
    await sql("UPDATE ingestion.documents SET status = 'processing' WHERE document_id = 'plan'");
    try {
      const updates: string[] = [];
      const watching = (async () => {
        for await (const u of viewerAtA.ingestion.watchDocument({ documentId: "plan" })) updates.push(String(u.document?.status));
      })().then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      await eventually("the watch to answer", async () => updates.length > 0, 10_000, 10);
      const revokedAt = performance.now();
      await ownerAtA.retrieval.setDocumentAccess({ documentId: "plan", restricted: true, grants: [] });
      const ended = await watching;
      expect(performance.now() - revokedAt).toBeLessThan(BOUND_MS);
      expect(ended?.code).toBe(Code.NotFound);
    } finally {
      await sql("UPDATE ingestion.documents SET status = 'succeeded' WHERE document_id = 'plan'");
      await ownerAtA.retrieval.setDocumentAccess({ documentId: "plan", restricted: false, grants: [] });
    }
  });

  it("a person removed from a SCIM group at A loses the group's documents at B within a second", async () => {
    const ops = createNexusClient({ baseUrl: a.url, apiKey: platform.plaintext });
    const { tenant } = await ops.auth.createTenant({ slug: uniqueToken("scimrep"), displayName: "SCIM", plan: Plan.ENTERPRISE });
    const owner = await ops.auth.createApiKey({ tenantId: tenant!.id, name: "owner", role: Role.OWNER });
    const ownerAt = createNexusClient({ baseUrl: a.url, apiKey: owner.plaintextKey });
    const scimToken = (await ownerAt.identity.rotateScimToken({})).token;
    const scim = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${a.url}/scim/v2${path}`, {
        method,
        headers: { authorization: `Bearer ${scimToken}`, "content-type": "application/scim+json" },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await res.text();
      return { status: res.status, body: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
    };
    const PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
    // Okta's sequence: look the person up, create them, push the group, add them to it.
    expect(
      (await scim("GET", `/Users?filter=${encodeURIComponent('userName eq "ada@example.com"')}&startIndex=1&count=100`)).body,
    ).toMatchObject({
      totalResults: 0,
    });
    const created = await scim("POST", "/Users", {
      schemas: ["urn:ietf:params:scim:schemas:core:2.0:User"],
      userName: "ada@example.com",
      name: { givenName: "Ada", familyName: "Lovelace" },
      emails: [{ primary: true, value: "ada@example.com", type: "work" }],
      externalId: "00u1okta",
      active: true,
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const adaId = created.body.id as string;
    const group = await scim("POST", "/Groups", {
      schemas: ["urn:ietf:params:scim:schemas:core:2.0:Group"],
      displayName: "engineering",
      members: [],
    });
    expect(group.status).toBe(201);
    const groupId = group.body.id as string;
    expect(
      (
        await scim("PATCH", `/Groups/${groupId}`, {
          schemas: [PATCH],
          Operations: [{ op: "add", path: "members", value: [{ value: adaId, display: "ada@example.com" }] }],
        })
      ).status,
    ).toBe(200);
    // Ada's key (a person's key: her principal carries her directory groups).
    const adaKey = await ownerAt.auth.createApiKey({ name: "ada laptop", role: Role.VIEWER, ownerUserId: adaId });
    const adaAtB = createNexusClient({ baseUrl: b.url, apiKey: adaKey.plaintextKey });
    expect((await createNexusClient({ baseUrl: a.url, apiKey: adaKey.plaintextKey }).auth.whoAmI({})).principal?.groups).toEqual([
      "engineering",
    ]);
    await ownerAt.retrieval.createCorpus({ corpusId: "eng", displayName: "eng" });
    for (const id of ["design", "roadmap"]) {
      await ownerAt.ingestion.ingestText({ corpusId: "eng", documentId: id, text: `The architecture notes: ${id}.` });
      await eventually(
        `${id} ingested`,
        async () => (await ownerAt.ingestion.getDocument({ documentId: id })).document?.status === DocumentStatus.SUCCEEDED,
      );
    }
    await ownerAt.retrieval.setDocumentAccess({
      documentId: "design",
      restricted: true,
      grants: [{ kind: GranteeKind.GROUP, grantee: "engineering" }],
    });
    const seenByAda = async () =>
      (await adaAtB.retrieval.search({ corpusId: "eng", query: "architecture notes", topK: 10, mode: SearchMode.LEXICAL })).hits
        .map((h) => h.documentId)
        .sort();
    await eventually(
      "Ada to see the group's document at B",
      async () => JSON.stringify(await seenByAda()) === '["design","roadmap"]',
      10_000,
      10,
    );

    // Okta removes her from the group.
    const removed = await scim("PATCH", `/Groups/${groupId}`, {
      schemas: [PATCH],
      Operations: [{ op: "remove", path: `members[value eq "${adaId}"]` }],
    });
    expect(removed.status).toBe(200);
    const acknowledged = performance.now();
    await eventually("B to withhold the group's document", async () => JSON.stringify(await seenByAda()) === '["roadmap"]', 10_000, 10);
    expect(performance.now() - acknowledged).toBeLessThan(BOUND_MS);

    // Added back (Okta's group push again): the document is back.
    await scim("PATCH", `/Groups/${groupId}`, {
      schemas: [PATCH],
      Operations: [{ op: "add", path: "members", value: [{ value: adaId }] }],
    });
    await eventually("Ada to see it again", async () => JSON.stringify(await seenByAda()) === '["design","roadmap"]', 10_000, 10);
  });

  it("a grant revoked at replica A is in force at replica B within a second", async () => {
    const revoked = await timeUntilSeenAtB(
      () => ownerAtA.retrieval.setDocumentAccess({ documentId: "plan", restricted: true, grants: [] }),
      [],
    );
    expect(revoked).toBeLessThan(BOUND_MS);
  });
});
