/**
 * Migration 0006_events_partitioned (docs/event-sourcing.md, "Partitioning the event table"),
 * on real PostgreSQL and on PGlite (`nexus dev`): a store populated before it (at 0005) keeps
 * every event, and the event store's contract holds on the partitioned table — positions
 * continue, a duplicate event id in another partition is ALREADY_EXISTS, a version race is
 * CONCURRENCY_CONFLICT, the table stays append-only, NOTIFY still wakes the local bus and a
 * consumer resumes from the checkpoint it had before the migration. A store above the copy
 * threshold is refused and left as it was.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { deleteSuiteStreams, suiteStreams } from "../../../tests/support/nats-streams.js";
import {
  createTestDatabase,
  describeWithPostgres,
  describeWithPostgresAndNats,
  TEST_NATS_URL,
  uniqueToken,
} from "../../../tests/support/services.js";
import { migrate } from "../db/migrate.js";
import { createPgDatabase } from "../db/pg-database.js";
import { pgErrorConstraint } from "../db/pg-error.js";
import { createPgliteDatabase } from "../db/pglite-database.js";
import type { Database } from "../db/ports.js";
import { errorReason } from "../errors.js";
import { appendToStream, readAll, readEvent, readStream } from "./event-store.js";
import { createLocalEventBus } from "./local-bus.js";
import { createNatsEventBus } from "./nats-bus.js";
import { EVENTS_CHANNEL, migratePlatform, PLATFORM_MIGRATIONS, PLATFORM_SCHEMA } from "./platform-migrations.js";

const BEFORE_0006 = PLATFORM_MIGRATIONS.slice(
  0,
  PLATFORM_MIGRATIONS.findIndex((m) => m.id === "0006_events_partitioned"),
);
const WAIT = { timeout: 15_000, interval: 50 };
const CONSUMER = "partition_resumer";

/** A row of platform.events as text and JSON, compared whole before and after the migration. */
type StoredRow = Record<string, unknown> & { position: string; event_id: string; stream_id: string };

const ROWS_SQL = `SELECT position::text, event_id::text, stream_id, version, type, topic, payload, metadata, occurred_at::text
                    FROM platform.events ORDER BY events.position`;

/** A store at 0005 as the code before 0006 wrote it: 12 streams × 3 events, a sequence gap, bus state. */
async function populateBefore0006(db: Database): Promise<{ rows: StoredRow[]; checkpoint: bigint }> {
  expect(BEFORE_0006.at(-1)?.id).toBe("0005_events_type_actor_index_govf");
  await migrate(db, { schema: PLATFORM_SCHEMA, migrations: BEFORE_0006 });
  for (let s = 0; s < 12; s++) {
    for (let v = 1; v <= 3; v++) {
      await db.query(
        `INSERT INTO platform.events (event_id, stream_id, version, type, topic, payload, metadata)
         VALUES ($1, $2, $3, 'test.v1.Happened', 'parttest.happened', $4::jsonb, $5::jsonb)`,
        [randomUUID(), `order-${s}`, v, JSON.stringify({ s, v }), JSON.stringify({ tenant_id: `tenant-${s % 3}` })],
      );
    }
  }
  // A rolled-back append: the sequence is ahead of the highest position.
  await db
    .transaction(async (tx) => {
      await tx.query(
        `INSERT INTO platform.events (event_id, stream_id, version, type, topic, payload)
         VALUES ($1, 'rolled-back', 1, 'test.v1.Happened', 'parttest.happened', '{}'::jsonb)`,
        [randomUUID()],
      );
      throw new Error("roll back");
    })
    .catch(() => undefined);
  const { rows } = await db.query<StoredRow>(ROWS_SQL);
  // A consumer that handled the first 20 events, a scheduled retry and a parked message of it.
  const checkpoint = BigInt(rows[19]!.position);
  await db.query("INSERT INTO platform.local_bus_checkpoints (consumer, position) VALUES ($1, $2)", [CONSUMER, checkpoint]);
  await db.query(
    `INSERT INTO platform.local_bus_retries (consumer, position, deliveries, next_attempt_at) VALUES ('other', $1, 1, now() + interval '1 hour')`,
    [rows[3]!.position],
  );
  await db.query(
    `INSERT INTO platform.local_dead_letters (consumer, position, subject, delivery_count, error) VALUES ('other', $1, 'nexus.parttest.happened', 5, 'boom')`,
    [rows[4]!.position],
  );
  return { rows, checkpoint };
}

