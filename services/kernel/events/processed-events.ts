import { propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { type Migration, migrate } from "../db/migrate.js";
import type { Database, Tx } from "../db/ports.js";
import type { OffboardedTenants } from "./offboarded-tenants.js";
import type { DeliveredEvent, EventHandler } from "./ports.js";

/**
 * Migration creating `<schema>.processed_events(consumer, event_id, processed_at)`: the record
 * that makes handlers idempotent. It lives in the handler's own schema so it commits in the
 * handler's transaction. Its id is namespaced, so it coexists with the service's migrations
 * in the same `<schema>.schema_migrations`.
 */
export function processedEventsMigration(schema: string): Migration {
  return {
    id: "kernel_processed_events_0001",
    sql: `CREATE TABLE "${schema}".processed_events (
  consumer text NOT NULL,
  event_id text NOT NULL,
  processed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, event_id)
);`,
  };
}

const ensured = new WeakMap<Database, Map<string, Promise<unknown>>>();

/** Creates `<schema>.processed_events` once per database and schema (idempotent). */
export async function ensureProcessedEvents(db: Database, schema: string): Promise<void> {
  let bySchema = ensured.get(db);
  if (!bySchema) ensured.set(db, (bySchema = new Map()));
  let done = bySchema.get(schema);
  if (!done) {
    done = migrate(db, { schema, migrations: [processedEventsMigration(schema)] });
    bySchema.set(schema, done);
    done.catch(() => bySchema.delete(schema));
  }
  await done;
}

/** What happened to one delivery. */
export type DeliveryOutcome = "handled" | "duplicate" | "skipped";

/** Inputs of {@link deliverOnce}. */
export interface DeliverOnceOptions {
  db: Database;
  schema: string;
  consumer: string;
  event: DeliveredEvent;
  handler: EventHandler;
  /** More statements for the same transaction (e.g. the local bus's checkpoint). */
  alsoInTransaction?: (tx: Tx) => Promise<void>;
  /** When given, an event of an offboarded tenant is not handed to the handler ("skipped"). */
  offboarded?: OffboardedTenants;
}

const tracer = trace.getTracer("nexus.events");

/** A handler that ran at least this long checks again (uncached) that its tenant was not offboarded meanwhile. */
export const OFFBOARDED_RECHECK_AFTER_MS = 1_000;

/** Rolls back the writes of a handler whose tenant was offboarded while it ran. */
class OffboardedMeanwhile extends Error {}

/**
 * Runs a handler at most once per (consumer, event id): in one transaction, record the event
 * as processed and run the handler; a record that already exists means a duplicate delivery
 * and the handler is skipped. A concurrent duplicate blocks on the first one's uncommitted
 * record and then sees it. When the handler throws, the record rolls back with its state.
 * The handler runs in a CONSUMER span whose parent is the trace that appended the event.
 */
export async function deliverOnce(options: DeliverOnceOptions): Promise<DeliveryOutcome> {
  const { db, schema, consumer, event, handler } = options;
  const carrier: Record<string, string> = {};
  if (event.metadata.traceparent) carrier.traceparent = event.metadata.traceparent;
  if (event.metadata.tracestate) carrier.tracestate = event.metadata.tracestate;
  const parent = propagation.extract(ROOT_CONTEXT, carrier);
  return tracer.startActiveSpan(
    `${event.subject} process`,
    {
      kind: SpanKind.CONSUMER,
      attributes: {
        "messaging.system": "nexus",
        "messaging.destination.name": event.subject,
        "messaging.consumer.group.name": consumer,
        "messaging.message.id": event.eventId,
        "messaging.message.delivery_count": event.deliveryCount,
        "nexus.event.type": event.type,
      },
    },
    parent,
    async (span) => {
      try {
        const tenantId = event.metadata.tenantId;
        const skip = async (): Promise<DeliveryOutcome> => {
          if (options.alsoInTransaction) await db.transaction((tx) => options.alsoInTransaction!(tx));
          if (tenantId) options.offboarded?.noteSkipped(tenantId, consumer);
          return "skipped";
        };
        if (options.offboarded && tenantId && (await options.offboarded.isOffboarded(tenantId))) {
          span.setAttribute("nexus.delivery.outcome", "skipped");
          return await skip();
        }
        const outcome = await db
          .transaction(async (tx): Promise<DeliveryOutcome> => {
            const { rowCount } = await tx.query(
              `INSERT INTO "${schema}".processed_events (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
              [consumer, event.eventId],
            );
            if (rowCount === 0) {
              await options.alsoInTransaction?.(tx);
              return "duplicate";
            }
            const started = Date.now();
            await handler(event, tx);
            // A long handler (a document mid-ingestion) may have outlived its tenant's point of
            // no return: look again, uncached, and roll its writes back if so.
            if (
              options.offboarded &&
              tenantId &&
              Date.now() - started >= OFFBOARDED_RECHECK_AFTER_MS &&
              // (Not on PGlite: its one connection serialises transactions, so no saga step
              // commits while this one is open — and asking outside the tx would wait for it.)
              db.dialect !== "pglite" &&
              (await options.offboarded.isOffboarded(tenantId, { fresh: true }))
            )
              throw new OffboardedMeanwhile();
            await options.alsoInTransaction?.(tx);
            return "handled";
          })
          .catch((err: unknown) => {
            if (err instanceof OffboardedMeanwhile) return skip();
            throw err;
          });
        span.setAttribute("nexus.delivery.outcome", outcome);
        return outcome;
      } catch (err) {
        span.recordException(err as Error);
        span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
        throw err;
      } finally {
        span.end();
      }
    },
  );
}
