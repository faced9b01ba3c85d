/**
 * The event store's tunables are environment variables (services/kernel/config.ts):
 * NEXUS_WATCH_EVENTS_PER_SECOND (the WatchEvents throttle) and NEXUS_SNAPSHOT_EVERY_EVENTS /
 * _EVERY_BYTES / _MAX_AGE_MS (snapshot thresholds). A server started with changed values
 * behaves by them; invalid values are refused at start-up.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { configureSnapshotThresholds, loadSnapshot, SNAPSHOT_DEFAULTS, snapshotThresholds } from "../services/kernel/commands/index.js";
import { ConfigError, loadConfig } from "../services/kernel/config.js";
import { type AuthHarness, startAuthHarness } from "./support/auth-harness.js";
import { describeWithPostgres } from "./support/services.js";

describe("event store settings", () => {
  it("defaults to the former constants and refuses values out of range", () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      watchEventsPerSecond: 100,
      snapshotEveryEvents: SNAPSHOT_DEFAULTS.everyEvents,
      snapshotEveryBytes: SNAPSHOT_DEFAULTS.everyBytes,
      snapshotMaxAgeMs: SNAPSHOT_DEFAULTS.maxAgeMs,
    });
    expect(() => loadConfig({ NEXUS_WATCH_EVENTS_PER_SECOND: "0" })).toThrow(ConfigError);
    expect(() => loadConfig({ NEXUS_SNAPSHOT_EVERY_EVENTS: "ten" })).toThrow(/NEXUS_SNAPSHOT_EVERY_EVENTS/);
    expect(() => loadConfig({ NEXUS_SNAPSHOT_EVERY_BYTES: "10" })).toThrow(/NEXUS_SNAPSHOT_EVERY_BYTES/);
  });
});

describeWithPostgres("event store settings on a running server", () => {
  let h: AuthHarness;

  beforeAll(async () => {
    h = await startAuthHarness({
      services: ["auth", "metering"],
      env: { NEXUS_WATCH_EVENTS_PER_SECOND: "5", NEXUS_SNAPSHOT_EVERY_EVENTS: "3" },
    });
  });
  afterAll(async () => {
    await h?.close();
    configureSnapshotThresholds();
  });

  it("Given NEXUS_SNAPSHOT_EVERY_EVENTS=3, When a tenant has 4 events, Then a snapshot was taken (the default takes one at 100)", async () => {
    expect(snapshotThresholds().everyEvents).toBe(3);
    const { tenant } = await h.tenant();
    const ops = h.client(h.platformKey).auth;
    const stream = `tenant-${tenant!.id}`;
    expect(await loadSnapshot(h.nexus.db, stream)).toBeUndefined();
    await ops.suspendTenant({ tenantId: tenant!.id, reason: "one" });
    await ops.resumeTenant({ tenantId: tenant!.id });
    await ops.suspendTenant({ tenantId: tenant!.id, reason: "three" });
    const snapshot = await loadSnapshot(h.nexus.db, stream);
    expect(snapshot?.version).toBeGreaterThanOrEqual(3);
    expect((snapshot?.state as { status?: string } | undefined)?.status).toBeDefined();
  });

  it("Given NEXUS_WATCH_EVENTS_PER_SECOND=5, When an owner replays a backlog of 13 events, Then delivery takes at least 1.4 s and none is dropped (at the default 100/s it is immediate)", async () => {
    const { tenant, ownerKey } = await h.tenant();
    const ops = h.client(h.platformKey).auth;
    for (let i = 0; i < 6; i++) {
      await ops.suspendTenant({ tenantId: tenant!.id, reason: `r${i}` });
      await ops.resumeTenant({ tenantId: tenant!.id });
    }
    // TenantCreated + 12 changes on the tenant's stream.
    const abort = new AbortController();
    const started = performance.now();
    const versions: bigint[] = [];
    const feed = h
      .client(ownerKey)
      .events.watchEvents({ afterPosition: 0n, streamIds: [`tenant-${tenant!.id}`] }, { signal: abort.signal });
    for await (const m of feed) {
      if (m.kind.case === "event") versions.push(m.kind.value.envelope?.version ?? 0n);
      if (m.kind.case === "caughtUp") break;
    }
    const elapsed = performance.now() - started;
    abort.abort();
    expect(versions).toEqual(Array.from({ length: 13 }, (_, i) => BigInt(i + 1)));
    // A burst of 5, then 8 more at 5 a second.
    expect(elapsed).toBeGreaterThanOrEqual(1_400);
  });
});
