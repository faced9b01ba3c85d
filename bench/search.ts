import { pathToFileURL } from "node:url";
import { create } from "@bufbuild/protobuf";
import { CreateCorpusRequestSchema, SearchMode, SearchRequestSchema } from "../gen/nexus/retrieval/v1/retrieval_service_pb.js";
import type { Queryable } from "../services/kernel/db/ports.js";
import { chunkText } from "../services/knowledge/ingestion/chunking/chunker.js";
import { vectorLiteral } from "../services/knowledge/retrieval/adapters/postgres-chunk-index.js";
import { readerOf } from "../services/knowledge/retrieval/adapters/postgres-document-access.js";
import { buildSearchStatement, efSearchFor, type SearchStatement } from "../services/knowledge/retrieval/adapters/postgres-search-index.js";
import { hashEmbedding } from "../services/knowledge/retrieval/embeddings/hash-embedder.js";
import { ensureVectorIndex } from "../services/knowledge/retrieval/migrations.js";
import {
  type BenchBackend,
  type BenchRag,
  benchPrincipal,
  openBenchRag,
  type Percentiles,
  percentiles,
  syntheticText,
} from "./rag-setup.js";
import type { BenchOutcome, BenchRatio } from "./results.js";

/**
 * Search benchmark (issues 4 and 11), on PGlite + pgvector (`nexus dev`) or PostgreSQL +
 * pgvector (production), over a synthetic corpus of `chunks` chunks:
 *
 * - load: deterministic synthetic prose, chunked by the real chunker, hash-256 embeddings,
 *   written with multi-row INSERTs (2,000 rows a statement) while the secondary indexes are
 *   dropped, then the full-text and metadata indexes rebuilt — a bulk load, not the pipeline
 *   (the ingestion benchmark measures that);
 * - HNSW build: the production partial index (`chunks_hnsw_256`, cosine, m 16,
 *   ef_construction 64) built once with CREATE INDEX, timed;
 * - recall@10 of the vector ranking through HNSW (the production statement and settings:
 *   iterative scan, ef_search = efSearchFor(top_k), the NEXUS_SEARCH_EF_SEARCH default) against exact search — the same statement
 *   with index scans off, which the plan check confirms is a sequential scan;
 * - latency, p50/p95, of the Search handler (tenant check, corpus lookup, query embedding,
 *   SQL, response) in hybrid and vector mode, each against the raw SQL bound: the very same
 *   statement sent straight to the database with a precomputed query vector, interleaved in
 *   the same run. Target: hybrid Search p95 ≤ 1.3× the raw query.
 */
export interface SearchBenchOptions {
  backend?: BenchBackend;
  /** Chunks in the corpus. Default 50 000. */
  chunks?: number;
  /** Measured queries per mode (each run both ways). Default 300. */
  samples?: number;
  /** Unmeasured warm-up queries per mode. Default 30. */
  warmup?: number;
  /** Queries of the recall measurement. Default 100. */
  recallQueries?: number;
  /**
   * maintenance_work_mem of the HNSW build (PostgreSQL only). Default "1GB": the graph of
   * 200k 256-dimension vectors does not fit the server default of 64 MB, and a build that
   * spills is several times slower. The value is set for the building session only.
   */
  maintenanceWorkMem?: string;
  log?: (line: string) => void;
}

/** Handler vs raw SQL latency of one ranking mode (milliseconds). */
export interface ModeLatency {
  raw: Percentiles;
  search: Percentiles;
  ratioP50: number;
  ratioP95: number;
}

