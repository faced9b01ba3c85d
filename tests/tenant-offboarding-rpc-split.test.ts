/**
 * StartTenantOffboarding in split mode: `nexus serve --service auth` and `nexus serve --service
 * metering` as SEPARATE processes (PostgreSQL + NATS). The metering process serves
 * EventStoreService and runs the saga — with every service's data deleters, although it hosts
 * neither auth nor the others — and the tenant's key is refused at the auth process afterwards.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Role } from "../gen/nexus/auth/v1/api_key_pb.js";
import { Plan } from "../gen/nexus/auth/v1/tenant_pb.js";
import { SagaStatus } from "../gen/nexus/eventstore/v1/event_store_service_pb.js";
import { generateApiKey } from "../services/auth/domain/api-key-secret.js";
import { createNexusClient } from "../services/client/create-nexus-client.js";
import { failure } from "./support/auth-harness.js";
import { bootstrapKeyEnv, deleteSuiteStreams, suiteServeEnv } from "./support/nats-streams.js";
import { type NexusProcess, startNexus } from "./support/nexus-process.js";
import { createTestDatabase, describeWithPostgresAndNats, type TestDatabase, uniqueToken } from "./support/services.js";

describeWithPostgresAndNats("StartTenantOffboarding with auth and metering in separate processes", () => {
  let db: TestDatabase;
  let auth: NexusProcess;
  let metering: NexusProcess;
  const token = uniqueToken("off").toUpperCase();
  const platform = generateApiKey();

  beforeAll(async () => {
    db = await createTestDatabase("nexus_offboard_split");
    const env = { ...suiteServeEnv(db.url, token, "offsplit"), NEXUS_MASTER_KEYS: `1:${randomBytes(32).toString("base64")}` };
    auth = await startNexus({
      args: ["serve", "--service", "auth", "--port", "0", "--host", "127.0.0.1"],
      env: { ...env, ...bootstrapKeyEnv(platform) },
    });
    metering = await startNexus({
      args: ["serve", "--service", "metering", "--port", "0", "--host", "127.0.0.1"],
      env: { ...env, NEXUS_AUTH_URL: auth.url },
    });
  }, 120_000);
  afterAll(async () => {
    await metering?.stop();
    await auth?.stop();
    await deleteSuiteStreams(token);
    await db?.drop();
  });

  it("Given a tenant, When an operator starts its offboarding at the metering process, Then the saga completes there and the tenant's key is refused at auth", async () => {
    const ops = createNexusClient({ baseUrl: auth.url, apiKey: platform.plaintext });
    const { tenant } = await ops.auth.createTenant({ slug: `off-${Date.now().toString(36)}`, displayName: "Split", plan: Plan.PRO });
    const id = tenant!.id;
    const owner = await ops.auth.createApiKey({ tenantId: id, name: "owner", role: Role.OWNER });
    const atAuth = createNexusClient({ baseUrl: auth.url, apiKey: owner.plaintextKey });
    expect((await atAuth.auth.whoAmI({})).principal).toBeDefined();

    const events = createNexusClient({ baseUrl: metering.url, apiKey: platform.plaintext }).events;
    const started = await events.startTenantOffboarding({ tenantId: id, reason: "split mode", confirmation: id });
    expect(started.started).toBe(true);
    const sagaId = started.saga!.sagaId;
    const until = Date.now() + 60_000;
    let status = started.saga!.status;
    while (status !== SagaStatus.COMPLETED && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 200));
      const { saga } = await events.getSaga({ sagaId });
      status = saga!.status;
      expect([SagaStatus.RUNNING, SagaStatus.COMPLETED], saga?.lastError).toContain(status);
    }
    expect(status).toBe(SagaStatus.COMPLETED);
    const refused = await failure(() => atAuth.auth.whoAmI({}));
    expect(["PermissionDenied", "Unauthenticated"]).toContain(refused.code);
    // The tenant's keys were deleted by auth's deleter, run in the metering process.
    expect((await ops.auth.listApiKeys({ tenantId: id })).apiKeys).toEqual([]);
  });
});
