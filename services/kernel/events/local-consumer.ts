import type { Logger } from "pino";
import type { Database, Queryable } from "../db/ports.js";
import { retryDelayMs } from "./backoff.js";
import {
  advanceCheckpoint,
  claimCheckpoint,
  leaseOwnerId,
  releaseCheckpoint,
  type CheckpointLease,
} from "./checkpoint-lease.js";
import { lastPosition, readAll, readEventAt } from "./event-store.js";
import { createLocalDeadLetters, parkLocalDelivery } from "./local-dead-letters.js";
import { consumerDeliveries, consumerLastHeartbeat, consumerPending, consumerRedeliveries } from "./metrics.js";
import type { ConsumerOptions, ConsumerStatus, DeliveredEvent, RecordedEvent, Subscription } from "./ports.js";
import { deliverOnce } from "./processed-events.js";
import { assertConsumerName, subjectOf, topicPattern } from "./topics.js";
import { WakeSignal } from "./wake-signal.js";

/** What a local consumer needs from its bus. */
export interface LocalConsumerContext {
  /** Database holding `platform.events` and the local bus tables. */
  db: Database;
  subjectPrefix: string;
  logger: Logger;
  /** Longest sleep between rounds (NOTIFY and replays wake it sooner). */
  pollIntervalMs: number;
  batchSize: number;
  leaseMs: number;
  /** Called with the consumer's wake function; returns an unregister function. */
  register(wake: () => void): () => void;
}

/** Where a retry or first delivery came from. */
interface DeliveryContext {
  /** A scheduled retry row to delete on success. */
  retry?: { replayCount: number };
  /** A new event: move the checkpoint to it in the same transaction. */
  advanceTo?: bigint;
}

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err)) || "unknown error";

/**
 * The embedded bus's consumer: reads `platform.events` after its checkpoint
 * (`platform.local_bus_checkpoints`), one event at a time in global order, with the same
 * contract as the NATS consumer — idempotent by event id, backoff `min(1 s × 2^(n-1), 5 min)`
 * between failed deliveries, DLQ after `maxDeliver` failures. A failed event does not block
 * the ones behind it: its retry is scheduled in `platform.local_bus_retries` and the checkpoint
 * moves on, as on NATS. One replica per consumer name makes progress (a lease on its
 * checkpoint row); a delivery that crashes the process is not counted (the NATS bus counts it).
 */
