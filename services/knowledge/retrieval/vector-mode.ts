import type { Database } from "../../kernel/db/ports.js";

/** Thrown at start-up when vector search is wanted but the database cannot do it. */
export class VectorSupportError extends Error {
  override readonly name = "VectorSupportError";
}

/**
 * Whether chunks get vectors and searches rank by them. With NEXUS_LEXICAL_ONLY=true: never.
 * Otherwise the database must have pgvector (PGlite always has it); a PostgreSQL without the
 * `vector` extension stops the process at start-up with a message saying what to do, rather
 * than silently searching worse than configured.
 */
export function vectorSearchEnabled(options: { lexicalOnly: boolean }, db: Database): boolean {
  if (options.lexicalOnly) return false;
  if (db.capabilities.vector) return true;
  throw new VectorSupportError(
    "the PostgreSQL server at DATABASE_URL has no pgvector extension ('vector' is not in pg_available_extensions), " +
      "so hybrid search cannot rank by vectors. Install pgvector on the server (e.g. the postgresql-<version>-pgvector " +
      "package) and restart, or set NEXUS_LEXICAL_ONLY=true to run search on PostgreSQL full-text ranking alone.",
  );
}