/** What {@link benchSearch} measured. */
export interface SearchBenchResult {
  backend: string;
  chunks: number;
  documents: number;
  /** Bulk load (multi-row INSERT, secondary indexes dropped), seconds. */
  loadSeconds: number;
  /** Rebuilding the full-text and metadata indexes after the load, seconds. */
  secondaryIndexSeconds: number;
  /** CREATE INDEX of the HNSW index, seconds. */
  hnswBuildSeconds: number;
  /** Session settings of the build (PostgreSQL); PGlite uses its defaults. */
  hnswBuildSettings: Record<string, string>;
  /** Document access filtering vs none (issue 16). */
  access: AccessLatency;
  recall: {
    queries: number;
    /** Mean share of the exact top 10 (ties at the 10th distance count) that HNSW returned. */
    recallAt10: number;
    /** Smallest per-query recall. */
    minRecallAt10: number;
    /** Rows the HNSW statement returned per query (10 unless the scan ran dry). */
    meanRowsReturned: number;
    /** Mean of (cosine distance of HNSW's 10th) / (distance of the exact 10th): 1.00 = as close. */
    tenthDistanceRatio: number;
    efSearch: number;
    /** The plan check: the HNSW statement uses the index, the exact one does not. */
    hnswPlanUsesIndex: boolean;
    exactPlanUsesIndex: boolean;
    hnsw: Percentiles;
    exact: Percentiles;
    /** Recall@10 and HNSW p50 (ms) at the production ef_search and larger ones, same queries. */
    efSweep: { efSearch: number; recallAt10: number; p50: number }[];
  };
  hybrid: ModeLatency;
  vector: ModeLatency;
  /** Kept for readers of issue 4's numbers: the hybrid ratios. */
  ratioP50: number;
  ratioP95: number;
}

/**
 * A query about something the corpus contains, as people ask: three words of one sentence of
 * some document (rare and common words alike), in another order.
 */
function queryOf(i: number, documents: number): string {
  const sentences = syntheticText(i % documents, 1200)
    .split(/(?<=\.)\s+/)
    .filter((x) => x.length > 40);
  const words = sentences[(i * 31) % sentences.length]!.replace(/[.\n]/g, "").toLowerCase().split(/\s+/);
  return [words[words.length - 1], words[1], words[Math.floor(words.length / 2)]].join(" ");
}

const TENANT = "bench";
const CORPUS = "bench";
const MODEL = "hash-256";
const DIMS = 256;
const HNSW_INDEX = `chunks_hnsw_${DIMS}`;
const LOAD_BATCH = 2_000;

/** Rows of one bulk INSERT: column arrays for `unnest`. */
interface Batch {
  docs: string[];
  ordinals: number[];
  starts: number[];
  ends: number[];
  texts: string[];
  filenames: string[];
  metadata: string[];
  vectors: string[];
}

const emptyBatch = (): Batch => ({ docs: [], ordinals: [], starts: [], ends: [], texts: [], filenames: [], metadata: [], vectors: [] });

async function insertBatch(db: Queryable, b: Batch, vectors: boolean): Promise<void> {
  await db.query(
    `INSERT INTO retrieval.chunks (tenant_id, corpus_id, document_id, version, ordinal, char_start, char_end, text, filename, metadata, embedding_model, dims${vectors ? ", embedding" : ""})
     SELECT '${TENANT}', '${CORPUS}', u.d, 1, u.o, u.s, u.e, u.t, u.f, u.m::jsonb, ${vectors ? `'${MODEL}', ${DIMS}, u.v::vector` : "NULL, 0"}
     FROM unnest($1::text[], $2::int[], $3::int[], $4::int[], $5::text[], $6::text[], $7::text[]${vectors ? ", $8::text[]" : ""}) AS u(d, o, s, e, t, f, m${vectors ? ", v" : ""})`,
    [b.docs, b.ordinals, b.starts, b.ends, b.texts, b.filenames, b.metadata, ...(vectors ? [b.vectors] : [])],
  );
}

/**
 * Bulk-loads `total` synthetic chunks: drops the secondary indexes (their definitions are read
 * from the catalog first, so they come back exactly as migrated), INSERTs, rebuilds the
 * full-text and metadata ones. The HNSW index is left for the caller to build and time.
 * The next batch is generated while the previous ones are being written.
 */
