import { pathToFileURL } from "node:url";
import { create } from "@bufbuild/protobuf";
import { CreateCorpusRequestSchema, SearchRequestSchema } from "../gen/nexus/retrieval/v1/retrieval_service_pb.js";
import { chunkText } from "../services/knowledge/ingestion/chunking/chunker.js";
import { buildSearchStatement, candidateCount } from "../services/knowledge/retrieval/adapters/postgres-search-index.js";
import { createPgChunkIndex } from "../services/knowledge/retrieval/adapters/postgres-chunk-index.js";
import { hashEmbedding } from "../services/knowledge/retrieval/embeddings/hash-embedder.js";
import { ensureVectorIndex } from "../services/knowledge/retrieval/migrations.js";
import { openBenchRag, percentiles, syntheticText } from "./rag-setup.js";

/**
 * Search benchmark (issue 4): Search p50/p95 over 50,000 chunks — the handler in this process:
 * tenant check, corpus lookup, query embedding (hash-256), hybrid SQL (HNSW cosine + full-text,
 * fused by RRF) and the response — against the raw SQL bound: the very same statement sent
 * straight to the database with a precomputed query vector, measured interleaved in the same
 * run. Printed as ratios. Target: Search p95 ≤ 1.3× the raw query.
 *
 * Backend: PGlite with pgvector (hybrid), or NEXUS_BENCH_DATABASE_URL (lexical-only).
 */
export interface SearchBenchOptions {
  /** Chunks in the corpus. Default 50 000. */
  chunks?: number;
  /** Measured queries (each run both ways). Default 300. */
  samples?: number;
  /** Unmeasured warm-up queries. Default 30. */
  warmup?: number;
  log?: (line: string) => void;
}

/** What {@link benchSearch} measured (milliseconds). */
export interface SearchBenchResult {
  chunks: number;
  raw: { p50: number; p95: number; mean: number };
  search: { p50: number; p95: number; mean: number };
  ratioP50: number;
  ratioP95: number;
}

/**
 * A query about something the corpus contains, as people ask: three words of one sentence of
 * some document (rare and common words alike), in another order.
 */
function queryOf(i: number, documents: number): string {
  const sentences = syntheticText(i % documents, 1200).split(/(?<=\.)\s+/).filter((x) => x.length > 40);
  const words = sentences[(i * 31) % sentences.length]!.replace(/[.\n]/g, "").toLowerCase().split(/\s+/);
  return [words[words.length - 1], words[1], words[Math.floor(words.length / 2)]].join(" ");
}

export async function benchSearch(options: SearchBenchOptions = {}): Promise<SearchBenchResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const total = options.chunks ?? 50_000;
  const samples = options.samples ?? 300;
  const warmup = options.warmup ?? 30;
  const rag = await openBenchRag({ workers: false });
  try {
    const { db, ctx, vectors } = rag;
    await rag.retrieval.createCorpus(create(CreateCorpusRequestSchema, { corpusId: "bench", displayName: "Bench" }), ctx);
    const loadStart = performance.now();
    const index = createPgChunkIndex({ vectors });
    // Bulk load without the HNSW index, then build it once (much faster than row by row).
    if (vectors) await db.exec("DROP INDEX IF EXISTS retrieval.chunks_hnsw_256");
    let loaded = 0;
    let documents = 0;
    for (let d = 0; loaded < total; d++, documents++) {
      const chunks = chunkText(syntheticText(d, 1200)).slice(0, total - loaded);
      await db.transaction((tx) =>
        index.replaceChunks(tx, {
          tenantId: "bench",
          corpusId: "bench",
          documentId: `doc-${d}`,
          version: 1n,
          filename: `doc-${d}.txt`,
          metadata: { shard: d % 10 },
          ...(vectors ? { embeddingModel: "hash-256", dimensions: 256 } : {}),
          chunks: chunks.map((c) => ({ ...c, ...(vectors ? { embedding: hashEmbedding(c.text, 256) } : {}) })),
        }),
      );
      loaded += chunks.length;
    }
    if (vectors) await db.transaction((tx) => ensureVectorIndex(tx, 256));
    await db.exec("ANALYZE retrieval.chunks");
    log(`search: ${loaded} chunks loaded in ${((performance.now() - loadStart) / 1000).toFixed(1)} s (${rag.backend})`);

    const raw = async (q: string) => {
      const statement = buildSearchStatement({
        tenantId: "bench",
        corpusId: "bench",
        text: q,
        topK: 5,
        ranking: vectors ? "hybrid" : "lexical",
        ...(vectors ? { vector: hashEmbedding(q, 256), model: "hash-256", dimensions: 256 } : {}),
      });
      const vector = statement; // precomputed outside the timed section below
      return vector;
    };
    const runRaw = async (statement: Awaited<ReturnType<typeof raw>>) =>
      db.transaction(async (tx) => {
        if (vectors) await tx.exec(`SET LOCAL hnsw.iterative_scan = relaxed_order; SET LOCAL hnsw.ef_search = ${Math.max(40, candidateCount(5))}`);
        return (await tx.query(statement.sql, statement.params)).rows.length;
      });
    const runSearch = async (q: string) => (await rag.retrieval.search(create(SearchRequestSchema, { corpusId: "bench", query: q, topK: 5 }), ctx)).hits.length;

    const rawTimes: number[] = [];
    const searchTimes: number[] = [];
    for (let i = 0; i < warmup + samples; i++) {
      const q = queryOf(i, documents);
      const statement = await raw(q);
      // Alternate which goes first so neither always profits from a warm cache.
      const order = i % 2 === 0 ? ["raw", "search"] : ["search", "raw"];
      for (const which of order) {
        const t0 = performance.now();
        const n = which === "raw" ? await runRaw(statement) : await runSearch(q);
        const ms = performance.now() - t0;
        if (n === 0) throw new Error(`query "${q}" found nothing`);
        if (i >= warmup) (which === "raw" ? rawTimes : searchTimes).push(ms);
      }
    }
    const r = percentiles(rawTimes);
    const s = percentiles(searchTimes);
    const result: SearchBenchResult = { chunks: loaded, raw: r, search: s, ratioP50: s.p50 / r.p50, ratioP95: s.p95 / r.p95 };
    const ms = (v: number) => `${v.toFixed(2)} ms`.padStart(9);
    log(`search: ${samples} queries, top_k 5, ${vectors ? "hybrid (HNSW + full-text, RRF)" : "lexical only"}`);
    log(`  raw SQL (same statement) p50 ${ms(r.p50)}   p95 ${ms(r.p95)}`);
    log(`  Search (handler)         p50 ${ms(s.p50)}   p95 ${ms(s.p95)}`);
    log(`  ratio Search / raw       p50 ${result.ratioP50.toFixed(2)}×   p95 ${result.ratioP95.toFixed(2)}×   (target p95 ≤ 1.3×: ${result.ratioP95 <= 1.3 ? "met" : "NOT met"})`);
    return result;
  } finally {
    await rag.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await benchSearch();
}
