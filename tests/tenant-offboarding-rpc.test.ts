/**
 * EventStoreService.StartTenantOffboarding against a real server on PostgreSQL: a platform
 * operator starts the offboarding saga over the API and follows it with GetSaga; the tenant's
 * keys are refused and its data gone afterwards. Tenant admins, a wrong confirmation, an
 * unknown tenant and a legal hold are refused; a second call returns the same saga; the start is
 * in the tenant's audit trail with the operator's key as actor.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { SagaStatus } from "../gen/nexus/eventstore/v1/event_store_service_pb.js";
import { errorReason } from "../services/kernel/errors.js";
import { placeLegalHold, releaseLegalHold } from "../services/kernel/governance/index.js";
import { createKeyring, newMasterKeyLine, parseMasterKeys } from "../services/kernel/keyring/index.js";
import { type AuthHarness, failure, startAuthHarness } from "./support/auth-harness.js";
import { runNexusCli } from "./support/nexus-process.js";
import { describeWithPostgres } from "./support/services.js";

const MASTER = newMasterKeyLine(1);

/** Polls until `check` returns a value (or fails the test after `ms`). */
async function eventually<T>(check: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 100));
  }
}

describeWithPostgres("StartTenantOffboarding over the API", () => {
  let h: AuthHarness;
  const TERMINAL = new Set([SagaStatus.COMPLETED, SagaStatus.COMPENSATED, SagaStatus.FAILED]);

  beforeAll(async () => {
    h = await startAuthHarness({ services: ["auth", "metering"], env: { NEXUS_MASTER_KEYS: MASTER } });
  });
  afterAll(async () => {
    await h?.close();
  });

  const ops = () => h.client(h.platformKey).events;
  const finished = (sagaId: string) =>
    eventually(async () => {
      const { saga } = await ops().getSaga({ sagaId });
      return saga && TERMINAL.has(saga.status) ? saga : undefined;
    });

  it("Given a platform operator, When they start offboarding by RPC, Then GetSaga shows it completed, the tenant's keys are refused, its data is gone, the start is audited and a second call returns the same saga", async () => {
    const { tenant, ownerKey } = await h.tenant();
    const id = tenant!.id;
    const keyring = createKeyring({ db: h.nexus.db, masterKeys: parseMasterKeys(MASTER, "test"), cacheMs: 0 });
    const sealed = await keyring.sealText({ tenantId: id, purpose: "documents" }, "secret");
    expect((await h.client(ownerKey).auth.whoAmI({})).principal).toBeDefined();

    const first = await ops().startTenantOffboarding({ tenantId: id, reason: "contract ended", confirmation: id });
    expect(first.started).toBe(true);
    expect(first.saga).toMatchObject({ name: "tenant-offboarding", tenantId: id });
    const sagaId = first.saga!.sagaId;

    const saga = await finished(sagaId);
    expect(saga.status).toBe(SagaStatus.COMPLETED);
    expect(saga.pointOfNoReturnPassed).toBe(true);
    expect(saga.steps.map((s) => s.name)).toEqual(["suspend-keys", "stop-workflows", "check-legal-hold", "shred-keys", "delete-data"]);

    // The keys: refused (suspended, then deleted).
    const refused = await failure(() => h.client(ownerKey).auth.whoAmI({}));
    expect(["PermissionDenied", "Unauthenticated"]).toContain(refused.code);
    // The data: the keys' rows deleted, sealed data never opens again.
    const db = h.nexus.db;
    expect((await db.query<{ n: number }>("SELECT count(*)::int AS n FROM auth.api_keys WHERE tenant_id = $1", [id])).rows[0]?.n).toBe(0);
    await expect(keyring.openText({ tenantId: id, purpose: "documents" }, sealed)).rejects.toSatisfy(
      (e) => errorReason(e) === "DECRYPTION_FAILED",
    );

    // Idempotent: the completed saga comes back, no second one starts.
    const again = await ops().startTenantOffboarding({ tenantId: id, reason: "again", confirmation: id });
    expect(again.started).toBe(false);
    expect(again.saga).toMatchObject({ sagaId, status: SagaStatus.COMPLETED });
    expect((await ops().listSagas({ tenantId: id, name: "tenant-offboarding" })).sagas.map((s) => s.sagaId)).toEqual([sagaId]);

    // Audited in the tenant's trail (kept after offboarding), with the operator's key as actor.
    const platformKeyId = h.platformKey.split("_")[1];
    const entry = await eventually(async () => {
      const { rows } = await db.query<{ actor_key_id: string; action: string; metadata: { input?: { reason?: string } } }>(
        "SELECT actor_key_id, action, metadata FROM audit.entries WHERE tenant_id = $1 AND event_type = 'saga.started' AND resource_id = $2",
        [id, sagaId],
      );
      return rows[0];
    });
    expect(entry).toMatchObject({
      actor_key_id: platformKeyId,
      action: "nexus.eventstore.v1.EventStoreService/StartTenantOffboarding",
    });
    expect(entry.metadata.input?.reason).toBe("contract ended");
  });

  it("Given a running offboarding, When it is started again (even concurrently), Then every call returns the one saga", async () => {
    const { tenant } = await h.tenant();
    const id = tenant!.id;
    const calls = await Promise.all(
      [1, 2, 3].map(() => ops().startTenantOffboarding({ tenantId: id, reason: "closing", confirmation: id })),
    );
    expect(new Set(calls.map((c) => c.saga?.sagaId)).size).toBe(1);
    expect(calls.filter((c) => c.started)).toHaveLength(1);
    expect((await finished(calls[0]!.saga!.sagaId)).status).toBe(SagaStatus.COMPLETED);
  });

  it("Given a tenant admin (even the owner), When they start offboarding of their own tenant, Then it is PERMISSION_DENIED and nothing starts", async () => {
    const { tenant, ownerKey } = await h.tenant();
    const id = tenant!.id;
    expect(
      await failure(() => h.client(ownerKey).events.startTenantOffboarding({ tenantId: id, reason: "x", confirmation: id })),
    ).toMatchObject({ code: "PermissionDenied", reason: "RBAC_FORBIDDEN" });
    expect((await ops().listSagas({ tenantId: id })).sagas).toEqual([]);
  });

  it("Given a wrong confirmation, an unknown tenant or a missing reason, Then INVALID_ARGUMENT CONFIRMATION_MISMATCH, NOT_FOUND, INVALID_ARGUMENT", async () => {
    const { tenant } = await h.tenant();
    const id = tenant!.id;
    const wrong = await failure(() => ops().startTenantOffboarding({ tenantId: id, reason: "x", confirmation: `${id}x` }));
    expect(wrong).toMatchObject({ code: "InvalidArgument", reason: "CONFIRMATION_MISMATCH" });
    expect(wrong.message).toContain(id);
    expect(
      await failure(() => ops().startTenantOffboarding({ tenantId: "no-such-tenant", reason: "x", confirmation: "no-such-tenant" })),
    ).toMatchObject({
      code: "NotFound",
    });
    expect((await failure(() => ops().startTenantOffboarding({ tenantId: id, reason: "", confirmation: id }))).code).toBe(
      "InvalidArgument",
    );
    expect((await ops().listSagas({ tenantId: id })).sagas).toEqual([]);
  });

  it("Given a tenant under a legal hold, When offboarding is started, Then FAILED_PRECONDITION LEGAL_HOLD_ACTIVE naming the hold; released, it starts", async () => {
    const { tenant } = await h.tenant();
    const id = tenant!.id;
    const hold = await h.nexus.db.transaction((tx) => placeLegalHold(tx, { tenantId: id, scope: "tenant", reason: "litigation" }));
    const refused = await failure(() => ops().startTenantOffboarding({ tenantId: id, reason: "x", confirmation: id }));
    expect(refused).toMatchObject({ code: "FailedPrecondition", reason: "LEGAL_HOLD_ACTIVE" });
    expect(refused.message).toContain(hold.holdId);
    expect((await ops().listSagas({ tenantId: id })).sagas).toEqual([]);
    await h.nexus.db.transaction((tx) => releaseLegalHold(tx, id, hold.holdId));
    const started = await ops().startTenantOffboarding({ tenantId: id, reason: "x", confirmation: id });
    expect(started.started).toBe(true);
    expect((await finished(started.saga!.sagaId)).status).toBe(SagaStatus.COMPLETED);
  });

  it("Given `nexus tenants offboard --api`, Then the CLI starts the offboarding through the API and prints the saga", async () => {
    const { tenant } = await h.tenant();
    const id = tenant!.id;
    const res = await runNexusCli(["tenants", "offboard", id, "--reason", "cli", "--confirm", id, "--url", h.url, "--json"], {
      NEXUS_API_KEY: h.platformKey,
    });
    expect(res.code, res.stderr).toBe(0);
    const out = JSON.parse(res.stdout) as { saga: { sagaId: string; tenantId: string }; started: boolean };
    expect(out).toMatchObject({ started: true, saga: { tenantId: id } });
    expect((await finished(out.saga.sagaId)).status).toBe(SagaStatus.COMPLETED);
    const mismatch = await runNexusCli(["tenants", "offboard", id, "--reason", "cli", "--confirm", "other", "--url", h.url], {
      NEXUS_API_KEY: h.platformKey,
    });
    expect(mismatch.code).not.toBe(0);
    expect(mismatch.stderr).toContain("CONFIRMATION_MISMATCH");
  });
});
