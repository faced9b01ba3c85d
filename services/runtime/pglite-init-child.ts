import { PGlite } from "@electric-sql/pglite";

/**
 * Child process of {@link initPgliteDataDir}: creates the PGlite data directory given as
 * argv[2] (initdb) and exits. Imports nothing of Nexus, so Node runs it as .js or .ts alike.
 */
const dataDir = process.argv[2];
if (!dataDir) throw new Error("usage: pglite-init-child <data dir>");
const db = await PGlite.create({ dataDir });
await db.close();
