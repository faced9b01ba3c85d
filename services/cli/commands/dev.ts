import { parseArgs } from "node:util";
import { loadConfig, SERVICE_NAMES } from "../../kernel/config.js";
import type { Command } from "../command.js";

/** `nexus dev`: the whole mesh in one process, embedded PGlite and local bus by default. */
export const devCommand: Command = {
  path: ["dev"],
  summary: "Run every service in one process (embedded PGlite + local bus unless DATABASE_URL/NATS_URL are set)",
  usage: "nexus dev [--port 8080] [--host 0.0.0.0] [--data-dir .nexus]",
  async run(args) {
    // Loaded on use: `nexus help` and client commands start without the whole mesh.
    const { installSignalHandlers } = await import("../../kernel/server/index.js");
    const { startNexus } = await import("../../runtime/start-nexus.js");
    const { bootstrapDevInstallation } = await import("../../auth/bootstrap.js");
    const { authSettingsFromConfig } = await import("../../auth/auth-settings.js");
    const { createAuthApplication } = await import("../../auth/create-auth-application.js");
    const { devBootstrapBanner } = await import("./admin.js");
    const { values } = parseArgs({
      args,
      options: {
        port: { type: "string" },
        host: { type: "string" },
        "data-dir": { type: "string" },
      },
      strict: true,
      allowPositionals: false,
    });
    const config = loadConfig({
      ...process.env,
      NEXUS_PORT: values.port ?? process.env.NEXUS_PORT,
      NEXUS_HOST: values.host ?? process.env.NEXUS_HOST,
      NEXUS_DATA_DIR: values["data-dir"] ?? process.env.NEXUS_DATA_DIR,
      NEXUS_SERVICES: "all",
      // A person at a terminal reads lines, not JSON; pipes and files keep JSON.
      NEXUS_LOG_PRETTY: process.env.NEXUS_LOG_PRETTY ?? (process.stdout.isTTY ? "true" : undefined),
    });
    const nexus = await startNexus({ config, services: SERVICE_NAMES });
    installSignalHandlers(nexus.server, nexus.logger);
    // First start of this data directory: a platform key and the demo tenant's owner key, printed once.
    const auth = createAuthApplication({
      db: nexus.db,
      logger: nexus.logger,
      clock: () => new Date(),
      settings: authSettingsFromConfig(config),
    });
    const firstStart = await bootstrapDevInstallation(auth);
    if (firstStart) {
      // The demo tenant gets a small corpus about Nexus itself, so `nexus ask` answers with citations at once.
      const { seedDemoCorpus } = await import("../demo/demo-corpus.js");
      const { createNexusClient } = await import("../../client/index.js");
      const owner = createNexusClient({ baseUrl: `http://127.0.0.1:${nexus.address.port}`, apiKey: firstStart.ownerKey.plaintext });
      await seedDemoCorpus(owner).catch((err: unknown) => nexus.logger.warn({ err }, "could not seed the demo corpus"));
    }
    const db = nexus.backends.database === "pglite" ? `PGlite in ${config.dataDir}` : "PostgreSQL (DATABASE_URL)";
    const bus = nexus.backends.bus === "local" ? "local bus" : "NATS JetStream (NATS_URL)";
    console.log(
      [
        `Nexus dev listening on ${nexus.address.url}`,
        `  protocols: gRPC, gRPC-Web, Connect (JSON and binary) on HTTP/1.1 and HTTP/2`,
        `  services:  ${nexus.server.services.filter((s) => s.startsWith("nexus.")).join(", ")}`,
        `  state:     ${db}; events: ${bus}`,
        `  ops:       ${nexus.address.url}/metrics  ${nexus.address.url}/readyz`,
        nexus.console
          ? `  console:   ${nexus.address.url}/console/  (sign in with an API key)`
          : "  console:   not built (npm run build builds it into console/dist)",
        devBootstrapBanner(firstStart, nexus.backends.database === "pglite" ? config.dataDir : undefined),
      ].join("\n"),
    );
    await new Promise<never>(() => {});
    return 0;
  },
};
