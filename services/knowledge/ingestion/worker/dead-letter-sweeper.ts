import type { Logger } from "pino";
import type { Database } from "../../../kernel/db/ports.js";
import type { DeadLetterStore } from "../../../kernel/events/ports.js";
import type { PeriodicTask } from "../../../kernel/service/index.js";
import type { DocumentAggregate } from "../document-aggregate.js";
import { ingestionQueueDepth } from "../metrics.js";
import type { DocumentRepository } from "../ports.js";
import { INGESTION_CONSUMER } from "./ingestion-worker.js";
import { recordOutcome } from "./record-outcome.js";

/** Options of {@link sweepDeadLetters}. */
export interface DeadLetterSweepOptions {
  db: Database;
  aggregate: DocumentAggregate;
  documents: DocumentRepository;
  deadLetters: DeadLetterStore;
  clock: () => Date;
  logger: Logger;
  /** The ingestion consumer whose dead letters count. Default {@link INGESTION_CONSUMER}. */
  consumerName?: string;
}

interface QueuedPayload {
  tenantId?: unknown;
  documentId?: unknown;
  version?: unknown;
}

/** `<reason>: <message>` as the worker throws it; other errors (crashes) get a generic reason. */
function splitError(error: string): { reason: string; message: string } {
  const m = /^([A-Z][A-Z_]{2,}): ([\s\S]*)$/.exec(error);
  return m ? { reason: m[1]!, message: m[2]! } : { reason: "INGESTION_FAILED", message: error };
}

/**
 * One sweep: documents still QUEUED or PROCESSING whose job sits in the dead-letter queue are
 * marked FAILED (dead_lettered, with the last error). This is what guarantees that nothing
 * stays "processing" forever — also when the worker could not say so itself: on PGlite (its
 * only connection is inside the failed job's transaction) and when workers crashed on every
 * delivery, so the bus parked the job without running it again. Idempotent; cheap when no
 * document is pending (no DLQ read). Returns how many documents it failed.
 */
export async function sweepDeadLetters(o: DeadLetterSweepOptions): Promise<number> {
  // The sweep's regular tick also keeps the queue-depth gauge current for dashboards.
  const depth = await o.db.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM ingestion.documents WHERE status IN ('queued', 'processing')",
  );
  ingestionQueueDepth.set(depth.rows[0]?.n ?? 0);
  const pending = await o.documents.listPending(o.db, o.clock(), 1000);
  if (pending.length === 0) return 0;
  const letters = await o.deadLetters.list({ consumer: o.consumerName ?? INGESTION_CONSUMER, limit: 10_000 });
  if (letters.length === 0) return 0;
  const byJob = new Map<string, (typeof letters)[number]>();
  for (const l of letters) {
    const p = l.payload as QueuedPayload;
    if (typeof p?.tenantId !== "string" || typeof p.documentId !== "string") continue;
    byJob.set(`${p.tenantId}/${p.documentId}/${String(p.version)}`, l);
  }
  let failed = 0;
  for (const doc of pending) {
    const letter = byJob.get(`${doc.tenantId}/${doc.documentId}/${doc.version}`);
    if (!letter) continue;
    const { reason, message } = splitError(letter.error);
    const changed = await o.db.transaction((tx) =>
      recordOutcome(
        tx,
        o.aggregate,
        { tenantId: doc.tenantId, documentId: doc.documentId },
        {
          type: "FailIngestion",
          version: doc.version,
          reason,
          message,
          attempts: letter.deliveryCount,
          deadLettered: true,
          at: o.clock(),
        },
      ),
    );
    if (changed) {
      failed += 1;
      o.logger.warn({ documentId: doc.documentId, tenantId: doc.tenantId, reason }, "document failed: its job was dead-lettered");
    }
  }
  return failed;
}

/** The sweep as a periodic task (the kernel runs one sweep at a time). */
export function deadLetterSweepTask(o: DeadLetterSweepOptions & { intervalMs: number }): PeriodicTask {
  return { name: "dead-letter sweep", intervalMs: o.intervalMs, run: () => sweepDeadLetters(o) };
}
