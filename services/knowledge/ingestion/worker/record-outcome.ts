import type { Tx } from "../../../kernel/db/ports.js";
import { appendToStream } from "../../../kernel/events/event-store.js";
import { decide, evolve, type DocumentCommand, type DocumentState } from "../document.js";
import { documentEventToNew, documentStreamId } from "../document-events.js";
import { documentsIngested } from "../metrics.js";
import type { DocumentKey, DocumentRepository } from "../ports.js";

/** Actor recorded on events the pipeline appends. */
export const WORKER_ACTOR = "ingestion-worker";

/**
 * Applies a worker outcome (CompleteIngestion or FailIngestion) to a document inside `tx`:
 * lock, decide, persist, append. Returns the new state, or undefined when the outcome is
 * stale (the version was superseded, deleted or already finished) and nothing changed.
 */
export async function recordOutcome(
  tx: Tx,
  documents: DocumentRepository,
  key: DocumentKey,
  command: Extract<DocumentCommand, { type: "CompleteIngestion" | "FailIngestion" }>,
): Promise<DocumentState | undefined> {
  const current = await documents.get(tx, key, "update");
  const decision = decide(command, current);
  if (decision.kind !== "accepted") return undefined;
  let next = current;
  for (const e of decision.events) next = evolve(next, e);
  await documents.update(tx, next!);
  await appendToStream(
    tx,
    documentStreamId(key.tenantId, key.documentId),
    "any",
    decision.events.map((e) => documentEventToNew(key.tenantId, key.documentId, e, current)),
    { metadata: { tenantId: key.tenantId, actor: WORKER_ACTOR } },
  );
  if (next && (next.status === "succeeded" || next.status === "failed")) documentsIngested.inc({ outcome: next.status });
  return next;
}
