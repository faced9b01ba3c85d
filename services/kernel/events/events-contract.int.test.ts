/**
 * The event bus contract, run against every implementation: the local bus on PGlite and on
 * PostgreSQL, and the NATS bus (outbox relay → JetStream) on PostgreSQL. Services never know
 * which bus runs, so each one must behave the same from a handler's point of view.
 */
import { randomUUID } from "node:crypto";
import { jetstream } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { deleteSuiteStreams, suiteStreams } from "../../../tests/support/nats-streams.js";
import {
  createTestDatabase,
  describeWithPostgres,
  describeWithPostgresAndNats,
  TEST_NATS_URL,
  uniqueToken,
} from "../../../tests/support/services.js";
import { createPgDatabase } from "../db/pg-database.js";
import { createPgliteDatabase } from "../db/pglite-database.js";
import type { Database } from "../db/ports.js";
import { appendToStream } from "./event-store.js";
import { createLocalEventBus } from "./local-bus.js";
import { consumerDeliveries } from "./metrics.js";
import { createNatsEventBus, type NatsEventBus } from "./nats-bus.js";
import { eventHeaders } from "./nats-message.js";
import { type DeliveredEvent, type EventBus, PermanentFailure, type RecordedEvent } from "./ports.js";
import { subjectOf } from "./topics.js";

/** One bus implementation under test. */
interface Harness {
  db: Database;
  bus: EventBus;
  /** Makes the bus deliver an event the consumer already handled once more (a redelivery). */
  redeliver(consumer: string, event: RecordedEvent): Promise<void>;
  teardown(): Promise<void>;
}

interface Variant {
  name: string;
  describe: typeof describeWithPostgres;
  setup(): Promise<Harness>;
}

const FAST_BACKOFF = { initialMs: 20, maxMs: 100 };
const WAIT = { timeout: 20_000, interval: 25 };

/**
 * Local bus: the same event delivered again. The local bus redelivers through its retry
 * table, so the harness schedules a retry of the event, due now. (Rewinding the checkpoint
 * instead would race with the consumer's own end-of-round checkpoint write, which moves it
 * forward again.)
 */
async function localHarness(db: Database, teardownDb: () => Promise<void>): Promise<Harness> {
  const bus = await createLocalEventBus({ db, subjectPrefix: uniqueToken("p"), pollIntervalMs: 50 });
  await bus.start();
  return {
    db,
    bus,
    async redeliver(consumer, event) {
      await db.query(
        `INSERT INTO platform.local_bus_retries (consumer, position, deliveries, next_attempt_at, last_error, replay_count)
         VALUES ($1, $2, 1, now(), 'redelivered by the test', 0)`,
        [consumer, event.position],
      );
    },
    async teardown() {
      await bus.close();
      await teardownDb();
    },
  };
}

const variants: Variant[] = [
  {
    name: "local bus on PGlite",
    describe,
    async setup() {
      const db = await createPgliteDatabase();
      return localHarness(db, () => db.close());
    },
  },
  {
    name: "local bus on PostgreSQL",
    describe: describeWithPostgres,
    async setup() {
      const testDb = await createTestDatabase();
      const db = await createPgDatabase({ url: testDb.url, poolSize: 6 });
      return localHarness(db, async () => {
        await db.close();
        await testDb.drop();
      });
    },
  },
  {
    name: "NATS bus on PostgreSQL",
    describe: describeWithPostgresAndNats,
    async setup() {
      const testDb = await createTestDatabase();
      const db = await createPgDatabase({ url: testDb.url, poolSize: 6 });
      const token = uniqueToken("c").toUpperCase();
      const bus: NatsEventBus = await createNatsEventBus({
        db,
        nats: { servers: TEST_NATS_URL, name: "events-contract" },
        subjectPrefix: uniqueToken("p"),
        ...suiteStreams(token),
        relay: { pollIntervalMs: 50 },
        consumerHeartbeatMs: 1_000,
      });
      await bus.start();
      const js = jetstream(bus.nats);
      return {
        db,
        bus,
        async redeliver(_consumer, event) {
          // The same event published again under another message id: what JetStream delivers
          // after a redelivery, or after a relay re-publish outside the dedupe window.
          await js.publish(subjectOf(bus.subjectPrefix, event.topic), JSON.stringify(event.payload), {
            msgID: `${event.eventId}:again`,
            headers: eventHeaders(event),
          });
        },
        async teardown() {
          await bus.close();
          // The bus owned (and drained) its connection; clean up with a fresh one.
          await deleteSuiteStreams(token);
          await db.close();
          await testDb.drop();
        },
      };
    },
  },
];

