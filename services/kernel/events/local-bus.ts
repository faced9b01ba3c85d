import { type Logger, pino } from "pino";
import type { Database } from "../db/ports.js";
import { BusMembers } from "./bus-members.js";
import { measureLocalConsumerLag } from "./consumer-lag.js";
import { appendDirect } from "./direct-publish.js";
import { createLocalConsumer } from "./local-consumer.js";
import { createLocalDeadLetters } from "./local-dead-letters.js";
import { createLocalObserver } from "./local-observer.js";
import { createOffboardedTenants } from "./offboarded-tenants.js";
import { EVENTS_CHANNEL, migratePlatform } from "./platform-migrations.js";
import type { ConsumerOptions, EventBus } from "./ports.js";
import { ensureProcessedEvents } from "./processed-events.js";
import { assertSubjectPrefix, DEFAULT_SUBJECT_PREFIX, topicPattern } from "./topics.js";

/** Options of {@link createLocalEventBus}. */
export interface LocalEventBusOptions {
  /** Database holding `platform.events` (PGlite in `nexus dev`, or any Postgres). */
  db: Database;
  /** Used for the `subject` handlers see. Default "nexus". */
  subjectPrefix?: string;
  /** Longest sleep between polls; NOTIFY on append wakes consumers sooner. Default 1 000 ms. */
  pollIntervalMs?: number;
  /**
   * Longest sleep between polls while LISTEN works: every append (and every dead-letter
   * replay) sends a NOTIFY that wakes consumers and observers at once, and a consumer's own
   * scheduled retries wake it when due, so a poll then is only a safety net. Idle polls cost
   * an idle `nexus dev` CPU all the time (each is a few statements on PGlite, on the event
   * loop). A consumer's is also capped at a third of its lease. Default: `pollIntervalMs`.
   */
  idlePollIntervalMs?: number;
  /** Events read per round. Default 100. */
  batchSize?: number;
  /** Per-consumer leadership lease among processes. Default 30 000 ms. */
  leaseMs?: number;
  logger?: Logger;
}

/**
 * The embedded event bus: no NATS, consumers read `platform.events` directly with the same
 * contract as the NATS bus (durable, idempotent, backoff, DLQ with list/replay). Used by
 * `nexus dev` on PGlite; also works on PostgreSQL.
 */
export async function createLocalEventBus(options: LocalEventBusOptions): Promise<EventBus> {
  const { db } = options;
  const prefix = options.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX;
  assertSubjectPrefix(prefix);
  const logger = options.logger ?? pino({ level: "silent" });
  const members = new BusMembers();
  // Consumers skip an offboarded tenant's events (offboarded-tenants.ts).
  const offboarded = createOffboardedTenants(db, logger);
  const wakers = new Set<() => void>();
  const wakeAll = (): void => {
    for (const wake of wakers) wake();
  };
  const deadLetters = createLocalDeadLetters(db);
  let started: Promise<void> | undefined;
  let unlisten: (() => Promise<void>) | undefined;
  let closed = false;
  const pollIntervalMs = options.pollIntervalMs ?? 1_000;
  const idlePollIntervalMs = Math.max(pollIntervalMs, options.idlePollIntervalMs ?? pollIntervalMs);
  /** The longest sleep between polls right now: long while NOTIFY wakes the bus's members. */
  const currentPollMs = (): number => (unlisten !== undefined && !closed ? idlePollIntervalMs : pollIntervalMs);

  const bus: EventBus = {
    kind: "local",
    subjectPrefix: prefix,
    start() {
      started ??= (async () => {
        await migratePlatform(db, logger);
        unlisten = await db.listen(EVENTS_CHANNEL, wakeAll).catch((err: unknown) => {
          logger.warn({ err }, "LISTEN failed; local bus polls only");
          return undefined;
        });
        await deadLetters.depth();
      })();
      return started;
    },
    async consumerLag(consumer, subject) {
      await bus.start();
      return measureLocalConsumerLag(db, consumer, topicPattern(subject));
    },
    async subscribe(consumer: ConsumerOptions) {
      if (closed) throw new Error("event bus is closed");
      members.assertNew(consumer.name);
      await bus.start();
      await ensureProcessedEvents(consumer.db ?? db, consumer.schema ?? "platform");
      if (consumer.deliverOffboardedTenants !== true) await offboarded.watch(bus);
      const subscription = await createLocalConsumer(
        {
          db,
          subjectPrefix: prefix,
          logger,
          offboarded,
          pollIntervalMs,
          currentPollMs,
          batchSize: options.batchSize ?? 100,
          leaseMs: options.leaseMs ?? 30_000,
          register(wake) {
            wakers.add(wake);
            return () => wakers.delete(wake);
          },
        },
        consumer,
      );
      return members.addSubscription(subscription);
    },
    async publish(events, publishOptions) {
      if (closed) throw new Error("event bus is closed");
      if (events.length === 0) return;
      await bus.start();
      const tx = publishOptions?.tx;
      if (tx) await appendDirect(tx, events, publishOptions.metadata);
      else await db.transaction((t) => appendDirect(t, events, publishOptions?.metadata));
    },
    async observe(observeOptions) {
      if (closed) throw new Error("event bus is closed");
      await bus.start();
      const observation = await createLocalObserver(
        {
          db,
          subjectPrefix: prefix,
          logger,
          pollIntervalMs,
          currentPollMs,
          batchSize: options.batchSize ?? 100,
          register(wake) {
            wakers.add(wake);
            return () => wakers.delete(wake);
          },
        },
        observeOptions,
      );
      return members.addObservation(observation);
    },
    deadLetters,
    async consumerNames() {
      await bus.start();
      const { rows } = await db.query<{ consumer: string }>("SELECT consumer FROM platform.local_bus_checkpoints ORDER BY consumer");
      return rows.map((r) => r.consumer);
    },
    async deleteConsumer(name) {
      await bus.start();
      await db.transaction(async (tx) => {
        await tx.query("DELETE FROM platform.local_bus_retries WHERE consumer = $1", [name]);
        await tx.query("DELETE FROM platform.local_bus_checkpoints WHERE consumer = $1", [name]);
      });
    },
    status: () => members.status(),
    async close() {
      if (closed) return;
      closed = true;
      await members.stopAll();
      await unlisten?.();
    },
  };
  return bus;
}
