/**
 * `EventBus.observe`: the per-process, non-durable fan-out (every process sees every event),
 * on the local bus (PGlite) and on the NATS bus (two buses = two processes sharing one
 * database and one NATS server, only one of them relaying).
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { deleteSuiteStreams } from "../../../tests/support/nats-streams.js";
import { createTestDatabase, describeWithPostgresAndNats, TEST_NATS_URL, uniqueToken } from "../../../tests/support/services.js";
import { createPgDatabase } from "../db/pg-database.js";
import { createPgliteDatabase } from "../db/pglite-database.js";
import type { Database } from "../db/ports.js";
import { appendToStream } from "./event-store.js";
import { createLocalEventBus } from "./local-bus.js";
import { createNatsEventBus, type NatsEventBus } from "./nats-bus.js";
import type { EventBus, ObservedEvent } from "./ports.js";

const WAIT = { timeout: 10_000, interval: 20 };

async function append(db: Database, topic: string, payload: Record<string, unknown>): Promise<void> {
  await db.transaction((tx) =>
    appendToStream(tx, uniqueToken("s"), "any", [{ type: "test.v1.Observed", topic, payload }], { metadata: { tenantId: "t-observe" } }),
  );
}

function collector() {
  const seen: ObservedEvent[] = [];
  return { seen, handler: (e: ObservedEvent) => void seen.push(e) };
}

describe("EventBus.observe on the local bus (PGlite)", () => {
  let db: Database;
  let bus: EventBus;
  beforeAll(async () => {
    db = await createPgliteDatabase();
    bus = await createLocalEventBus({ db, subjectPrefix: uniqueToken("p"), pollIntervalMs: 50 });
    await bus.start();
  });
  afterAll(async () => {
    await bus.close();
    await db.close();
  });

  it("sees matching events appended after it started, in order, with payload and metadata", async () => {
    await append(db, "auth.api_key_revoked", { n: 0 });
    const a = collector();
    const obs = await bus.observe({ subject: "auth.>", handler: a.handler });
    expect(obs.live).toBe(true);
    await append(db, "auth.api_key_revoked", { n: 1 });
    await append(db, "metering.usage_recorded", { n: 2 });
    await append(db, "auth.tenant_suspended", { n: 3 });
    await vi.waitFor(() => expect(a.seen.map((e) => e.payload)).toEqual([{ n: 1 }, { n: 3 }]), WAIT);
    expect(a.seen[0]).toMatchObject({
      topic: "auth.api_key_revoked",
      subject: `${bus.subjectPrefix}.auth.api_key_revoked`,
      metadata: { tenantId: "t-observe" },
    });
    await obs.stop();
  });

  it("hands every event to every observer, and nothing after stop()", async () => {
    const a = collector();
    const b = collector();
    const oa = await bus.observe({ subject: "auth.>", handler: a.handler });
    const ob = await bus.observe({ subject: "auth.api_key_revoked", handler: b.handler });
    await append(db, "auth.api_key_revoked", { n: 10 });
    await vi.waitFor(() => {
      expect(a.seen).toHaveLength(1);
      expect(b.seen).toHaveLength(1);
    }, WAIT);
    await oa.stop();
    await append(db, "auth.api_key_revoked", { n: 11 });
    await vi.waitFor(() => expect(b.seen).toHaveLength(2), WAIT);
    expect(a.seen).toHaveLength(1);
    await ob.stop();
  });

  it("keeps going when a handler throws", async () => {
    const seen: unknown[] = [];
    const obs = await bus.observe({
      subject: "auth.>",
      handler(e) {
        seen.push(e.payload);
        if ((e.payload as { n: number }).n === 20) throw new Error("boom");
      },
    });
    await append(db, "auth.x", { n: 20 });
    await append(db, "auth.x", { n: 21 });
    await vi.waitFor(() => expect(seen).toEqual([{ n: 20 }, { n: 21 }]), WAIT);
    await obs.stop();
  });
});

describeWithPostgresAndNats("EventBus.observe on the NATS bus", () => {
  let testDb: Awaited<ReturnType<typeof createTestDatabase>>;
  let db: Database;
  let relaying: NatsEventBus;
  let quiet: NatsEventBus;
  const prefix = uniqueToken("p");
  const token = uniqueToken("o").toUpperCase();

  beforeAll(async () => {
    testDb = await createTestDatabase();
    db = await createPgDatabase({ url: testDb.url, poolSize: 4 });
    const common = { db, subjectPrefix: prefix, stream: `EVENTS_${token}`, dlqStream: `DLQ_${token}` };
    relaying = await createNatsEventBus({ ...common, nats: { servers: TEST_NATS_URL, name: "observe-a" }, relay: { pollIntervalMs: 50 } });
    quiet = await createNatsEventBus({ ...common, nats: { servers: TEST_NATS_URL, name: "observe-b" }, relay: false });
    await relaying.start();
    await quiet.start();
  });
  afterAll(async () => {
    await quiet.close();
    await relaying.close();
    await deleteSuiteStreams(token);
    await db.close();
    await testDb.drop();
  });

  it("fans every event out to every process (unlike a durable consumer, which shares)", async () => {
    const a = collector();
    const b = collector();
    const oa = await relaying.observe({ subject: "auth.>", handler: a.handler });
    const ob = await quiet.observe({ subject: "auth.>", handler: b.handler });
    expect(oa.live && ob.live).toBe(true);
    await append(db, "auth.api_key_revoked", { keyId: "k1" });
    await append(db, "retrieval.corpus_updated", { ignored: true });
    await append(db, "auth.tenant_suspended", { tenantId: "t1" });
    const expected = [{ keyId: "k1" }, { tenantId: "t1" }];
    await vi.waitFor(() => {
      expect(a.seen.map((e) => e.payload)).toEqual(expected);
      expect(b.seen.map((e) => e.payload)).toEqual(expected);
    }, WAIT);
    expect(b.seen[0]).toMatchObject({ type: "test.v1.Observed", topic: "auth.api_key_revoked", metadata: { tenantId: "t-observe" } });
    await oa.stop();
    await ob.stop();
  });

  it("reports the feed down while the connection is lost and up once it is back", async () => {
    const states: boolean[] = [];
    const a = collector();
    const obs = await quiet.observe({ subject: "auth.>", handler: a.handler, onStateChange: (live) => states.push(live) });
    await quiet.nats.reconnect();
    await vi.waitFor(() => expect(states).toEqual([false, true]), WAIT);
    expect(obs.live).toBe(true);
    // The subscription survives the reconnect.
    await append(db, "auth.api_key_revoked", { keyId: "k2" });
    await vi.waitFor(() => expect(a.seen.map((e) => e.payload)).toEqual([{ keyId: "k2" }]), WAIT);
    await obs.stop();
  });
});
