/**
 * A policy change or a revoked grant is in force within a second on EVERY replica: separate
 * processes on one PostgreSQL and NATS — `nexus serve --service auth,ingestion,retrieval`
 * (replica A, where the changes are made) and `nexus serve --service retrieval` (replica B,
 * where a viewer searches). Retrieval keeps no copy of policies or access lists (each search
 * reads them), so B sees a change made through A at its next query; the test measures from the
 * moment A acknowledged the change until B's answer shows it, and asserts the 1 s bound.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { Role } from "../gen/nexus/auth/v1/api_key_pb.js";
import { Plan } from "../gen/nexus/auth/v1/tenant_pb.js";
import { DocumentStatus } from "../gen/nexus/ingestion/v1/document_pb.js";
import { SearchMode } from "../gen/nexus/retrieval/v1/retrieval_service_pb.js";
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
  const token = uniqueToken("p").toUpperCase();
  const platform = generateApiKey();

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

  it("a grant revoked at replica A is in force at replica B within a second", async () => {
    const revoked = await timeUntilSeenAtB(
      () => ownerAtA.retrieval.setDocumentAccess({ documentId: "plan", restricted: true, grants: [] }),
      [],
    );
    expect(revoked).toBeLessThan(BOUND_MS);
  });
});