async function bulkLoad(rag: BenchRag, total: number): Promise<{ documents: number; loadSeconds: number; secondaryIndexSeconds: number }> {
  const { db, vectors } = rag;
  const { rows: indexes } = await db.query<{ indexname: string; indexdef: string }>(
    "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'retrieval' AND tablename = 'chunks' AND indexname <> 'chunks_pkey'",
  );
  for (const i of indexes) await db.exec(`DROP INDEX retrieval."${i.indexname}"`);
  const start = performance.now();
  let loaded = 0;
  let documents = 0;
  let batch = emptyBatch();
  // Two statements in flight on PostgreSQL (a pool), one on PGlite (one connection).
  const inFlight: Promise<void>[] = [];
  const maxInFlight = db.dialect === "postgres" ? 2 : 1;
  for (let d = 0; loaded < total; d++, documents++) {
    const chunks = chunkText(syntheticText(d, 1200)).slice(0, total - loaded);
    for (const c of chunks) {
      batch.docs.push(`doc-${d}`);
      batch.ordinals.push(c.ordinal);
      batch.starts.push(c.charStart);
      batch.ends.push(c.charEnd);
      batch.texts.push(c.text);
      batch.filenames.push(`doc-${d}.txt`);
      batch.metadata.push(`{"shard":${d % 10},"sensitivity":"${d % 5 === 0 ? "secret" : "internal"}"}`);
      if (vectors) batch.vectors.push(vectorLiteral(hashEmbedding(c.text, DIMS)));
      if (batch.docs.length === LOAD_BATCH) {
        const full = batch;
        batch = emptyBatch();
        if (inFlight.length === maxInFlight) await inFlight.shift();
        inFlight.push(insertBatch(db, full, vectors));
      }
    }
    loaded += chunks.length;
  }
  await Promise.all(inFlight);
  if (batch.docs.length > 0) await insertBatch(db, batch, vectors);
  await db.query("UPDATE retrieval.corpus_index SET chunk_count = $3, document_count = $4 WHERE tenant_id = $1 AND corpus_id = $2", [
    TENANT,
    CORPUS,
    loaded,
    documents,
  ]);
  const loadSeconds = (performance.now() - start) / 1000;
  const rebuild = performance.now();
  for (const i of indexes) if (i.indexname !== HNSW_INDEX) await db.exec(i.indexdef);
  return { documents, loadSeconds, secondaryIndexSeconds: (performance.now() - rebuild) / 1000 };
}

/** Whether the plan of `statement` (run with `settings` first) scans the HNSW index. */
async function planUsesHnsw(rag: BenchRag, settings: string, statement: SearchStatement): Promise<boolean> {
  return rag.db.transaction(async (tx) => {
    await tx.exec(settings);
    const { rows } = await tx.query<Record<string, unknown>>(`EXPLAIN (FORMAT JSON) ${statement.sql}`, statement.params);
    return JSON.stringify(rows).includes(HNSW_INDEX);
  });
}

/** What the document access measurement found (hybrid statement, top_k 5). */
export interface AccessLatency {
  grants: number;
  restrictedDocuments: number;
  unfiltered: Percentiles;
  filtered: Percentiles;
  ratioP95: number;
}

/**
 * Search p95 with document access filtering vs without, in the same run: 1,000 grants (users,
 * groups and roles) over every other document (restricted), the reader in some of the groups,
 * and two enabled Cedar policies compiled into SQL (a forbid on the `sensitivity` label, which a
 * fifth of the documents carry as "secret", and a forbid on a corpus); the same hybrid statement
 * with and without the reader's access condition, interleaved.
 */
