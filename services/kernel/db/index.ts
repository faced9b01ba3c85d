/** The kernel's database port, its two adapters and the migrator. */
export type { Database, DatabaseCapabilities, DatabaseDialect, Queryable, QueryResult, Tx } from "./ports.js";
export { createPgDatabase, type PgDatabaseOptions } from "./pg-database.js";
export { createPgliteDatabase, type PgliteDatabaseOptions } from "./pglite-database.js";
export { migrate, migrationChecksum, MigrationError, type Migration, type MigrateOptions, type MigrateResult } from "./migrate.js";
export { advisoryKey } from "./advisory-key.js";
export { isDatabaseUnavailableError, PG_ERRORS, pgErrorCode, pgErrorConstraint } from "./pg-error.js";
