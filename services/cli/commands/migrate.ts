import { parseArgs } from "node:util";
import { loadConfig } from "../../kernel/config.js";
import { createLogger } from "../../kernel/logger.js";
import type { Command } from "../command.js";

/** `nexus migrate`: applies every pending migration, then exits. */
export const migrateCommand: Command = {
  path: ["migrate"],
  summary: "Apply pending database migrations (DATABASE_URL, else the embedded database in NEXUS_DATA_DIR)",
  usage: "nexus migrate [--data-dir .nexus]",
  async run(args) {
    // Loaded on use: `nexus help` and client commands start without the whole mesh.
    const { createBus } = await import("../../runtime/create-bus.js");
    const { migrateServices, openDatabase } = await import("../../runtime/start-nexus.js");
    const { values } = parseArgs({ args, options: { "data-dir": { type: "string" } }, strict: true });
    const config = loadConfig({ ...process.env, NEXUS_DATA_DIR: values["data-dir"] ?? process.env.NEXUS_DATA_DIR });
    const logger = createLogger({ level: config.logLevel, pretty: config.logPretty, name: "nexus-migrate" });
    const db = await openDatabase(config);
    try {
      // The platform schema (event store, outbox, checkpoints) is migrated by the bus's start.
      const bus = await createBus({ config, db, logger, relay: false });
      await bus.start();
      await bus.close();
      await migrateServices(db, config.services);
      console.log(`migrations applied (${db.dialect === "pglite" ? `PGlite in ${config.dataDir}` : "PostgreSQL"})`);
      return 0;
    } finally {
      await db.close();
    }
  },
};
