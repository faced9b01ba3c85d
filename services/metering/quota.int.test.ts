/**
 * Quotas on a real PostgreSQL: atomic reservations under concurrency, soft cap once per
 * period, observe mode, settlement and expiry, refusals with ErrorInfo and RetryInfo. Calls go
 * through the metering handler with principals as the authentication gate would set them.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, it } from "vitest";
import { RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { Plan } from "../../gen/nexus/auth/v1/tenant_pb.js";
import { TenantCreatedSchema } from "../../gen/nexus/events/v1/auth_events_pb.js";
import {
  CheckQuotaRequestSchema,
  CommitQuotaRequestSchema,
  GetQuotaRequestSchema,
  GetUsageHistoryRequestSchema,
  ReleaseQuotaRequestSchema,
  SetQuotaRequestSchema,
} from "../../gen/nexus/metering/v1/metering_service_pb.js";
import { HardCapMode, Period, QuotaDecision, QuotaSource } from "../../gen/nexus/metering/v1/quota_pb.js";
import { eventually } from "../../tests/support/eventually.js";
import type { Metering } from "../../tests/support/metering-harness.js";
import {
  contextFor,
  openMetering,
  platformPrincipal,
  tenantPrincipal,
  testClock,
  uniqueTenant,
} from "../../tests/support/metering-harness.js";
import { createTestDatabase, describeWithPostgres, type TestDatabase, uniqueToken } from "../../tests/support/services.js";
import { createPgDatabase } from "../kernel/db/pg-database.js";
import type { Database } from "../kernel/db/ports.js";
import { errorMetadata, errorReason } from "../kernel/errors.js";
import { appendToStream } from "../kernel/events/event-store.js";
import { createLocalEventBus } from "../kernel/events/local-bus.js";
import type { EventBus } from "../kernel/events/ports.js";
import { eventOf } from "../kernel/events/protobuf-event.js";
import { DEFAULT_METERING_SETTINGS } from "./metering-settings.js";

describeWithPostgres("metering quotas (PostgreSQL)", () => {
  let testDb: TestDatabase;
  let db: Database;
  let bus: EventBus;
  let metering: Metering;
  const clock = testClock(new Date("2025-03-10T12:00:00Z"));
  const platform = contextFor(platformPrincipal());

  beforeAll(async () => {
    testDb = await createTestDatabase();
    db = await createPgDatabase({ url: testDb.url, poolSize: 24 });
    bus = await createLocalEventBus({ db, subjectPrefix: uniqueToken("p"), pollIntervalMs: 25 });
    metering = await openMetering(db, bus, clock.now, { settings: { ...DEFAULT_METERING_SETTINGS, reservationTtlMs: 60_000 } });
  });

  afterAll(async () => {
    await metering?.module.shutdown?.();
    await bus?.close();
    await db?.close();
    await testDb?.drop();
  });

  /** A tenant as auth creates it: the TenantCreated event, projected by metering. */
  async function createTenant(plan: Plan = Plan.PRO): Promise<string> {
    const tenantId = uniqueTenant();
    await db.transaction((tx) =>
      appendToStream(
        tx,
        `tenant-${tenantId}`,
        "no_stream",
        [eventOf(TenantCreatedSchema, { tenantId, slug: tenantId, displayName: tenantId, plan })],
        {
          metadata: { tenantId, actor: "key-platform" },
        },
      ),
    );
    await eventually("the plan projection", async () => {
      const { rows } = await db.query("SELECT 1 FROM metering.tenant_plans WHERE tenant_id = $1", [tenantId]);
      return rows.length === 1;
    });
    return tenantId;
  }

  async function quotaEvents(tenantId: string, type: string): Promise<Array<Record<string, unknown>>> {
    const { rows } = await db.query<{ payload: Record<string, unknown> }>(
      "SELECT payload FROM platform.events WHERE stream_id = $1 AND type = $2 ORDER BY position",
      [`quota-${tenantId}`, `nexus.events.v1.${type}`],
    );
    return rows.map((r) => r.payload);
  }

  async function check(tenantId: string, requestId: string, estimatedRunUnits = 0) {
    return metering.handler.checkQuota(
      create(CheckQuotaRequestSchema, { tenantId, requestId, estimatedRunUnits }),
      contextFor(tenantPrincipal(tenantId)),
    );
  }

  async function refusal(p: Promise<unknown>): Promise<ConnectError> {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConnectError);
    return err as ConnectError;
  }

  it("20 concurrent CheckQuota calls against a daily limit of 10 admit exactly 10", async () => {
    const tenantId = await createTenant();
    await metering.handler.setQuota(
      create(SetQuotaRequestSchema, { tenantId, dailyRunsLimit: 10n, hardCapMode: HardCapMode.ENFORCE }),
      platform,
    );
    const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => check(tenantId, `run-${i}`)));
    const admitted = results.filter((r) => r.status === "fulfilled");
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === "rejected").map((r) => r.reason as ConnectError);
    expect(admitted).toHaveLength(10);
    expect(refused).toHaveLength(10);
    for (const err of refused) {
      expect(err.code).toBe(Code.ResourceExhausted);
      expect(errorReason(err)).toBe("QUOTA_EXCEEDED");
      expect(errorMetadata(err)).toMatchObject({ period: "day", metric: "runs", limit: "10", used: "10", remaining: "0" });
    }
    const ids = new Set(admitted.map((r) => (r as PromiseFulfilledResult<{ reservationId: string }>).value.reservationId));
    expect(ids.size).toBe(10);
    const { windows } = await metering.handler.getQuota(create(GetQuotaRequestSchema, { tenantId }), contextFor(tenantPrincipal(tenantId)));
    expect(windows[0]).toMatchObject({
      period: Period.DAY,
      runsReserved: 10n,
      runsUsed: 0n,
      runsLimit: 10n,
      runsRemaining: 0n,
      hardCapReached: true,
    });
    expect(await quotaEvents(tenantId, "QuotaHardCapBlocked")).toHaveLength(10);
  });

  it("refuses with RetryInfo until the period resets", async () => {
    const tenantId = await createTenant();
    await metering.handler.setQuota(create(SetQuotaRequestSchema, { tenantId, dailyRunsLimit: 1n }), platform);
    await check(tenantId, "first");
    const err = await refusal(check(tenantId, "second"));
    const retry = err.findDetails(RetryInfoSchema)[0];
    // 12:00 on the test clock → the day resets in 12 hours.
    expect(Number(retry?.retryDelay?.seconds)).toBe(12 * 3600);
    expect(errorMetadata(err).resets_at).toBe("2025-03-11T00:00:00.000Z");
  });

  it("fires the soft cap event exactly once per period", async () => {
    const tenantId = await createTenant();
    await metering.handler.setQuota(create(SetQuotaRequestSchema, { tenantId, dailyRunsLimit: 10n, softCapRatio: 0.5 }), platform);
    const decisions: QuotaDecision[] = [];
    for (let i = 0; i < 7; i++) decisions.push((await check(tenantId, `soft-${i}`)).decision);
    expect(decisions).toEqual([
      QuotaDecision.ALLOWED,
      QuotaDecision.ALLOWED,
      QuotaDecision.ALLOWED,
      QuotaDecision.ALLOWED,
      QuotaDecision.ALLOWED_SOFT_CAP,
      QuotaDecision.ALLOWED_SOFT_CAP,
      QuotaDecision.ALLOWED_SOFT_CAP,
    ]);
    const soft = await quotaEvents(tenantId, "QuotaSoftCapReached");
    expect(soft).toHaveLength(1);
    expect(soft[0]).toMatchObject({ tenantId, period: "PERIOD_DAY", metric: "QUOTA_METRIC_RUNS", limit: 10, used: 5, softCapRatio: 0.5 });
  });

  it("observe mode lets runs over the limit through and records an overage event for each", async () => {
    const tenantId = await createTenant();
    await metering.handler.setQuota(
      create(SetQuotaRequestSchema, { tenantId, dailyRunsLimit: 2n, hardCapMode: HardCapMode.OBSERVE }),
      platform,
    );
    await check(tenantId, "o1");
    await check(tenantId, "o2");
    const third = await check(tenantId, "o3");
    const fourth = await check(tenantId, "o4");
    expect(third.decision).toBe(QuotaDecision.ALLOWED_OVERAGE);
    expect(third.hardCapMode).toBe(HardCapMode.OBSERVE);
    expect(fourth.decision).toBe(QuotaDecision.ALLOWED_OVERAGE);
    expect(third.windows[0]).toMatchObject({ runsReserved: 3n, runsRemaining: 0n, hardCapReached: true });
    const overages = await quotaEvents(tenantId, "QuotaOverage");
    expect(overages.map((o) => o.requestId)).toEqual(["o3", "o4"]);
    expect(overages[0]).toMatchObject({ limit: 2, used: 3, period: "PERIOD_DAY" });
    expect(await quotaEvents(tenantId, "QuotaHardCapBlocked")).toHaveLength(0);
  });

  it("commit counts a run as used, release gives it back, and both are idempotent", async () => {
    const tenantId = await createTenant();
    const ctx = contextFor(tenantPrincipal(tenantId));
    const a = await check(tenantId, "a");
    expect((await check(tenantId, "a")).reservationId).toBe(a.reservationId);
    const b = await check(tenantId, "b");
    await metering.handler.commitQuota(create(CommitQuotaRequestSchema, { reservationId: a.reservationId }), ctx);
    const again = await metering.handler.commitQuota(create(CommitQuotaRequestSchema, { reservationId: a.reservationId }), ctx);
    expect(again.windows[1]).toMatchObject({ period: Period.MONTH, runsUsed: 1n, runsReserved: 1n });
    const released = await metering.handler.releaseQuota(
      create(ReleaseQuotaRequestSchema, { reservationId: b.reservationId, reason: "run_failed" }),
      ctx,
    );
    expect(released.windows[1]).toMatchObject({ runsUsed: 1n, runsReserved: 0n, runsLimit: 5000n, runsRemaining: 4999n });
    const err = await refusal(
      metering.handler.releaseQuota(create(ReleaseQuotaRequestSchema, { reservationId: a.reservationId, reason: "oops" }), ctx),
    );
    expect(err.code).toBe(Code.FailedPrecondition);
    const err2 = await refusal(metering.handler.commitQuota(create(CommitQuotaRequestSchema, { reservationId: b.reservationId }), ctx));
    expect(err2.code).toBe(Code.FailedPrecondition);
  });

  it("another tenant cannot see or settle a reservation", async () => {
    const owner = await createTenant();
    const other = await createTenant();
    const r = await check(owner, "mine");
    const err = await refusal(
      metering.handler.releaseQuota(
        create(ReleaseQuotaRequestSchema, { reservationId: r.reservationId, reason: "" }),
        contextFor(tenantPrincipal(other)),
      ),
    );
    expect(err.code).toBe(Code.NotFound);
    const mismatch = await refusal(
      metering.handler.getQuota(create(GetQuotaRequestSchema, { tenantId: owner }), contextFor(tenantPrincipal(other))),
    );
    expect(errorReason(mismatch)).toBe("TENANT_MISMATCH");
  });

  it("an unsettled reservation expires after its TTL and its capacity comes back", async () => {
    const tenantId = await createTenant();
    await metering.handler.setQuota(create(SetQuotaRequestSchema, { tenantId, dailyRunsLimit: 1n }), platform);
    const r = await check(tenantId, "crashed-agent");
    expect(r.reservationExpiresAt).toBeDefined();
    expect((await refusal(check(tenantId, "blocked"))).code).toBe(Code.ResourceExhausted);
    clock.advance(61_000);
    const next = await check(tenantId, "after-expiry");
    expect(next.windows[0]).toMatchObject({ runsReserved: 1n, runsUsed: 0n });
    // The crashed run's completion still counts if it ever arrives (CommitQuota after expiry).
    const committed = await metering.handler.commitQuota(
      create(CommitQuotaRequestSchema, { reservationId: r.reservationId }),
      contextFor(tenantPrincipal(tenantId)),
    );
    expect(committed.windows[0]).toMatchObject({ runsUsed: 1n, runsReserved: 1n });
  });

  it("GetQuota shows plan defaults until SetQuota; SetQuota is platform-only and audited as QuotaUpdated", async () => {
    const tenantId = await createTenant(Plan.FREE);
    const ctx = contextFor(tenantPrincipal(tenantId, "free", "viewer"));
    const before = await metering.handler.getQuota(create(GetQuotaRequestSchema, {}), ctx);
    expect(before.quota).toMatchObject({ source: QuotaSource.PLAN, softCapRatio: 0.8, limits: { monthlyRuns: 100n } });
    expect(before.quota?.limits?.dailyRuns).toBeUndefined();
    const denied = await refusal(
      metering.handler.setQuota(
        create(SetQuotaRequestSchema, { tenantId, dailyRunsLimit: 1000n }),
        contextFor(tenantPrincipal(tenantId, "free", "owner")),
      ),
    );
    expect(denied.code).toBe(Code.PermissionDenied);
    const set = await metering.handler.setQuota(
      create(SetQuotaRequestSchema, { tenantId, dailyRunsLimit: 3n, softCapRatio: 0.9 }),
      platform,
    );
    expect(set.quota).toMatchObject({ source: QuotaSource.CUSTOM, softCapRatio: 0.9, limits: { dailyRuns: 3n, monthlyRuns: 100n } });
    const updates = await quotaEvents(tenantId, "QuotaUpdated");
    expect(updates).toHaveLength(1);
    expect(updates[0]).toMatchObject({ previousQuota: { source: "QUOTA_SOURCE_PLAN" }, quota: { source: "QUOTA_SOURCE_CUSTOM" } });
    const unknown = await refusal(
      metering.handler.setQuota(create(SetQuotaRequestSchema, { tenantId: "no-such-tenant", dailyRunsLimit: 3n }), platform),
    );
    expect(unknown.code).toBe(Code.NotFound);
  });

  it("GetUsageHistory checks calendar dates and the 366-day limit on the server", async () => {
    const tenantId = await createTenant();
    const ctx = contextFor(tenantPrincipal(tenantId));
    const bad = await refusal(
      metering.handler.getUsageHistory(create(GetUsageHistoryRequestSchema, { startDate: "2025-02-30", endDate: "2025-03-01" }), ctx),
    );
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(errorMetadata(bad).field).toBe("start_date");
    const long = await refusal(
      metering.handler.getUsageHistory(create(GetUsageHistoryRequestSchema, { startDate: "2024-01-01", endDate: "2025-01-01" }), ctx),
    );
    expect(long.code).toBe(Code.InvalidArgument);
    const ok = await metering.handler.getUsageHistory(
      create(GetUsageHistoryRequestSchema, { startDate: "2024-01-01", endDate: "2024-12-31" }),
      ctx,
    );
    expect(ok.days).toHaveLength(366);
    expect(ok.days[59]).toMatchObject({ date: "2024-02-29", totals: { runsCompleted: 0n } });
  });
});
