import os from "node:os";
import { create } from "@bufbuild/protobuf";
import { pino } from "pino";
import { IngestTextRequestSchema } from "../gen/nexus/ingestion/v1/ingestion_service_pb.js";
import { CreateCorpusRequestSchema, SearchMode, SearchRequestSchema } from "../gen/nexus/retrieval/v1/retrieval_service_pb.js";
import { createIngestionRuntime } from "../services/knowledge/ingestion/ingestion-runtime.js";
import { createEmbeddingModels } from "../services/knowledge/retrieval/embeddings/embedding-models.js";
import { type BenchBackend, openBenchRag, syntheticText } from "./rag-setup.js";
import type { BenchOutcome } from "./results.js";

/**
 * Encryption at rest (issue 17): the ingestion pipeline (chunks/s) and Search (p50/p95 of the
 * same queries) with document contents and chunk texts sealed by the keyring, against the same
 * work in the clear, in the same run on the same engine: plain, sealed, plain, sealed (the best
 * of each counts, so a warm-up or a noisy neighbour does not decide). Target: sealed at most
 * 15% slower.
 */
export interface EncryptionBenchResult {
  backend: string;
  chunks: number;
  queries: number;
  plain: { chunksPerSecond: number; searchP50Ms: number; searchP95Ms: number };
  sealed: { chunksPerSecond: number; searchP50Ms: number; searchP95Ms: number };
  /** The 1-minute load average at the start of each pass (plain, sealed, plain, sealed): the noise each ran under. */
  loadAverages: number[];
}

const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

async function once(backend: BenchBackend | undefined, encrypted: boolean, documents: number, sentences: number, queries: string[]) {
  const rag = await openBenchRag({ workers: false, encrypted, ...(backend ? { backend } : {}) });
  try {
    const { db, ctx } = rag;
    await rag.retrieval.createCorpus(create(CreateCorpusRequestSchema, { corpusId: "bench", displayName: "Bench" }), ctx);
    for (let i = 0; i < documents; i++) {
      await rag.ingestion.handler.ingestText(
        create(IngestTextRequestSchema, { corpusId: "bench", documentId: `doc-${i}`, text: syntheticText(i, sentences) }),
        ctx,
      );
    }
    const worker = createIngestionRuntime({
      db,
      bus: rag.bus,
      logger: pino({ level: "silent" }),
      clock: () => new Date(),
      models: createEmbeddingModels(),
      vectors: rag.vectors,
      concurrency: 2,
      ...(rag.cipher ? { cipher: rag.cipher } : {}),
    });
    const start = performance.now();
    await worker.start();
    for (;;) {
      const { rows } = await db.query<{ done: number; failed: number }>(
        "SELECT count(*) FILTER (WHERE status = 'succeeded')::int AS done, count(*) FILTER (WHERE status = 'failed')::int AS failed FROM ingestion.documents",
      );
      if ((rows[0]?.failed ?? 0) > 0) throw new Error("a benchmark document failed");
      if (rows[0]?.done === documents) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const seconds = (performance.now() - start) / 1000;
    await worker.stop();
    const { rows } = await db.query<{ n: number; sealed: number }>(
      "SELECT count(*)::int AS n, count(*) FILTER (WHERE text LIKE 'nxk1.%')::int AS sealed FROM retrieval.chunks",
    );
    const chunks = rows[0]!.n;
    if (rows[0]!.sealed !== (encrypted ? chunks : 0)) throw new Error(`expected ${encrypted ? "every" : "no"} chunk sealed`);
    const mode = rag.vectors ? SearchMode.HYBRID : SearchMode.LEXICAL;
    const latencies: number[] = [];
    for (const [i, q] of queries.entries()) {
      const t = performance.now();
      const { hits } = await rag.retrieval.search(create(SearchRequestSchema, { corpusId: "bench", query: q, topK: 10, mode }), ctx);
      if (i >= 10) latencies.push(performance.now() - t);
      if (hits.length === 0 || hits.some((h) => h.text.startsWith("nxk1."))) throw new Error("search returned no plaintext hits");
    }
    return {
      backend: rag.backend,
      chunks,
      chunksPerSecond: chunks / seconds,
      searchP50Ms: percentile(latencies, 50),
      searchP95Ms: percentile(latencies, 95),
    };
  } finally {
    await rag.close();
  }
}

export async function benchEncryption(
  options: { backend?: BenchBackend; documents?: number; sentences?: number; queries?: number; log?: (line: string) => void } = {},
): Promise<EncryptionBenchResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const documents = options.documents ?? 12;
  const sentences = options.sentences ?? 600;
  const queries = Array.from({ length: (options.queries ?? 200) + 10 }, (_, i) =>
    syntheticText(10_000 + i, 1)
      .replace(/[.\n]/g, "")
      .split(" ")
      .slice(0, 4)
      .join(" "),
  );
  const runs: Array<{ encrypted: boolean; r: Awaited<ReturnType<typeof once>> }> = [];
  const loadAverages: number[] = [];
  for (const encrypted of [false, true, false, true]) {
    const load = Math.round(os.loadavg()[0]! * 100) / 100;
    loadAverages.push(load);
    const r = await once(options.backend, encrypted, documents, sentences, queries);
    log(
      `  ${encrypted ? "sealed" : "plain "}: ${r.chunksPerSecond.toFixed(0)} chunks/s ingested, Search p50 ${r.searchP50Ms.toFixed(2)} ms p95 ${r.searchP95Ms.toFixed(2)} ms (${r.backend}; load average ${load} at start)`,
    );
    runs.push({ encrypted, r });
  }
  const best = (encrypted: boolean) => {
    const of = runs.filter((x) => x.encrypted === encrypted).map((x) => x.r);
    return {
      chunksPerSecond: Math.max(...of.map((r) => r.chunksPerSecond)),
      searchP50Ms: Math.min(...of.map((r) => r.searchP50Ms)),
      searchP95Ms: Math.min(...of.map((r) => r.searchP95Ms)),
    };
  };
  return {
    backend: runs[0]!.r.backend,
    chunks: runs[0]!.r.chunks,
    queries: queries.length - 10,
    plain: best(false),
    sealed: best(true),
    loadAverages,
  };
}

export async function benchEncryptionOutcome(backend: BenchBackend | undefined, log: (line: string) => void): Promise<BenchOutcome> {
  const r = await benchEncryption({ ...(backend ? { backend } : {}), log });
  const bench = `encryption at rest (${r.backend}, ${r.chunks} chunks, load ${Math.min(...r.loadAverages)}–${Math.max(...r.loadAverages)})`;
  const ingest = r.plain.chunksPerSecond / r.sealed.chunksPerSecond;
  const search = r.sealed.searchP95Ms / r.plain.searchP95Ms;
  return {
    result: r,
    ratios: [
      { bench, name: "ingestion time sealed / plain", value: ingest, unit: "×", target: "≤ 1.15×", met: ingest <= 1.15 },
      { bench, name: "Search p95 sealed / plain", value: search, unit: "×", target: "≤ 1.15×", met: search <= 1.15 },
      { bench, name: "Search p50 sealed / plain", value: r.sealed.searchP50Ms / r.plain.searchP50Ms, unit: "×" },
    ],
  };
}
