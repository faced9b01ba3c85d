import { createHash } from "node:crypto";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import {
  UsageRecordBackfilledSchema,
  type UsageRecorded,
  UsageRecordedSchema,
  UsageRecordsPurgedSchema,
} from "../../gen/nexus/events/v1/metering_events_pb.js";
import type { Tx } from "../kernel/db/ports.js";
import { readStream } from "../kernel/events/event-store.js";
import type { RecordedEvent } from "../kernel/events/ports.js";
import { payloadOf } from "../kernel/events/protobuf-event.js";
import type { Projection } from "../kernel/projections/index.js";
import { usageStreamId } from "./metering-aggregates.js";
import { outcomeFromProto, planFromProto } from "./proto-mapping.js";

const PREFIX = usageStreamId("");
const TABLE = "metering.usage_records";
/** Windows (tenant, period, start) that lost rows to a purge: a rebuild leaves their counters as they are. */
const PURGED_WINDOWS = "metering.usage_records__rebuild_windows";
/** How many of the log's newest events the status looks through for usage rows missing. */
export const LAG_WINDOW = 10_000;

/**
 * The id of the usage record of a run event: a UUID derived from the event id (MD5 of
 * `usage-record:<id>`, the same as SQL `md5('usage-record:' || id)::uuid`), so a rebuild
 * gives every row the id it had.
 */
