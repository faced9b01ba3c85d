import type { JsonObject } from "@bufbuild/protobuf";
import type { Reason } from "../../kernel/errors.js";
import type { ChunkingSettings } from "./chunking/chunker.js";

/**
 * The document aggregate and its lifecycle: QUEUED → PROCESSING → SUCCEEDED | FAILED, and
 * back to QUEUED on overwrite or reindex (a new version). Pure domain logic: `decide(command,
 * state)` → events, `evolve(state, event)` → state; document-aggregate.ts hands both to the
 * kernel's command helper. PROCESSING and chunk progress are operational detail written by
 * the worker, not events.
 */

// ---------------------------------------------------------------- Events

/** Why a version was queued. */
export type QueueCause = "ingest" | "overwrite" | "reindex";

/** A version was queued for a worker. */
export interface DocumentQueued {
  type: "DocumentQueued";
  cause: QueueCause;
  version: bigint;
  corpusId: string;
  filename: string;
  mediaType: string;
  sizeBytes: number;
  contentSha256: string;
  metadata: JsonObject;
  chunking: ChunkingSettings;
  at: Date;
}

/** A version is searchable. */
export interface DocumentIngested {
  type: "DocumentIngested";
  version: bigint;
  chunkCount: number;
  attempts: number;
  at: Date;
}

/** A version failed for good (its previous chunks, if any, stay searchable). */
export interface DocumentFailed {
  type: "DocumentFailed";
  version: bigint;
  reason: string;
  message: string;
  attempts: number;
  deadLettered: boolean;
  at: Date;
}

/** The document and its chunks are gone. */
export interface DocumentDeleted {
  type: "DocumentDeleted";
  version: bigint;
  /** The corpus it belonged to (the published event names it; the state is gone). */
  corpusId: string;
}

/** Every document event. */
export type DocumentEvent = DocumentQueued | DocumentIngested | DocumentFailed | DocumentDeleted;

// ---------------------------------------------------------------- State

/** Lifecycle states. */
export type DocumentStatusName = "queued" | "processing" | "succeeded" | "failed";

/** A document as stored. */
export interface DocumentState {
  tenantId: string;
  documentId: string;
  corpusId: string;
  filename: string;
  mediaType: string;
  sizeBytes: number;
  contentSha256: string;
  metadata: JsonObject;
  status: DocumentStatusName;
  failureReason: string;
  failureMessage: string;
  version: bigint;
  /** Chunks of the searchable version (0 until the first success). */
  chunkCount: number;
  chunking: ChunkingSettings;
  attempts: number;
  deadLettered: boolean;
  progressDone: number;
  progressTotal: number;
  createdAt: Date;
  updatedAt: Date;
  queuedAt: Date;
  completedAt: Date | undefined;
}

/** True while a worker owns the document (queued or processing): no delete, no reindex. */
export function isBusy(state: DocumentState): boolean {
  return state.status === "queued" || state.status === "processing";
}

/** Applies one event. */
export function evolve(
  state: DocumentState | undefined,
  event: DocumentEvent,
  key?: { tenantId: string; documentId: string },
): DocumentState | undefined {
  switch (event.type) {
    case "DocumentQueued": {
      const base = state ?? {
        tenantId: key?.tenantId ?? "",
        documentId: key?.documentId ?? "",
        chunkCount: 0,
        createdAt: event.at,
      };
      return {
        tenantId: base.tenantId,
        documentId: base.documentId,
        chunkCount: base.chunkCount,
        createdAt: base.createdAt,
        corpusId: event.corpusId,
        filename: event.filename,
        mediaType: event.mediaType,
        sizeBytes: event.sizeBytes,
        contentSha256: event.contentSha256,
        metadata: event.metadata,
        status: "queued",
        failureReason: "",
        failureMessage: "",
        version: event.version,
        chunking: event.chunking,
        attempts: 0,
        deadLettered: false,
        progressDone: 0,
        progressTotal: 0,
        updatedAt: event.at,
        queuedAt: event.at,
        completedAt: undefined,
      };
    }
    case "DocumentIngested":
      if (!state) return state;
      return {
        ...state,
        status: "succeeded",
        chunkCount: event.chunkCount,
        attempts: Math.max(state.attempts, event.attempts),
        failureReason: "",
        failureMessage: "",
        deadLettered: false,
        progressDone: event.chunkCount,
        progressTotal: event.chunkCount,
        updatedAt: event.at,
        completedAt: event.at,
      };
    case "DocumentFailed":
      if (!state) return state;
      return {
        ...state,
        status: "failed",
        failureReason: event.reason,
        failureMessage: event.message,
        attempts: Math.max(state.attempts, event.attempts),
        deadLettered: event.deadLettered,
        updatedAt: event.at,
        completedAt: event.at,
      };
    case "DocumentDeleted":
      return undefined;
    default: {
      const _exhaustive: never = event;
      return _exhaustive;
    }
  }
}

// ---------------------------------------------------------------- Commands

/** Add content under a document id (new, same, or overwritten). */
export interface IngestDocument {
  type: "IngestDocument";
  corpusId: string;
  filename: string;
  mediaType: string;
  sizeBytes: number;
  contentSha256: string;
  metadata: JsonObject;
  overwrite: boolean;
  chunking: ChunkingSettings;
  at: Date;
}

