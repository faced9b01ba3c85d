import { createContextValues, createHandlerContext, type HandlerContext } from "@connectrpc/connect";
import { pino } from "pino";
import { RetrievalService } from "../gen/nexus/retrieval/v1/retrieval_service_pb.js";
import { effectiveEntitlements, principalEntitlements } from "../services/kernel/authz/plans.js";
import { principalKey, type TenantPrincipal } from "../services/kernel/context.js";
import { createPgDatabase } from "../services/kernel/db/pg-database.js";
import { createPgliteDatabase } from "../services/kernel/db/pglite-database.js";
import type { Database } from "../services/kernel/db/ports.js";
import { createLocalEventBus } from "../services/kernel/events/local-bus.js";
import type { EventBus } from "../services/kernel/events/ports.js";
import { governanceMigrations } from "../services/kernel/governance/index.js";
import {
  createFieldCipher,
  createKeyring,
  type FieldCipher,
  keyringMigrations,
  newMasterKeyLine,
  parseMasterKeys,
} from "../services/kernel/keyring/index.js";
import { migrateSchemas } from "../services/kernel/service/index.js";
import { createIngestionRuntime, type IngestionRuntime } from "../services/knowledge/ingestion/ingestion-runtime.js";
import { ingestionMigrations } from "../services/knowledge/ingestion/migrations.js";
import { startAccessCacheInvalidation } from "../services/knowledge/retrieval/access-cache.js";
import { createPgCorpusRepository } from "../services/knowledge/retrieval/adapters/postgres-corpus-repository.js";
import { accessCache } from "../services/knowledge/retrieval/adapters/postgres-policies.js";
import { createPgSearchIndex } from "../services/knowledge/retrieval/adapters/postgres-search-index.js";
import { createEmbeddingModels } from "../services/knowledge/retrieval/embeddings/embedding-models.js";
import { retrievalMigrations } from "../services/knowledge/retrieval/migrations.js";
import { RetrievalHandler } from "../services/knowledge/retrieval/retrieval-handler.js";
import { createScratchDatabase } from "../services/runtime/backup.js";

/** The PostgreSQL server the benchmarks use: NEXUS_BENCH_DATABASE_URL, else the local one. */
export function benchServerUrl(): string {
  return process.env.NEXUS_BENCH_DATABASE_URL || "postgres://postgres@127.0.0.1:5432/postgres";
}

/** Which engine a benchmark runs on: embedded PGlite (`nexus dev`) or a PostgreSQL server. */
export type BenchBackend = "pglite" | "postgres";

/**
 * The ingestion and retrieval services wired in this process for the benchmarks, exactly as
 * `nexus dev` wires them (PGlite with pgvector, hash embeddings, local bus) — or on a fresh
 * database of a PostgreSQL server ({@link benchServerUrl}), with vectors when the server has
 * pgvector and lexical-only when it has not.
 */
export interface BenchRag {
  db: Database;
  bus: EventBus;
  retrieval: RetrievalHandler;
  ingestion: IngestionRuntime;
  /** Chunks carry vectors (PGlite, PostgreSQL with pgvector) or not (PostgreSQL without it). */
  vectors: boolean;
  backend: string;
  ctx: HandlerContext;
  /** The document cipher when opened with `encrypted`. */
  cipher?: FieldCipher;
  close(): Promise<void>;
}

/** A tenant principal of the enterprise plan. */
export function benchPrincipal(tenantId = "bench"): TenantPrincipal {
  return {
    kind: "tenant",
    keyId: "bench-key",
    name: "bench",
    tenantId,
    tenantSlug: tenantId,
    role: "owner",
    plan: "enterprise",
    entitlements: principalEntitlements(effectiveEntitlements("enterprise")),
  };
}

/**
 * A fresh database on the PostgreSQL server `serverUrl` names (created empty, dropped by
 * `drop()`), so a benchmark never writes into the database a user points it at and can run
 * again and again.
 */
export async function createBenchDatabase(serverUrl: string): Promise<{ url: string; drop(): Promise<void> }> {
  return createScratchDatabase(serverUrl, "nexus_bench");
}

/**
 * Opens the backend, migrates, wires the services and starts the worker. `backend` defaults
 * to "postgres" when NEXUS_BENCH_DATABASE_URL is set, else "pglite". On PostgreSQL it runs on
 * a fresh database of that server (dropped by close()).
 */
