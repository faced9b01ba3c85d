import { pino } from "pino";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestDatabase, describeWithPostgres, type TestDatabase } from "../../tests/support/services.js";
import type { Principal } from "../kernel/context.js";
import { createPgDatabase } from "../kernel/db/pg-database.js";
import type { Database } from "../kernel/db/ports.js";
import { errorReason } from "../kernel/errors.js";
import { readStream } from "../kernel/events/event-store.js";
import { migratePlatform } from "../kernel/events/platform-migrations.js";
import { migrateService } from "../kernel/service/index.js";
import { apiKeyStreamId, tenantStreamId } from "./auth-aggregates.js";
import type { AuthApplication } from "./auth-application.js";
import { DEFAULT_AUTH_SETTINGS } from "./auth-settings.js";
import { createAuthApplication } from "./create-auth-application.js";
import { authService } from "./server.js";

const operator: Principal = { kind: "platform", keyId: "op_key", name: "ops" };

/** The row's version and its stream's: the command helper keeps them equal. */
async function versions(db: Database, table: "tenants" | "api_keys", id: string, streamId: string) {
  const { rows } = await db.query<{ version: number }>(`SELECT version FROM auth.${table} WHERE id = $1`, [id]);
  return { row: rows[0]?.version, stream: (await readStream(db, streamId)).length };
}

describeWithPostgres("auth on the kernel command helper (PostgreSQL)", () => {
  let testDb: TestDatabase;
  let db: Database;
  let app: AuthApplication;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    db = await createPgDatabase({ url: testDb.url, poolSize: 6 });
    await migratePlatform(db);
    await migrateService(authService, db);
    app = createAuthApplication({ db, logger: pino({ level: "silent" }), clock: () => new Date(), settings: DEFAULT_AUTH_SETTINGS });
  });
  afterAll(async () => {
    await db?.close();
    await testDb?.drop();
  });

  it("keeps a tenant's row and stream at one version, with the actor and tenant on every event", async () => {
    const tenant = await app.createTenant(operator, { slug: "step", displayName: "Step", plan: "free" });
    await app.setPlan(operator, tenant.id, "pro");
    await app.suspendTenant(operator, tenant.id, "unpaid");
    await app.suspendTenant(operator, tenant.id, "unpaid again"); // idempotent: nothing recorded
    expect(await versions(db, "tenants", tenant.id, tenantStreamId(tenant.id))).toEqual({ row: 3, stream: 3 });
    const events = await readStream(db, tenantStreamId(tenant.id));
    expect(events.map((e) => e.type)).toEqual([
      "nexus.events.v1.TenantCreated",
      "nexus.events.v1.PlanChanged",
      "nexus.events.v1.TenantSuspended",
    ]);
    for (const e of events) expect(e.metadata).toMatchObject({ actor: "op_key", tenantId: tenant.id });
  });

  it("Given one key, When it is rotated twice at once, Then one rotation wins and only one successor exists", async () => {
    const tenant = await app.createTenant(operator, { slug: "rotate-race", displayName: "Race", plan: "pro" });
    const { key } = await app.createApiKey(operator, {
      tenantId: tenant.id,
      name: "ci",
      role: "admin",
      expiresAt: undefined,
      platformKey: false,
    });
    const results = await Promise.allSettled([
      app.rotateApiKey(operator, key.id, { graceMs: 60_000, expiresAt: undefined }),
      app.rotateApiKey(operator, key.id, { graceMs: 60_000, expiresAt: undefined }),
    ]);
    const won = results.filter((r) => r.status === "fulfilled");
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    expect(won).toHaveLength(1);
    // The loser waited for the winner's lock and then found a rotating key.
    expect(lost.map((r) => errorReason(r.reason))).toEqual(["FAILED_PRECONDITION"]);
    const stored = await app.getApiKey(operator, key.id);
    const successor = won[0]?.status === "fulfilled" ? won[0].value.successor.key : undefined;
    expect(stored.successorKeyId).toBe(successor?.id);
    expect(await versions(db, "api_keys", key.id, apiKeyStreamId(key.id))).toEqual({ row: 2, stream: 2 });
    const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM auth.api_keys WHERE predecessor_key_id = $1", [key.id]);
    expect(rows[0]?.n).toBe(1);
  });

  it("Given a taken slug, When another tenant is created with it, Then ALREADY_EXISTS and no event for the new tenant", async () => {
    await app.createTenant(operator, { slug: "taken", displayName: "First", plan: "free" });
    const before = (
      await db.query<{ n: number }>("SELECT count(*)::int AS n FROM platform.events WHERE type = 'nexus.events.v1.TenantCreated'")
    ).rows[0]?.n;
    const err = await app.createTenant(operator, { slug: "taken", displayName: "Second", plan: "free" }).catch((e: unknown) => e);
    expect(errorReason(err)).toBe("ALREADY_EXISTS");
    const after = (
      await db.query<{ n: number }>("SELECT count(*)::int AS n FROM platform.events WHERE type = 'nexus.events.v1.TenantCreated'")
    ).rows[0]?.n;
    expect(after).toBe(before);
  });

  it("refuses a tenant key managing an owner key through the key policy, before anything is written", async () => {
    const tenant = await app.createTenant(operator, { slug: "policy", displayName: "Policy", plan: "pro" });
    const { key: owner } = await app.createApiKey(operator, {
      tenantId: tenant.id,
      name: "owner",
      role: "owner",
      expiresAt: undefined,
      platformKey: false,
    });
    const admin: Principal = {
      kind: "tenant",
      keyId: "admin_key",
      name: "admin",
      tenantId: tenant.id,
      tenantSlug: "policy",
      role: "admin",
      plan: "pro",
      entitlements: { features: {}, featureConfig: {}, monthlyRunAllowance: 5000, maxActiveApiKeys: undefined },
    };
    const err = await app.revokeApiKey(admin, owner.id, "no").catch((e: unknown) => e);
    expect(errorReason(err)).toBe("RBAC_FORBIDDEN");
    expect(await versions(db, "api_keys", owner.id, apiKeyStreamId(owner.id))).toEqual({ row: 1, stream: 1 });
    const missing = await app.revokeApiKey(admin, "no_such_key", "no").catch((e: unknown) => e);
    expect(errorReason(missing)).toBe("NOT_FOUND");
  });
});
