import { afterAll, beforeAll, expect, it } from "vitest";
import { createPgDatabase } from "../services/kernel/db/pg-database.js";
import type { Database } from "../services/kernel/db/ports.js";
import { migratePlatform } from "../services/kernel/events/index.js";
import { UPLOADS_BY_ACTORS_SQL } from "../services/knowledge/ingestion/subject-data.js";
import { RUNS_BY_ACTORS_SQL } from "../services/metering/subject-data.js";
import { createTestDatabase, describeWithPostgres, type TestDatabase } from "./support/services.js";

/**
 * The event-store lookups of data-subject requests, holds and retention (docs/governance.md,
 * "Scale of the event-store lookups") use `events_type_tenant_actor_idx` on real PostgreSQL —
 * not a scan of the event store. On a store of 60,000 events (30 tenants, three event types,
 * many actors) the plans, as EXPLAIN printed them when this was written:
 *
 *   uploads of a user's principals:
 *     Index Scan using events_type_tenant_actor_idx on events e
 *       Index Cond: ((type = 'nexus.events.v1.DocumentQueued') AND ((metadata ->> 'tenant_id') = $1)
 *                    AND ((metadata ->> 'actor') = ANY ($2)))
 *     -> Index Scan using events_stream_version_key on events f   (the first-upload check)
 *          Index Cond: ((stream_id = e.stream_id) AND (version < e.version))
 *   runs of a user's principals:
 *     Index Scan using events_type_tenant_actor_idx on events e  (same Index Cond, type RunStarted)
 *
 * Since 0006_events_partitioned the table is hash-partitioned by stream id: the same scans run
 * once per partition (`Index Scan using events_p07_type_tenant_actor_idx on events_p07 e_8`,
 * and the first-upload check on `events_pNN_stream_id_version_key`) under an Append.
 *
 * Without the index both were a Seq Scan on platform.events (every event of every tenant).
 */
describeWithPostgres("event-store lookups of governance use their index (real PostgreSQL)", () => {
  let testDb: TestDatabase;
  let db: Database;

  beforeAll(async () => {
    testDb = await createTestDatabase("nexus_gov_event_lookups");
    db = await createPgDatabase({ url: testDb.url, poolSize: 2 });
    await migratePlatform(db);
    // 60,000 events: 30 tenants, 50 actors each, uploads, runs and other events.
    await db.query(`
      INSERT INTO platform.events (event_id, stream_id, version, type, topic, payload, metadata)
      SELECT gen_random_uuid(), 'stream-' || i, 1,
             (ARRAY['nexus.events.v1.DocumentQueued', 'nexus.events.v1.RunStarted', 'nexus.events.v1.RunCompleted'])[1 + i % 3],
             'nexus.events', jsonb_build_object('documentId', 'doc-' || i, 'requestId', 'req-' || i, 'sessionId', 'ses-' || (i % 500)),
             jsonb_build_object('tenant_id', 'tenant-' || (i % 30), 'actor', 'key-' || (i % 1500))
      FROM generate_series(1, 60000) AS i`);
    await db.query("ANALYZE platform.events");
  });
  afterAll(async () => {
    await db?.close();
    await testDb?.drop();
  });

  // EXPLAIN of the statement as the services run it (prepared, with parameters), on one connection.
  const plan = (sql: string) =>
    db.transaction(async (tx) => {
      await tx.query(`PREPARE lookup(text, text[]) AS ${sql}`);
      const { rows } = await tx.query<{ "QUERY PLAN": string }>(
        "EXPLAIN EXECUTE lookup('tenant-7', ARRAY['key-7', 'user:u1', 'session:s1'])",
      );
      await tx.query("DEALLOCATE lookup");
      return rows.map((r) => r["QUERY PLAN"]).join("\n");
    });

  it("finds a subject's uploads (first DocumentQueued) through events_type_tenant_actor_idx", async () => {
    const p = await plan(UPLOADS_BY_ACTORS_SQL);
    expect(p).toMatch(/Index Scan using events_p\d{2}_type_tenant_actor_idx on events_p\d{2} e/);
    expect(p).not.toMatch(/Seq Scan on events/);
    // And it answers: key-9 of tenant-9 uploaded documents i ≡ 9 (mod 1500), i.e. 40 of them.
    const { rows } = await db.query<{ document_id: string }>(UPLOADS_BY_ACTORS_SQL, ["tenant-9", ["key-9", "user:nobody"]]);
    expect(rows.length).toBe(40);
  });

  it("finds the runs a subject's principals started through events_type_tenant_actor_idx", async () => {
    const p = await plan(RUNS_BY_ACTORS_SQL);
    expect(p).toMatch(/Index Scan using events_p\d{2}_type_tenant_actor_idx on events_p\d{2} e/);
    expect(p).not.toMatch(/Seq Scan on events/);
  });
});
