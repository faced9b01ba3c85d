import { pathToFileURL } from "node:url";
import { IngestTextRequestSchema } from "../gen/nexus/ingestion/v1/ingestion_service_pb.js";
import { CreateCorpusRequestSchema } from "../gen/nexus/retrieval/v1/retrieval_service_pb.js";
import { create } from "@bufbuild/protobuf";
import { chunkText } from "../services/knowledge/ingestion/chunking/chunker.js";
import { createIngestionRuntime } from "../services/knowledge/ingestion/ingestion-runtime.js";
import { vectorLiteral } from "../services/knowledge/retrieval/adapters/postgres-chunk-index.js";
import { createEmbeddingModels } from "../services/knowledge/retrieval/embeddings/embedding-models.js";
import { hashEmbedding } from "../services/knowledge/retrieval/embeddings/hash-embedder.js";
import { openBenchRag, syntheticText } from "./rag-setup.js";
import { pino } from "pino";

/**
 * Ingestion benchmark (issue 4): chunks per second through the whole pipeline — the worker
 * takes queued documents off the bus, extracts, chunks, embeds (hash-256) and replaces each
 * document's chunks in one transaction with its status — against a raw batched INSERT of the
 * very same precomputed chunk rows (text + vector) into a table with the same columns and
 * indexes (GIN full-text, GIN metadata, HNSW), measured in the same run. Printed as a ratio.
 * Target: the pipeline reaches at least 50% of the raw insert bound.
 *
 * Backend: PGlite with pgvector (as `nexus dev`), or NEXUS_BENCH_DATABASE_URL (lexical-only).
 */
export interface IngestionBenchOptions {
  /** Documents ingested. Default 20. */
  documents?: number;
  /** Sentences per document (about 95 characters each: ~110 chunks a document). Default 1200. */
  sentences?: number;
  log?: (line: string) => void;
}

/** What {@link benchIngestion} measured. */
export interface IngestionBenchResult {
  chunks: number;
  rawChunksPerSecond: number;
  pipelineChunksPerSecond: number;
  ratio: number;
}

export async function benchIngestion(options: IngestionBenchOptions = {}): Promise<IngestionBenchResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const documents = options.documents ?? 20;
  const sentences = options.sentences ?? 1200;
  const rag = await openBenchRag({ workers: false });
  try {
    const { db, ctx } = rag;
    await rag.retrieval.createCorpus(create(CreateCorpusRequestSchema, { corpusId: "bench", displayName: "Bench" }), ctx);
    const texts = Array.from({ length: documents }, (_, i) => syntheticText(i, sentences));

    // Raw bound: the same rows, precomputed, INSERTed in batches into an identical table.
    await db.exec("CREATE SCHEMA IF NOT EXISTS bench_raw; CREATE TABLE bench_raw.chunks (LIKE retrieval.chunks INCLUDING ALL)");
    const rows = texts.flatMap((t, d) =>
      chunkText(t).map((c) => ({ doc: `doc-${d}`, ...c, vector: rag.vectors ? vectorLiteral(hashEmbedding(c.text, 256)) : undefined })),
    );
    const rawStart = performance.now();
    for (let i = 0; i < rows.length; i += 500) {
      const batch = rows.slice(i, i + 500);
      const cols = [batch.map((r) => r.doc), batch.map((r) => r.ordinal), batch.map((r) => r.charStart), batch.map((r) => r.charEnd), batch.map((r) => r.text)];
      if (rag.vectors) {
        await db.query(
          `INSERT INTO bench_raw.chunks (tenant_id, corpus_id, document_id, version, ordinal, char_start, char_end, text, filename, metadata, embedding_model, dims, embedding)
           SELECT 'bench', 'bench', u.d, 1, u.o, u.s, u.e, u.t, '', '{}'::jsonb, 'hash-256', 256, u.v::vector
           FROM unnest($1::text[], $2::int[], $3::int[], $4::int[], $5::text[], $6::text[]) AS u(d, o, s, e, t, v)`,
          [...cols, batch.map((r) => r.vector!)],
        );
      } else {
        await db.query(
          `INSERT INTO bench_raw.chunks (tenant_id, corpus_id, document_id, version, ordinal, char_start, char_end, text, filename, metadata, embedding_model, dims)
           SELECT 'bench', 'bench', u.d, 1, u.o, u.s, u.e, u.t, '', '{}'::jsonb, NULL, 0
           FROM unnest($1::text[], $2::int[], $3::int[], $4::int[], $5::text[]) AS u(d, o, s, e, t)`,
          cols,
        );
      }
    }
    const rawSeconds = (performance.now() - rawStart) / 1000;

    // Pipeline: queue every document (the API's part, not timed), then start a worker.
    for (const [i, text] of texts.entries()) {
      await rag.ingestion.handler.ingestText(create(IngestTextRequestSchema, { corpusId: "bench", documentId: `doc-${i}`, text }), ctx);
    }
    const worker = createIngestionRuntime({
      db,
      bus: rag.bus,
      logger: pino({ level: "silent" }),
      clock: () => new Date(),
      models: createEmbeddingModels(),
      vectors: rag.vectors,
      concurrency: 2,
    });
    const pipelineStart = performance.now();
    await worker.start();
    // One cheap count per 10 ms: the measurement should not compete with the worker.
    for (;;) {
      const { rows: counts } = await db.query<{ done: number; failed: number }>(
        "SELECT count(*) FILTER (WHERE status = 'succeeded')::int AS done, count(*) FILTER (WHERE status = 'failed')::int AS failed FROM ingestion.documents",
      );
      if ((counts[0]?.failed ?? 0) > 0) throw new Error("a benchmark document failed");
      if (counts[0]?.done === documents) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const pipelineSeconds = (performance.now() - pipelineStart) / 1000;
    await worker.stop();

    const result: IngestionBenchResult = {
      chunks: rows.length,
      rawChunksPerSecond: rows.length / rawSeconds,
      pipelineChunksPerSecond: rows.length / pipelineSeconds,
      ratio: rawSeconds / pipelineSeconds,
    };
    log(`ingestion: ${documents} documents, ${rows.length} chunks, ${rag.backend}${rag.vectors ? ", hash-256 vectors, HNSW" : ""}`);
    log(`  raw batched INSERT      ${result.rawChunksPerSecond.toFixed(0)} chunks/s`);
    log(`  ingestion pipeline      ${result.pipelineChunksPerSecond.toFixed(0)} chunks/s  (extract, chunk, embed, replace + status in one transaction, via the bus)`);
    log(`  ratio pipeline / raw    ${(result.ratio * 100).toFixed(0)}%   (target ≥ 50%: ${result.ratio >= 0.5 ? "met" : "NOT met"})`);
    return result;
  } finally {
    await rag.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await benchIngestion();
}