async function measureAccess(rag: BenchRag, documents: number, samples: number, warmup: number): Promise<AccessLatency> {
  const { db } = rag;
  const GRANTS = 1_000;
  const restricted = Math.max(1, Math.floor(documents / 2));
  await db.transaction(async (tx) => {
    for (let i = 0; i < restricted; i++) {
      await tx.query("INSERT INTO retrieval.document_access (tenant_id, document_id, restricted, version) VALUES ($1, $2, true, 1)", [
        TENANT,
        `doc-${i * 2}`,
      ]);
    }
    for (let g = 0; g < GRANTS; g++) {
      const kind = g % 3 === 0 ? "user" : g % 3 === 1 ? "group" : "role";
      const grantee = kind === "user" ? `u-${g}` : kind === "group" ? `g-${g}` : (["admin", "editor", "owner"][g % 3] ?? "admin");
      await tx.query(
        "INSERT INTO retrieval.document_grants (tenant_id, document_id, grantee_kind, grantee) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        [TENANT, `doc-${(g % restricted) * 2}`, kind, grantee],
      );
    }
  });
  await db.exec("ANALYZE retrieval.document_access; ANALYZE retrieval.document_grants");
  const reader = { userId: "u-9", keyId: "user:u-9", role: "viewer" as const, groups: ["g-1", "g-4"], roles: ["viewer"] };
  // Two enabled Cedar policies the compiler turns into SQL (a label forbid and a corpus forbid).
  const policies = [
    `forbid(principal, action, resource) when { resource.labels has sensitivity && resource.labels.sensitivity == "secret" } unless { principal in Group::"legal" || principal.role == "owner" };`,
    `forbid(principal, action in [Action::"Search", Action::"Run"], resource in Corpus::"archive");`,
  ].map((text, i) => ({ policyId: `p-${i}`, version: 1, text, description: "", enabled: true, updatedAt: new Date() }));
  const access = { reader, actions: ["Search" as const], context: { policies, defaultDeny: false } };
  const statement = (q: string, filtered: boolean) =>
    buildSearchStatement({
      tenantId: TENANT,
      corpusId: CORPUS,
      text: q,
      topK: 5,
      ranking: "hybrid",
      vector: hashEmbedding(q, DIMS),
      model: MODEL,
      dimensions: DIMS,
      ...(filtered ? { access } : {}),
    });
  const run = (s: SearchStatement) =>
    db.transaction(async (tx) => {
      await tx.exec(`SET LOCAL hnsw.iterative_scan = relaxed_order; SET LOCAL hnsw.ef_search = ${efSearchFor(5)}`);
      return (await tx.query(s.sql, s.params)).rows.length;
    });
  const times = { filtered: [] as number[], unfiltered: [] as number[] };
  for (let i = 0; i < warmup + samples; i++) {
    const q = queryOf(i, documents);
    const both = { filtered: statement(q, true), unfiltered: statement(q, false) };
    for (const which of i % 2 === 0 ? (["filtered", "unfiltered"] as const) : (["unfiltered", "filtered"] as const)) {
      const t0 = performance.now();
      await run(both[which]);
      if (i >= warmup) times[which].push(performance.now() - t0);
    }
  }
  const filtered = percentiles(times.filtered);
  const unfiltered = percentiles(times.unfiltered);
  const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM retrieval.document_grants WHERE tenant_id = $1", [TENANT]);
  return { grants: rows[0]?.n ?? 0, restrictedDocuments: restricted, filtered, unfiltered, ratioP95: filtered.p95 / unfiltered.p95 };
}

