import type { Logger } from "pino";
import { loadConfigValue } from "../config.js";
import { type MigrateResult, type Migration, migrate } from "../db/migrate.js";
import type { Database } from "../db/ports.js";

/** Schema of the event store, the relay's checkpoint and the local bus. */
export const PLATFORM_SCHEMA = "platform";

/** NOTIFY channel signalled (once per inserting statement) when events are appended. */
export const EVENTS_CHANNEL = "platform_events";

/** Hash partitions of `platform.events` (`platform.events_p00` … `events_p15`). */
export const EVENT_PARTITIONS = 16;

/**
 * The session setting {@link migratePlatform} sets from NEXUS_EVENTS_PARTITION_MAX_COPY_ROWS:
 * 0006 refuses to copy a store of more events than this (the copy is write downtime).
 */
export const PARTITION_MAX_COPY_ROWS_SETTING = "nexus.events_partition_max_copy_rows";

/** Used when the setting is absent (a caller of `migrate` that does not go through migratePlatform). */
export const DEFAULT_PARTITION_MAX_COPY_ROWS = 2_000_000;

/** The indexes of the partitioned `platform.events` besides its unique (stream_id, version): name suffix, definition. */
const PARTITIONED_INDEXES: readonly (readonly [string, string])[] = [
  ["position_idx", "(position)"],
  ["tenant_position_idx", "((metadata->>'tenant_id'), position)"],
  ["saga_starts_idx", "(position) WHERE type = 'nexus.sagas.v1.SagaStarted'"],
  ["type_tenant_actor_idx", "(type, (metadata->>'tenant_id'), (metadata->>'actor'))"],
];

/**
 * Migrations of the `platform` schema. Forward-only: never edit a released entry, append one.
 *
 * - `events`: the append-only event store. `position` is the global order (positions are
 *   handed out in commit order, see event-store.ts); (stream_id, version) is unique, which is
 *   what optimistic concurrency rests on. UPDATE, DELETE and TRUNCATE are refused by triggers.
 *   Since 0006 hash-partitioned by stream_id, with event ids unique through `event_ids`.
 * - `outbox_checkpoint`: per relay, the last position published to NATS, plus a lease so only
 *   one replica publishes at a time.
 * - `local_bus_checkpoints`, `local_bus_retries`, `local_dead_letters`: the embedded bus's
 *   per-consumer progress, scheduled retries and parked messages.
 * - `snapshots`: the latest snapshot of each event-sourced aggregate's stream (its state at
 *   `version`, in the form `schema_version` of the aggregate), kept apart from the log: a
 *   cache that may be deleted at any time — rehydration then replays the whole stream.
 *   And an index of each tenant's events by position (the change feed), and
 *   `projection_rebuilds`: the last rebuild of each projection and its outcome.
 */