function partitionedStoreSuite(open: () => Promise<{ db: Database; drop: () => Promise<void> }>, concurrent: boolean): void {
  let db: Database;
  let drop: () => Promise<void>;
  let before: StoredRow[];
  let checkpoint: bigint;

  beforeAll(async () => {
    ({ db, drop } = await open());
    ({ rows: before, checkpoint } = await populateBefore0006(db));
  }, 60_000);
  afterAll(async () => {
    await db?.close();
    await drop?.();
  });

  it("refuses a store above NEXUS_EVENTS_PARTITION_MAX_COPY_ROWS and changes nothing", async () => {
    const err = await migratePlatform(db, undefined, { partitionMaxCopyRows: 35 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain("0006_events_partitioned failed");
    expect((err as Error).message).toContain("platform.events holds more than 35 events (NEXUS_EVENTS_PARTITION_MAX_COPY_ROWS)");
    expect((err as Error).message).toContain("write freeze (NEXUS_WRITE_FREEZE_FILE)");
    const { rows: kind } = await db.query<{ relkind: string }>(
      "SELECT relkind::text FROM pg_class WHERE oid = 'platform.events'::regclass",
    );
    expect(kind[0]?.relkind).toBe("r");
    const { rows: leftovers } = await db.query(
      "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE nspname = 'platform' AND relname IN ('events_unpartitioned', 'event_ids', 'events_p00')",
    );
    expect(leftovers).toEqual([]);
    const { rows: applied } = await db.query("SELECT id FROM platform.schema_migrations WHERE id = '0006_events_partitioned'");
    expect(applied).toEqual([]);
    expect(await db.query<StoredRow>(ROWS_SQL).then((r) => r.rows)).toEqual(before);
  });

  it("migrates a populated store keeping every event: positions, ids, versions, payloads", async () => {
    // At the threshold exactly (36 events), the copy is allowed.
    expect(before).toHaveLength(36);
    const result = await migratePlatform(db, undefined, { partitionMaxCopyRows: 36 });
    expect(result.applied).toEqual(["0006_events_partitioned"]);
    expect(await db.query<StoredRow>(ROWS_SQL).then((r) => r.rows)).toEqual(before);
    const { rows: parts } = await db.query<{ relname: string }>(
      `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'platform.events'::regclass ORDER BY 1`,
    );
    expect(parts.map((p) => p.relname)).toEqual(Array.from({ length: 16 }, (_, i) => `events_p${String(i).padStart(2, "0")}`));
    const { rows: kind } = await db.query<{ relkind: string }>(
      "SELECT relkind::text FROM pg_class WHERE oid = 'platform.events'::regclass",
    );
    expect(kind[0]?.relkind).toBe("p");
    // Every index of the old table exists on the parent.
    const indexesOf = async (table: string) =>
      (
        await db.query<{ indexname: string }>(
          "SELECT indexname FROM pg_indexes WHERE schemaname = 'platform' AND tablename = $1 ORDER BY 1",
          [table],
        )
      ).rows.map((i) => i.indexname);
    expect(await indexesOf("events")).toEqual([
      "events_position_idx",
      "events_saga_starts_idx",
      "events_stream_version_key",
      "events_tenant_position_idx",
      "events_type_tenant_actor_idx",
    ]);
    expect(await indexesOf("events_p07")).toEqual([
      "events_p07_position_idx",
      "events_p07_saga_starts_idx",
      "events_p07_stream_id_version_key",
      "events_p07_tenant_position_idx",
      "events_p07_type_tenant_actor_idx",
    ]);
    // The columns' checks came along (LIKE … INCLUDING CONSTRAINTS).
    await expect(
      db.query(
        "INSERT INTO platform.events (event_id, stream_id, version, type, topic, payload) VALUES ($1, 'order-0', 99, 't', 'no-dot', '{}'::jsonb)",
        [randomUUID()],
      ),
    ).rejects.toThrow(/check constraint/);
    // The ids moved to event_ids; the old table is kept, unchanged.
    const { rows: ids } = await db.query<{ event_id: string; stream_id: string; position: string }>(
      "SELECT event_id::text, stream_id, position::text FROM platform.event_ids ORDER BY event_ids.position",
    );
    expect(ids).toEqual(before.map((r) => ({ event_id: r.event_id, stream_id: r.stream_id, position: r.position })));
    const { rows: old } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM platform.events_unpartitioned");
    expect(old[0]?.n).toBe(36);
    // Bus state survives without its foreign keys.
    const { rows: retries } = await db.query<{ position: string }>("SELECT position::text FROM platform.local_bus_retries");
    expect(retries).toEqual([{ position: before[3]!.position }]);
    const { rows: parked } = await db.query<{ position: string }>("SELECT position::text FROM platform.local_dead_letters");
    expect(parked).toEqual([{ position: before[4]!.position }]);
    // The event store reads the copied events.
    const e = before[7]!;
    expect((await readEvent(db, e.event_id))?.position).toBe(BigInt(e.position));
    expect((await readStream(db, "order-5")).map((x) => x.payload)).toEqual([1, 2, 3].map((v) => ({ s: 5, v })));
    expect((await readAll(db, 0n, 100)).map((x) => String(x.position))).toEqual(before.map((r) => r.position));
    // A second run finds it applied.
    expect((await migratePlatform(db)).alreadyApplied).toContain("0006_events_partitioned");
  });

  it("continues positions after the old highest one (and its rolled-back gap)", async () => {
    const [e] = await db.transaction((tx) =>
      appendToStream(tx, "order-0", 3, [{ type: "test.v1.Happened", topic: "parttest.happened", payload: { s: 0, v: 4 } }]),
    );
    expect(e!.version).toBe(4);
    expect(e!.position).toBeGreaterThan(BigInt(before.at(-1)!.position) + 1n);
  });

  it("refuses a duplicate event id in another partition with ALREADY_EXISTS", async () => {
    const { rows } = await db.query<{ stream_id: string; part: string }>(
      "SELECT DISTINCT stream_id, tableoid::regclass::text AS part FROM platform.events ORDER BY stream_id",
    );
    const a = rows[0]!;
    const b = rows.find((r) => r.part !== a.part)!;
    expect(b).toBeDefined();
    const eventId = randomUUID();
    const [first] = await db.transaction((tx) =>
      appendToStream(tx, a.stream_id, "any", [{ eventId, type: "test.v1.Happened", topic: "parttest.happened", payload: {} }]),
    );
    const { rows: where } = await db.query<{ part: string }>(
      "SELECT tableoid::regclass::text AS part FROM platform.events WHERE position = $1",
      [first!.position],
    );
    expect(where[0]?.part).toBe(a.part);
    const dup = await db
      .transaction((tx) =>
        appendToStream(tx, b.stream_id, "any", [{ eventId, type: "test.v1.Happened", topic: "parttest.happened", payload: {} }]),
      )
      .catch((err: unknown) => err);
    expect(errorReason(dup)).toBe("ALREADY_EXISTS");
    // A copied event's id too.
    const copied = await db
      .transaction((tx) =>
        appendToStream(tx, "brand-new", "no_stream", [
          { eventId: before[0]!.event_id, type: "test.v1.Happened", topic: "parttest.happened", payload: {} },
        ]),
      )
      .catch((err: unknown) => err);
    expect(errorReason(copied)).toBe("ALREADY_EXISTS");
    expect(await readStream(db, "brand-new")).toEqual([]);
    const { rows: n } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM platform.event_ids WHERE event_id = $1", [eventId]);
    expect(n[0]?.n).toBe(1);
  });

  it("reports a version race as CONCURRENCY_CONFLICT", async () => {
    const write = (text: string) =>
      db.transaction((tx) =>
        appendToStream(tx, "order-1", 3, [{ type: "test.v1.Happened", topic: "parttest.happened", payload: { text } }]),
      );
    const results = await Promise.allSettled([write("A"), write("B")]);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const lost = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    expect(errorReason(lost?.reason)).toBe("CONCURRENCY_CONFLICT");
    // The partition's unique index is what a stale writer trips; its name is the one mapped.
    const raw = await db
      .query(
        `INSERT INTO platform.events (event_id, stream_id, version, type, topic, payload) VALUES ($1, 'order-1', 1, 't', 'parttest.happened', '{}'::jsonb)`,
        [randomUUID()],
      )
      .catch((err: unknown) => err);
    expect(pgErrorConstraint(raw)).toMatch(/^events_p\d{2}_stream_id_version_key$/);
  });

  it.runIf(concurrent)("translates a stale snapshot's unique violation in a partition into CONCURRENCY_CONFLICT", async () => {
    const err = await db
      .transaction(async (tx) => {
        await tx.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
        await tx.query("SELECT count(*) FROM platform.events WHERE stream_id = 'stale-1'");
        await db.transaction((other) =>
          appendToStream(other, "stale-1", "no_stream", [{ type: "t.v1.A", topic: "parttest.a", payload: {} }]),
        );
        await appendToStream(tx, "stale-1", "no_stream", [{ type: "t.v1.A", topic: "parttest.a", payload: {} }]);
      })
      .catch((e: unknown) => e);
    expect(errorReason(err)).toBe("CONCURRENCY_CONFLICT");
  });

  it("refuses UPDATE, DELETE and TRUNCATE on the parent, on a partition and on event_ids", async () => {
    for (const table of ["platform.events", "platform.events_p03", "platform.event_ids"]) {
      for (const sql of [`UPDATE ${table} SET position = position + 1`, `DELETE FROM ${table}`, `TRUNCATE ${table}`]) {
        await expect(db.query(sql), sql).rejects.toThrow(/append-only/);
      }
    }
    expect((await db.query<StoredRow>(ROWS_SQL)).rows.slice(0, 36)).toEqual(before);
  });

  it("wakes listeners on append and resumes the local bus from its pre-migration checkpoint", async () => {
    const notified: number[] = [];
    const unlisten = await db.listen(EVENTS_CHANNEL, () => notified.push(1));
    // Polls once a minute: only NOTIFY gets an event appended below delivered in time.
    const bus = await createLocalEventBus({ db, pollIntervalMs: 60_000 });
    const handled: string[] = [];
    try {
      const sub = await bus.subscribe({ name: CONSUMER, subject: "parttest.>", handler: async (e) => void handled.push(e.eventId) });
      const after = (await readAll(db, checkpoint, 1000)).filter((e) => e.topic.startsWith("parttest.")).map((e) => e.eventId);
      expect(after.length).toBeGreaterThan(16);
      await vi.waitFor(() => expect(handled).toEqual(after), WAIT);
      // Nothing at or before the checkpoint came again.
      expect(handled).not.toContain(before[19]!.event_id);
      const [fresh] = await db.transaction((tx) =>
        appendToStream(tx, "order-9", 3, [{ type: "test.v1.Happened", topic: "parttest.happened", payload: { fresh: true } }]),
      );
      await vi.waitFor(() => expect(handled.at(-1)).toBe(fresh!.eventId), WAIT);
      expect(notified.length).toBeGreaterThan(0);
      await sub.stop();
    } finally {
      await bus.close();
      await unlisten();
    }
  });
}

describeWithPostgres("0006_events_partitioned on PostgreSQL", () => {
  partitionedStoreSuite(async () => {
    const testDb = await createTestDatabase("nexus_event_partitions");
    return { db: await createPgDatabase({ url: testDb.url, poolSize: 4 }), drop: () => testDb.drop() };
  }, true);
});

describe("0006_events_partitioned on PGlite", () => {
  partitionedStoreSuite(async () => ({ db: await createPgliteDatabase(), drop: async () => undefined }), false);
});

describeWithPostgresAndNats("0006_events_partitioned: the outbox relay resumes from its checkpoint (PostgreSQL, NATS)", () => {
  const token = uniqueToken("part").toUpperCase();
  let db: Database;
  let drop: () => Promise<void>;

  beforeAll(async () => {
    const testDb = await createTestDatabase("nexus_event_partitions_relay");
    db = await createPgDatabase({ url: testDb.url, poolSize: 4 });
    drop = () => testDb.drop();
  });
  afterAll(async () => {
    await db?.close();
    await drop?.();
    await deleteSuiteStreams(token);
  });

  it("publishes exactly the events after the relay's pre-migration checkpoint, then new ones", async () => {
    const { rows: before } = await populateBefore0006(db);
    // The relay had published the first 25 events (into a stream since lost: this suite's is new).
    const checkpoint = before[24]!.position;
    await db.query("INSERT INTO platform.outbox_checkpoint (relay, position) VALUES ('default', $1)", [checkpoint]);
    // The bus migrates at start (0006 here), then relays.
    const bus = await createNatsEventBus({
      db,
      nats: { servers: TEST_NATS_URL, name: "event-partitions" },
      subjectPrefix: uniqueToken("p"),
      ...suiteStreams(token),
    });
    const handled: string[] = [];
    try {
      await bus.start();
      const { rows: kind } = await db.query<{ relkind: string }>(
        "SELECT relkind::text FROM pg_class WHERE oid = 'platform.events'::regclass",
      );
      expect(kind[0]?.relkind).toBe("p");
      await bus.subscribe({ name: "relayed", subject: "parttest.>", handler: async (e) => void handled.push(e.eventId) });
      const expected = before.slice(25).map((r) => r.event_id);
      await vi.waitFor(() => expect(handled).toEqual(expected), WAIT);
      const [fresh] = await db.transaction((tx) =>
        appendToStream(tx, "order-2", 3, [{ type: "test.v1.Happened", topic: "parttest.happened", payload: { fresh: true } }]),
      );
      await vi.waitFor(() => expect(handled).toEqual([...expected, fresh!.eventId]), WAIT);
    } finally {
      await bus.close();
    }
  });
});
