import { Code, ConnectError } from "@connectrpc/connect";
import fc from "fast-check";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestDatabase, describeWithPostgres, type TestDatabase } from "../../tests/support/services.js";
import { FEATURE_KEYS } from "../kernel/authz/plans.js";
import { executeCommand, loadSnapshot, rehydrate, saveSnapshot } from "../kernel/commands/index.js";
import type { PlanName } from "../kernel/context.js";
import { createPgDatabase } from "../kernel/db/pg-database.js";
import type { Database } from "../kernel/db/ports.js";
import { errorReason } from "../kernel/errors.js";
import { migratePlatform } from "../kernel/events/platform-migrations.js";
import { migrateService } from "../kernel/service/index.js";
import { createPostgresAuthStore } from "./adapters/postgres.js";
import { tenantAggregate, tenantStreamId } from "./auth-aggregates.js";
import type { Tenant, TenantCommand } from "./domain/tenant.js";
import type { AuthStore } from "./ports.js";
import { authService } from "./server.js";
import { tenantEventSourcing } from "./tenant-event-sourcing.js";

const plans: PlanName[] = ["free", "pro", "enterprise"];

/** A random tenant command (times filled in when it runs). */
const commandArb: fc.Arbitrary<(now: Date) => TenantCommand> = fc.oneof(
  fc.string({ maxLength: 20 }).map((reason) => (now: Date) => ({ type: "SuspendTenant", reason, now }) as const),
  fc.constant((now: Date) => ({ type: "ResumeTenant", now }) as const),
  fc.constantFrom(...plans).map((plan) => (now: Date) => ({ type: "SetPlan", plan, now }) as const),
  fc.string({ maxLength: 30 }).map((displayName) => (now: Date) => ({ type: "SetDisplayName", displayName, now }) as const),
  fc
    .record({
      features: fc.uniqueArray(
        fc.record({
          featureKey: fc.constantFrom(...FEATURE_KEYS),
          enabled: fc.boolean(),
          limit: fc.option(fc.integer({ min: 0, max: 1000 })),
        }),
        { maxLength: 3, selector: (f) => f.featureKey },
      ),
      allowance: fc.option(fc.integer({ min: 0, max: 100_000 })),
      maxKeys: fc.option(fc.integer({ min: 1, max: 50 })),
    })
    .map(
      ({ features, allowance, maxKeys }) =>
        (now: Date) =>
          ({
            type: "SetEntitlementOverrides",
            overrides: {
              features: features.map((f) => ({
                featureKey: f.featureKey,
                enabled: f.enabled,
                ...(f.limit === null ? {} : { config: { limit: f.limit } }),
              })),
              ...(allowance === null ? {} : { monthlyRunAllowance: allowance }),
              ...(maxKeys === null ? {} : { maxActiveApiKeys: maxKeys }),
            },
            now,
          }) as const,
    ),
);

