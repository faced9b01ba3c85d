import type { Logger } from "pino";
import { type MigrateResult, type Migration, migrate } from "../db/migrate.js";
import type { Database } from "../db/ports.js";

/** Schema of the event store, the relay's checkpoint and the local bus. */
export const PLATFORM_SCHEMA = "platform";

/** NOTIFY channel signalled (once per inserting statement) when events are appended. */
export const EVENTS_CHANNEL = "platform_events";

/**
 * Migrations of the `platform` schema. Forward-only: never edit a released entry, append one.
 *
 * - `events`: the append-only event store. `position` is the global order (positions are
 *   handed out in commit order, see event-store.ts); (stream_id, version) is unique, which is
 *   what optimistic concurrency rests on. UPDATE, DELETE and TRUNCATE are refused by triggers.
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
];

/** Applies {@link PLATFORM_MIGRATIONS} (idempotent; safe with many replicas at once). */
export function migratePlatform(db: Database, logger?: Logger): Promise<MigrateResult> {
  return migrate(db, { schema: PLATFORM_SCHEMA, migrations: PLATFORM_MIGRATIONS, ...(logger ? { logger } : {}) });
}
