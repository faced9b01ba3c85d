/**
 * Consumer lag in seconds (docs/event-sourcing.md, "Consumer lag in seconds"), on real
 * PostgreSQL and NATS: a consumer held back by its handler shows a lag that grows by the
 * second — in `status()`, the `nexus_consumer_lag_seconds` gauge and a measurement from
 * another process (`bus.consumerLag`, what `nexus projections status` uses) — and 0 once it
 * has caught up.
 */
import { register } from "prom-client";
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import { deleteSuiteStreams } from "../../../tests/support/nats-streams.js";
import {
  createTestDatabase,
  describeWithPostgres,
  describeWithPostgresAndNats,
  TEST_NATS_URL,
  type TestDatabase,
  uniqueToken,
} from "../../../tests/support/services.js";
import { createPgDatabase } from "../db/pg-database.js";
import type { Database } from "../db/ports.js";
import { lagSecondsOf } from "./consumer-lag.js";
import { appendToStream } from "./event-store.js";
import { createLocalEventBus } from "./local-bus.js";
import { createNatsEventBus } from "./nats-bus.js";
import type { EventBus } from "./ports.js";

const WAIT = { timeout: 30_000, interval: 100 };

async function append(db: Database, n: number): Promise<void> {
  await db.transaction((tx) =>
    appendToStream(tx, uniqueToken("s"), "any", [{ type: "test.v1.Lagged", topic: "lagtest.happened", payload: { n } }]),
  );
}

async function gaugeValue(consumer: string): Promise<number | undefined> {
  const metric = await register.getSingleMetric("nexus_consumer_lag_seconds")?.get();
  return metric?.values.find((v) => v.labels.consumer === consumer)?.value;
}

/** The scenario, on a bus under test and a second bus (another process) measuring from outside. */
async function heldBackThenCaughtUp(db: Database, bus: EventBus, observer: EventBus): Promise<void> {
  const consumer = uniqueToken("lag");
  let release!: () => void;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const handled: number[] = [];
  const sub = await bus.subscribe({
    name: consumer,
    subject: "lagtest.>",
    handler: async (e) => {
      const n = (e.payload as { n: number }).n;
      if (n === 1) await gate;
      handled.push(n);
    },
  });
  try {
    // Caught up: lag 0 once measured.
    await vi.waitFor(() => expect(sub.status().lagSeconds).toBe(0), WAIT);
    await append(db, 1);
    await append(db, 2);
    // Held back: the lag grows by the second, in status, the gauge and from outside.
    await vi.waitFor(() => expect(sub.status().lagSeconds).toBeGreaterThanOrEqual(1), WAIT);
    const first = sub.status().lagSeconds!;
    await vi.waitFor(() => expect(sub.status().lagSeconds).toBeGreaterThanOrEqual(first + 2), WAIT);
    expect(await gaugeValue(consumer)).toBeGreaterThanOrEqual(first + 2);
    const outside = await observer.consumerLag(consumer, "lagtest.>");
    expect(outside?.unhandled).toBe(2);
    expect(lagSecondsOf(outside?.oldestUnhandledAt)).toBeGreaterThanOrEqual(first + 2);
    expect(handled).toEqual([]);
    // Released: both handled, lag back to 0 everywhere.
    release();
    await vi.waitFor(() => expect(handled).toEqual([1, 2]), WAIT);
    await vi.waitFor(async () => {
      expect(sub.status().lagSeconds).toBe(0);
      expect(await gaugeValue(consumer)).toBe(0);
      expect(await observer.consumerLag(consumer, "lagtest.>")).toEqual({ unhandled: 0, oldestUnhandledAt: undefined });
    }, WAIT);
  } finally {
    release();
    await sub.stop();
  }
  // A stopped consumer leaves the gauge; one never started is unknown from outside.
  expect(await gaugeValue(consumer)).toBeUndefined();
  expect(await observer.consumerLag(uniqueToken("never"), "lagtest.>")).toBeUndefined();
}

describeWithPostgres("consumer lag in seconds on the local bus (PostgreSQL)", () => {
  let testDb: TestDatabase;
  let db: Database;
  let bus: EventBus;
  let observer: EventBus;
  beforeAll(async () => {
    testDb = await createTestDatabase();
    db = await createPgDatabase({ url: testDb.url, poolSize: 6 });
    const subjectPrefix = uniqueToken("p");
    bus = await createLocalEventBus({ db, subjectPrefix, pollIntervalMs: 100 });
    observer = await createLocalEventBus({ db, subjectPrefix });
    await bus.start();
  });
  afterAll(async () => {
    await observer?.close();
    await bus?.close();
    await db?.close();
    await testDb?.drop();
  });

  it("grows by the second while a consumer is held back, then 0 once it caught up", async () => {
    await heldBackThenCaughtUp(db, bus, observer);
  }, 90_000);
});

describeWithPostgresAndNats("consumer lag in seconds on NATS", () => {
  const token = uniqueToken("lagn");
  let testDb: TestDatabase;
  let db: Database;
  let bus: EventBus;
  let observer: EventBus;
  beforeAll(async () => {
    testDb = await createTestDatabase();
    db = await createPgDatabase({ url: testDb.url, poolSize: 6 });
    const common = { db, subjectPrefix: uniqueToken("p"), stream: `EVENTS_${token}`, dlqStream: `DLQ_${token}` };
    bus = await createNatsEventBus({ ...common, nats: { servers: TEST_NATS_URL, name: "lag-a" }, relay: { pollIntervalMs: 50 } });
    observer = await createNatsEventBus({ ...common, nats: { servers: TEST_NATS_URL, name: "lag-b" }, relay: false });
    await bus.start();
  });
  afterAll(async () => {
    await observer?.close();
    await bus?.close();
    await deleteSuiteStreams(token);
    await db?.close();
    await testDb?.drop();
  });

  it("grows by the second while a consumer is held back, then 0 once it caught up", async () => {
    await heldBackThenCaughtUp(db, bus, observer);
  }, 90_000);
});
