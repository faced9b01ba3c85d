import type { JsonObject } from "@bufbuild/protobuf";
import { CorpusCreatedSchema, CorpusDeletedSchema, CorpusUpdatedSchema } from "../../../gen/nexus/events/v1/retrieval_events_pb.js";
import type { NewEvent } from "../../kernel/events/ports.js";
import { eventOf } from "../../kernel/events/protobuf-event.js";
import { registerEventTopics } from "../../kernel/events/topics.js";
import type { CorpusEvent, CorpusSettings } from "./corpus.js";

// CorpusDeleted is not in the kernel's table of known events yet.
registerEventTopics({ [CorpusDeletedSchema.typeName]: "retrieval.corpus_deleted" });

/** Stream id of a corpus's events. */
export function corpusStreamId(tenantId: string, corpusId: string): string {
  return `retrieval.corpus:${tenantId}/${corpusId}`;
}

const FIELD_NAMES: Record<keyof CorpusSettings, string | undefined> = {
  displayName: "display_name",
  description: "description",
  providerConfig: "provider_config",
  provider: undefined,
  topKDefault: undefined,
  embeddingModel: "embedding_model",
  embeddingDimensions: "embedding_dimensions",
};

function settingsJson(settings: Partial<CorpusSettings>): JsonObject {
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(settings) as Array<[keyof CorpusSettings, unknown]>) {
    const name = FIELD_NAMES[key];
    if (name !== undefined && value !== undefined) out[name] = value as JsonObject[string];
  }
  return out;
}

/** The published (protobuf) form of a corpus event. */
export function corpusEventToNew(tenantId: string, corpusId: string, event: CorpusEvent): NewEvent {
  switch (event.type) {
    case "CorpusCreated":
      return eventOf(CorpusCreatedSchema, {
        tenantId,
        corpusId,
        displayName: event.corpus.displayName,
        provider: event.corpus.provider,
        embeddingModel: event.corpus.embeddingModel,
        embeddingDimensions: event.corpus.embeddingDimensions,
      });
    case "CorpusUpdated":
      return eventOf(CorpusUpdatedSchema, {
        tenantId,
        corpusId,
        changedFields: event.changedFields,
        before: settingsJson(event.before),
        after: settingsJson(event.after),
        reindexRequired: event.reindexRequired,
      });
    case "CorpusDeleted":
      return eventOf(CorpusDeletedSchema, { tenantId, corpusId, documentsDeleted: BigInt(event.documentsDeleted) });
    default: {
      const _exhaustive: never = event;
      return _exhaustive;
    }
  }
}
