#!/usr/bin/env node
/**
 * The Nexus operator's entry point: `node dist/operator/main.js [--kubeconfig FILE] [--port N]`
 * (also `nexus operator`). Runs until SIGTERM/SIGINT, then shuts down gracefully.
 */
import { parseArgs } from "node:util";
import { createLogger } from "../services/kernel/logger.js";
import { loadOperatorConfig } from "./config.js";
import { runOperator } from "./run-operator.js";

/** Parses the flags, starts the operator and waits for a signal. Returns the exit code. */
export async function operatorMain(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { kubeconfig: { type: "string" }, port: { type: "string" } },
    strict: true,
    allowPositionals: false,
  });
  const port = values.port === undefined ? undefined : Number(values.port);
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535))
    throw new Error("--port must be an integer from 0 to 65535");
  const config = loadOperatorConfig(process.env, {
    ...(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}),
    ...(port !== undefined ? { port } : {}),
  });
  const logger = createLogger({ level: config.logLevel as "info", name: "nexus-operator" });
  const operator = await runOperator(config, logger);
  // Tests and humans wait for this line.
  logger.info({ port: operator.port, identity: config.identity }, `nexus operator serving health on port ${operator.port}`);
  console.log(`nexus operator listening on http://127.0.0.1:${operator.port}`);
  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      logger.info({ signal }, "shutting down");
      resolve();
    };
    process.once("SIGTERM", onSignal);
    process.once("SIGINT", onSignal);
  });
  const timer = setTimeout(() => {
    logger.error("graceful shutdown took longer than 30 s; exiting");
    process.exit(1);
  }, 30_000);
  timer.unref();
  await operator.stop();
  return 0;
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  process.exitCode = await operatorMain(process.argv.slice(2)).catch((err: unknown) => {
    console.error(`nexus operator: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  });
}
