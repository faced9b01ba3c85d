/**
 * Temporal history reads (EventStoreService.ReadStreamHistory) end to end on a real
 * PostgreSQL: the range, tenant scoping and roles, the 90-day bound, the cut at 10,000 events
 * with a continuation, the limit of 10 calls a minute per key, and the audit entry every call
 * leaves with its range and duration. (The 10,000-event case runs last: its events queue up
 * behind the audit consumer.)
 */
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Role } from "../gen/nexus/auth/v1/api_key_pb.js";
import { Plan } from "../gen/nexus/auth/v1/tenant_pb.js";
import { appendToStream } from "../services/kernel/events/event-store.js";
import { type AuthHarness, failure, startAuthHarness } from "./support/auth-harness.js";
import { eventually } from "./support/eventually.js";
import { describeWithPostgres } from "./support/services.js";

const DAY = 86_400_000;
const ts = (ms: number) => timestampFromDate(new Date(ms));

describeWithPostgres("temporal history reads", () => {
  let h: AuthHarness;
  beforeAll(async () => {
    h = await startAuthHarness({});
  });
  afterAll(async () => {
    await h?.close();
  });

  it("Given a tenant changed at known times, When its admin reads the history of a range, Then it gets exactly the events of that range; bad ranges, other tenants and viewers are refused", async () => {
    const ops = h.client(h.platformKey);
    const { tenant, ownerKey } = await h.tenant(Plan.PRO);
    const t0 = h.clock.now().getTime();
    h.clock.advance(DAY);
    await ops.auth.setPlan({ tenantId: tenant.id, plan: Plan.ENTERPRISE });
    h.clock.advance(DAY);
    await ops.auth.updateTenant({ tenantId: tenant.id, displayName: "Later", updateMask: { paths: ["display_name"] } });
    const owner = h.client(ownerKey);
    const stream = `tenant-${tenant.id}`;

    const middle = await owner.events.readStreamHistory({ streamId: stream, startTime: ts(t0 + DAY / 2), endTime: ts(t0 + DAY * 1.5) });
    expect(middle.events.map((e) => [e.envelope?.eventType, e.envelope?.version])).toEqual([["nexus.events.v1.PlanChanged", 2n]]);
    expect(middle).toMatchObject({ partial: false, nextPageToken: "", eventsScanned: 1n });
    const all = await owner.events.readStreamHistory({ streamId: stream, startTime: ts(t0 - 1000), endTime: ts(t0 + 3 * DAY) });
    expect(all.events.map((e) => e.envelope?.version)).toEqual([1n, 2n, 3n]);

    expect(
      await failure(() => owner.events.readStreamHistory({ streamId: stream, startTime: ts(t0), endTime: ts(t0 + 91 * DAY) })),
    ).toMatchObject({
      code: "InvalidArgument",
    });
    const other = await h.tenant(Plan.PRO);
    expect(
      await failure(() =>
        h.client(other.ownerKey).events.readStreamHistory({ streamId: stream, startTime: ts(t0), endTime: ts(t0 + DAY) }),
      ),
    ).toMatchObject({ code: "NotFound" });
    const viewer = await h.key(tenant.id, Role.VIEWER, "viewer");
    expect(
      await failure(() =>
        h.client(viewer.plaintext).events.readStreamHistory({ streamId: stream, startTime: ts(t0), endTime: ts(t0 + DAY) }),
      ),
    ).toMatchObject({ code: "PermissionDenied" });
  });

  it("allows 10 calls a minute per API key, then RESOURCE_EXHAUSTED RATE_LIMITED; each call is audited with its range and duration", {
    timeout: 90_000,
  }, async () => {
    const { tenant, ownerKey } = await h.tenant(Plan.PRO);
    const key = await h.key(tenant.id, Role.ADMIN, "historian");
    const c = h.client(key.plaintext);
    const t0 = h.clock.now().getTime();
    const q = { streamId: `tenant-${tenant.id}`, startTime: ts(t0 - DAY), endTime: ts(t0 + DAY) };
    for (let i = 0; i < 10; i++) await c.events.readStreamHistory(q);
    expect(await failure(() => c.events.readStreamHistory(q))).toMatchObject({ code: "ResourceExhausted", reason: "RATE_LIMITED" });
    // Another key of the same tenant has its own allowance.
    await h.client(ownerKey).events.readStreamHistory(q);

    const recorded = (await h.events("TemporalQueryPerformed")).filter((e) => e.metadata.tenantId === tenant.id);
    expect(recorded.length).toBe(11);
    expect(recorded[0]?.metadata.actor).toBe(key.id);
    expect(recorded[0]?.payload).toMatchObject({ streamId: `tenant-${tenant.id}`, query: "ReadStreamHistory" });
    expect(Object.keys(recorded[0]!.payload as object)).toEqual(expect.arrayContaining(["startTime", "endTime"]));

    const entries = await eventually(
      "the audit entries of the temporal queries",
      async () => {
        const page = await h
          .client(ownerKey)
          .audit.listAuditEvents({ filter: { eventTypes: ["eventstore.temporal_query"] }, pageSize: 50 });
        return page.events.length >= 11 ? page.events : undefined;
      },
      40_000,
    );
    expect(entries[0]?.resource).toMatchObject({ type: "stream", id: `tenant-${tenant.id}` });
  });

  it("Given 10,050 events in range, When read, Then the first call stops at 10,000 with a continuation that returns the other 50", async () => {
    const { tenant, ownerKey } = await h.tenant(Plan.PRO);
    const stream = `ledger-${tenant.id}`;
    const t0 = h.clock.now().getTime();
    for (let v = 0; v < 10_050; v += 1000) {
      const n = Math.min(1000, 10_050 - v);
      await h.nexus.db.transaction((tx) =>
        appendToStream(
          tx,
          stream,
          v,
          Array.from({ length: n }, (_, i) => ({
            type: "test.v1.LedgerLine",
            topic: "test.ledger_line",
            payload: { n: v + i },
            occurredAt: new Date(t0 + v + i),
          })),
          { metadata: { tenantId: tenant.id } },
        ),
      );
    }
    const owner = h.client(ownerKey);
    const range = { streamId: stream, startTime: ts(t0 - 1), endTime: ts(t0 + DAY) };
    const first = await owner.events.readStreamHistory(range);
    expect(first).toMatchObject({ partial: true, eventsScanned: 10_000n });
    expect(first.events).toHaveLength(10_000);
    expect(first.nextPageToken).not.toBe("");
    const rest = await owner.events.readStreamHistory({ ...range, pageToken: first.nextPageToken });
    expect(rest).toMatchObject({ partial: false, nextPageToken: "" });
    expect(rest.events.map((e) => e.envelope?.version)).toEqual(Array.from({ length: 50 }, (_, i) => BigInt(10_001 + i)));
    // The token belongs to its range.
    expect(
      await failure(() => owner.events.readStreamHistory({ ...range, endTime: ts(t0 + 2 * DAY), pageToken: first.nextPageToken })),
    ).toMatchObject({ code: "InvalidArgument", reason: "INVALID_CURSOR" });
  });

  it("GetTenantAt: the tenant at version N equals the tenant after N changes, and as of an instant; before it existed is NOT_FOUND", async () => {
    const ops = h.client(h.platformKey);
    const before = h.clock.now().getTime();
    h.clock.advance(1000);
    const { tenant, ownerKey } = await h.tenant(Plan.FREE);
    const after: Array<{ version: bigint; plan: Plan; displayName: string; at: number }> = [
      { version: tenant.version, plan: tenant.plan, displayName: tenant.displayName, at: h.clock.now().getTime() },
    ];
    for (const change of [
      () => ops.auth.setPlan({ tenantId: tenant.id, plan: Plan.PRO }),
      () => ops.auth.updateTenant({ tenantId: tenant.id, displayName: "Renamed", updateMask: { paths: ["display_name"] } }),
      () => ops.auth.setPlan({ tenantId: tenant.id, plan: Plan.ENTERPRISE }),
    ]) {
      h.clock.advance(60_000);
      const t = (await change()).tenant!;
      after.push({ version: t.version, plan: t.plan, displayName: t.displayName, at: h.clock.now().getTime() });
    }
    const owner = h.client(ownerKey);
    for (const a of after) {
      const byVersion = (await ops.auth.getTenantAt({ tenantId: tenant.id, point: { case: "version", value: a.version } })).tenant;
      expect([byVersion?.version, byVersion?.plan, byVersion?.displayName]).toEqual([a.version, a.plan, a.displayName]);
      const byTime = (await owner.auth.getTenantAt({ point: { case: "asOf", value: ts(a.at + 30_000) } })).tenant;
      expect([byTime?.version, byTime?.plan, byTime?.displayName]).toEqual([a.version, a.plan, a.displayName]);
    }
    expect(await failure(() => ops.auth.getTenantAt({ tenantId: tenant.id, point: { case: "asOf", value: ts(before) } }))).toMatchObject({
      code: "NotFound",
    });
    const other = await h.tenant(Plan.PRO);
    expect(
      await failure(() => h.client(other.ownerKey).auth.getTenantAt({ tenantId: tenant.id, point: { case: "version", value: 1n } })),
    ).toMatchObject({ code: "PermissionDenied" });
    const recorded = (await h.events("TemporalQueryPerformed")).filter((e) => e.metadata.tenantId === tenant.id);
    expect(recorded.length).toBe(9);
    expect(recorded.some((e) => (e.payload as { query: string; atVersion?: string }).atVersion === "3")).toBe(true);
  });
});
