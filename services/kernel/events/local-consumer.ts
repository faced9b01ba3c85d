import type { Logger } from "pino";
import type { Database, Queryable } from "../db/ports.js";
import { backoffDelayMs } from "../resilience/backoff.js";
import { retryDelayMs } from "./backoff.js";
import { advanceCheckpoint, type CheckpointLease, claimCheckpoint, leaseOwnerId, releaseCheckpoint } from "./checkpoint-lease.js";
import { lagSecondsOf, oldest, registerConsumerLag } from "./consumer-lag.js";
import { lastPosition, readAll, readEventAt } from "./event-store.js";
import { FOREGROUND_MAX_WAIT_MS, foregroundWork, yieldingDatabase } from "./foreground.js";
import { createLocalDeadLetters, parkLocalDelivery } from "./local-dead-letters.js";
import { consumerDeliveries, consumerLastHeartbeat, consumerPending, consumerRedeliveries } from "./metrics.js";
import type { OffboardedTenants } from "./offboarded-tenants.js";
import {
  type ConsumerOptions,
  type ConsumerStatus,
  type DeliveredEvent,
  PermanentFailure,
  type RecordedEvent,
  type Subscription,
} from "./ports.js";
import { deliverOnce } from "./processed-events.js";
import { assertConsumerName, subjectOf, topicPattern } from "./topics.js";
import { WakeSignal } from "./wake-signal.js";

/** What a local consumer needs from its bus. */
export interface LocalConsumerContext {
  /** Offboarded tenants whose events are skipped (unless the consumer opts out). */
  offboarded?: OffboardedTenants;
  /** Database holding `platform.events` and the local bus tables. */
  db: Database;
  subjectPrefix: string;
  logger: Logger;
  /** Longest sleep between rounds (NOTIFY and replays wake it sooner). */
  pollIntervalMs: number;
  /** The longest sleep between rounds right now (longer while NOTIFY works); default `pollIntervalMs`. */
  currentPollMs?: () => number;
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
 *
 * Background manners: a round starts only once no foreground work is in progress (a run on
 * its way to its first token, see foreground.ts; waiting at most FOREGROUND_MAX_WAIT_MS), and
 * every statement first lets pending I/O run. A round costs few statements: the lease is
 * claimed again only when a third of it has passed (the checkpoint is known meanwhile), the
 * checkpoint is not moved twice to the same place, and one statement reads both the pending
 * retries and when the next one is due.
 */
export async function createLocalConsumer(ctx: LocalConsumerContext, options: ConsumerOptions): Promise<Subscription> {
  const { name } = options;
  assertConsumerName(name);
  const pattern = topicPattern(options.subject);
  const matches = new RegExp(pattern);
  const sameDb = (options.db ?? ctx.db) === ctx.db;
  const db = yieldingDatabase(ctx.db);
  const handlerDb = sameDb ? db : yieldingDatabase(options.db ?? ctx.db);
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
  /** The stored checkpoint while this replica holds the lease (undefined: claim to learn it). */
  let heldPosition: bigint | undefined;
  /** An advance found the lease taken by another replica. */
  let leaseLost = false;
  /** When the next scheduled retry is due, as of the end of the last round (ms from then). */
  let nextRetryMs = Infinity;
  /** Commit time of the oldest event not handled yet, as of the last round (or the delivery in progress). */
  let oldestUnhandledAt: Date | undefined;
  /** Commit time of the oldest event waiting for a retry, as of the last round. */
  let oldestRetryAt: Date | undefined;
  /** Lag is known while this replica leads and has measured it once. */
  let lagKnown = false;

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
    if (d.advanceTo !== undefined && !(await advanceCheckpoint(q, lease, d.advanceTo))) leaseLost = true;
  }

