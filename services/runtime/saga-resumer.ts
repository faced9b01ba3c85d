import type { Logger } from "pino";
import type { Database } from "../kernel/db/ports.js";
import { leaseOwnerId } from "../kernel/events/checkpoint-lease.js";
import { runSaga, type SagaDefinition, unfinishedSagas } from "../kernel/sagas/index.js";

/** A running {@link startSagaResumer}. */
export interface SagaResumer {
  /** Resolves when the current pass ended (tests). */
  pass(): Promise<void>;
  /** Stops at the next transition of the saga being driven (its lease is released) and waits. */
  close(): Promise<void>;
}

/**
 * Resumes unfinished sagas without an operator: at start-up, and then every `leaseMs`, it
 * drives every unfinished saga of the given definitions whose lease is free (never claimed,
 * released, or lapsed because its runner died — killed, crashed, lost its database). A saga
 * another live runner drives (a `nexus tenants offboard` in progress, another replica) is left
 * to it: the lease (platform.saga_leases) admits one runner at a time across replicas.
 */
export function startSagaResumer(options: {
  db: Database;
  defs: readonly SagaDefinition<never>[];
  logger: Logger;
  leaseMs: number;
}): SagaResumer {
  const { db, logger, leaseMs } = options;
  const byName = new Map(options.defs.map((d) => [d.name, d as SagaDefinition<unknown>]));
  const lease = { owner: leaseOwnerId(), ttlMs: leaseMs };
  const stop = new AbortController();
  let running: Promise<void> | undefined;

  const runPass = async (): Promise<void> => {
    for (const { sagaId, name } of await unfinishedSagas(db)) {
      if (stop.signal.aborted) return;
      const def = byName.get(name);
      if (!def) continue;
      try {
        const state = await runSaga(db, def, sagaId, { lease, signal: stop.signal });
        if (state.status !== "running" && state.status !== "compensating")
          logger.info({ saga: name, sagaId, status: state.status }, "saga resumed to its end");
      } catch (err) {
        logger.warn({ err, saga: name, sagaId }, "resuming a saga failed; retried at the next pass");
      }
    }
  };
  // One pass at a time: a tick during a long pass is skipped.
  const tick = () => {
    if (running || stop.signal.aborted) return;
    running = runPass()
      .catch((err: unknown) => logger.warn({ err }, "listing unfinished sagas failed; retried at the next pass"))
      .finally(() => {
        running = undefined;
      });
  };
  tick();
  const timer = setInterval(tick, leaseMs);
  timer.unref();
  return {
    pass: () => running ?? Promise.resolve(),
    async close() {
      stop.abort();
      clearInterval(timer);
      await running;
    },
  };
}
