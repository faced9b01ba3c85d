/** The kernel's database port, its two adapters and the migrator. */

export { advisoryKey } from "./advisory-key.js";
export { type MigrateOptions, type MigrateResult, type Migration, MigrationError, migrate, migrationChecksum } from "./migrate.js";
export { createPgDatabase, type PgDatabaseOptions } from "./pg-database.js";
export { isDatabaseUnavailableError, PG_ERRORS, pgErrorCode, pgErrorConstraint } from "./pg-error.js";
export { createPgliteDatabase, type PgliteDatabaseOptions } from "./pglite-database.js";
export type { Database, DatabaseCapabilities, DatabaseDialect, Queryable, QueryResult, Tx } from "./ports.js";
