import type { Logger } from "pino";
import { backoffDelayMs } from "../resilience/backoff.js";
import type { ReadinessResult } from "../server/service-module.js";
import type { ConsumerOptions, EventBus, Subscription } from "./ports.js";

/** A module's durable consumers, started in the background with its lifecycle hooks. */
export interface BackgroundConsumers {
  /**
   * Ready once every consumer subscribed; a consumer that is unhealthy afterwards (NATS away)
   * is named in the info but keeps the module ready — its RPCs still work (docs/operations.md,
   * "Readiness").
   */
  readiness(): Promise<ReadinessResult>;
  /** Resolves when every consumer subscribed (tests wait on it). */
  started(): Promise<void>;
  /** Stops retrying, then drains every subscription. */
  stop(): Promise<void>;
}

/** Retry delays after a failed subscribe: 500 ms, doubling up to 30 s. */
const SUBSCRIBE_BACKOFF = { initialMs: 500, maxMs: 30_000 };

/**
 * Subscribes `consumers` on `bus` without blocking the module's build (which is synchronous):
 * a subscribe that fails (NATS briefly away) is retried with backoff, and readiness stays
 * false until every consumer has started, so a starting process is not sent traffic early.
 */
export function startBackgroundConsumers(bus: EventBus, logger: Logger, consumers: readonly ConsumerOptions[]): BackgroundConsumers {
  const subscriptions = new Map<string, Subscription>();
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let resolveAll: () => void = () => {};
  const all = new Promise<void>((resolve) => (resolveAll = resolve));

  const subscribeOne = async (options: ConsumerOptions, attempt: number): Promise<void> => {
    if (stopped) return;
    try {
      const sub = await bus.subscribe(options);
      if (stopped) {
        await sub.stop();
        return;
      }
      subscriptions.set(options.name, sub);
      if (subscriptions.size === consumers.length) resolveAll();
    } catch (err) {
      const delay = backoffDelayMs(attempt, SUBSCRIBE_BACKOFF);
      logger.warn({ err, consumer: options.name, retry_in_ms: delay }, "could not start consumer; retrying");
      await new Promise<void>((resolve) => {
        timer = setTimeout(resolve, delay);
        timer.unref();
      });
      await subscribeOne(options, attempt + 1);
    }
  };
  if (consumers.length === 0) resolveAll();
  for (const c of consumers) void subscribeOne(c, 1);

  return {
    async readiness() {
      const missing = consumers.filter((c) => !subscriptions.has(c.name)).map((c) => c.name);
      if (missing.length > 0) return { ready: false, reason: `consumers not started: ${missing.join(", ")}` };
      const unhealthy = [...subscriptions.values()].filter((s) => !s.status().healthy).map((s) => s.name);
      return unhealthy.length === 0 ? { ready: true } : { ready: true, info: { unhealthy_consumers: unhealthy.join(",") } };
    },
    started: () => all,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await Promise.all([...subscriptions.values()].map((s) => s.stop()));
      subscriptions.clear();
    },
  };
}
