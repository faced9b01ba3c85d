import { UsageRecordsPurgedSchema } from "../../gen/nexus/events/v1/metering_events_pb.js";
import { recordFacts } from "../kernel/commands/index.js";
import { eventOf } from "../kernel/events/protobuf-event.js";
import { tenantRowsDeleter } from "../kernel/service/index.js";
import { usageStreamId } from "./metering-aggregates.js";

/**
 * Metering's part of tenant offboarding: every usage record, quota, quota window,
 * reservation, soft-cap notice and the tenant's plan copy. Nothing is kept: export what
 * billing needs (`nexus usage`, the billing webhook) before offboarding. Deleted usage records
 * are recorded as UsageRecordsPurged (all records) on the tenant's usage stream in the same
 * transaction, so a rebuild of metering.usage_records does not bring them back.
 */
export const meteringTenantData = tenantRowsDeleter(
  "metering",
  [
    { table: "metering.reservations" },
    { table: "metering.usage_records" },
    { table: "metering.quota_windows" },
    { table: "metering.soft_cap_notices" },
    { table: "metering.quotas" },
    { table: "metering.tenant_plans" },
  ],
  undefined,
  async (tx, tenantId, rows) => {
    const removed = rows["metering.usage_records"] ?? 0;
    if (removed === 0) return;
    await recordFacts(
      tx,
      usageStreamId(tenantId),
      [eventOf(UsageRecordsPurgedSchema, { tenantId, reason: "offboarding", allRecords: true, removed: BigInt(removed) })],
      { metadata: { tenantId, actor: "system" } },
    );
  },
);
