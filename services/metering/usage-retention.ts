import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { UsageRecordsPurgedSchema } from "../../gen/nexus/events/v1/metering_events_pb.js";
import { recordFacts } from "../kernel/commands/index.js";
import { eventOf } from "../kernel/events/protobuf-event.js";
import { type CustomRetention, keptByTenantHold, newRetentionReport, retentionHolds } from "../kernel/governance/index.js";
import { usageStreamId } from "./metering-aggregates.js";

/** First instant of the UTC month of `d`. */
const monthStart = (d: Date) => new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1));

/**
 * The "usage" retention policy (docs/governance.md#retention): usage records older than the
 * cutoff are deleted — never those of the current UTC month, which the month's usage and
 * invoices are still built from. A tenant hold keeps them all; a key, user or session hold
 * keeps the records of the runs it covers (found through the runs' RunStarted events).
 * Usage records hold ids and counts, no content: `anonymize` leaves them as they are. A
 * deletion appends UsageRecordsPurged (cutoff and held runs) to the tenant's usage stream in
 * the same transaction, so a rebuild of the table from the log does not bring them back.
 */
export function usageRetention(now: () => Date = () => new Date()): CustomRetention {
  return {
    category: "usage",
    target: "metering.usage_records",
    async apply(db, tenantId, action, policyCutoff) {
      const cutoff = new Date(Math.min(policyCutoff.getTime(), monthStart(now()).getTime()));
      const report = newRetentionReport(tenantId, "usage", "metering.usage_records", action, cutoff);
      const count = await db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM metering.usage_records WHERE tenant_id = $1 AND recorded_at < $2",
        [tenantId, cutoff],
      );
      report.expired = count.rows[0]?.n ?? 0;
      if (report.expired === 0) return report;
      if (action === "anonymize") {
        report.skippedReason = "usage records hold ids and counts, no content: nothing to anonymize; set the usage policy to delete";
        return report;
      }
      await db.transaction(async (tx) => {
        const { holds: all, tenantHold, of } = await retentionHolds(tx, tenantId);
        if (tenantHold) {
          keptByTenantHold(report, tenantHold.hold_id);
          return;
        }
        const holds = all.filter((h) => h.scope === "key" || h.scope === "user" || h.scope === "session");
        // The runs the holds cover, by request id (with the hold that covers each).
        const { rows: heldRuns } =
          holds.length === 0
            ? { rows: [] as { request_id: string; actor: string; session_id: string }[] }
            : await tx.query<{ request_id: string; actor: string; session_id: string }>(
                `SELECT e.payload->>'requestId' AS request_id, e.metadata->>'actor' AS actor, e.payload->>'sessionId' AS session_id
                 FROM platform.events e
                 WHERE e.type = 'nexus.events.v1.RunStarted' AND e.metadata->>'tenant_id' = $1
                   AND (e.metadata->>'actor' = ANY($2::text[]) OR e.metadata->>'actor' = ANY($3::text[]) OR e.payload->>'sessionId' = ANY($4::text[]))`,
                [tenantId, of("key"), of("user").map((u) => `user:${u}`), of("session")],
              );
        const held = heldRuns.map((r) => r.request_id);
        const heldBy = new Set<string>();
        for (const r of heldRuns)
          for (const h of holds)
            if (
              (h.scope === "key" && h.subject_id === r.actor) ||
              (h.scope === "user" && `user:${h.subject_id}` === r.actor) ||
              (h.scope === "session" && h.subject_id === r.session_id)
            )
              heldBy.add(h.hold_id);
        const deleted = await tx.query(
          "DELETE FROM metering.usage_records WHERE tenant_id = $1 AND recorded_at < $2 AND NOT (request_id = ANY($3::text[]))",
          [tenantId, cutoff, held],
        );
        report.removed = deleted.rowCount;
        if (deleted.rowCount > 0) {
          // The deletion is a fact on the tenant's usage stream, so a rebuild of
          // metering.usage_records (usage-projection.ts) leaves these rows deleted.
          await recordFacts(
            tx,
            usageStreamId(tenantId),
            [
              eventOf(UsageRecordsPurgedSchema, {
                tenantId,
                reason: "retention",
                recordedBefore: timestampFromDate(cutoff),
                keptRequestIds: held,
                removed: BigInt(deleted.rowCount),
              }),
            ],
            { metadata: { tenantId, actor: "system" } },
          );
        }
        report.held = report.expired - report.removed;
        report.heldBy = [...heldBy].sort();
        if (report.held > 0) report.skippedReason = `${report.held} kept under legal hold`;
      });
      return report;
    },
  };
}