export const PLATFORM_MIGRATIONS: readonly Migration[] = [
  {
    id: "0001_event_store",
    sql: `
CREATE TABLE platform.events (
  position bigserial PRIMARY KEY,
  event_id uuid NOT NULL,
  stream_id text NOT NULL CHECK (length(stream_id) BETWEEN 1 AND 512),
  version integer NOT NULL CHECK (version >= 1),
  type text NOT NULL CHECK (length(type) BETWEEN 1 AND 512),
  topic text NOT NULL CHECK (topic ~ '^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)+$'),
  payload jsonb NOT NULL,
  metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
  occurred_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT events_event_id_key UNIQUE (event_id),
  CONSTRAINT events_stream_version_key UNIQUE (stream_id, version)
);

CREATE FUNCTION platform.refuse_event_change() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  RAISE EXCEPTION 'platform.events is append-only: % is not allowed', TG_OP
    USING ERRCODE = 'restrict_violation',
          HINT = 'Events are immutable facts; append a compensating event instead.';
END
$fn$;

CREATE TRIGGER events_append_only
  BEFORE UPDATE OR DELETE ON platform.events
  FOR EACH STATEMENT EXECUTE FUNCTION platform.refuse_event_change();

CREATE TRIGGER events_no_truncate
  BEFORE TRUNCATE ON platform.events
  FOR EACH STATEMENT EXECUTE FUNCTION platform.refuse_event_change();

CREATE FUNCTION platform.notify_events_appended() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM pg_notify('${EVENTS_CHANNEL}', '');
  RETURN NULL;
END
$fn$;

CREATE TRIGGER events_notify
  AFTER INSERT ON platform.events
  FOR EACH STATEMENT EXECUTE FUNCTION platform.notify_events_appended();
`,
  },
  {
    id: "0002_relay_and_local_bus",
    sql: `
CREATE TABLE platform.outbox_checkpoint (
  relay text PRIMARY KEY,
  position bigint NOT NULL DEFAULT 0,
  owner text,
  lease_until timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE platform.local_bus_checkpoints (
  consumer text PRIMARY KEY,
  position bigint NOT NULL DEFAULT 0,
  owner text,
  lease_until timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE platform.local_bus_retries (
  consumer text NOT NULL,
  position bigint NOT NULL REFERENCES platform.events (position),
  deliveries integer NOT NULL,
  next_attempt_at timestamptz NOT NULL,
  last_error text,
  replay_count integer NOT NULL DEFAULT 0,
  PRIMARY KEY (consumer, position)
);
CREATE INDEX local_bus_retries_due_idx ON platform.local_bus_retries (consumer, next_attempt_at);

CREATE TABLE platform.local_dead_letters (
  seq bigserial PRIMARY KEY,
  consumer text NOT NULL,
  position bigint NOT NULL REFERENCES platform.events (position),
  subject text NOT NULL,
  delivery_count integer NOT NULL,
  error text NOT NULL,
  replay_count integer NOT NULL DEFAULT 0,
  dead_lettered_at timestamptz NOT NULL DEFAULT now(),
  replayed_at timestamptz
);
CREATE INDEX local_dead_letters_parked_idx ON platform.local_dead_letters (consumer, seq) WHERE replayed_at IS NULL;
`,
  },
  {
    id: "0003_snapshots_and_tenant_index",
    sql: `
CREATE TABLE platform.snapshots (
  stream_id text PRIMARY KEY CHECK (length(stream_id) BETWEEN 1 AND 512),
  aggregate text NOT NULL,
  version integer NOT NULL CHECK (version >= 1),
  schema_version integer NOT NULL CHECK (schema_version >= 1),
  state jsonb NOT NULL,
  size_bytes integer NOT NULL,
  taken_at timestamptz NOT NULL DEFAULT now()
);

-- The last rebuild of each projection (services/kernel/projections).
CREATE TABLE platform.projection_rebuilds (
  projection text PRIMARY KEY,
  state text NOT NULL CHECK (state IN ('rebuilding', 'ok', 'failed')),
  started_at timestamptz NOT NULL,
  finished_at timestamptz,
  events bigint NOT NULL DEFAULT 0,
  changed bigint NOT NULL DEFAULT 0,
  error text
);

-- A tenant's events in order: the change feed (WatchEvents) and temporal reads.
CREATE INDEX events_tenant_position_idx ON platform.events ((metadata->>'tenant_id'), position);
`,
  },
  {
    id: "0004_saga_leases",
    sql: `
-- One runner per saga across processes (services/kernel/sagas/saga-lease.ts): a runner claims
-- the row, renews it while it drives the saga and deletes it when it stops; another process
-- resumes the saga once lease_until passed (its runner died).
CREATE TABLE platform.saga_leases (
  saga_id text PRIMARY KEY CHECK (length(saga_id) BETWEEN 1 AND 200),
  owner text NOT NULL,
  lease_until timestamptz NOT NULL
);

-- Sagas newest first (ListSagas, resumption at start-up) without scanning the log.
CREATE INDEX events_saga_starts_idx ON platform.events (position) WHERE type = 'nexus.sagas.v1.SagaStarted';
`,
  },
  {
    // Governance lookups by event type, tenant and actor (docs/governance.md#scale-of-the-event-store-lookups):
    // the documents a key or user uploaded (DocumentQueued) and the runs they started
    // (RunStarted), for data-subject requests, legal holds and retention. Without it each was a
    // scan of the tenant's whole event history.
    id: "0005_events_type_actor_index_govf",
    sql: `
CREATE INDEX events_type_tenant_actor_idx ON platform.events (type, (metadata->>'tenant_id'), (metadata->>'actor'));
`,
  },
  {
    // Hash partitioning by stream id (issue 18, R1.2; docs/event-sourcing.md#partitioning-the-event-table).
    id: "0006_events_partitioned",
    sql: partitionEventsSql(),
  },
];