/** Re-chunk and re-embed the stored content as a new version. */
export interface ReindexDocument {
  type: "ReindexDocument";
  chunking: ChunkingSettings;
  at: Date;
}

/** Remove the document and its chunks. */
export interface DeleteDocument {
  type: "DeleteDocument";
}

/**
 * Remove the document because its corpus is gone (a forced DeleteCorpus), whatever its
 * status: a worker that still holds it finds the corpus missing and stores nothing.
 */
export interface PurgeDocument {
  type: "PurgeDocument";
}

/** A worker finished a version. */
export interface CompleteIngestion {
  type: "CompleteIngestion";
  version: bigint;
  chunkCount: number;
  attempts: number;
  at: Date;
}

/** A worker (or the dead-letter sweeper) gave up on a version. */
export interface FailIngestion {
  type: "FailIngestion";
  version: bigint;
  reason: string;
  message: string;
  attempts: number;
  deadLettered: boolean;
  at: Date;
}

/** Every document command. */
export type DocumentCommand = IngestDocument | ReindexDocument | DeleteDocument | PurgeDocument | CompleteIngestion | FailIngestion;

/** What {@link decide} concluded. */
export type DocumentDecision =
  | { kind: "accepted"; events: DocumentEvent[] }
  /** Same id, same content, no overwrite: nothing to do, the document is returned as it is. */
  | { kind: "unchanged" }
  /** A worker's outcome for a version that is no longer current (superseded, deleted, done), or a purge of a document already gone. */
  | { kind: "stale" }
  | { kind: "rejected"; reason: Reason; message: string; metadata?: Record<string, string> };

const reject = (reason: Reason, message: string, metadata?: Record<string, string>): DocumentDecision => ({
  kind: "rejected",
  reason,
  message,
  ...(metadata ? { metadata } : {}),
});

function queued(
  state: DocumentState | undefined,
  cause: QueueCause,
  c: Omit<DocumentQueued, "type" | "cause" | "version">,
): DocumentQueued {
  return { type: "DocumentQueued", cause, version: (state?.version ?? 0n) + 1n, ...c };
}

/** Decides what a command means for a document in `state` (undefined: it does not exist). */
export function decide(command: DocumentCommand, state: DocumentState | undefined): DocumentDecision {
  switch (command.type) {
    case "IngestDocument": {
      const { type: _type, overwrite, ...content } = command;
      if (!state) return { kind: "accepted", events: [queued(state, "ingest", content)] };
      if (state.corpusId !== command.corpusId) {
        return reject("ALREADY_EXISTS", `document ${state.documentId} already exists in corpus ${state.corpusId}`, {
          document_id: state.documentId,
          corpus_id: state.corpusId,
        });
      }
      if (!overwrite) {
        if (state.contentSha256 === command.contentSha256) return { kind: "unchanged" };
        return reject("ALREADY_EXISTS", `document ${state.documentId} already exists with other content; set overwrite to replace it`, {
          document_id: state.documentId,
        });
      }
      return { kind: "accepted", events: [queued(state, "overwrite", content)] };
    }
    case "ReindexDocument": {
      if (!state) return reject("NOT_FOUND", "document not found");
      if (isBusy(state)) {
        return reject("DOCUMENT_BUSY", `document ${state.documentId} is ${state.status}; reindex it once it has finished`, {
          document_id: state.documentId,
          status: state.status,
        });
      }
      if (command.chunking.overlap >= command.chunking.size) {
        return reject("INVALID_ARGUMENT", "chunk_overlap must be less than chunk_size (defaults: 150 and 1200)", {
          field: "chunk_overlap",
        });
      }
      return {
        kind: "accepted",
        events: [
          queued(state, "reindex", {
            corpusId: state.corpusId,
            filename: state.filename,
            mediaType: state.mediaType,
            sizeBytes: state.sizeBytes,
            contentSha256: state.contentSha256,
            metadata: state.metadata,
            chunking: command.chunking,
            at: command.at,
          }),
        ],
      };
    }
    case "DeleteDocument": {
      if (!state) return reject("NOT_FOUND", "document not found");
      if (isBusy(state)) {
        return reject("DOCUMENT_BUSY", `document ${state.documentId} is ${state.status}; delete it once it has finished`, {
          document_id: state.documentId,
          status: state.status,
        });
      }
      return { kind: "accepted", events: [{ type: "DocumentDeleted", version: state.version, corpusId: state.corpusId }] };
    }
    case "PurgeDocument":
      if (!state) return { kind: "stale" };
      return { kind: "accepted", events: [{ type: "DocumentDeleted", version: state.version, corpusId: state.corpusId }] };
    case "CompleteIngestion": {
      if (!state || state.version !== command.version || state.status === "succeeded") return { kind: "stale" };
      const { type: _type, ...rest } = command;
      return { kind: "accepted", events: [{ type: "DocumentIngested", ...rest }] };
    }
    case "FailIngestion": {
      if (!state || state.version !== command.version || state.status === "succeeded") return { kind: "stale" };
      if (state.status === "failed" && state.failureReason === command.reason && state.deadLettered === command.deadLettered) {
        return { kind: "stale" };
      }
      const { type: _type, ...rest } = command;
      return { kind: "accepted", events: [{ type: "DocumentFailed", ...rest }] };
    }
    default: {
      const _exhaustive: never = command;
      return _exhaustive;
    }
  }
}
