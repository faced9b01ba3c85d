import type { JsonObject } from "@bufbuild/protobuf";
import type { Reason } from "../../kernel/errors.js";
import type { Provider, ProviderConfig } from "./provider-config.js";

/**
 * The corpus aggregate: a named collection of documents with its retrieval provider and
 * embedding model. Pure domain logic — `decide(command, state)` → events, `evolve(state,
 * event)` → state; the handler loads the state, persists the evolved state and appends the
 * events in one transaction.
 */

// ---------------------------------------------------------------- Events

/** A corpus came into being with these settings. */
export interface CorpusCreated {
  type: "CorpusCreated";
  corpus: CorpusState;
}

/** Settings changed (only the fields that really changed are listed). */
export interface CorpusUpdated {
  type: "CorpusUpdated";
  changedFields: UpdatableField[];
  before: Partial<CorpusSettings>;
  after: Partial<CorpusSettings>;
  /** The vectors no longer match the embedding settings: documents need a reindex. */
  reindexRequired: boolean;
  /** Model/dimensions search keeps using until the reindex is done. */
  searchModel: string;
  searchDimensions: number;
  at: Date;
}

/** The corpus is gone (with its documents when forced). */
export interface CorpusDeleted {
  type: "CorpusDeleted";
  documentsDeleted: number;
}

/** Every corpus event. */
export type CorpusEvent = CorpusCreated | CorpusUpdated | CorpusDeleted;

// ---------------------------------------------------------------- State

/** Settings a caller chooses. */
export interface CorpusSettings {
  displayName: string;
  description: string;
  /** Normalised `{"retrieval": {...}}`. */
  providerConfig: JsonObject;
  provider: Provider;
  topKDefault: number;
  embeddingModel: string;
  embeddingDimensions: number;
}

/** A corpus as stored. */
export interface CorpusState extends CorpusSettings {
  tenantId: string;
  corpusId: string;
  /** Model and dimensions of the searchable vectors (differ from the settings while a reindex is due). */
  searchModel: string;
  searchDimensions: number;
  reindexRequired: boolean;
  documentCount: number;
  chunkCount: number;
  createdAt: Date;
  updatedAt: Date;
}

/** Fields UpdateCorpus can change (update_mask paths). */
export type UpdatableField = "display_name" | "description" | "provider_config" | "embedding_model" | "embedding_dimensions";

/** Applies one event. */
export function evolve(state: CorpusState | undefined, event: CorpusEvent): CorpusState | undefined {
  switch (event.type) {
    case "CorpusCreated":
      return { ...event.corpus };
    case "CorpusUpdated":
      if (!state) return state;
      return {
        ...state,
        ...event.after,
        searchModel: event.searchModel,
        searchDimensions: event.searchDimensions,
        reindexRequired: event.reindexRequired,
        updatedAt: event.at,
      };
    case "CorpusDeleted":
      return undefined;
    default: {
      const _exhaustive: never = event;
      return _exhaustive;
    }
  }
}

// ---------------------------------------------------------------- Commands

/** Create a corpus. */
export interface CreateCorpus {
  type: "CreateCorpus";
  tenantId: string;
  corpusId: string;
  displayName: string;
  description: string;
  providerConfig: ProviderConfig;
  embeddingModel: string;
  embeddingDimensions: number;
  at: Date;
}

/** Change some settings. */
export interface UpdateCorpus {
  type: "UpdateCorpus";
  changes: {
    displayName?: string;
    description?: string;
    providerConfig?: ProviderConfig;
    embeddingModel?: string;
    embeddingDimensions?: number;
  };
  at: Date;
}

/** Delete a corpus; `force` also deletes its documents. */
export interface DeleteCorpus {
  type: "DeleteCorpus";
  force: boolean;
}

/** Every corpus command. */
export type CorpusCommand = CreateCorpus | UpdateCorpus | DeleteCorpus;

/** What {@link decide} concluded. */
export type CorpusDecision =
  | { kind: "accepted"; events: CorpusEvent[] }
  | { kind: "rejected"; reason: Reason; message: string; metadata?: Record<string, string> };

const reject = (reason: Reason, message: string, metadata?: Record<string, string>): CorpusDecision => ({
  kind: "rejected",
  reason,
  message,
  ...(metadata ? { metadata } : {}),
});

