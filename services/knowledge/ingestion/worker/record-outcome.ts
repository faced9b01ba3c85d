import { executeInTransaction } from "../../../kernel/commands/index.js";
import type { Tx } from "../../../kernel/db/ports.js";
import type { DocumentCommand, DocumentState } from "../document.js";
import type { DocumentAggregate } from "../document-aggregate.js";
import { documentsIngested } from "../metrics.js";
import type { DocumentKey } from "../ports.js";

/** Actor recorded on events the pipeline appends. */
export const WORKER_ACTOR = "ingestion-worker";

/**
 * Applies a worker outcome (CompleteIngestion or FailIngestion) to a document inside `tx` —
 * the consumer's own transaction for the worker, so the outcome commits with the chunks and
 * the job's acknowledgement. Returns the new state, or undefined when the outcome is stale
 * (the version was superseded, deleted or already finished) and nothing changed.
 */
export async function recordOutcome(
  tx: Tx,
  aggregate: DocumentAggregate,
  key: DocumentKey,
  command: Extract<DocumentCommand, { type: "CompleteIngestion" | "FailIngestion" }>,
): Promise<DocumentState | undefined> {
  const result = await executeInTransaction(tx, aggregate, key, command, { metadata: { tenantId: key.tenantId, actor: WORKER_ACTOR } });
  if (result.events.length === 0) return undefined;
  const next = result.state;
  if (next && (next.status === "succeeded" || next.status === "failed")) documentsIngested.inc({ outcome: next.status });
  return next;
}
