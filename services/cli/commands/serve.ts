import { parseArgs } from "node:util";
import { ConfigError, loadConfig } from "../../kernel/config.js";
import type { Command } from "../command.js";

/** `nexus serve`: production mode, some services against PostgreSQL and NATS. */
export const serveCommand: Command = {
  path: ["serve"],
  summary: "Run one or more services against DATABASE_URL and NATS_URL (production)",
  usage: "nexus serve [--service auth|metering|ingestion|retrieval|agent[,…]] [--port 8080] [--host 0.0.0.0]",
  async run(args) {
    // Loaded on use: `nexus help` and client commands start without the whole mesh.
    const { installSignalHandlers } = await import("../../kernel/server/index.js");
    const { startNexus } = await import("../../runtime/start-nexus.js");
    const { values } = parseArgs({
      args,
      options: {
        service: { type: "string" },
        port: { type: "string" },
        host: { type: "string" },
      },
      strict: true,
      allowPositionals: false,
    });
    const config = loadConfig({
      ...process.env,
      NEXUS_SERVICES: values.service ?? process.env.NEXUS_SERVICES,
      NEXUS_PORT: values.port ?? process.env.NEXUS_PORT,
      NEXUS_HOST: values.host ?? process.env.NEXUS_HOST,
    });
    const missing = [
      config.databaseUrl
        ? undefined
        : {
            variable: "DATABASE_URL",
            message: "DATABASE_URL is required by `nexus serve` (a postgres:// URL); use `nexus dev` for the embedded database",
          },
      config.natsUrl
        ? undefined
        : { variable: "NATS_URL", message: "NATS_URL is required by `nexus serve` (nats://host:4222); use `nexus dev` for the local bus" },
    ].filter((p) => p !== undefined);
    if (missing.length > 0) throw new ConfigError(missing);
    const nexus = await startNexus({ config });
    installSignalHandlers(nexus.server, nexus.logger);
    console.log(`Nexus (${config.services.join(", ")}) listening on ${nexus.address.url}`);
    await new Promise<never>(() => {});
    return 0;
  },
};