  async function deliver(e: RecordedEvent, deliveryCount: number, d: DeliveryContext): Promise<void> {
    const event = toDelivered(e, deliveryCount);
    // A first delivery: this event (or an older retry) is the oldest unhandled while it runs.
    if (d.advanceTo !== undefined) oldestUnhandledAt = oldest(oldestUnhandledAt ?? oldestRetryAt, e.occurredAt);
    if (deliveryCount > 1) consumerRedeliveries.inc({ consumer: name });
    inFlight = 1;
    try {
      const outcome = await deliverOnce({
        db: handlerDb,
        schema,
        consumer: name,
        event,
        handler: options.handler,
        ...(ctx.offboarded && options.deliverOffboardedTenants !== true ? { offboarded: ctx.offboarded } : {}),
        ...(sameDb ? { alsoInTransaction: (tx: Queryable) => bookkeeping(tx, e.position, d) } : {}),
      });
      if (!sameDb) await bookkeeping(db, e.position, d);
      consumerDeliveries.inc({ consumer: name, outcome });
    } catch (err) {
      const error = errorText(err);
      if (deliveryCount >= maxDeliver || err instanceof PermanentFailure) {
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
          if (d.advanceTo !== undefined && !(await advanceCheckpoint(tx, lease, d.advanceTo))) leaseLost = true;
        });
        consumerDeliveries.inc({ consumer: name, outcome: "dead_lettered" });
        logger.error({ eventId: e.eventId, deliveryCount, error }, "event dead-lettered");
        await refreshDlqDepth();
        if (options.onDeadLettered) {
          await options.onDeadLettered(event, error).catch((hookErr: unknown) => logger.warn({ err: hookErr }, "onDeadLettered failed"));
        }
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
          if (d.advanceTo !== undefined && !(await advanceCheckpoint(tx, lease, d.advanceTo))) leaseLost = true;
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

  /** The checkpoint when this replica leads (claiming the lease when it is due), else undefined. */
  async function leadingCheckpoint(): Promise<bigint | undefined> {
    if (leader && heldPosition !== undefined && Date.now() - leaseRenewedAt < lease.ttlMs / 3) return heldPosition;
    const checkpoint = await claimCheckpoint(db, lease, initialPosition);
    leader = checkpoint !== undefined;
    heldPosition = checkpoint;
    if (leader) leaseRenewedAt = Date.now();
    return checkpoint;
  }

  /** Keeps the lease alive during a long round. */
  const renewLease = async (): Promise<boolean> => (await leadingCheckpoint()) !== undefined;

  /** Forget the lease: the next round claims it again (and learns the stored checkpoint). */
  function dropLease(): void {
    heldPosition = undefined;
    leaseRenewedAt = 0;
    leaseLost = false;
  }

  /** One round; resolves to true when there is more work right away. */
  async function round(): Promise<boolean> {
    const checkpoint = await leadingCheckpoint();
    touch();
    if (checkpoint === undefined) {
      lagKnown = false; // another replica leads: its lag is its own to report
      return false;
    }

    const { rows: due } = await db.query<{ position: bigint; deliveries: number; replay_count: number }>(
      `SELECT position, deliveries, replay_count FROM platform.local_bus_retries
       WHERE consumer = $1 AND next_attempt_at <= now()
       ORDER BY next_attempt_at, position LIMIT $2`,
      [name, ctx.batchSize],
    );
    for (const r of due) {
      if (!running) return false;
      if (!(await renewLease())) {
        dropLease();
        return false;
      }
      const e = await readEventAt(db, r.position);
      if (e) await deliver(e, r.deliveries + 1, { retry: { replayCount: r.replay_count } });
    }

    const events = await readAll(db, checkpoint, ctx.batchSize);
    let seen: bigint | undefined;
    let stored = checkpoint;
    for (const e of events) {
      if (!running || !(await renewLease())) break;
      if (matches.test(e.topic)) {
        await deliver(e, 1, { advanceTo: e.position });
        stored = e.position;
      }
      seen = e.position;
    }
    if (seen !== undefined && seen !== stored) {
      if (await advanceCheckpoint(db, lease, seen)) stored = seen;
      else leaseLost = true;
    }
    heldPosition = stored;
    if (leaseLost) dropLease();

    // Lag. A round that read less than a batch has caught up with the log, so only the retries
    // are pending: skip scanning the event table, which on PGlite stalls the event loop once
    // per append for every consumer.
    const caughtUp = events.length < ctx.batchSize;
    // Lag in seconds: the commit time of the oldest event not handled yet (the next matching
    // event after the checkpoint, or the oldest scheduled retry).
    const { rows } = caughtUp
      ? await db.query<{ n: number; ms: number | null; next_at: Date | null; retry_at: Date | null }>(
          `SELECT count(*)::int AS n, (extract(epoch FROM (min(r.next_attempt_at) - now())) * 1000)::float8 AS ms,
                  NULL::timestamptz AS next_at, min(e.occurred_at) AS retry_at
           FROM platform.local_bus_retries r LEFT JOIN platform.events e ON e.position = r.position WHERE r.consumer = $1`,
          [name],
        )
      : await db.query<{ n: number; ms: number | null; next_at: Date | null; retry_at: Date | null }>(
          `SELECT (SELECT count(*) FROM platform.events WHERE position > $2 AND topic ~ $3)::int
                + (SELECT count(*) FROM platform.local_bus_retries WHERE consumer = $1)::int AS n, 0::float8 AS ms,
                  (SELECT occurred_at FROM platform.events WHERE position > $2 AND topic ~ $3 ORDER BY position LIMIT 1) AS next_at,
                  (SELECT min(e.occurred_at) FROM platform.local_bus_retries r JOIN platform.events e ON e.position = r.position
                   WHERE r.consumer = $1) AS retry_at`,
          [name, seen ?? checkpoint, pattern],
        );
    pending = rows[0]?.n ?? 0;
    const ms = rows[0]?.ms;
    nextRetryMs = ms === null || ms === undefined ? Infinity : Math.max(0, ms);
    oldestRetryAt = rows[0]?.retry_at ?? undefined;
    oldestUnhandledAt = oldest(rows[0]?.next_at, oldestRetryAt);
    lagKnown = true;
    consumerPending.set({ consumer: name }, pending);
    return events.length === ctx.batchSize || due.length === ctx.batchSize;
  }

  async function run(): Promise<void> {
    let failures = 0;
    while (running) {
      try {
        await foregroundWork.idle(FOREGROUND_MAX_WAIT_MS);
        if (!running) break;
        const more = await round();
        failures = 0;
        if (more) continue;
        const poll = Math.min(ctx.currentPollMs?.() ?? ctx.pollIntervalMs, Math.max(ctx.pollIntervalMs, lease.ttlMs / 3));
        const wait = leader ? Math.min(poll, nextRetryMs) : Math.max(poll, lease.ttlMs / 3);
        await signal.wait(Math.max(5, wait));
      } catch (err) {
        dropLease();
        failures += 1;
        logger.warn({ err, failures }, "local consumer round failed; retrying");
        await signal.wait(backoffDelayMs(failures + 1, { initialMs: 250, maxMs: 30_000 }));
      }
    }
  }

  const unregister = ctx.register(() => signal.wake());
  const lagSeconds = (): number | undefined => (running && lagKnown ? lagSecondsOf(oldestUnhandledAt) : undefined);
  const unregisterLag = registerConsumerLag(name, lagSeconds);
  touch();
  const loop = run();

  return {
    name,
    status(): ConsumerStatus {
      const limit = Math.max(ctx.currentPollMs?.() ?? ctx.pollIntervalMs, ctx.pollIntervalMs, lease.ttlMs / 3) * 3 + 5_000;
      const fresh = lastHeartbeatAt !== undefined && Date.now() - lastHeartbeatAt.getTime() < limit;
      // A long handler is not a stall: the loop is busy, not dead.
      const lag = lagSeconds();
      return {
        name,
        healthy: running && (fresh || inFlight > 0),
        lastHeartbeatAt,
        pending,
        inFlight,
        ...(lag === undefined ? {} : { lagSeconds: lag }),
      };
    },
    async stop() {
      if (!running) return;
      running = false;
      unregister();
      unregisterLag();
      signal.wake();
      await loop;
      if (leader) await releaseCheckpoint(db, lease).catch(() => undefined);
    },
  };
}
