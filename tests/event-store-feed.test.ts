/**
 * The event store API end to end (nexus.eventstore.v1.EventStoreService) on a real PostgreSQL:
 * a tenant's live change feed — backlog, caught_up, live events with version and event id,
 * resume from a position, filters by stream and type, tenant isolation — and the event
 * catalogue whose descriptors decode the feed's payloads without any generated code.
 */
import { createFileRegistry, fromBinary, fromJsonString } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Role } from "../gen/nexus/auth/v1/api_key_pb.js";
import { Plan } from "../gen/nexus/auth/v1/tenant_pb.js";
import type { StoredEvent, WatchEventsResponse } from "../gen/nexus/eventstore/v1/event_store_service_pb.js";
import { type AuthHarness, failure, startAuthHarness } from "./support/auth-harness.js";
import { describeWithPostgres } from "./support/services.js";

/** Reads a feed until `until` says stop (or 10 s pass), then cancels the call. */
async function collect(
  feed: AsyncIterable<WatchEventsResponse>,
  abort: AbortController,
  until: (seen: WatchEventsResponse[]) => boolean,
): Promise<WatchEventsResponse[]> {
  const seen: WatchEventsResponse[] = [];
  const timer = setTimeout(() => abort.abort(), 10_000);
  try {
    for await (const m of feed) {
      seen.push(m);
      if (until(seen)) break;
    }
  } catch (err) {
    if (!abort.signal.aborted) throw err;
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
  return seen;
}

const eventsOf = (seen: WatchEventsResponse[]): StoredEvent[] => seen.flatMap((m) => (m.kind.case === "event" ? [m.kind.value] : []));

describeWithPostgres("event store API: live change feed and event catalogue", () => {
  let h: AuthHarness;
  beforeAll(async () => {
    h = await startAuthHarness({});
  });
  afterAll(async () => {
    await h?.close();
  });

  it("Given a tenant with history, When its owner watches from position 0, Then it gets its backlog, caught_up, then live events — never another tenant's", async () => {
    const ops = h.client(h.platformKey);
    const { tenant, ownerKey } = await h.tenant(Plan.PRO);
    const other = await h.tenant(Plan.PRO);
    const abort = new AbortController();
    const feed = h.client(ownerKey).events.watchEvents({ afterPosition: 0n }, { signal: abort.signal });
    let changed = false;
    const seen = await collect(feed, abort, (s) => {
      if (s.at(-1)?.kind.case === "caughtUp" && !changed) {
        changed = true;
        // After the backlog: one change to this tenant, one to the other.
        void ops.auth.suspendTenant({ tenantId: other.tenant.id, reason: "not yours" });
        void ops.auth.suspendTenant({ tenantId: tenant.id, reason: "live" });
      }
      return eventsOf(s).some((e) => e.envelope?.eventType === "nexus.events.v1.TenantSuspended");
    });
    const events = eventsOf(seen);
    const caughtUp = seen.findIndex((m) => m.kind.case === "caughtUp");
    expect(caughtUp).toBeGreaterThan(0);
    expect(eventsOf(seen.slice(0, caughtUp)).map((e) => e.envelope?.eventType)).toEqual([
      "nexus.events.v1.TenantCreated",
      "nexus.events.v1.ApiKeyIssued",
    ]);
    const live = events.at(-1)!;
    expect(live.envelope).toMatchObject({ streamId: `tenant-${tenant.id}`, version: 2n, tenantId: tenant.id });
    expect(live.envelope?.eventId).toMatch(/^[0-9a-f-]{36}$/);
    expect(JSON.parse(live.payloadJson)).toMatchObject({ tenantId: tenant.id, reason: "live" });
    expect(events.every((e) => e.envelope?.tenantId === tenant.id)).toBe(true);
    // Positions only grow: a client resumes from the last one it saw.
    const positions = events.map((e) => e.envelope!.position);
    expect([...positions].sort((a, b) => (a < b ? -1 : 1))).toEqual(positions);
  });

  it("Given a position, When the feed resumes from it with filters, Then only later matching events come, and unset starts at the end", async () => {
    const ops = h.client(h.platformKey);
    const { tenant, ownerKey } = await h.tenant(Plan.PRO);
    await ops.auth.setPlan({ tenantId: tenant.id, plan: Plan.ENTERPRISE });
    await ops.auth.setPlan({ tenantId: tenant.id, plan: Plan.FREE });
    const owner = h.client(ownerKey);
    const all = eventsOf(
      await collect(owner.events.watchEvents({ afterPosition: 0n }, {}), new AbortController(), (s) => s.at(-1)?.kind.case === "caughtUp"),
    );
    expect(all.map((e) => e.envelope?.eventType)).toEqual([
      "nexus.events.v1.TenantCreated",
      "nexus.events.v1.ApiKeyIssued",
      "nexus.events.v1.PlanChanged",
      "nexus.events.v1.PlanChanged",
    ]);
    // Resume after the first PlanChanged, only the tenant stream's PlanChanged events.
    const abort = new AbortController();
    const resumed = eventsOf(
      await collect(
        owner.events.watchEvents(
          { afterPosition: all[2]!.envelope!.position, streamIds: [`tenant-${tenant.id}`], eventTypes: ["nexus.events.v1.PlanChanged"] },
          { signal: abort.signal },
        ),
        abort,
        (s) => s.at(-1)?.kind.case === "caughtUp",
      ),
    );
    expect(resumed.map((e) => [e.envelope?.eventId, e.envelope?.version])).toEqual([[all[3]!.envelope!.eventId, 3n]]);
    // Without after_position the backlog is empty: caught_up comes first.
    const fresh = await collect(owner.events.watchEvents({}, {}), new AbortController(), (s) => s.length >= 1);
    expect(fresh[0]?.kind.case).toBe("caughtUp");
  });

  it("refuses other tenants' feeds, platform keys and members below admin", async () => {
    const a = await h.tenant(Plan.PRO);
    const b = await h.tenant(Plan.PRO);
    const read = async (key: string, tenantId = "") => {
      for await (const _ of h.client(key).events.watchEvents({ tenantId, afterPosition: 0n })) break;
    };
    expect(await failure(() => read(b.ownerKey, a.tenant.id))).toMatchObject({ code: "PermissionDenied" });
    expect(await failure(() => read(h.platformKey, a.tenant.id))).toMatchObject({ code: "PermissionDenied" });
    const viewer = await h.key(a.tenant.id, Role.VIEWER, "viewer");
    expect(await failure(() => read(viewer.plaintext))).toMatchObject({ code: "PermissionDenied" });
  });

  it("ListEventTypes: every type with its topic, and descriptors that decode a fed payload without generated code", async () => {
    const { tenant, ownerKey } = await h.tenant(Plan.PRO);
    const owner = h.client(ownerKey);
    const catalogue = await owner.events.listEventTypes({});
    const suspended = catalogue.eventTypes.find((t) => t.typeName === "nexus.events.v1.TenantSuspended");
    expect(suspended).toMatchObject({ topic: "auth.tenant_suspended", schemaVersion: 1, protoFile: "nexus/events/v1/auth_events.proto" });
    expect(catalogue.eventTypes.length).toBeGreaterThan(20);

    const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, catalogue.fileDescriptorSet));
    const [created] = eventsOf(
      await collect(owner.events.watchEvents({ afterPosition: 0n }, {}), new AbortController(), (s) => s.at(-1)?.kind.case === "caughtUp"),
    );
    const schema = registry.getMessage(created!.envelope!.eventType)!;
    expect(schema).toBeDefined();
    const decoded = fromJsonString(schema, created!.payloadJson, { registry }) as unknown as { tenantId: string; slug: string };
    expect(decoded.tenantId).toBe(tenant.id);
    expect(decoded.slug).toBe(tenant.slug);
  });
});