export function usageRecordId(sourceEventId: string): string {
  const h = createHash("md5").update(`usage-record:${sourceEventId}`).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The columns of metering.usage_records, as the rebuild writes and compares them. */
export const USAGE_RECORD_COLUMNS = [
  "id",
  "tenant_id",
  "request_id",
  "source_event_id",
  "reservation_id",
  "plan",
  "outcome",
  "run_units",
  "cpu_seconds",
  "gpu_seconds",
  "tool_calls",
  "input_tokens",
  "output_tokens",
  "tier_multiplier",
  "tool_call_overhead",
  "usage_date",
  "recorded_at",
] as const;

/** A usage row as folded from its stream (dates as text so nothing shifts them). */
interface FoldedRow {
  id: string;
  tenant_id: string;
  request_id: string;
  source_event_id: string;
  reservation_id: string | null;
  plan: string;
  outcome: string;
  run_units: number;
  cpu_seconds: number;
  gpu_seconds: number;
  tool_calls: number;
  input_tokens: string;
  output_tokens: string;
  tier_multiplier: number;
  tool_call_overhead: number;
  usage_date: string;
  recorded_at: string;
}

/** What one tenant's usage stream folds to: its rows, and the windows that lost rows to purges. */
export interface FoldedUsage {
  rows: FoldedRow[];
  purgedWindows: Array<{ period: "day" | "month"; periodStart: string }>;
}

/** The row a UsageRecorded (as recorded, or restated by UsageRecordBackfilled) stands for. */
function rowOf(tenantId: string, p: UsageRecorded, id: string, recordedAt: string): FoldedRow {
  return {
    id,
    tenant_id: tenantId,
    request_id: p.requestId,
    source_event_id: p.sourceEventId,
    reservation_id: p.reservationId || null,
    plan: planFromProto(p.plan) ?? "free",
    outcome: outcomeFromProto(p.outcome),
    run_units: p.runUnits,
    cpu_seconds: p.cpuSeconds,
    gpu_seconds: p.gpuSeconds,
    tool_calls: p.toolCalls,
    input_tokens: p.inputTokens.toString(),
    output_tokens: p.outputTokens.toString(),
    tier_multiplier: p.tierMultiplier,
    tool_call_overhead: p.toolCallOverhead,
    usage_date: p.usageDate,
    recorded_at: recordedAt,
  };
}

function raw(event: RecordedEvent): Record<string, unknown> {
  return event.payload !== null && typeof event.payload === "object" ? (event.payload as Record<string, unknown>) : {};
}

/**
 * Folds a tenant's `usage-<tenant>` stream, oldest first, into its usage rows:
 * UsageRecorded adds the run's row (id from the run event's id, recorded_at = the event's
 * occurred_at), UsageRecordBackfilled restates a row recorded before that (every column),
 * UsageRecordsPurged removes the rows retention, offboarding or the backfill deleted.
 */
export function foldUsageStream(tenantId: string, events: readonly RecordedEvent[]): FoldedUsage {
  const rows = new Map<string, FoldedRow>();
  const purged = new Map<string, { period: "day" | "month"; periodStart: string }>();
  const purge = (r: FoldedRow) => {
    rows.delete(r.source_event_id);
    const month = `${r.usage_date.slice(0, 8)}01`;
    purged.set(`day|${r.usage_date}`, { period: "day", periodStart: r.usage_date });
    purged.set(`month|${month}`, { period: "month", periodStart: month });
  };
  for (const event of events) {
    switch (event.type) {
      case UsageRecordedSchema.typeName: {
        const p = payloadOf(UsageRecordedSchema, event);
        if (p.sourceEventId) rows.set(p.sourceEventId, rowOf(tenantId, p, usageRecordId(p.sourceEventId), event.occurredAt.toISOString()));
        break;
      }
      case UsageRecordBackfilledSchema.typeName: {
        const p = payloadOf(UsageRecordBackfilledSchema, event);
        // The stored text keeps the row's microseconds (a Date would cut them to ms).
        const recordedAt = raw(event).recordedAt;
        if (p.usage?.sourceEventId && typeof recordedAt === "string") {
          rows.set(p.usage.sourceEventId, rowOf(tenantId, p.usage, p.recordId, recordedAt));
        }
        break;
      }
      case UsageRecordsPurgedSchema.typeName: {
        const p = payloadOf(UsageRecordsPurgedSchema, event);
        const ids = new Set(p.sourceEventIds);
        const kept = new Set(p.keptRequestIds);
        const before = p.recordedBefore ? timestampDate(p.recordedBefore).getTime() : undefined;
        for (const r of [...rows.values()]) {
          const byTime = before !== undefined && Date.parse(r.recorded_at) < before && !kept.has(r.request_id);
          if (p.allRecords || ids.has(r.source_event_id) || byTime) purge(r);
        }
        break;
      }
      default:
        break;
    }
  }
  return { rows: [...rows.values()], purgedWindows: [...purged.values()] };
}

const RECORDSET = `jsonb_to_recordset($1::jsonb) AS x(id uuid, tenant_id text, request_id text, source_event_id text, reservation_id uuid,
  plan text, outcome text, run_units float8, cpu_seconds float8, gpu_seconds float8, tool_calls int, input_tokens int8,
  output_tokens int8, tier_multiplier float8, tool_call_overhead float8, usage_date date, recorded_at timestamptz)`;

/**
 * `metering.usage_records` as a projection of the `usage-<tenant>` streams (R5): each tenant's
 * stream folded by {@link foldUsageStream} gives its rows. In the swap transaction the quota
 * windows' used counters of every window whose rows changed are recomputed from the rebuilt
 * rows and the committed reservations (windows that lost rows to a purge keep their counters:
 * their rows are no longer all there to add up).
 */
export const usageRecordsProjection: Projection = {
  name: TABLE,
  description:
    "usage records, a projection of the usage-<tenant> streams (UsageRecorded, appended with each row; purges by retention and offboarding)",
  table: TABLE,
  key: "id",
  columns: USAGE_RECORD_COLUMNS,
  streamPrefix: PREFIX,
  async beforeRebuild(db) {
    await db.exec(
      `DROP TABLE IF EXISTS ${PURGED_WINDOWS};
       CREATE UNLOGGED TABLE ${PURGED_WINDOWS} (tenant_id text, period text, period_start date, PRIMARY KEY (tenant_id, period, period_start))`,
    );
  },
  async afterRebuild(db) {
    await db.exec(`DROP TABLE IF EXISTS ${PURGED_WINDOWS}`);
  },
  async project(tx, target, streamIds) {
    const tenants = streamIds.map((s) => s.slice(PREFIX.length));
    const rows: FoldedRow[] = [];
    const windows: Array<{ tenant_id: string; period: string; period_start: string }> = [];
    for (const streamId of streamIds) {
      const tenantId = streamId.slice(PREFIX.length);
      const folded = foldUsageStream(tenantId, await readStream(tx, streamId));
      rows.push(...folded.rows);
      for (const w of folded.purgedWindows) windows.push({ tenant_id: tenantId, period: w.period, period_start: w.periodStart });
    }
    await tx.query(`DELETE FROM ${target} WHERE tenant_id = ANY($1::text[])`, [tenants]);
    if (rows.length > 0) {
      const cols = USAGE_RECORD_COLUMNS.join(", ");
      await tx.query(`INSERT INTO ${target} (${cols}) SELECT ${cols} FROM ${RECORDSET}`, [JSON.stringify(rows)]);
    }
    const { rows: side } = await tx.query<{ ok: boolean }>("SELECT to_regclass($1) IS NOT NULL AS ok", [PURGED_WINDOWS]);
    if (side[0]?.ok) {
      await tx.query(`DELETE FROM ${PURGED_WINDOWS} WHERE tenant_id = ANY($1::text[])`, [tenants]);
      await tx.query(
        `INSERT INTO ${PURGED_WINDOWS} SELECT * FROM jsonb_to_recordset($1::jsonb) AS w(tenant_id text, period text, period_start date)
         ON CONFLICT DO NOTHING`,
        [JSON.stringify(windows)],
      );
    }
  },
  onSwap: (tx, shadow) => recomputeUsedWindows(tx, shadow),
  async measureLag(tx) {
    // A usage event whose row is missing, unless a purge came after it in its stream — among
    // the log's newest LAG_WINDOW events, so the every-second measurement stays within its
    // 100 ms however long the log (a rebuild compares everything).
    const { rows } = await tx.query<{ behind: number; lag: number | null }>(
      `SELECT count(*)::int AS behind, extract(epoch FROM now() - min(e.occurred_at))::float8 AS lag
       FROM platform.events e
       WHERE e.position > (SELECT coalesce(max(position), 0) FROM platform.events) - $4
         AND starts_with(e.stream_id, $1) AND e.type = ANY($2::text[])
         AND NOT EXISTS (SELECT 1 FROM ${TABLE} u
                          WHERE u.source_event_id = coalesce(e.payload->>'sourceEventId', e.payload->'usage'->>'sourceEventId'))
         AND NOT EXISTS (SELECT 1 FROM platform.events p
                          WHERE p.stream_id = e.stream_id AND p.version > e.version AND p.type = $3)`,
      [PREFIX, [UsageRecordedSchema.typeName, UsageRecordBackfilledSchema.typeName], UsageRecordsPurgedSchema.typeName, LAG_WINDOW],
    );
    return { behind: rows[0]?.behind ?? 0, lagSeconds: rows[0]?.lag ?? null };
  },
};

/**
 * Recomputes `runs_used` and `run_units_used` of the quota windows whose usage rows differ
 * between the live table and `shadow` (the rebuilt rows), from the shadow: run units are the
 * sum of the window's rows; a run counts as used through its reservation once committed, or
 * through its row when it was charged without one (MeteringApplication.recordRunEnded).
 * Reserved counters are not derived from usage rows and stay as they are. Runs under the
 * swap's lock on the live table: a run being metered waits at its row insert, before it
 * touches a window; a CommitQuota on one of the windows is serialized by the row lock taken
 * first. Returns the windows changed.
 */
async function recomputeUsedWindows(tx: Tx, shadow: string): Promise<number> {
  await tx.exec(
    `CREATE TEMP TABLE usage_rebuild_windows ON COMMIT DROP AS
     SELECT DISTINCT c.tenant_id, k.period, k.period_start
     FROM (SELECT coalesce(s.tenant_id, l.tenant_id) AS tenant_id, s.usage_date AS new_date, l.usage_date AS old_date
             FROM ${shadow} s FULL JOIN ${TABLE} l ON l.id = s.id
            WHERE ROW(s.*) IS DISTINCT FROM ROW(l.*)) c,
          LATERAL (VALUES ('day', c.new_date), ('day', c.old_date),
                          ('month', date_trunc('month', c.new_date)::date), ('month', date_trunc('month', c.old_date)::date)) AS k(period, period_start)
     WHERE k.period_start IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM ${PURGED_WINDOWS} p
                        WHERE p.tenant_id = c.tenant_id AND p.period = k.period AND p.period_start = k.period_start)`,
  );
  await tx.exec(
    `INSERT INTO metering.quota_windows (tenant_id, period, period_start)
     SELECT tenant_id, period, period_start FROM usage_rebuild_windows ON CONFLICT DO NOTHING;
     SELECT 1 FROM metering.quota_windows w JOIN usage_rebuild_windows k USING (tenant_id, period, period_start) FOR UPDATE OF w`,
  );
  const { rowCount } = await tx.query(
    `UPDATE metering.quota_windows w SET runs_used = c.runs_used, run_units_used = c.run_units_used
     FROM (SELECT k.tenant_id, k.period, k.period_start,
             (SELECT count(*) FROM ${shadow} s
               WHERE s.tenant_id = k.tenant_id AND s.outcome <> 'failed' AND s.reservation_id IS NULL
                 AND (CASE k.period WHEN 'day' THEN s.usage_date ELSE date_trunc('month', s.usage_date)::date END) = k.period_start)
           + (SELECT count(*) FROM metering.reservations r
               WHERE r.tenant_id = k.tenant_id AND r.state = 'committed'
                 AND (CASE k.period WHEN 'day' THEN r.day_start ELSE r.month_start END) = k.period_start) AS runs_used,
             (SELECT greatest(round(coalesce(sum(s.run_units), 0)::numeric, 6)::float8, 0) FROM ${shadow} s
               WHERE s.tenant_id = k.tenant_id
                 AND (CASE k.period WHEN 'day' THEN s.usage_date ELSE date_trunc('month', s.usage_date)::date END) = k.period_start) AS run_units_used
           FROM usage_rebuild_windows k) c
     WHERE w.tenant_id = c.tenant_id AND w.period = c.period AND w.period_start = c.period_start
       AND (w.runs_used IS DISTINCT FROM c.runs_used OR w.run_units_used IS DISTINCT FROM c.run_units_used)`,
  );
  return rowCount ?? 0;
}
