import { advisoryKey } from "../kernel/db/advisory-key.js";
import type { Migration } from "../kernel/db/migrate.js";
import type { SchemaMigrations } from "../kernel/service/index.js";

/** The event store's append lock (event-store.ts): the backfill appends like any writer. */
const APPEND_LOCK_KEY = advisoryKey("nexus.events.append");

/** The metering service's schema. */
export const METERING_SCHEMA = "metering";

/**
 * Forward-only migrations of the `metering` schema.
 *
 * - `quotas`: custom settings from SetQuota (no row = the plan's defaults).
 * - `tenant_plans`: the tenants' plans and run-allowance overrides, projected from auth events
 *   (this service never reads auth's tables).
 * - `quota_windows`: per tenant, period and period start: used and reserved counters. Every
 *   change happens under the tenant's advisory lock, so reservations cannot overshoot.
 * - `reservations`: admitted runs and how they settled; unique per (tenant, request id), which
 *   makes CheckQuota idempotent.
 * - `usage_records`: one per run, unique by request id and by source event id, so a replayed
 *   or re-published run event is never counted twice.
 * - `soft_cap_notices`: the unique key that makes QuotaSoftCapReached fire once per tenant,
 *   period and metric.
 */
export const METERING_MIGRATIONS: readonly Migration[] = [
  {
    id: "0001_metering",
    sql: `
CREATE TABLE metering.quotas (
  tenant_id text PRIMARY KEY,
  daily_runs_limit bigint CHECK (daily_runs_limit >= 0),
  monthly_runs_limit bigint CHECK (monthly_runs_limit >= 0),
  daily_run_units_limit double precision CHECK (daily_run_units_limit >= 0),
  monthly_run_units_limit double precision CHECK (monthly_run_units_limit >= 0),
  soft_cap_ratio double precision CHECK (soft_cap_ratio > 0 AND soft_cap_ratio <= 1),
  hard_cap_mode text NOT NULL CHECK (hard_cap_mode IN ('enforce', 'observe')),
  updated_at timestamptz NOT NULL,
  updated_by text NOT NULL DEFAULT ''
);

CREATE TABLE metering.tenant_plans (
  tenant_id text PRIMARY KEY,
  plan text NOT NULL CHECK (plan IN ('free', 'pro', 'enterprise')),
  override_monthly_run_allowance bigint,
  override_unlimited_runs boolean NOT NULL DEFAULT false,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE metering.quota_windows (
  tenant_id text NOT NULL,
  period text NOT NULL CHECK (period IN ('day', 'month')),
  period_start date NOT NULL,
  runs_used bigint NOT NULL DEFAULT 0 CHECK (runs_used >= 0),
  runs_reserved bigint NOT NULL DEFAULT 0 CHECK (runs_reserved >= 0),
  run_units_used double precision NOT NULL DEFAULT 0,
  run_units_reserved double precision NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant_id, period, period_start)
);

CREATE TABLE metering.reservations (
  id uuid PRIMARY KEY,
  tenant_id text NOT NULL,
  request_id text NOT NULL,
  state text NOT NULL CHECK (state IN ('reserved', 'committed', 'released', 'expired')),
  decision text NOT NULL CHECK (decision IN ('allowed', 'soft_cap', 'overage')),
  estimated_run_units double precision NOT NULL DEFAULT 0,
  day_start date NOT NULL,
  month_start date NOT NULL,
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  settled_at timestamptz,
  release_reason text,
  CONSTRAINT reservations_tenant_request_key UNIQUE (tenant_id, request_id)
);
CREATE INDEX reservations_due_idx ON metering.reservations (expires_at) WHERE state = 'reserved';

CREATE TABLE metering.usage_records (
  id uuid PRIMARY KEY,
  tenant_id text NOT NULL,
  request_id text NOT NULL,
  source_event_id text NOT NULL,
  reservation_id uuid,
  plan text NOT NULL,
  outcome text NOT NULL CHECK (outcome IN ('completed', 'failed', 'cancelled')),
  run_units double precision NOT NULL,
  cpu_seconds double precision NOT NULL,
  gpu_seconds double precision NOT NULL,
  tool_calls integer NOT NULL,
  input_tokens bigint NOT NULL,
  output_tokens bigint NOT NULL,
  tier_multiplier double precision NOT NULL,
  tool_call_overhead double precision NOT NULL,
  usage_date date NOT NULL,
  recorded_at timestamptz NOT NULL,
  CONSTRAINT usage_records_tenant_request_key UNIQUE (tenant_id, request_id),
  CONSTRAINT usage_records_source_event_key UNIQUE (source_event_id)
);
CREATE INDEX usage_records_tenant_date_idx ON metering.usage_records (tenant_id, usage_date);

CREATE TABLE metering.soft_cap_notices (
  tenant_id text NOT NULL,
  period text NOT NULL,
  period_start date NOT NULL,
  metric text NOT NULL,
  reached_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, period, period_start, metric)
);
`,
  },
  {
    // Makes metering.usage_records rebuildable from the log (docs/event-sourcing.md, "Projection
    // rebuilds"). Rows recorded before UsageRecorded carried every column (reservation id, the
    // row's id and recorded_at) are restated as UsageRecordBackfilled events; UsageRecorded
    // events whose row is gone (deleted by retention or offboarding before deletions were
    // recorded) get one UsageRecordsPurged per stream first, so a rebuild does not bring them
    // back. Appended as appendToStream does (under the event store's append lock, at the next
    // versions of each stream, each id also in platform.event_ids).
    id: "0002_usage_rebuild",
    sql: `
SELECT pg_advisory_xact_lock(${APPEND_LOCK_KEY});

WITH appended AS (
INSERT INTO platform.events (event_id, stream_id, version, type, topic, payload, metadata)
SELECT md5('usage-purge-backfill:' || g.stream_id)::uuid, g.stream_id,
       coalesce((SELECT max(e.version) FROM platform.events e WHERE e.stream_id = g.stream_id), 0) + 1,
       'nexus.events.v1.UsageRecordsPurged', 'metering.usage_records_purged',
       jsonb_build_object('tenantId', substr(g.stream_id, 7), 'reason', 'backfill',
                          'sourceEventIds', g.ids, 'removed', g.n::text),
       jsonb_build_object('tenant_id', substr(g.stream_id, 7), 'actor', 'system')
FROM (SELECT e.stream_id, jsonb_agg(e.payload->>'sourceEventId' ORDER BY e.version) AS ids, count(*) AS n
        FROM platform.events e
       WHERE starts_with(e.stream_id, 'usage-') AND e.type = 'nexus.events.v1.UsageRecorded'
         AND NOT EXISTS (SELECT 1 FROM metering.usage_records u WHERE u.source_event_id = e.payload->>'sourceEventId')
       GROUP BY e.stream_id) g
RETURNING event_id, stream_id, position)
INSERT INTO platform.event_ids (event_id, stream_id, position) SELECT event_id, stream_id, position FROM appended;

WITH appended AS (
INSERT INTO platform.events (event_id, stream_id, version, type, topic, payload, metadata)
SELECT md5('usage-record-backfill:' || u.source_event_id)::uuid, 'usage-' || u.tenant_id,
       coalesce((SELECT max(e.version) FROM platform.events e WHERE e.stream_id = 'usage-' || u.tenant_id), 0)
         + row_number() OVER (PARTITION BY u.tenant_id ORDER BY u.recorded_at, u.id),
       'nexus.events.v1.UsageRecordBackfilled', 'metering.usage_record_backfilled',
       jsonb_build_object(
         'tenantId', u.tenant_id, 'recordId', u.id::text,
         'recordedAt', to_char(u.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
         'usage', jsonb_strip_nulls(jsonb_build_object(
           'tenantId', u.tenant_id, 'requestId', u.request_id, 'sourceEventId', u.source_event_id,
           'reservationId', u.reservation_id::text, 'plan', 'PLAN_' || upper(u.plan), 'outcome', 'RUN_OUTCOME_' || upper(u.outcome),
           'runUnits', u.run_units, 'cpuSeconds', u.cpu_seconds, 'gpuSeconds', u.gpu_seconds, 'toolCalls', u.tool_calls,
           'inputTokens', u.input_tokens::text, 'outputTokens', u.output_tokens::text, 'tierMultiplier', u.tier_multiplier,
           'toolCallOverhead', u.tool_call_overhead, 'usageDate', u.usage_date::text))),
       jsonb_build_object('tenant_id', u.tenant_id, 'actor', 'system')
FROM metering.usage_records u
RETURNING event_id, stream_id, position)
INSERT INTO platform.event_ids (event_id, stream_id, position) SELECT event_id, stream_id, position FROM appended;
`,
  },
];

/** The metering schema and its migrations (applied whenever the service runs). */
export const meteringMigrations: SchemaMigrations = { schema: METERING_SCHEMA, migrations: METERING_MIGRATIONS };
