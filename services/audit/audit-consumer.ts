import type { EventHandler } from "../kernel/events/ports.js";
import type { AuditApplication } from "./audit-application.js";
import type { AuditStore } from "./ports.js";

/** Durable consumer building the audit trail. */
export const AUDIT_TRAIL_CONSUMER = "audit-trail";
/** Every domain event; the taxonomy decides which become entries. */
export const AUDIT_TRAIL_SUBJECT = ">";

/**
 * The handler of {@link AUDIT_TRAIL_CONSUMER}: one entry per audited event, in the consumer's
 * transaction (the entry and the processed-event record commit together). Runs one event at
 * a time so each chain grows in event order.
 */
export function auditTrailHandler(app: AuditApplication, store: AuditStore): EventHandler {
  return async (event, tx) => {
    await app.record(store.within(tx), {
      eventId: event.eventId,
      type: event.type,
      payload: event.payload,
      metadata: event.metadata,
      occurredAt: event.occurredAt,
    });
  };
}