/** Decides what a command means for a corpus in `state` (undefined: it does not exist). */
export function decide(command: CorpusCommand, state: CorpusState | undefined): CorpusDecision {
  switch (command.type) {
    case "CreateCorpus": {
      if (state) return reject("ALREADY_EXISTS", `corpus ${command.corpusId} already exists`, { corpus_id: command.corpusId });
      const c = command;
      return {
        kind: "accepted",
        events: [
          {
            type: "CorpusCreated",
            corpus: {
              tenantId: c.tenantId,
              corpusId: c.corpusId,
              displayName: c.displayName,
              description: c.description,
              providerConfig: c.providerConfig.json,
              provider: c.providerConfig.provider,
              topKDefault: c.providerConfig.topKDefault,
              embeddingModel: c.embeddingModel,
              embeddingDimensions: c.embeddingDimensions,
              searchModel: c.embeddingModel,
              searchDimensions: c.embeddingDimensions,
              reindexRequired: false,
              documentCount: 0,
              chunkCount: 0,
              createdAt: c.at,
              updatedAt: c.at,
            },
          },
        ],
      };
    }
    case "UpdateCorpus": {
      if (!state) return reject("NOT_FOUND", "corpus not found");
      const ch = command.changes;
      const before: Partial<CorpusSettings> = {};
      const after: Partial<CorpusSettings> = {};
      const changed: UpdatableField[] = [];
      if (ch.displayName !== undefined && ch.displayName !== state.displayName) {
        changed.push("display_name");
        before.displayName = state.displayName;
        after.displayName = ch.displayName;
      }
      if (ch.description !== undefined && ch.description !== state.description) {
        changed.push("description");
        before.description = state.description;
        after.description = ch.description;
      }
      if (ch.providerConfig && JSON.stringify(ch.providerConfig.json) !== JSON.stringify(state.providerConfig)) {
        changed.push("provider_config");
        before.providerConfig = state.providerConfig;
        before.provider = state.provider;
        before.topKDefault = state.topKDefault;
        after.providerConfig = ch.providerConfig.json;
        after.provider = ch.providerConfig.provider;
        after.topKDefault = ch.providerConfig.topKDefault;
      }
      if (ch.embeddingModel !== undefined && ch.embeddingModel !== state.embeddingModel) {
        changed.push("embedding_model");
        before.embeddingModel = state.embeddingModel;
        after.embeddingModel = ch.embeddingModel;
      }
      if (ch.embeddingDimensions !== undefined && ch.embeddingDimensions !== state.embeddingDimensions) {
        changed.push("embedding_dimensions");
        before.embeddingDimensions = state.embeddingDimensions;
        after.embeddingDimensions = ch.embeddingDimensions;
      }
      if (changed.length === 0) return { kind: "accepted", events: [] };
      const model = after.embeddingModel ?? state.embeddingModel;
      const dims = after.embeddingDimensions ?? state.embeddingDimensions;
      const vectorsMatch = model === state.searchModel && dims === state.searchDimensions;
      // With no chunks there is nothing to re-embed: search switches to the new model at once.
      const empty = state.chunkCount === 0;
      const reindexRequired = !vectorsMatch && !empty;
      return {
        kind: "accepted",
        events: [
          {
            type: "CorpusUpdated",
            changedFields: changed,
            before,
            after,
            reindexRequired,
            searchModel: reindexRequired ? state.searchModel : model,
            searchDimensions: reindexRequired ? state.searchDimensions : dims,
            at: command.at,
          },
        ],
      };
    }
    case "DeleteCorpus": {
      if (!state) return reject("NOT_FOUND", "corpus not found");
      if (state.documentCount > 0 && !command.force) {
        return reject(
          "FAILED_PRECONDITION",
          `corpus ${state.corpusId} has ${state.documentCount} document(s); delete them first or pass force to delete them with it`,
          { corpus_id: state.corpusId, document_count: String(state.documentCount) },
        );
      }
      return { kind: "accepted", events: [{ type: "CorpusDeleted", documentsDeleted: state.documentCount }] };
    }
    default: {
      const _exhaustive: never = command;
      return _exhaustive;
    }
  }
}