/** Runs the search benchmark; see the module comment. */
export async function benchSearch(options: SearchBenchOptions = {}): Promise<SearchBenchResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const total = options.chunks ?? 50_000;
  const samples = options.samples ?? 300;
  const warmup = options.warmup ?? 30;
  const recallQueries = options.recallQueries ?? 100;
  const rag = await openBenchRag({ workers: false, ...(options.backend ? { backend: options.backend } : {}) });
  try {
    const { db, ctx, vectors } = rag;
    if (!vectors) throw new Error(`${rag.backend}: the search benchmark needs pgvector`);
    await rag.retrieval.createCorpus(create(CreateCorpusRequestSchema, { corpusId: CORPUS, displayName: "Bench" }), ctx);
    const { documents, loadSeconds, secondaryIndexSeconds } = await bulkLoad(rag, total);
    log(
      `search: ${total} chunks (${documents} documents) loaded in ${loadSeconds.toFixed(1)} s, full-text + metadata indexes in ${secondaryIndexSeconds.toFixed(1)} s (${rag.backend})`,
    );

    const hnswBuildSettings: Record<string, string> =
      db.dialect === "postgres" ? { maintenance_work_mem: options.maintenanceWorkMem ?? "1GB" } : {};
    const buildStart = performance.now();
    await db.transaction(async (tx) => {
      for (const [k, v] of Object.entries(hnswBuildSettings)) await tx.query(`SELECT set_config($1, $2, true)`, [k, v]);
      await ensureVectorIndex(tx, DIMS);
    });
    const hnswBuildSeconds = (performance.now() - buildStart) / 1000;
    if (db.dialect === "postgres") {
      const { rows } = await db.query<{ workers: string }>("SELECT current_setting('max_parallel_maintenance_workers') AS workers");
      hnswBuildSettings.max_parallel_maintenance_workers = rows[0]?.workers ?? "?";
    }
    await db.exec("ANALYZE retrieval.chunks");
    log(`  HNSW build (CREATE INDEX, m 16, ef_construction 64)  ${hnswBuildSeconds.toFixed(1)} s  ${JSON.stringify(hnswBuildSettings)}`);

    // Recall@10: the production vector statement through HNSW vs the same statement exact.
    const efSearch = efSearchFor(10);
    const hnswSettings = `SET LOCAL hnsw.iterative_scan = relaxed_order; SET LOCAL hnsw.ef_search = ${efSearch}`;
    const exactSettings = "SET LOCAL enable_indexscan = off";
    const vectorStatement = (q: string, topK: number) =>
      buildSearchStatement({
        tenantId: TENANT,
        corpusId: CORPUS,
        text: q,
        topK,
        ranking: "vector",
        vector: hashEmbedding(q, DIMS),
        model: MODEL,
        dimensions: DIMS,
      });
    const probe = vectorStatement(queryOf(0, documents), 10);
    const hnswPlanUsesIndex = await planUsesHnsw(rag, hnswSettings, probe);
    const exactPlanUsesIndex = await planUsesHnsw(rag, exactSettings, probe);
    type Row = { document_id: string; ordinal: number; vector_score: number };
    const timed = async (settings: string, s: SearchStatement): Promise<{ ms: number; rows: Row[] }> => {
      const t0 = performance.now();
      const rows = await db.transaction(async (tx) => {
        await tx.exec(settings);
        return (await tx.query<Row>(s.sql, s.params)).rows;
      });
      return { ms: performance.now() - t0, rows };
    };
    // Ties at the 10th distance: any chunk as close as the exact 10th is a right answer.
    const recallOf = (approx: Row[], exact: Row[]): number => {
      if (exact.length === 0) return 1;
      const cutoff = Math.min(...exact.map((r) => Number(r.vector_score)));
      return Math.min(1, approx.filter((r) => Number(r.vector_score) >= cutoff - 1e-9).length / exact.length);
    };
    // Misses that are near misses show here: how much farther HNSW's 10th is than the exact 10th.
    const farthest = (rows: Row[]) => 1 - Math.min(...rows.map((r) => Number(r.vector_score)));
    const recalls: number[] = [];
    const returned: number[] = [];
    const tenthRatios: number[] = [];
    const hnswTimes: number[] = [];
    const exactTimes: number[] = [];
    const statements: SearchStatement[] = [];
    const exactRows: Row[][] = [];
    for (let i = 0; i < recallQueries; i++) {
      const s = vectorStatement(queryOf(10_000 + i, documents), 10);
      const approx = await timed(hnswSettings, s);
      const exact = await timed(exactSettings, s);
      hnswTimes.push(approx.ms);
      exactTimes.push(exact.ms);
      statements.push(s);
      exactRows.push(exact.rows);
      recalls.push(recallOf(approx.rows, exact.rows));
      returned.push(approx.rows.length);
      if (approx.rows.length > 0 && exact.rows.length > 0) tenthRatios.push(farthest(approx.rows) / Math.max(1e-9, farthest(exact.rows)));
    }
    // What a larger ef_search would buy (the production value is the first row).
    const efSweep: { efSearch: number; recallAt10: number; p50: number }[] = [];
    for (const ef of [efSearch, 50, 100, 200, 400].filter((v, i, all) => all.indexOf(v) === i)) {
      const settings = `SET LOCAL hnsw.iterative_scan = relaxed_order; SET LOCAL hnsw.ef_search = ${ef}`;
      const rs: number[] = [];
      const ts: number[] = [];
      for (const [i, s] of statements.entries()) {
        const approx = await timed(settings, s);
        ts.push(approx.ms);
        rs.push(recallOf(approx.rows, exactRows[i]!));
      }
      efSweep.push({ efSearch: ef, recallAt10: rs.reduce((a, b) => a + b, 0) / Math.max(1, rs.length), p50: percentiles(ts).p50 });
    }
    const recall = {
      queries: recallQueries,
      recallAt10: recalls.reduce((a, b) => a + b, 0) / Math.max(1, recalls.length),
      minRecallAt10: Math.min(...recalls),
      meanRowsReturned: returned.reduce((a, b) => a + b, 0) / Math.max(1, returned.length),
      tenthDistanceRatio: tenthRatios.reduce((a, b) => a + b, 0) / Math.max(1, tenthRatios.length),
      efSearch,
      hnswPlanUsesIndex,
      exactPlanUsesIndex,
      hnsw: percentiles(hnswTimes),
      exact: percentiles(exactTimes),
      efSweep,
    };
    log(
      `  recall@10 HNSW vs exact    ${recall.recallAt10.toFixed(3)} (min ${recall.minRecallAt10.toFixed(2)}, ${recallQueries} queries, ef_search ${efSearch}; plans: HNSW ${hnswPlanUsesIndex ? "uses" : "does NOT use"} the index, exact ${exactPlanUsesIndex ? "USES" : "does not use"} it)`,
    );
    log(
      `  HNSW rows returned         ${recall.meanRowsReturned.toFixed(1)} per query; its 10th is ${recall.tenthDistanceRatio.toFixed(3)}× as far as the exact 10th (1.000 = as close)`,
    );
    log(
      `  recall@10 by ef_search     ${efSweep.map((e) => `${e.efSearch}: ${e.recallAt10.toFixed(3)} (p50 ${e.p50.toFixed(1)} ms)`).join("   ")}`,
    );
    log(
      `  vector top-10 latency      HNSW p50 ${recall.hnsw.p50.toFixed(2)} ms p95 ${recall.hnsw.p95.toFixed(2)} ms   exact p50 ${recall.exact.p50.toFixed(2)} ms p95 ${recall.exact.p95.toFixed(2)} ms`,
    );

    const measureMode = async (mode: "hybrid" | "vector"): Promise<ModeLatency> => {
      // The handler adds the caller's document access condition: the raw bound has it too.
      const raw = (q: string) =>
        buildSearchStatement({
          tenantId: TENANT,
          corpusId: CORPUS,
          text: q,
          topK: 5,
          ranking: mode,
          vector: hashEmbedding(q, DIMS),
          model: MODEL,
          dimensions: DIMS,
          access: { reader: readerOf(benchPrincipal()), actions: ["Search"], context: { policies: [], defaultDeny: false } },
        });
      const runRaw = async (statement: SearchStatement) =>
        db.transaction(async (tx) => {
          await tx.exec(`SET LOCAL hnsw.iterative_scan = relaxed_order; SET LOCAL hnsw.ef_search = ${efSearchFor(5)}`);
          return (await tx.query(statement.sql, statement.params)).rows.length;
        });
      const searchMode = mode === "hybrid" ? SearchMode.HYBRID : SearchMode.VECTOR;
      const runSearch = async (q: string) =>
        (await rag.retrieval.search(create(SearchRequestSchema, { corpusId: CORPUS, query: q, topK: 5, mode: searchMode }), ctx)).hits
          .length;
      const rawTimes: number[] = [];
      const searchTimes: number[] = [];
      for (let i = 0; i < warmup + samples; i++) {
        const q = queryOf(i, documents);
        const statement = raw(q); // precomputed outside the timed section
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
      return { raw: r, search: s, ratioP50: s.p50 / r.p50, ratioP95: s.p95 / r.p95 };
    };
    const hybrid = await measureMode("hybrid");
    const vector = await measureMode("vector");
    const access = await measureAccess(rag, documents, samples, warmup);
    const ms = (v: number) => `${v.toFixed(2)} ms`.padStart(9);
    for (const [label, m] of [
      ["hybrid (HNSW + full-text, RRF)", hybrid],
      ["vector (HNSW)", vector],
    ] as const) {
      log(`  ${label}: ${samples} queries, top_k 5`);
      log(`    raw SQL (same statement) p50 ${ms(m.raw.p50)}   p95 ${ms(m.raw.p95)}`);
      log(`    Search (handler)         p50 ${ms(m.search.p50)}   p95 ${ms(m.search.p95)}`);
      log(
        `    ratio Search / raw       p50 ${m.ratioP50.toFixed(2)}×   p95 ${m.ratioP95.toFixed(2)}×${label.startsWith("hybrid") ? `   (target p95 ≤ 1.3×: ${m.ratioP95 <= 1.3 ? "met" : "NOT met"})` : ""}`,
      );
    }
    log(`  document access (issue 16): ${access.grants} grants on ${access.restrictedDocuments} restricted documents, hybrid top_k 5`);
    log(`    without the access filter  p50 ${ms(access.unfiltered.p50)}   p95 ${ms(access.unfiltered.p95)}`);
    log(`    with the access filter     p50 ${ms(access.filtered.p50)}   p95 ${ms(access.filtered.p95)}`);
    log(
      `    ratio filtered / not       p95 ${access.ratioP95.toFixed(2)}×   (target ≤ 1.3×: ${access.ratioP95 <= 1.3 ? "met" : "NOT met"})`,
    );
    return {
      access,
      backend: rag.backend,
      chunks: total,
      documents,
      loadSeconds,
      secondaryIndexSeconds,
      hnswBuildSeconds,
      hnswBuildSettings,
      recall,
      hybrid,
      vector,
      ratioP50: hybrid.ratioP50,
      ratioP95: hybrid.ratioP95,
    };
  } finally {
    await rag.close();
  }
}

