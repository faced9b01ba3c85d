import { create } from "@bufbuild/protobuf";
import { DurationSchema, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  DocumentDeletedSchema,
  DocumentFailedSchema,
  DocumentIngestedSchema,
  DocumentQueuedSchema,
  QueueReason,
} from "../../../gen/nexus/events/v1/ingestion_events_pb.js";
import {
  ChunkingOptionsSchema,
  type Document,
  DocumentProgressSchema,
  DocumentSchema,
  DocumentStatus,
} from "../../../gen/nexus/ingestion/v1/document_pb.js";
import type { NewEvent } from "../../kernel/events/ports.js";
import { eventOf } from "../../kernel/events/protobuf-event.js";
import type { DocumentEvent, DocumentState, DocumentStatusName, QueueCause } from "./document.js";

/** Stream id of a document's events. */
export function documentStreamId(tenantId: string, documentId: string): string {
  return `ingestion.document:${tenantId}/${documentId}`;
}

const QUEUE_REASONS: Record<QueueCause, QueueReason> = {
  ingest: QueueReason.INGEST,
  overwrite: QueueReason.OVERWRITE,
  reindex: QueueReason.REINDEX,
};

/**
 * The published (protobuf) form of a document event; `after` is the document once the event
 * applied (undefined after a deletion). Outcomes change neither corpus nor queue time, so the
 * state after them still has both.
 */
export function documentEventToNew(tenantId: string, documentId: string, event: DocumentEvent, after: DocumentState | undefined): NewEvent {
  switch (event.type) {
    case "DocumentQueued":
      return eventOf(DocumentQueuedSchema, {
        tenantId,
        corpusId: event.corpusId,
        documentId,
        version: event.version,
        reason: QUEUE_REASONS[event.cause],
        filename: event.filename,
        mediaType: event.mediaType,
        sizeBytes: BigInt(event.sizeBytes),
        contentSha256: event.contentSha256,
        chunking: create(ChunkingOptionsSchema, { chunkSize: event.chunking.size, chunkOverlap: event.chunking.overlap }),
      });
    case "DocumentIngested": {
      const ms = after ? Math.max(0, event.at.getTime() - after.queuedAt.getTime()) : 0;
      return eventOf(DocumentIngestedSchema, {
        tenantId,
        corpusId: after?.corpusId ?? "",
        documentId,
        version: event.version,
        chunkCount: event.chunkCount,
        attempts: event.attempts,
        duration: create(DurationSchema, { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 }),
      });
    }
    case "DocumentFailed":
      return eventOf(DocumentFailedSchema, {
        tenantId,
        corpusId: after?.corpusId ?? "",
        documentId,
        version: event.version,
        failureReason: event.reason,
        failureMessage: event.message,
        attempts: event.attempts,
        deadLettered: event.deadLettered,
      });
    case "DocumentDeleted":
      return eventOf(DocumentDeletedSchema, { tenantId, corpusId: event.corpusId, documentId, version: event.version });
    default: {
      const _exhaustive: never = event;
      return _exhaustive;
    }
  }
}

const STATUS: Record<DocumentStatusName, DocumentStatus> = {
  queued: DocumentStatus.QUEUED,
  processing: DocumentStatus.PROCESSING,
  succeeded: DocumentStatus.SUCCEEDED,
  failed: DocumentStatus.FAILED,
};

const STATUS_NAMES: Partial<Record<DocumentStatus, DocumentStatusName>> = {
  [DocumentStatus.QUEUED]: "queued",
  [DocumentStatus.PROCESSING]: "processing",
  [DocumentStatus.SUCCEEDED]: "succeeded",
  [DocumentStatus.FAILED]: "failed",
};

/** API status → stored status name (undefined for UNSPECIFIED). */
export function statusName(status: DocumentStatus): DocumentStatusName | undefined {
  return STATUS_NAMES[status];
}

/** Live progress of a version being processed, when the worker runs in this process. */
export interface LiveProgress {
  version: bigint;
  done: number;
  total: number;
}

/** Document state → API message; `live` overlays in-process progress (embedded mode). */
export function documentMessage(d: DocumentState, live?: LiveProgress): Document {
  const processing = d.status === "processing" || (live !== undefined && live.version === d.version && d.status === "queued");
  const progress = live && live.version === d.version ? live : { done: d.progressDone, total: d.progressTotal };
  return create(DocumentSchema, {
    id: d.documentId,
    tenantId: d.tenantId,
    corpusId: d.corpusId,
    filename: d.filename,
    mediaType: d.mediaType,
    sizeBytes: BigInt(d.sizeBytes),
    contentSha256: d.contentSha256,
    metadata: d.metadata,
    status: processing ? DocumentStatus.PROCESSING : STATUS[d.status],
    failureReason: d.status === "failed" ? d.failureReason : "",
    failureMessage: d.status === "failed" ? d.failureMessage : "",
    version: d.version,
    chunkCount: d.chunkCount,
    ...(processing ? { progress: create(DocumentProgressSchema, { chunksDone: progress.done, chunksTotal: progress.total }) } : {}),
    chunking: create(ChunkingOptionsSchema, { chunkSize: d.chunking.size, chunkOverlap: d.chunking.overlap }),
    attempts: d.attempts,
    deadLettered: d.deadLettered,
    createdAt: timestampFromDate(d.createdAt),
    updatedAt: timestampFromDate(d.updatedAt),
    queuedAt: timestampFromDate(d.queuedAt),
    ...(d.completedAt && (d.status === "succeeded" || d.status === "failed") ? { completedAt: timestampFromDate(d.completedAt) } : {}),
  });
}
