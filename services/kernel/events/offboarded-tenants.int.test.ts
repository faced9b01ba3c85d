/**
 * Consumers skip an offboarded tenant's events (offboarded-tenants.ts), on real PostgreSQL and
 * NATS: once the tenant's offboarding saga passed its point of no return, a real durable
 * consumer acknowledges the tenant's events without running its handler (other tenants'
 * events still run), even right after it had cached the tenant as not offboarded; a handler
 * that outlives the point of no return (over a second) has its writes rolled back; a consumer
 * that opts out (the audit trail) still gets them.
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
import { runSaga, startSaga } from "../sagas/saga.js";
import { appendToStream } from "./event-store.js";
import { createLocalEventBus } from "./local-bus.js";
import { createNatsEventBus } from "./nats-bus.js";
import { TENANT_OFFBOARDING_SAGA } from "./offboarded-tenants.js";
import type { EventBus } from "./ports.js";
import { OFFBOARDED_RECHECK_AFTER_MS } from "./processed-events.js";

const WAIT = { timeout: 30_000, interval: 100 };

async function append(db: Database, tenantId: string, n: number): Promise<void> {
  await db.transaction((tx) =>
    appendToStream(tx, uniqueToken("s"), "any", [{ type: "test.v1.Written", topic: "offbtest.written", payload: { n } }], {
      metadata: { tenantId },
    }),
  );
}

/** Offboards `tenantId` up to its point of no return (a saga of the offboarding's name). */
async function offboard(db: Database, tenantId: string): Promise<void> {
  const def = {
    name: TENANT_OFFBOARDING_SAGA,
    steps: [{ name: "shred-keys", pointOfNoReturn: true, async run() {} }],
  };
  const sagaId = uniqueToken("offboard");
  await startSaga(db, def, { sagaId, input: { tenantId }, tenantId });
  expect((await runSaga(db, def, sagaId)).status).toBe("completed");
}

async function skipped(consumer: string): Promise<number> {
  const metric = await register.getSingleMetric("nexus_consumer_deliveries_total")?.get();
  return metric?.values.find((v) => v.labels.consumer === consumer && v.labels.outcome === "skipped")?.value ?? 0;
}

async function scenario(db: Database, bus: EventBus): Promise<void> {
  const gone = uniqueToken("gone");
  const kept = uniqueToken("kept");
  const name = uniqueToken("worker");
  const trailName = uniqueToken("trail");
  const seen: string[] = [];
  const trail: string[] = [];
  await db.query("CREATE TABLE IF NOT EXISTS offb_writes (tenant_id text NOT NULL)");
  const label = (e: { metadata: { tenantId?: string }; payload: unknown }) =>
    `${e.metadata.tenantId === gone ? "gone" : e.metadata.tenantId === kept ? "kept" : "late"}:${(e.payload as { n: number }).n}`;
  const worker = await bus.subscribe({ name, subject: "offbtest.>", handler: async (e) => void seen.push(label(e)) });
  const audit = await bus.subscribe({
    name: trailName,
    subject: "offbtest.>",
    deliverOffboardedTenants: true,
    handler: async (e) => void trail.push(label(e)),
  });
  try {
    // Before: both tenants' events are handled (and "gone" is cached as not offboarded).
    await append(db, gone, 1);
    await append(db, kept, 1);
    await vi.waitFor(() => expect(seen.sort()).toEqual(["gone:1", "kept:1"]), WAIT);
    // Offboarded: its events are acknowledged without the handler; the other tenant's run.
    await offboard(db, gone);
    // The observed saga step invalidates the cache; give the feed a moment by waiting on a
    // marker event of the other tenant appended after the saga.
    await append(db, kept, 2);
    await vi.waitFor(() => expect(seen).toContain("kept:2"), WAIT);
    await append(db, gone, 2);
    await append(db, kept, 3);
    await vi.waitFor(() => expect(seen).toContain("kept:3"), WAIT);
    await vi.waitFor(async () => expect(await skipped(name)).toBe(1), WAIT);
    expect(seen.sort()).toEqual(["gone:1", "kept:1", "kept:2", "kept:3"]);
    // Nothing left behind: the skipped event was acknowledged.
    await vi.waitFor(() => expect(worker.status().pending).toBe(0), WAIT);
    // Offboarded while its handler runs (a document mid-ingestion, over a second): the
    // handler's writes are rolled back and the event counted as skipped.
    const late = uniqueToken("late");
    let entered = false;
    let releaseLate!: () => void;
    const lateGate = new Promise<void>((resolve) => {
      releaseLate = resolve;
    });
    const slow = await bus.subscribe({
      name: uniqueToken("slow"),
      subject: "offbtest.>",
      deliverFrom: "new",
      handler: async (e, tx) => {
        if (e.metadata.tenantId !== late) return;
        await tx.query("INSERT INTO offb_writes (tenant_id) VALUES ($1)", [late]);
        entered = true;
        await lateGate;
      },
    });
    try {
      await append(db, late, 1);
      await vi.waitFor(() => expect(entered).toBe(true), WAIT);
      const since = Date.now();
      await offboard(db, late);
      await new Promise((r) => setTimeout(r, Math.max(0, OFFBOARDED_RECHECK_AFTER_MS + 100 - (Date.now() - since))));
      releaseLate();
      await vi.waitFor(async () => expect(await skipped(slow.name)).toBe(1), WAIT);
      const { rows } = await db.query("SELECT 1 FROM offb_writes WHERE tenant_id = $1", [late]);
      expect(rows).toEqual([]);
    } finally {
      releaseLate();
      await slow.stop();
    }
    // The consumer that opts out still gets every event.
    await vi.waitFor(() => expect(trail.sort()).toEqual(["gone:1", "gone:2", "kept:1", "kept:2", "kept:3", "late:1"]), WAIT);
    expect(await skipped(trailName)).toBe(0);
  } finally {
    await worker.stop();
    await audit.stop();
  }
}

describeWithPostgres("offboarded tenants' events skipped on the local bus (PostgreSQL)", () => {
  let testDb: TestDatabase;
  let db: Database;
  let bus: EventBus;
  beforeAll(async () => {
    testDb = await createTestDatabase();
    db = await createPgDatabase({ url: testDb.url, poolSize: 6 });
    bus = await createLocalEventBus({ db, subjectPrefix: uniqueToken("p"), pollIntervalMs: 100 });
    await bus.start();
  });
  afterAll(async () => {
    await bus?.close();
    await db?.close();
    await testDb?.drop();
  });

  it("acknowledges an offboarded tenant's events without running the handler", async () => {
    await scenario(db, bus);
  }, 90_000);
});

describeWithPostgresAndNats("offboarded tenants' events skipped on NATS", () => {
  const token = uniqueToken("offb");
  let testDb: TestDatabase;
  let db: Database;
  let bus: EventBus;
  beforeAll(async () => {
    testDb = await createTestDatabase();
    db = await createPgDatabase({ url: testDb.url, poolSize: 6 });
    bus = await createNatsEventBus({
      db,
      subjectPrefix: uniqueToken("p"),
      stream: `EVENTS_${token}`,
      dlqStream: `DLQ_${token}`,
      nats: { servers: TEST_NATS_URL, name: "offboarded" },
      relay: { pollIntervalMs: 50 },
    });
    await bus.start();
  });
  afterAll(async () => {
    await bus?.close();
    await deleteSuiteStreams(token);
    await db?.close();
    await testDb?.drop();
  });

  it("acknowledges an offboarded tenant's events without running the handler", async () => {
    await scenario(db, bus);
  }, 90_000);
});
