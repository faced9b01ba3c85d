import { createHash } from "node:crypto";
import type { Logger } from "pino";
import { advisoryKey } from "./advisory-key.js";
import type { Database } from "./ports.js";

/**
 * One forward-only migration. Migrations are TypeScript modules exporting SQL strings (not
 * .sql files) so they ship inside dist/ with `tsc` and need no copy step.
 * The SQL must qualify every object with its schema (`platform.events`): the search_path is
 * not changed, so extensions such as pgvector stay in `public` for every service.
 */
export interface Migration {
  /** Stable id, unique within the schema, e.g. "0001_events". Applied in array order. */
  id: string;
  /** One or more statements. Never edit it once released: add a new migration instead. */
  sql: string;
}

/** Options of {@link migrate}. */
export interface MigrateOptions {
  /** Schema the migrations belong to (lower-case identifier); created when missing. */
  schema: string;
  /** The schema's migrations, oldest first. */
  migrations: readonly Migration[];
  /** Receives one line per applied migration. */
  logger?: Logger;
  /**
   * Settings (`set_config(name, value, true)`) of the migration transaction, read by a
   * migration's SQL with `current_setting(name, true)`: options such as a size limit, without
   * changing the SQL (whose checksum is recorded). Names must be qualified (`nexus.some_option`).
   */
  settings?: Readonly<Record<string, string>>;
}

/** What one {@link migrate} run did. */
export interface MigrateResult {
  /** Ids applied by this run, in order. */
  applied: string[];
  /** Ids found already applied (checksums verified). */
  alreadyApplied: string[];
}

/** Thrown when the migrations in code disagree with what the database has applied. */
export class MigrationError extends Error {
  override readonly name = "MigrationError";
}

const SCHEMA = /^[a-z_][a-z0-9_]{0,62}$/;

/** SHA-256 (hex) of a migration's SQL, as recorded in `<schema>.schema_migrations`. */
export function migrationChecksum(sql: string): string {
  return createHash("sha256").update(sql).digest("hex");
}

function validate(options: MigrateOptions): void {
  if (!SCHEMA.test(options.schema)) {
    throw new MigrationError(`invalid schema name ${JSON.stringify(options.schema)}: use a lower-case identifier`);
  }
  const seen = new Set<string>();
  for (const m of options.migrations) {
    if (!m.id.trim()) throw new MigrationError(`schema ${options.schema}: a migration has an empty id`);
    if (seen.has(m.id)) throw new MigrationError(`schema ${options.schema}: migration id "${m.id}" appears twice`);
    if (!m.sql.trim()) throw new MigrationError(`schema ${options.schema}: migration "${m.id}" has no SQL`);
    seen.add(m.id);
  }
}

/**
 * Applies a schema's pending migrations. Safe with N replicas starting at once: the whole run
 * is one transaction holding `pg_advisory_xact_lock(key(schema))`, so replicas queue up, and
 * each one re-reads `<schema>.schema_migrations` after it gets the lock — every migration is
 * applied exactly once, and a failing migration leaves nothing half-applied.
 *
 * An applied migration whose SQL changed since is an error ({@link MigrationError}); ids
 * applied in the database but unknown to this code are ignored (an older replica during a
 * rolling deploy, or another module's migrations in the same schema).
 *
 * Table: `<schema>.schema_migrations(id text primary key, checksum text, applied_at timestamptz)`.
 */
export async function migrate(db: Database, options: MigrateOptions): Promise<MigrateResult> {
  validate(options);
  const { schema } = options;
  return db.transaction(async (tx) => {
    // Lock before CREATE SCHEMA IF NOT EXISTS: concurrent IF NOT EXISTS can still collide.
    await tx.query("SELECT pg_advisory_xact_lock($1)", [advisoryKey(`nexus.migrate.${schema}`)]);
    for (const [name, value] of Object.entries(options.settings ?? {})) {
      await tx.query("SELECT set_config($1, $2, true)", [name, value]);
    }
    await tx.exec(
      `CREATE SCHEMA IF NOT EXISTS "${schema}";
       CREATE TABLE IF NOT EXISTS "${schema}".schema_migrations (
         id text PRIMARY KEY,
         checksum text NOT NULL,
         applied_at timestamptz NOT NULL DEFAULT now()
       );`,
    );
    const { rows } = await tx.query<{ id: string; checksum: string }>(`SELECT id, checksum FROM "${schema}".schema_migrations`);
    const applied = new Map(rows.map((r) => [r.id, r.checksum]));
    const result: MigrateResult = { applied: [], alreadyApplied: [] };
    for (const m of options.migrations) {
      const checksum = migrationChecksum(m.sql);
      const recorded = applied.get(m.id);
      if (recorded !== undefined) {
        if (recorded !== checksum) {
          throw new MigrationError(
            `migration ${schema}/${m.id} was changed after it was applied ` +
              `(checksum in database ${recorded.slice(0, 12)}…, in code ${checksum.slice(0, 12)}…). ` +
              `Migrations are forward-only: restore its original SQL and put the change in a new migration.`,
          );
        }
        result.alreadyApplied.push(m.id);
        continue;
      }
      try {
        await tx.exec(m.sql);
      } catch (err) {
        throw new MigrationError(`migration ${schema}/${m.id} failed: ${(err as Error).message}`, { cause: err });
      }
      await tx.query(`INSERT INTO "${schema}".schema_migrations (id, checksum) VALUES ($1, $2)`, [m.id, checksum]);
      result.applied.push(m.id);
      options.logger?.info({ schema, migration: m.id }, "applied migration");
    }
    return result;
  });
}
