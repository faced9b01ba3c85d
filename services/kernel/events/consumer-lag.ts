import type { JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { Gauge, register } from "prom-client";
import type { Queryable } from "../db/ports.js";
import type { ConsumerLag } from "./ports.js";

/*
 * Consumer lag in seconds (docs/event-sourcing.md, "Consumer lag in seconds"): the age of the
 * oldest event a durable consumer has not handled yet — the commit time of the next event it
 * has not handled (the local bus: the event's `occurred_at`; NATS: the time JetStream stored
 * the message), against now; 0 when it has handled everything. Each running consumer keeps
 * the time of its oldest unhandled event up to date (every round / every second); the gauge
 * and `lagSeconds` are computed from it when read, so they grow by the second while a
 * consumer is held back even if nothing refreshes it.
 */

/** Seconds since `oldest` (0 when undefined), rounded to the millisecond. */
export function lagSecondsOf(oldest: Date | undefined, now = Date.now()): number {
  return oldest === undefined ? 0 : Math.max(0, Math.round(now - oldest.getTime()) / 1000);
}

/** Consumers running in this process → their current lag in seconds (undefined: not known). */
const running = new Map<string, () => number | undefined>();

const lagGauge =
  (register.getSingleMetric("nexus_consumer_lag_seconds") as Gauge<"consumer"> | undefined) ??
  new Gauge({
    name: "nexus_consumer_lag_seconds",
    help: "Age in seconds of the oldest event a durable consumer has not handled (0 = caught up)",
    labelNames: ["consumer"],
    collect() {
      this.reset();
      for (const [consumer, lag] of running) {
        const s = lag();
        if (s !== undefined) this.set({ consumer }, s);
      }
    },
  });
void lagGauge;

/** Registers a running consumer's lag for the gauge and `consumerLagSeconds`; returns the unregister function. */
export function registerConsumerLag(consumer: string, lag: () => number | undefined): () => void {
  running.set(consumer, lag);
  return () => {
    if (running.get(consumer) === lag) running.delete(consumer);
  };
}

/** The lag in seconds of a consumer running in this process (undefined: not running here, or not measured yet). */
export function consumerLagSeconds(consumer: string): number | undefined {
  return running.get(consumer)?.();
}

/**
 * The embedded bus: events after the consumer's checkpoint whose topic matches `topicPattern`
 * (a regular expression, see topics.ts) plus its scheduled retries. Undefined when the
 * consumer has no checkpoint yet.
 */
export async function measureLocalConsumerLag(q: Queryable, consumer: string, topicPattern: string): Promise<ConsumerLag | undefined> {
  const { rows } = await q.query<{ position: string | bigint; n: number; next_at: Date | null; retry_at: Date | null }>(
    `SELECT c.position,
            (SELECT count(*) FROM platform.events e WHERE e.position > c.position AND e.topic ~ $2)::int
              + (SELECT count(*) FROM platform.local_bus_retries r WHERE r.consumer = $1)::int AS n,
            (SELECT e.occurred_at FROM platform.events e WHERE e.position > c.position AND e.topic ~ $2
              ORDER BY e.position LIMIT 1) AS next_at,
            (SELECT min(e.occurred_at) FROM platform.local_bus_retries r JOIN platform.events e ON e.position = r.position
              WHERE r.consumer = $1) AS retry_at
     FROM platform.local_bus_checkpoints c WHERE c.consumer = $1`,
    [consumer, topicPattern],
  );
  const r = rows[0];
  if (!r) return undefined;
  return { unhandled: r.n, oldestUnhandledAt: oldest(r.next_at, r.retry_at) };
}

/** The earlier of two optional times. */
export function oldest(a: Date | null | undefined, b: Date | null | undefined): Date | undefined {
  if (!a) return b ?? undefined;
  if (!b) return a;
  return a.getTime() <= b.getTime() ? a : b;
}

/** Caches the stored time of the last message looked up, so a held-back consumer costs one lookup. */
export interface NatsLagCache {
  afterSeq?: number;
  at?: Date | undefined;
}

/**
 * NATS (2.9): from the durable consumer's info — `num_pending` (not delivered) plus
 * `num_ack_pending` (delivered, not acknowledged) — and, when some are left, the time
 * JetStream stored the first message on the consumer's filter subject after its ack floor
 * (`STREAM.MSG.GET` with `next_by_subj`). Undefined when the consumer does not exist.
 */
export async function measureNatsConsumerLag(
  nc: NatsConnection,
  jsm: JetStreamManager,
  stream: string,
  consumer: string,
  cache: NatsLagCache = {},
): Promise<ConsumerLag | undefined> {
  let info: Awaited<ReturnType<JetStreamManager["consumers"]["info"]>>;
  try {
    info = await jsm.consumers.info(stream, consumer);
  } catch {
    return undefined;
  }
  const unhandled = info.num_pending + info.num_ack_pending;
  if (unhandled === 0) return { unhandled, oldestUnhandledAt: undefined };
  const after = info.ack_floor.stream_seq;
  if (cache.afterSeq !== after || cache.at === undefined) {
    const filter = info.config.filter_subject ?? ">";
    const reply = await nc.request(`$JS.API.STREAM.MSG.GET.${stream}`, JSON.stringify({ seq: after + 1, next_by_subj: filter }), {
      timeout: 2_000,
    });
    const body = JSON.parse(new TextDecoder().decode(reply.data)) as { message?: { time?: string } };
    cache.afterSeq = after;
    cache.at = body.message?.time ? new Date(body.message.time) : undefined;
  }
  return { unhandled, oldestUnhandledAt: cache.at };
}