async function append(db: Database, topic: string, payload: Record<string, unknown>, streamId = uniqueToken("s")) {
  const [recorded] = await db.transaction((tx) =>
    appendToStream(tx, streamId, "any", [{ type: "test.v1.ContractEvent", topic, payload }], {
      metadata: { tenantId: "tenant-contract", actor: "contract-suite" },
    }),
  );
  return recorded!;
}

async function deliveriesOf(consumer: string, outcome: string): Promise<number> {
  const metric = await consumerDeliveries.get();
  return metric.values.find((v) => v.labels.consumer === consumer && v.labels.outcome === outcome)?.value ?? 0;
}

for (const variant of variants) {
  variant.describe(`EventBus contract: ${variant.name}`, () => {
    let h: Harness;

    beforeAll(async () => {
      h = await variant.setup();
      await h.db.exec("CREATE SCHEMA IF NOT EXISTS contract; CREATE TABLE contract.handled (event_id text NOT NULL, note text);");
    });
    afterAll(async () => {
      await h?.teardown();
    });

    it("delivers an appended event to its handler once, with its metadata", async () => {
      const seen: DeliveredEvent[] = [];
      const name = uniqueToken("once");
      const sub = await h.bus.subscribe({ name, subject: "once.>", schema: "contract", handler: async (e) => void seen.push(e) });
      try {
        const first = await append(h.db, "once.happened", { n: 1 });
        await vi.waitFor(() => expect(seen).toHaveLength(1), WAIT);
        // A later event arriving proves the first was not delivered again in between (in order).
        const marker = await append(h.db, "once.marker", { n: 2 });
        await vi.waitFor(() => expect(seen).toHaveLength(2), WAIT);
        expect(seen.map((e) => e.eventId)).toEqual([first.eventId, marker.eventId]);
        expect(seen[0]).toMatchObject({
          eventId: first.eventId,
          type: "test.v1.ContractEvent",
          streamId: first.streamId,
          version: 1,
          payload: { n: 1 },
          subject: `${h.bus.subjectPrefix}.once.happened`,
          topic: "once.happened",
          deliveryCount: 1,
          metadata: { tenantId: "tenant-contract", actor: "contract-suite" },
        });
      } finally {
        await sub.stop();
      }
    });

    it("publish puts events on the bus without the outbox; publishing the same ids again delivers nothing more", async () => {
      const seen: DeliveredEvent[] = [];
      const name = uniqueToken("direct");
      const sub = await h.bus.subscribe({ name, subject: "direct.>", schema: "contract", handler: async (e) => void seen.push(e) });
      try {
        const ids = [randomUUID(), randomUUID()];
        const events = ids.map((eventId, i) => ({
          eventId,
          streamId: "direct-s",
          type: "test.v1.ContractEvent",
          topic: "direct.sent",
          payload: { i },
        }));
        await h.bus.publish(events, { metadata: { tenantId: "tenant-contract", actor: "contract-suite" } });
        await h.bus.publish(events);
        await vi.waitFor(() => expect(seen).toHaveLength(2), WAIT);
        expect(seen.map((e) => e.eventId).sort()).toEqual([...ids].sort());
        expect(seen.find((e) => e.eventId === ids[1])).toMatchObject({
          payload: { i: 1 },
          topic: "direct.sent",
          streamId: "direct-s",
          metadata: { tenantId: "tenant-contract", actor: "contract-suite" },
        });
        const marker = await append(h.db, "direct.marker", { n: 2 });
        await vi.waitFor(() => expect(seen.map((e) => e.eventId)).toContain(marker.eventId), WAIT);
        expect(seen).toHaveLength(3);
        const stored = await h.db.query<{ n: number }>("SELECT count(*)::int AS n FROM platform.events WHERE stream_id = 'direct-s'");
        // NATS: straight to JetStream. The local bus's consumers read platform.events: its equivalent is a row there.
        expect(stored.rows[0]?.n).toBe(h.bus.kind === "nats" ? 0 : 2);
      } finally {
        await sub.stop();
      }
    });

    it("acknowledges a duplicate delivery without running the handler again", async () => {
      const counts = new Map<string, number>();
      const name = uniqueToken("dup");
      const sub = await h.bus.subscribe({
        name,
        subject: "dup.>",
        schema: "contract",
        handler: async (e) => void counts.set(e.eventId, (counts.get(e.eventId) ?? 0) + 1),
      });
      try {
        const event = await append(h.db, "dup.happened", { n: 1 });
        await vi.waitFor(() => expect(counts.get(event.eventId)).toBe(1), WAIT);
        await h.redeliver(name, event);
        await vi.waitFor(async () => expect(await deliveriesOf(name, "duplicate")).toBe(1), WAIT);
        const marker = await append(h.db, "dup.marker", { n: 2 });
        await vi.waitFor(() => expect(counts.get(marker.eventId)).toBe(1), WAIT);
        expect(counts.get(event.eventId)).toBe(1);
        const { rows } = await h.db.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM contract.processed_events WHERE consumer = $1 AND event_id = $2",
          [name, event.eventId],
        );
        expect(rows[0]?.n).toBe(1);
      } finally {
        await sub.stop();
      }
    });

    it("commits the handler's writes with the processed record, and rolls them back when it throws", async () => {
      const name = uniqueToken("tx");
      let attempts = 0;
      const sub = await h.bus.subscribe({
        name,
        subject: "tx.>",
        schema: "contract",
        backoff: FAST_BACKOFF,
        handler: async (e, tx) => {
          attempts += 1;
          await tx.query("INSERT INTO contract.handled (event_id, note) VALUES ($1, $2)", [e.eventId, `attempt ${attempts}`]);
          if (attempts === 1) throw new Error("first attempt fails after writing");
        },
      });
      try {
        const event = await append(h.db, "tx.happened", {});
        await vi.waitFor(async () => expect(await deliveriesOf(name, "handled")).toBe(1), WAIT);
        const { rows } = await h.db.query<{ note: string }>("SELECT note FROM contract.handled WHERE event_id = $1", [event.eventId]);
        expect(rows).toEqual([{ note: "attempt 2" }]);
      } finally {
        await sub.stop();
      }
    });

    it("parks a message at once when its handler throws PermanentFailure, and tells onDeadLettered", async () => {
      const name = uniqueToken("perm");
      const deliveries: number[] = [];
      const told: [string, string][] = [];
      const sub = await h.bus.subscribe({
        name,
        subject: "perm.>",
        schema: "contract",
        backoff: FAST_BACKOFF,
        handler: async (e) => {
          deliveries.push(e.deliveryCount);
          throw new PermanentFailure("HTTP 400: the invoice is malformed");
        },
        onDeadLettered: async (e, error) => void told.push([e.eventId, error]),
      });
      try {
        const event = await append(h.db, "perm.happened", { invoice: "inv-2" });
        await vi.waitFor(() => expect(told).toHaveLength(1), WAIT);
        expect(told[0]).toEqual([event.eventId, "HTTP 400: the invoice is malformed"]);
        expect(deliveries).toEqual([1]);
        const [letter] = await h.bus.deadLetters.list({ consumer: name });
        expect(letter).toMatchObject({ eventId: event.eventId, deliveryCount: 1, error: "HTTP 400: the invoice is malformed" });
      } finally {
        await sub.stop();
      }
    });

    it("parks a message in the DLQ after 5 failed deliveries with its error, and replay delivers it again", async () => {
      const name = uniqueToken("dlq");
      const deliveries: number[] = [];
      let failing = true;
      const handled: DeliveredEvent[] = [];
      const sub = await h.bus.subscribe({
        name,
        subject: "dlq.>",
        schema: "contract",
        backoff: FAST_BACKOFF,
        handler: async (e) => {
          deliveries.push(e.deliveryCount);
          if (failing) throw new Error(`payment provider down (attempt ${e.deliveryCount})`);
          handled.push(e);
        },
      });
      try {
        const event = await append(h.db, "dlq.happened", { invoice: "inv-1" });
        await vi.waitFor(async () => expect(await h.bus.deadLetters.list({ consumer: name })).toHaveLength(1), WAIT);
        expect(deliveries).toEqual([1, 2, 3, 4, 5]);
        const [letter] = await h.bus.deadLetters.list({ consumer: name });
        expect(letter).toMatchObject({
          consumer: name,
          eventId: event.eventId,
          type: "test.v1.ContractEvent",
          streamId: event.streamId,
          subject: `${h.bus.subjectPrefix}.dlq.happened`,
          payload: { invoice: "inv-1" },
          deliveryCount: 5,
          error: "payment provider down (attempt 5)",
          replayCount: 0,
          metadata: { tenantId: "tenant-contract" },
        });
        expect(letter!.deadLetteredAt).toBeInstanceOf(Date);
        expect(await h.bus.deadLetters.depth()).toBeGreaterThanOrEqual(1);

        failing = false;
        const replayed = await h.bus.deadLetters.replay(letter!.seq);
        expect(replayed).toMatchObject({ seq: letter!.seq, consumer: name, eventId: event.eventId, replayCount: 1 });
        await vi.waitFor(() => expect(handled).toHaveLength(1), WAIT);
        expect(handled[0]).toMatchObject({ eventId: event.eventId, payload: { invoice: "inv-1" }, deliveryCount: 1 });
        expect(await h.bus.deadLetters.list({ consumer: name })).toEqual([]);
        await expect(h.bus.deadLetters.replay(letter!.seq)).rejects.toThrow(/no .*dead letter/);
      } finally {
        await sub.stop();
      }
    });

    it("delivers only the subjects the consumer filters on", async () => {
      const seen: string[] = [];
      const sub = await h.bus.subscribe({
        name: uniqueToken("filter"),
        subject: "filter.wanted.*",
        schema: "contract",
        handler: async (e) => void seen.push(e.topic),
      });
      try {
        await append(h.db, "filter.other.thing", {});
        await append(h.db, "filter.wanted.deep.thing", {});
        await append(h.db, "filter.wanted.thing", {});
        await vi.waitFor(() => expect(seen).toContain("filter.wanted.thing"), WAIT);
        expect(seen).toEqual(["filter.wanted.thing"]);
      } finally {
        await sub.stop();
      }
    });

    it("reports liveness, and stop() waits for the handler in flight", async () => {
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      let started!: () => void;
      const handlerStarted = new Promise<void>((r) => (started = r));
      let finished = false;
      const sub = await h.bus.subscribe({
        name: uniqueToken("drain"),
        subject: "drain.>",
        schema: "contract",
        handler: async () => {
          started();
          await gate;
          finished = true;
        },
      });
      await vi.waitFor(() => expect(sub.status()).toMatchObject({ healthy: true }), WAIT);
      expect(sub.status().lastHeartbeatAt).toBeInstanceOf(Date);
      expect(h.bus.status().map((s) => s.name)).toContain(sub.name);
      await append(h.db, "drain.happened", {});
      await handlerStarted;
      expect(sub.status().inFlight).toBe(1);
      const finishedWhenStopped = sub.stop().then(() => finished);
      setTimeout(release, 200);
      expect(await finishedWhenStopped).toBe(true);
      expect(sub.status().healthy).toBe(false);
    });
  });
}
