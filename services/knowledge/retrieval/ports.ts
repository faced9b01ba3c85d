import type { JsonObject } from "@bufbuild/protobuf";
import type { Database, Queryable, Tx } from "../../kernel/db/ports.js";
import type { AccessFilter } from "./adapters/postgres-document-access.js";
import type { CorpusState } from "./corpus.js";

/** Corpora as stored (`retrieval.corpora`). */
export interface CorpusRepository {
  /** One corpus of a tenant; `lock` takes a row lock until the transaction ends. */
  get(q: Queryable, tenantId: string, corpusId: string, lock?: "update" | "share"): Promise<CorpusState | undefined>;
  /** A page of the tenant's corpora, oldest first, after position `afterSeq`. */
  list(q: Queryable, tenantId: string, page: { afterSeq?: bigint; limit: number }): Promise<Array<{ seq: bigint; corpus: CorpusState }>>;
  insert(tx: Tx, corpus: CorpusState): Promise<void>;
  update(tx: Tx, corpus: CorpusState): Promise<void>;
  /** Deletes the corpus and every chunk of it. */
  delete(tx: Tx, tenantId: string, corpusId: string): Promise<void>;
}

/** Embedding settings a worker needs to index a document of a corpus. */
export interface CorpusEmbedding {
  corpusId: string;
  embeddingModel: string;
  embeddingDimensions: number;
}

/** One chunk of a document version, ready to store. */
export interface ChunkRecord {
  ordinal: number;
  /** Offsets in Unicode code points of the document's extracted text. */
  charStart: number;
  charEnd: number;
  text: string;
  /** Unit vector; absent in lexical-only mode. */
  embedding?: Float32Array;
}

/** Input of {@link ChunkIndex.replaceChunks}. */
export interface ReplaceChunksInput {
  tenantId: string;
  corpusId: string;
  documentId: string;
  version: bigint;
  filename: string;
  metadata: JsonObject;
  /** Model and dimensions of the embeddings (absent: no vectors). */
  embeddingModel?: string;
  dimensions?: number;
  chunks: readonly ChunkRecord[];
  /** Called after each stored batch with the number of chunks stored so far. */
  onBatch?: (stored: number) => Promise<void> | void;
}

/**
 * The chunk index as the ingestion role writes it: always inside the caller's transaction,
 * so replacing a document's chunks and flipping its status commit together. This is the only
 * code that writes `retrieval.chunks` and the corpus counters.
 */
export interface ChunkIndex {
  /** True when chunks carry vectors (pgvector present and lexical-only mode off). */
  readonly vectors: boolean;
  /** The corpus's embedding settings, without locking (read before long work). */
  lookupCorpusSettings(q: Queryable, tenantId: string, corpusId: string): Promise<CorpusEmbedding | undefined>;
  /**
   * The corpus's embedding settings, with a share lock on its row until the transaction ends
   * (a concurrent DeleteCorpus waits); undefined when it does not exist.
   */
  lookupCorpus(tx: Tx, tenantId: string, corpusId: string): Promise<CorpusEmbedding | undefined>;
  /** Adds `delta` to the corpus's document count. */
  adjustDocumentCount(tx: Tx, tenantId: string, corpusId: string, delta: number): Promise<void>;
  /**
   * Replaces every chunk of the document by the given version's chunks and updates the
   * corpus's chunk count; when no chunk of the corpus has stale vectors any more, the corpus's
   * pending reindex is complete.
   */
  replaceChunks(tx: Tx, input: ReplaceChunksInput): Promise<void>;
  /** Deletes every chunk of a document; returns how many there were. */
  deleteDocumentChunks(tx: Tx, tenantId: string, corpusId: string, documentId: string): Promise<number>;
}

/** Which rankings a search runs. */
export type SearchRanking = "hybrid" | "vector" | "lexical";

/** A search as the index runs it. */
export interface SearchQuery {
  tenantId: string;
  corpusId: string;
  text: string;
  topK: number;
  ranking: SearchRanking;
  /** The query's vector (hybrid and vector rankings). */
  vector?: Float32Array;
  /** Model and dimensions of the vectors to compare with. */
  model?: string;
  dimensions?: number;
  documentIds?: readonly string[];
  metadataEquals?: JsonObject;
  /**
   * Who is reading, for which actions, under which policies: documents they may not read are
   * never ranked (compiled policies in the SQL; residual ones decided per candidate).
   */
  access?: AccessFilter;
  /** Filled with the documents residual policies withheld from the hits (document id → rule). */
  withheld?: Map<string, string>;
}

/** One hit. */
export interface ChunkHit {
  documentId: string;
  version: bigint;
  ordinal: number;
  charStart: number;
  charEnd: number;
  text: string;
  filename: string;
  metadata: JsonObject;
  vectorScore?: number;
  lexicalScore?: number;
  fusedScore: number;
}

/** Hybrid search over the chunk index, always scoped by tenant and corpus in SQL. */
export interface SearchIndex {
  search(db: Database, query: SearchQuery): Promise<ChunkHit[]>;
}