describeWithPostgres("the tenant aggregate is event-sourced (PostgreSQL)", () => {
  let testDb: TestDatabase;
  let db: Database;
  let store: AuthStore;
  let seq = 0;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    db = await createPgDatabase({ url: testDb.url, poolSize: 4 });
    await migratePlatform(db);
    await migrateService(authService, db);
    store = createPostgresAuthStore(db);
  });
  afterAll(async () => {
    await db?.close();
    await testDb?.drop();
  });

  /** The tenant aggregate with snapshots every `n` events. */
  const snapshottingEvery = (n: number) => ({
    ...tenantAggregate(store.tenants),
    eventSourcing: { ...tenantEventSourcing, snapshots: { ...tenantEventSourcing.snapshots!, everyEvents: n } },
  });

  it("Given random command sequences, Then replaying the stream equals the state table, and the state at version N equals the state after N events", async () => {
    // Snapshots every 3 events, so the runs mix snapshot + tail with full replays.
    const tenants = snapshottingEvery(3);
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(commandArb, fc.integer({ min: 1, max: 5_000 })), { maxLength: 14 }), async (steps) => {
        const id = `prop-${++seq}`;
        let clock = Date.UTC(2026, 0, 1) + seq * 1_000_000;
        const after = new Map<number, Tenant | undefined>();
        const created = await executeCommand(db, tenants, id, {
          type: "CreateTenant",
          tenantId: id,
          slug: id,
          displayName: id,
          plan: "free",
          now: new Date(clock),
        });
        after.set(created.version, created.state);
        for (const [make, dt] of steps) {
          clock += dt;
          try {
            const r = await executeCommand(db, tenants, id, make(new Date(clock)));
            after.set(r.version, r.state);
          } catch (err) {
            // Refusals (e.g. an empty display name) change nothing.
            expect(err).toBeInstanceOf(ConnectError);
            expect((err as ConnectError).code).toBe(Code.InvalidArgument);
          }
        }
        const { version: rowVersion, ...table } = (await store.getTenant(id))!;
        const replayed = await rehydrate(db, tenants, id, { useSnapshots: false });
        expect(replayed.state).toEqual(table);
        expect(replayed.version).toBe(rowVersion);
        const fromSnapshot = await rehydrate(db, tenants, id);
        expect(fromSnapshot.state).toEqual(table);
        for (const [version, state] of after) {
          expect((await rehydrate(db, tenants, id, { toVersion: version })).state).toEqual(state);
        }
      }),
      { numRuns: 25 },
    );
  });

  it("Given a snapshot at version 6 of an 8-event stream, When the tenant is read as of each event's instant or version, Then the state equals the state after that many events; the snapshot is used at or after it and never for an earlier point", async () => {
    const tenants = snapshottingEvery(3);
    const id = "asof-snap";
    // Within the last day, so the 24 h age threshold takes no snapshot of its own.
    const t0 = Date.now() - 3_600_000;
    const at = (n: number) => new Date(t0 + (n - 1) * 60_000);
    const after = new Map<number, Tenant | undefined>();
    const created = await executeCommand(db, tenants, id, {
      type: "CreateTenant",
      tenantId: id,
      slug: id,
      displayName: "v1",
      plan: "free",
      now: at(1),
    });
    after.set(created.version, created.state);
    for (let n = 2; n <= 8; n++) {
      const r = await executeCommand(db, tenants, id, { type: "SetDisplayName", displayName: `v${n}`, now: at(n) });
      after.set(r.version, r.state);
    }
    // Snapshots at 3, then 6 (one row per stream: the newest).
    expect((await loadSnapshot(db, tenantStreamId(id)))?.version).toBe(6);
    for (let n = 1; n <= 8; n++) {
      const expected = after.get(n);
      const byTime = await rehydrate(db, tenants, id, { asOf: new Date(at(n).getTime() + 30_000) });
      const byVersion = await rehydrate(db, tenants, id, { toVersion: n });
      const fullReplay = await rehydrate(db, tenants, id, { asOf: new Date(at(n).getTime() + 30_000), useSnapshots: false });
      for (const r of [byTime, byVersion, fullReplay]) {
        expect(r.state, `as of ${n}`).toEqual(expected);
        expect(r.version, `as of ${n}`).toBe(n);
      }
      expect(fullReplay).toMatchObject({ snapshotVersion: 0, replayed: n });
      // The snapshot (version 6) is used at or after it, never for an earlier point.
      const used = n >= 6 ? { snapshotVersion: 6, replayed: n - 6 } : { snapshotVersion: 0, replayed: n };
      expect(byTime, `as of ${n}`).toMatchObject(used);
      expect(byVersion, `version ${n}`).toMatchObject(used);
    }
    // Exactly at the snapshot's instant it is used; a millisecond before, the stream is replayed.
    expect(await rehydrate(db, tenants, id, { asOf: at(6) })).toMatchObject({ version: 6, snapshotVersion: 6, replayed: 0 });
    expect(await rehydrate(db, tenants, id, { asOf: new Date(at(6).getTime() - 1) })).toMatchObject({ version: 5, snapshotVersion: 0 });
    // Before the tenant existed: nothing.
    expect((await rehydrate(db, tenants, id, { asOf: new Date(t0 - 1) })).state).toBeUndefined();
  });

  it("Given a snapshot whose events include one stamped after the instant asked (clocks out of order), When read as of that instant, Then the snapshot is not used and the replay stops where it always did", async () => {
    const tenants = snapshottingEvery(3);
    const id = "asof-skew";
    const t0 = Date.now() - 3_600_000;
    await executeCommand(db, tenants, id, {
      type: "CreateTenant",
      tenantId: id,
      slug: id,
      displayName: "a",
      plan: "free",
      now: new Date(t0),
    });
    // The second event's clock ran ahead of the third's.
    await executeCommand(db, tenants, id, { type: "SetDisplayName", displayName: "b", now: new Date(t0 + 10 * 60_000) });
    await executeCommand(db, tenants, id, { type: "SetDisplayName", displayName: "c", now: new Date(t0 + 60_000) });
    expect((await loadSnapshot(db, tenantStreamId(id)))?.version).toBe(3);
    const asOf = new Date(t0 + 2 * 60_000);
    const withSnapshots = await rehydrate(db, tenants, id, { asOf });
    const withoutSnapshots = await rehydrate(db, tenants, id, { asOf, useSnapshots: false });
    expect(withSnapshots).toMatchObject({ version: 1, snapshotVersion: 0 });
    expect(withSnapshots.state).toEqual(withoutSnapshots.state);
    expect(withSnapshots.state?.displayName).toBe("a");
  });

  it("Given a long stream, When it is rehydrated, Then the snapshot is used and only the tail replayed", async () => {
    const tenants = tenantAggregate(store.tenants);
    const id = "snap-long";
    const now = () => new Date();
    await executeCommand(db, tenants, id, { type: "CreateTenant", tenantId: id, slug: id, displayName: "Long", plan: "free", now: now() });
    for (let i = 0; i < 105; i++) await executeCommand(db, tenants, id, { type: "SetDisplayName", displayName: `Long ${i}`, now: now() });
    const snap = await loadSnapshot(db, tenantStreamId(id));
    expect(snap?.version).toBe(100);
    const r = await rehydrate(db, tenants, id);
    expect(r).toMatchObject({ version: 106, snapshotVersion: 100, replayed: 6 });
    expect(r.state?.displayName).toBe("Long 104");
  });

  it("Given a snapshot of an unknown shape, When the tenant is commanded, Then it is discarded, rebuilt from the stream, and replaced", async () => {
    const tenants = tenantAggregate(store.tenants);
    const id = "snap-old";
    await executeCommand(db, tenants, id, {
      type: "CreateTenant",
      tenantId: id,
      slug: id,
      displayName: "Old",
      plan: "free",
      now: new Date(),
    });
    await executeCommand(db, tenants, id, { type: "SetPlan", plan: "pro", now: new Date() });
    // As an earlier release (or a bug) might have left it: a different shape at version 2.
    await db.transaction((tx) =>
      saveSnapshot(tx, { streamId: tenantStreamId(id), aggregate: "tenant", version: 2, schemaVersion: 1, state: { name: "Old" } }),
    );
    const r = await rehydrate(db, tenants, id);
    expect(r).toMatchObject({ version: 2, snapshotVersion: 0, replayed: 2 });
    expect(r.state?.plan).toBe("pro");
    // A snapshot from a newer schema is not trusted either.
    await db.query("UPDATE platform.snapshots SET schema_version = 99 WHERE stream_id = $1", [tenantStreamId(id)]);
    expect((await rehydrate(db, tenants, id)).snapshotVersion).toBe(0);
  });

  it("Given a caller that saw version 1, When the tenant moved on, Then its command is ABORTED with CONCURRENCY_CONFLICT", async () => {
    const tenants = tenantAggregate(store.tenants);
    const id = "stale";
    await executeCommand(db, tenants, id, {
      type: "CreateTenant",
      tenantId: id,
      slug: id,
      displayName: "S",
      plan: "free",
      now: new Date(),
    });
    const moved = await executeCommand(db, tenants, id, { type: "SetPlan", plan: "pro", now: new Date() }, { expectedVersion: 1 });
    expect(moved.version).toBe(2);
    const err = await executeCommand(
      db,
      tenants,
      id,
      { type: "SetPlan", plan: "enterprise", now: new Date() },
      { expectedVersion: 1 },
    ).catch((e: unknown) => e);
    expect((err as ConnectError).code).toBe(Code.Aborted);
    expect(errorReason(err)).toBe("CONCURRENCY_CONFLICT");
    expect((await store.getTenant(id))?.plan).toBe("pro");
  });

  it("Given many commands on one tenant at once, When none passes an expected version, Then the stream lock serialises them and none is lost", async () => {
    const tenants = tenantAggregate(store.tenants);
    const id = "busy";
    await executeCommand(db, tenants, id, {
      type: "CreateTenant",
      tenantId: id,
      slug: id,
      displayName: "B",
      plan: "free",
      now: new Date(),
    });
    await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        executeCommand(db, tenants, id, { type: "SetDisplayName", displayName: `B${i}`, now: new Date() }),
      ),
    );
    const r = await rehydrate(db, tenants, id, { useSnapshots: false });
    expect(r.version).toBe(9);
    expect({ ...r.state, version: r.version }).toEqual(await store.getTenant(id));
  });
});
