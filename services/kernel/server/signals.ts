import type { Logger } from "pino";

/** Options of {@link installSignalHandlers}. */
export interface SignalOptions {
  /** Signals that start a graceful shutdown; default SIGTERM and SIGINT. */
  signals?: readonly NodeJS.Signals[];
  /** Ends the process; default `process.exit`. Tests pass a recorder. */
  exit?: (code: number) => void;
}

/**
 * Turns SIGTERM/SIGINT into a graceful `server.close()` (drain RPCs, stop consumers, flush
 * telemetry), then exits 0 (1 if closing failed). A second signal while closing exits at
 * once with 1, for the impatient operator. Returns a function that removes the handlers.
 */
export function installSignalHandlers(server: { close(): Promise<void> }, logger: Logger, options: SignalOptions = {}): () => void {
  const signals = options.signals ?? ["SIGTERM", "SIGINT"];
  const exit = options.exit ?? ((code: number) => process.exit(code));
  let closing = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (closing) {
      logger.warn({ signal }, "second signal while shutting down: exiting now");
      exit(1);
      return;
    }
    closing = true;
    logger.info({ signal }, "shutting down gracefully");
    server.close().then(
      () => exit(0),
      (err: unknown) => {
        logger.error({ err }, "graceful shutdown failed");
        exit(1);
      },
    );
  };
  for (const s of signals) process.on(s, onSignal);
  return () => {
    for (const s of signals) process.off(s, onSignal);
  };
}
