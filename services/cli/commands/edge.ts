import { parseArgs } from "node:util";
import { type Command, UsageError } from "../command.js";

function positiveInt(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${name} must be a non-negative integer, got "${text}"`);
  return n;
}

/** `nexus edge`: the edge agent beside customer applications (docs/edge.md). */
export const edgeCommand: Command = {
  path: ["edge"],
  summary: "Run an edge agent: local ingress with app-key checks, a durable on-disk queue, forwarding to the hub",
  usage:
    "nexus edge --hub URL --token EDGE_TOKEN [--host 127.0.0.1] [--port 8090] [--data-dir .nexus/edge] [--max-queue-bytes N] [--sync-interval-ms N]   (or NEXUS_EDGE_* variables, see docs/edge.md)",
  async run(args) {
    const env = process.env;
    const { values } = parseArgs({
      args,
      options: {
        hub: { type: "string", default: env.NEXUS_EDGE_HUB_URL },
        token: { type: "string", default: env.NEXUS_EDGE_TOKEN },
        host: { type: "string", default: env.NEXUS_EDGE_HOST ?? "127.0.0.1" },
        port: { type: "string", default: env.NEXUS_EDGE_PORT ?? "8090" },
        "data-dir": { type: "string", default: env.NEXUS_EDGE_DATA_DIR ?? ".nexus/edge" },
        "max-queue-bytes": { type: "string", default: env.NEXUS_EDGE_QUEUE_MAX_BYTES ?? String(256 * 1024 * 1024) },
        "sync-interval-ms": { type: "string", default: env.NEXUS_EDGE_SYNC_INTERVAL_MS ?? "30000" },
        "max-body-bytes": { type: "string", default: env.NEXUS_EDGE_MAX_BODY_BYTES ?? String(1024 * 1024) },
      },
    });
    if (!values.hub) throw new UsageError("--hub (or NEXUS_EDGE_HUB_URL) is required: the hub's URL, e.g. http://nexus.internal:8080");
    if (!/^https?:\/\//.test(values.hub)) throw new UsageError(`--hub must be an http:// or https:// URL, got "${values.hub}"`);
    if (!values.token)
      throw new UsageError(
        "--token (or NEXUS_EDGE_TOKEN) is required: the edge token (nxe_…) of `nexus integration edges register` (EdgeService.RegisterEdge)",
      );
    if (!values.token.startsWith("nxe_"))
      throw new UsageError(
        "--token must be an edge token (nxe_…) from `nexus integration edges register`, not an API key: it is scoped to its tenant and assigned apps",
      );
    const { pino } = await import("pino");
    const { startEdgeAgent } = await import("../../edge/edge-agent.js");
    const logger = pino({ level: env.LOG_LEVEL ?? "info" });
    const agent = await startEdgeAgent({
      hubUrl: values.hub,
      token: values.token,
      host: values.host ?? "127.0.0.1",
      port: positiveInt("--port", values.port ?? ""),
      dataDir: values["data-dir"] ?? ".nexus/edge",
      maxQueueBytes: positiveInt("--max-queue-bytes", values["max-queue-bytes"] ?? ""),
      syncIntervalMs: Math.max(100, positiveInt("--sync-interval-ms", values["sync-interval-ms"] ?? "")),
      maxBodyBytes: positiveInt("--max-body-bytes", values["max-body-bytes"] ?? ""),
      logger,
    });
    console.log(`nexus edge: forwarding to ${values.hub}; queue in ${values["data-dir"]}; listening on ${agent.url}`);
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once("SIGTERM", stop);
      process.once("SIGINT", stop);
    });
    await agent.close();
    return 0;
  },
};
