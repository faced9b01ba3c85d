import type { Aggregate } from "../../kernel/commands/index.js";
import { domainError } from "../../kernel/errors.js";
import { streamVersion } from "../../kernel/events/event-store.js";
import { type CorpusCommand, type CorpusEvent, type CorpusState, decide, evolve } from "./corpus.js";
import { corpusEventToNew, corpusStreamId } from "./corpus-events.js";
import { ensureVectorIndex } from "./migrations.js";
import type { CorpusRepository } from "./ports.js";

/** A corpus's identity. */
export interface CorpusKey {
  tenantId: string;
  corpusId: string;
}

/**
 * The corpus aggregate as the kernel's command helper drives it. Its state is
 * `CorpusState | undefined`: a deleted corpus has none, and saving "none" deletes it.
 */
export type CorpusAggregate = Aggregate<CorpusState | undefined, CorpusEvent, CorpusCommand, CorpusKey>;

/**
 * The corpus aggregate over its repository. `load` locks the settings row (the index row and
 * its counters belong to the chunk index); `save` inserts, updates or deletes the corpus —
 * deleting removes its chunks too — and, with vectors, makes sure an HNSW index exists for
 * the corpus's dimensions. Refusals become domain errors naming the corpus.
 */
export function corpusAggregate(o: { corpora: CorpusRepository; vectors: boolean }): CorpusAggregate {
  return {
    streamId: (key) => corpusStreamId(key.tenantId, key.corpusId),
    async load(tx, key) {
      const state = await o.corpora.get(tx, key.tenantId, key.corpusId, "update");
      // A deleted corpus's stream goes on when its id is used again: the version is the stream's.
      return { state, version: await streamVersion(tx, corpusStreamId(key.tenantId, key.corpusId)) };
    },
    decide(command, state, key) {
      const decision = decide(command, state);
      if (decision.kind === "rejected") {
        throw domainError(decision.reason, decision.message, { corpus_id: key.corpusId, ...(decision.metadata ?? {}) });
      }
      return decision.events;
    },
    evolve: (state, event) => evolve(state, event),
    async save(tx, key, state, _expectedVersion, _version, before) {
      if (!state) {
        await o.corpora.delete(tx, key.tenantId, key.corpusId);
        return;
      }
      if (before) await o.corpora.update(tx, state);
      else await o.corpora.insert(tx, state);
      if (o.vectors) await ensureVectorIndex(tx, state.embeddingDimensions);
    },
    toEvent: (event, _state, key) => corpusEventToNew(key.tenantId, key.corpusId, event),
  };
}