/**
 * 0006: `platform.events` becomes a table hash-partitioned by `stream_id`, with the rows of the
 * old one (kept as `platform.events_unpartitioned` for one release). One transaction (the
 * migration runner's): a refusal or a failure changes nothing.
 *
 * - The old table is locked EXCLUSIVE (appends wait, readers go on), then counted up to the
 *   threshold: above it the migration refuses (the copy is write downtime to schedule).
 * - Unique keys of a partitioned table must contain the partition key: `(stream_id, version)`
 *   stays a constraint (each partition's own index, `events_pNN_stream_id_version_key`);
 *   `position` gets a plain index (unique by construction: one sequence, handed out under the
 *   global append lock); `event_id`'s global uniqueness moves to `platform.event_ids`, which
 *   appendToStream writes in the same statement as the events.
 * - The foreign keys of the local bus's retries and dead letters to `events (position)` are
 *   dropped: a foreign key to a partitioned table must cover its partition key. Those rows are
 *   written from events just read, and events are never deleted.
 * - The append-only triggers are created on the parent (statements on `platform.events`) and on
 *   each partition (statements naming a partition); NOTIFY fires on inserts into the parent.
 */
function partitionEventsSql(): string {
  const parts = Array.from({ length: EVENT_PARTITIONS }, (_, i) => `events_p${String(i).padStart(2, "0")}`);
  return `
LOCK TABLE platform.events IN EXCLUSIVE MODE;

DO $guard$
DECLARE
  max_rows bigint := coalesce(nullif(current_setting('${PARTITION_MAX_COPY_ROWS_SETTING}', true), '')::bigint, ${DEFAULT_PARTITION_MAX_COPY_ROWS});
  n bigint;
BEGIN
  SELECT count(*) INTO n FROM (SELECT 1 FROM platform.events LIMIT max_rows + 1) AS capped;
  IF n > max_rows THEN
    RAISE EXCEPTION 'platform.events holds more than % events (NEXUS_EVENTS_PARTITION_MAX_COPY_ROWS): partitioning copies them all while appends wait, so it is not run at an ordinary start; nothing was changed. Schedule it: set the write freeze (NEXUS_WRITE_FREEZE_FILE), start one replica with NEXUS_EVENTS_PARTITION_MAX_COPY_ROWS above the event count to migrate, then lift the freeze (docs/event-sourcing.md, "Partitioning the event table")', max_rows
      USING ERRCODE = 'program_limit_exceeded';
  END IF;
END
$guard$;

-- The old table, out of the way (dropped by a later release).
ALTER TABLE platform.events RENAME TO events_unpartitioned;
ALTER TABLE platform.events_unpartitioned RENAME CONSTRAINT events_pkey TO events_unpartitioned_pkey;
ALTER TABLE platform.events_unpartitioned RENAME CONSTRAINT events_event_id_key TO events_unpartitioned_event_id_key;
ALTER TABLE platform.events_unpartitioned RENAME CONSTRAINT events_stream_version_key TO events_unpartitioned_stream_version_key;
ALTER INDEX platform.events_tenant_position_idx RENAME TO events_unpartitioned_tenant_position_idx;
ALTER INDEX platform.events_saga_starts_idx RENAME TO events_unpartitioned_saga_starts_idx;
ALTER INDEX platform.events_type_tenant_actor_idx RENAME TO events_unpartitioned_type_tenant_actor_idx;
ALTER TABLE platform.local_bus_retries DROP CONSTRAINT local_bus_retries_position_fkey;
ALTER TABLE platform.local_dead_letters DROP CONSTRAINT local_dead_letters_position_fkey;

-- The same columns, defaults (position: nextval of platform.events_position_seq) and checks.
CREATE TABLE platform.events (
  LIKE platform.events_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
  CONSTRAINT events_stream_version_key UNIQUE (stream_id, version)
) PARTITION BY HASH (stream_id);
${parts.map((p, i) => `CREATE TABLE platform.${p} PARTITION OF platform.events FOR VALUES WITH (MODULUS ${EVENT_PARTITIONS}, REMAINDER ${i});`).join("\n")}

ALTER TABLE platform.events_unpartitioned ALTER COLUMN position DROP DEFAULT;
ALTER SEQUENCE platform.events_position_seq OWNED BY platform.events.position;

INSERT INTO platform.events (position, event_id, stream_id, version, type, topic, payload, metadata, occurred_at)
SELECT position, event_id, stream_id, version, type, topic, payload, metadata, occurred_at
  FROM platform.events_unpartitioned ORDER BY position;

-- stream_id lets readEvent name the event's partition (one partition planned and read, not 16).
CREATE TABLE platform.event_ids (
  event_id uuid NOT NULL,
  stream_id text NOT NULL,
  position bigint NOT NULL
);
INSERT INTO platform.event_ids (event_id, stream_id, position) SELECT event_id, stream_id, position FROM platform.events_unpartitioned;
ALTER TABLE platform.event_ids ADD CONSTRAINT event_ids_pkey PRIMARY KEY (event_id);

-- Each index first on every partition under a readable name (events_p07_tenant_position_idx,
-- what EXPLAIN shows), then on the parent, which attaches them.
${PARTITIONED_INDEXES.flatMap(([name, definition]) => [
  ...parts.map((p) => `CREATE INDEX ${p}_${name} ON platform.${p} ${definition};`),
  `CREATE INDEX events_${name} ON platform.events ${definition};`,
]).join("\n")}

-- New positions continue after the copied ones (the sequence is normally there already).
SELECT setval('platform.events_position_seq', greatest(m.position, s.last_value))
  FROM (SELECT max(position) AS position FROM platform.events) AS m, platform.events_position_seq AS s
 WHERE m.position IS NOT NULL;

${["events", "event_ids", ...parts]
  .map(
    (t) => `CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON platform.${t}
  FOR EACH STATEMENT EXECUTE FUNCTION platform.refuse_event_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON platform.${t}
  FOR EACH STATEMENT EXECUTE FUNCTION platform.refuse_event_change();`,
  )
  .join("\n")}
CREATE TRIGGER events_notify AFTER INSERT ON platform.events
  FOR EACH STATEMENT EXECUTE FUNCTION platform.notify_events_appended();
ANALYZE platform.events;
ANALYZE platform.event_ids;
`;
}

/** Options of {@link migratePlatform}. */
export interface MigratePlatformOptions {
  /**
   * Most events 0006_events_partitioned copies before it refuses (default:
   * NEXUS_EVENTS_PARTITION_MAX_COPY_ROWS, validated by config.ts).
   */
  partitionMaxCopyRows?: number;
}

/** Applies {@link PLATFORM_MIGRATIONS} (idempotent; safe with many replicas at once). */
export function migratePlatform(db: Database, logger?: Logger, options: MigratePlatformOptions = {}): Promise<MigrateResult> {
  const maxCopyRows = options.partitionMaxCopyRows ?? loadConfigValue("eventsPartitionMaxCopyRows");
  return migrate(db, {
    schema: PLATFORM_SCHEMA,
    migrations: PLATFORM_MIGRATIONS,
    settings: { [PARTITION_MAX_COPY_ROWS_SETTING]: String(maxCopyRows) },
    ...(logger ? { logger } : {}),
  });
}