export async function openBenchRag(options: { workers?: boolean; backend?: BenchBackend; encrypted?: boolean } = {}): Promise<BenchRag> {
  const backend = options.backend ?? (process.env.NEXUS_BENCH_DATABASE_URL ? "postgres" : "pglite");
  const fresh = backend === "postgres" ? await createBenchDatabase(benchServerUrl()) : undefined;
  const db = fresh ? await createPgDatabase({ url: fresh.url }) : await createPgliteDatabase();
  const vectors = db.capabilities.vector;
  const bus = await createLocalEventBus({ db, pollIntervalMs: 20 });
  await bus.start();
  await migrateSchemas(db, [retrievalMigrations, ingestionMigrations, keyringMigrations, governanceMigrations]);
  const logger = pino({ level: "silent" });
  // Encryption at rest as the services have it (a fresh master key of this run).
  const cipher = options.encrypted
    ? createFieldCipher(createKeyring({ db, masterKeys: parseMasterKeys(newMasterKeyLine(1), "bench") }), "documents", "on")
    : undefined;
  const models = createEmbeddingModels();
  const retrieval = new RetrievalHandler({
    db,
    corpora: createPgCorpusRepository(),
    searchIndex: createPgSearchIndex({ vectors, ...(cipher ? { cipher } : {}) }),
    models,
    vectors,
    clock: () => new Date(),
    logger,
  });
  const ingestion = createIngestionRuntime({
    db,
    bus,
    logger,
    clock: () => new Date(),
    models,
    vectors,
    workers: options.workers ?? true,
    concurrency: 2,
    ...(cipher ? { cipher } : {}),
  });
  await ingestion.start();
  // The tenants' policies and settings cached per process, as the knowledge service wires it.
  const accessFeed = await startAccessCacheInvalidation({ bus, cache: accessCache, logger });
  const values = createContextValues().set(principalKey, benchPrincipal());
  const ctx = createHandlerContext({
    service: RetrievalService,
    method: RetrievalService.method.search,
    protocolName: "connect",
    requestMethod: "POST",
    url: "http://bench.invalid/",
    contextValues: values,
  });
  return {
    db,
    bus,
    retrieval,
    ingestion,
    vectors,
    backend: fresh ? `PostgreSQL${vectors ? " + pgvector" : " (lexical-only: no pgvector)"}` : "PGlite + pgvector",
    ctx,
    ...(cipher ? { cipher } : {}),
    async close() {
      await ingestion.stop();
      await accessFeed.stop();
      await bus.close();
      await db.close();
      await fresh?.drop();
    },
  };
}

/** Percentiles and mean of a series, in milliseconds. */
export interface Percentiles {
  p50: number;
  p95: number;
  p99: number;
  mean: number;
}

/** p50/p95/p99/mean of a series in milliseconds (nearest rank). */
export function percentiles(values: readonly number[]): Percentiles {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? 0;
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99), mean: sorted.reduce((s, v) => s + v, 0) / Math.max(1, sorted.length) };
}

const SYLLABLES = [
  "ka",
  "lo",
  "mi",
  "ren",
  "tas",
  "vo",
  "dri",
  "sel",
  "pan",
  "qu",
  "ber",
  "ton",
  "ix",
  "ul",
  "mar",
  "fe",
  "gor",
  "shi",
  "an",
  "wel",
];

/**
 * A deterministic vocabulary of 4,000 made-up words, most frequent first. Texts draw from it
 * with a Zipf-like skew (a few words everywhere, most words rare), like real prose — so a
 * full-text query matches a realistic share of the chunks, not all of them.
 */
export const VOCABULARY: readonly string[] = Array.from({ length: 4000 }, (_, i) => {
  let n = i + 1;
  let w = "";
  while (n > 0) {
    w += SYLLABLES[n % SYLLABLES.length];
    n = Math.floor(n / SYLLABLES.length);
  }
  return w;
});

/** Deterministic prose over {@link VOCABULARY}, so runs are comparable. */
export function syntheticText(seed: number, sentences: number): string {
  let x = (seed * 2654435761 + 1) % 2147483648;
  const next = () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x / 2147483648;
  };
  const out: string[] = [];
  for (let s = 0; s < sentences; s++) {
    const n = 8 + Math.floor(next() * 12);
    const ws = Array.from({ length: n }, () => VOCABULARY[Math.floor(VOCABULARY.length * next() ** 2.5)]!);
    ws[0] = ws[0]!.charAt(0).toUpperCase() + ws[0]!.slice(1);
    out.push(`${ws.join(" ")}.`);
    if (s % 6 === 5) out.push("\n\n");
  }
  return out.join(" ");
}