export async function createLocalConsumer(ctx: LocalConsumerContext, options: ConsumerOptions): Promise<Subscription> {
  const { name } = options;
  assertConsumerName(name);
  const pattern = topicPattern(options.subject);
  const matches = new RegExp(pattern);
  const { db } = ctx;
  const handlerDb = options.db ?? db;
  const sameDb = handlerDb === db;
  const schema = options.schema ?? "platform";
  const maxDeliver = options.maxDeliver ?? 5;
  const logger = ctx.logger.child({ component: "local-consumer", consumer: name });
  const lease: CheckpointLease = { table: "local_bus_checkpoints", name, owner: leaseOwnerId(), ttlMs: ctx.leaseMs };
  const signal = new WakeSignal();
  const initialPosition = options.deliverFrom === "new" ? await lastPosition(db) : 0n;

  let running = true;
  let leader = false;
  let inFlight = 0;
  let pending = 0;
  let lastHeartbeatAt: Date | undefined;
  let leaseRenewedAt = 0;

  const touch = (): void => {
    lastHeartbeatAt = new Date();
    consumerLastHeartbeat.set({ consumer: name }, Math.floor(lastHeartbeatAt.getTime() / 1000));
  };

  function toDelivered(e: RecordedEvent, deliveryCount: number): DeliveredEvent {
    return {
      eventId: e.eventId,
      type: e.type,
      streamId: e.streamId,
      version: e.version,
      payload: e.payload,
      metadata: e.metadata,
      subject: subjectOf(ctx.subjectPrefix, e.topic),
      topic: e.topic,
      occurredAt: e.occurredAt,
      deliveryCount,
    };
  }

  async function bookkeeping(q: Queryable, position: bigint, d: DeliveryContext): Promise<void> {
    if (d.retry) await q.query("DELETE FROM platform.local_bus_retries WHERE consumer = $1 AND position = $2", [name, position]);
    if (d.advanceTo !== undefined) await advanceCheckpoint(q, lease, d.advanceTo);
  }

  async function deliver(e: RecordedEvent, deliveryCount: number, d: DeliveryContext): Promise<void> {
    const event = toDelivered(e, deliveryCount);
    if (deliveryCount > 1) consumerRedeliveries.inc({ consumer: name });
    inFlight = 1;
    try {
      const outcome = await deliverOnce({
        db: handlerDb,
        schema,
        consumer: name,
        event,
        handler: options.handler,
        ...(sameDb ? { alsoInTransaction: (tx: Queryable) => bookkeeping(tx, e.position, d) } : {}),
      });
      if (!sameDb) await bookkeeping(db, e.position, d);
      consumerDeliveries.inc({ consumer: name, outcome });
    } catch (err) {
      const error = errorText(err);
      if (deliveryCount >= maxDeliver) {
        await db.transaction(async (tx) => {
          await parkLocalDelivery(tx, {
            consumer: name,
            position: e.position,
            subject: event.subject,
            deliveryCount,
            error,
            replayCount: d.retry?.replayCount ?? 0,
          });
          await tx.query("DELETE FROM platform.local_bus_retries WHERE consumer = $1 AND position = $2", [name, e.position]);
          if (d.advanceTo !== undefined) await advanceCheckpoint(tx, lease, d.advanceTo);
        });
        consumerDeliveries.inc({ consumer: name, outcome: "dead_lettered" });
        logger.error({ eventId: e.eventId, deliveryCount, error }, "event dead-lettered");
        await refreshDlqDepth();
      } else {
        const delay = retryDelayMs(deliveryCount, options.backoff);
        await db.transaction(async (tx) => {
          await tx.query(
            `INSERT INTO platform.local_bus_retries (consumer, position, deliveries, next_attempt_at, last_error, replay_count)
             VALUES ($1, $2, $3, now() + $4 * interval '1 millisecond', $5, $6)
             ON CONFLICT (consumer, position) DO UPDATE
               SET deliveries = EXCLUDED.deliveries, next_attempt_at = EXCLUDED.next_attempt_at, last_error = EXCLUDED.last_error`,
            [name, e.position, deliveryCount, delay, error.slice(0, 4096), d.retry?.replayCount ?? 0],
          );
          if (d.advanceTo !== undefined) await advanceCheckpoint(tx, lease, d.advanceTo);
        });
        consumerDeliveries.inc({ consumer: name, outcome: "failed" });
        logger.warn({ err, eventId: e.eventId, deliveryCount, retryInMs: delay }, "handler failed; will retry");
      }
    } finally {
      inFlight = 0;
    }
  }

  const deadLetters = createLocalDeadLetters(db);
  const refreshDlqDepth = (): Promise<unknown> => deadLetters.depth().catch(() => undefined);

  /** Keeps the lease alive during a long round. */
  async function renewLease(): Promise<boolean> {
    if (Date.now() - leaseRenewedAt < lease.ttlMs / 3) return true;
    const held = (await claimCheckpoint(db, lease, initialPosition)) !== undefined;
    if (held) leaseRenewedAt = Date.now();
    return held;
  }

  /** One round; resolves to true when there is more work right away. */
  async function round(): Promise<boolean> {
    const checkpoint = await claimCheckpoint(db, lease, initialPosition);
    touch();
    leader = checkpoint !== undefined;
    if (checkpoint === undefined) return false;
    leaseRenewedAt = Date.now();

    const { rows: due } = await db.query<{ position: bigint; deliveries: number; replay_count: number }>(
      `SELECT position, deliveries, replay_count FROM platform.local_bus_retries
       WHERE consumer = $1 AND next_attempt_at <= now()
       ORDER BY next_attempt_at, position LIMIT $2`,
      [name, ctx.batchSize],
    );
    for (const r of due) {
      if (!running || !(await renewLease())) return false;
      const e = await readEventAt(db, r.position);
      if (e) await deliver(e, r.deliveries + 1, { retry: { replayCount: r.replay_count } });
    }

    const events = await readAll(db, checkpoint, ctx.batchSize);
    let seen: bigint | undefined;
    for (const e of events) {
      if (!running || !(await renewLease())) break;
      if (matches.test(e.topic)) await deliver(e, 1, { advanceTo: e.position });
      seen = e.position;
    }
    if (seen !== undefined) await advanceCheckpoint(db, lease, seen);

    // Lag. A round that read less than a batch has caught up with the log, so only the retries
    // are pending: skip scanning the event table, which on PGlite stalls the event loop once
    // per append for every consumer.
    const caughtUp = events.length < ctx.batchSize;
    const { rows } = caughtUp
      ? await db.query<{ n: number }>("SELECT count(*)::int AS n FROM platform.local_bus_retries WHERE consumer = $1", [name])
      : await db.query<{ n: number }>(
          `SELECT (SELECT count(*) FROM platform.events WHERE position > $2 AND topic ~ $3)::int
                + (SELECT count(*) FROM platform.local_bus_retries WHERE consumer = $1)::int AS n`,
          [name, seen ?? checkpoint, pattern],
        );
    pending = rows[0]?.n ?? 0;
    consumerPending.set({ consumer: name }, pending);
    return events.length === ctx.batchSize || due.length === ctx.batchSize;
  }

  async function nextRetryInMs(): Promise<number> {
    const { rows } = await db.query<{ ms: number | null }>(
      `SELECT (extract(epoch FROM (min(next_attempt_at) - now())) * 1000)::float8 AS ms
       FROM platform.local_bus_retries WHERE consumer = $1`,
      [name],
    );
    const ms = rows[0]?.ms;
    return ms === null || ms === undefined ? Infinity : Math.max(0, ms);
  }

  async function run(): Promise<void> {
    let failures = 0;
    while (running) {
      try {
        const more = await round();
        failures = 0;
        if (more) continue;
        const wait = leader ? Math.min(ctx.pollIntervalMs, await nextRetryInMs()) : Math.max(ctx.pollIntervalMs, lease.ttlMs / 3);
        await signal.wait(Math.max(5, wait));
      } catch (err) {
        failures += 1;
        logger.warn({ err, failures }, "local consumer round failed; retrying");
        await signal.wait(Math.min(30_000, 250 * 2 ** Math.min(failures, 7)));
      }
    }
  }

  const unregister = ctx.register(() => signal.wake());
  touch();
  const loop = run();

  return {
    name,
    status(): ConsumerStatus {
      const limit = Math.max(ctx.pollIntervalMs, lease.ttlMs / 3) * 3 + 5_000;
      const fresh = lastHeartbeatAt !== undefined && Date.now() - lastHeartbeatAt.getTime() < limit;
      // A long handler is not a stall: the loop is busy, not dead.
      return { name, healthy: running && (fresh || inFlight > 0), lastHeartbeatAt, pending, inFlight };
    },
    async stop() {
      if (!running) return;
      running = false;
      unregister();
      signal.wake();
      await loop;
      if (leader) await releaseCheckpoint(db, lease).catch(() => undefined);
    },
  };
}