/** The ratios of one search run, for the results table. */
export function searchRatios(r: SearchBenchResult): BenchRatio[] {
  const bench = `search (${r.backend}, ${r.chunks / 1000}k chunks)`;
  return [
    {
      bench,
      name: "hybrid Search p95 / raw SQL p95",
      value: r.hybrid.ratioP95,
      unit: "×",
      target: "≤ 1.3×",
      met: r.hybrid.ratioP95 <= 1.3,
    },
    { bench, name: "vector Search p95 / raw SQL p95", value: r.vector.ratioP95, unit: "×" },
    { bench, name: "recall@10 HNSW / exact", value: r.recall.recallAt10, unit: "%" },
    {
      bench,
      name: `hybrid p95 with document access (${r.access.grants} grants) / without`,
      value: r.access.ratioP95,
      unit: "×",
      target: "≤ 1.3×",
      met: r.access.ratioP95 <= 1.3,
    },
    { bench, name: "vector top-10 p50: exact / HNSW (speed-up)", value: r.recall.exact.p50 / r.recall.hnsw.p50, unit: "×" },
  ];
}

/** `npm run bench search`: one case per backend and size; see bench/run.ts for which. */
export async function benchSearchCases(
  cases: ReadonlyArray<{ backend: BenchBackend; chunks: number }>,
  log: (line: string) => void,
): Promise<BenchOutcome> {
  const results: SearchBenchResult[] = [];
  for (const c of cases) {
    log("");
    results.push(await benchSearch({ ...c, log }));
  }
  return { result: results, ratios: results.flatMap(searchRatios) };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await benchSearch();
}
