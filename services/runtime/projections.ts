import { AUDIT_TRAIL_CONSUMER, AUDIT_TRAIL_SUBJECT } from "../audit/audit-consumer.js";
import { tenantsProjection } from "../auth/tenant-projection.js";
import type { Projection } from "../kernel/projections/index.js";
import { RUN_USAGE_CONSUMER } from "../metering/metering-consumers.js";
import { usageRecordsProjection } from "../metering/usage-projection.js";

/** Every projection `nexus projections` can list, inspect and rebuild, by name. */
export const PROJECTIONS: readonly Projection[] = [tenantsProjection, usageRecordsProjection];

/**
 * Rebuildable projections that a durable consumer keeps current (rather than the command's own
 * transaction): /projections/health also lists that consumer's lag in seconds.
 */
export const CONSUMER_FED_PROJECTIONS: readonly { projection: string; table: string; consumer: string }[] = [
  { projection: usageRecordsProjection.name, table: usageRecordsProjection.table, consumer: RUN_USAGE_CONSUMER },
];

/** The projection named `name`, or undefined. */
export function projectionNamed(name: string): Projection | undefined {
  return PROJECTIONS.find((p) => p.name === name);
}

/**
 * Read models fed by durable consumers that `nexus projections rebuild` does NOT rebuild, and
 * why (docs/event-sourcing.md, "Projection rebuilds"): listed so an operator sees them and the
 * reason instead of wondering whether they were forgotten.
 */
export interface UnrebuildableProjection {
  name: string;
  table: string;
  /** The consumer that writes it (described). */
  fedBy: string;
  /** That durable consumer's name and subject filter (its lag in seconds is the read model's). */
  consumer: string;
  subject: string;
  /** Why it is not rebuilt from the log. */
  why: string;
}

export const UNREBUILDABLE_PROJECTIONS: readonly UnrebuildableProjection[] = [
  {
    name: "audit.entries",
    table: "audit.entries",
    fedBy: "consumer audit-trail (every event)",
    consumer: AUDIT_TRAIL_CONSUMER,
    subject: AUDIT_TRAIL_SUBJECT,
    why:
      "by design: each entry's hash covers the previous entry's hash and the time it was recorded, so a rebuilt trail would be a " +
      "new chain whose hashes no longer match the ones already exported (ExportAuditEvents) or verified; the trail is evidence, " +
      "kept as written (VerifyAuditChain checks it instead)",
  },
];

/** The not-rebuildable projection named `name`, or undefined. */
export function unrebuildableNamed(name: string): UnrebuildableProjection | undefined {
  return UNREBUILDABLE_PROJECTIONS.find((p) => p.name === name);
}
