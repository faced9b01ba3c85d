import {
  AckPolicy,
  type ConsumerConfig,
  type ConsumerMessages,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import { type NatsConnection, nanos } from "@nats-io/nats-core";
import type { Logger } from "pino";
import type { Database } from "../db/ports.js";
import { backoffDelayMs } from "../resilience/backoff.js";
import { retryDelayMs } from "./backoff.js";
import { lagSecondsOf, measureNatsConsumerLag, type NatsLagCache, registerConsumerLag } from "./consumer-lag.js";
import type { NatsDeadLetters } from "./dead-letters.js";
import { consumerDeliveries, consumerHealthy, consumerLastHeartbeat, consumerPending, consumerRedeliveries } from "./metrics.js";
import { decodeEventMessage, UndecodableMessageError } from "./nats-message.js";
import { JS_ERRORS, jsErrorCode } from "./nats-streams.js";
import type { OffboardedTenants } from "./offboarded-tenants.js";
import { type ConsumerOptions, type ConsumerStatus, type DeliveredEvent, PermanentFailure, type Subscription } from "./ports.js";
import { deliverOnce } from "./processed-events.js";
import { Semaphore } from "./semaphore.js";
import { assertConsumerName, subjectOf, topicPattern } from "./topics.js";
import { WakeSignal } from "./wake-signal.js";

/** What a NATS consumer needs from its bus. */
export interface NatsConsumerContext {
  /** Offboarded tenants whose events are skipped (unless the consumer opts out). */
  offboarded?: OffboardedTenants;
  nats: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  /** Events stream name. */
  stream: string;
  subjectPrefix: string;
  deadLetters: NatsDeadLetters;
  /** Database for handlers that do not bring their own. */
  db: Database;
  logger: Logger;
  /** How often the lag in seconds is measured (consumer info + one message lookup). Default 1 000 ms. */
  lagIntervalMs?: number;
  /** Server idle heartbeat while a pull waits. Default 5 000 ms; unhealthy after 3 missed. */
  heartbeatMs?: number;
  /** Recreates the bus's streams when missing (a NATS server restarted with empty storage). */
  ensureStreams?: () => Promise<unknown>;
}

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err)) || "unknown error";

/**
 * A durable JetStream pull consumer running the Nexus consumer contract:
 * - explicit ack after the handler's transaction commits; idempotent by event id
 *   (`<schema>.processed_events`), so duplicates are acked without running the handler;
 * - on failure `nak(delay)` with `min(1 s × 2^(deliveries-1), 5 min)` (never a bare nak);
 * - on the `maxDeliver`-th failed delivery the framework parks the message in the DLQ stream
 *   and `term()`s it. The server's max_deliver stays unlimited so a message whose last attempt
 *   crashed the process is not silently dropped by the server: a delivery beyond `maxDeliver`
 *   is parked without running the handler;
 * - `working()` keeps the ack wait from expiring while a handler runs;
 * - liveness from server idle heartbeats and message traffic; when the pull loop ends or
 *   stalls (nats.node#590), it is restarted and the durable consumer recreated if it vanished;
 * - when the stream itself vanished (a NATS server restarted with empty storage), the stream
 *   and the durable consumer are recreated at runtime and pulling resumes;
 * - on stop(), messages already pulled but not yet handled are nak'ed at once (no delay), so
 *   another replica gets them now instead of after the ack wait.
 */
export async function createNatsConsumer(ctx: NatsConsumerContext, options: ConsumerOptions): Promise<Subscription> {
  const { name } = options;
  assertConsumerName(name);
  topicPattern(options.subject);
  const db = options.db ?? ctx.db;
  const schema = options.schema ?? "platform";
  const concurrency = options.concurrency ?? 1;
  const maxDeliver = options.maxDeliver ?? 5;
  const ackWaitMs = options.ackWaitMs ?? 30_000;
  const heartbeatMs = ctx.heartbeatMs ?? 5_000;
  const filterSubject = subjectOf(ctx.subjectPrefix, options.subject);
  const logger = ctx.logger.child({ component: "nats-consumer", consumer: name });
  const slots = new Semaphore(concurrency);
  const signal = new WakeSignal();
  const inFlight = new Set<Promise<void>>();
  // The last error per stream sequence, for a redelivery beyond maxDeliver that must be parked
  // without running the handler again (bounded: oldest entries drop out first).
  const lastErrors = new Map<number, string>();

  let running = true;
  let connected = !ctx.nats.isClosed();
  let messages: ConsumerMessages | undefined;
  let lastHeartbeatAt: Date | undefined;
  let pending = 0;

  let silenceLogged = false;
  const touch = (): void => {
    silenceLogged = false;
    lastHeartbeatAt = new Date();
    consumerLastHeartbeat.set({ consumer: name }, Math.floor(lastHeartbeatAt.getTime() / 1000));
  };

  /**
   * Creates the durable consumer unless it exists. `deliverFrom: "new"` applies only when it is
   * first created: one recreated at runtime (it vanished, or NATS lost its storage and the
   * stream is new) starts at the beginning of the stream, which then holds only what the relay
   * published again and what came since — events it may have missed; duplicates are skipped.
   */
  async function ensureConsumer(initial: boolean): Promise<void> {
    const config: Partial<ConsumerConfig> = {
      durable_name: name,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(ackWaitMs),
      max_deliver: -1,
      filter_subject: filterSubject,
      deliver_policy: initial && options.deliverFrom === "new" ? DeliverPolicy.New : DeliverPolicy.All,
      max_ack_pending: Math.max(concurrency * 4, 64),
    };
    try {
      const info = await ctx.jsm.consumers.info(ctx.stream, name);
      if (info.config.filter_subject !== filterSubject || info.config.ack_wait !== config.ack_wait || info.config.max_deliver !== -1) {
        await ctx.jsm.consumers.update(ctx.stream, name, {
          filter_subject: filterSubject,
          ack_wait: config.ack_wait!,
          max_deliver: -1,
        });
      }
    } catch (err) {
      if (jsErrorCode(err) !== JS_ERRORS.CONSUMER_NOT_FOUND) throw err;
      try {
        await ctx.jsm.consumers.add(ctx.stream, config);
      } catch (addErr) {
        // Another replica created it a moment ago: fine if it exists now.
        await ctx.jsm.consumers.info(ctx.stream, name).catch(() => {
          throw addErr;
        });
      }
    }
  }

  async function park(m: JsMsg, deliveryCount: number, error: string, event?: DeliveredEvent): Promise<void> {
    try {
      await ctx.deadLetters.park({ msg: m, consumer: name, deliveryCount, error });
      m.term(`dead-lettered after ${deliveryCount} deliveries`);
      lastErrors.delete(m.seq);
      consumerDeliveries.inc({ consumer: name, outcome: "dead_lettered" });
      logger.error({ seq: m.seq, subject: m.subject, deliveryCount, error }, "message dead-lettered");
      if (event && options.onDeadLettered) {
        await options.onDeadLettered(event, error).catch((err: unknown) => logger.warn({ err, seq: m.seq }, "onDeadLettered failed"));
      }
    } catch (err) {
      // Could not park (NATS trouble): keep the message and try again later.
      remember(m.seq, error);
      m.nak(retryDelayMs(deliveryCount, options.backoff));
      logger.warn({ err, seq: m.seq }, "dead-lettering failed; message will be redelivered");
    }
  }

  function remember(seq: number, error: string): void {
    lastErrors.delete(seq);
    lastErrors.set(seq, error);
    if (lastErrors.size > 1000) lastErrors.delete(lastErrors.keys().next().value!);
  }

  async function processMessage(m: JsMsg): Promise<void> {
    const deliveryCount = m.info.deliveryCount;
    pending = m.info.pending;
    consumerPending.set({ consumer: name }, pending);
    if (deliveryCount > 1) consumerRedeliveries.inc({ consumer: name });
    let event: DeliveredEvent;
    try {
      event = { ...decodeEventMessage(m, ctx.subjectPrefix), deliveryCount };
    } catch (err) {
      if (!(err instanceof UndecodableMessageError)) throw err;
      await park(m, deliveryCount, err.message);
      return;
    }
    if (deliveryCount > maxDeliver) {
      await park(
        m,
        deliveryCount,
        lastErrors.get(m.seq) ?? `delivered ${deliveryCount} times without an outcome (the handler crashed or exceeded the ack wait)`,
        event,
      );
      return;
    }
    const keepAlive = setInterval(() => m.working(), Math.max(1_000, Math.floor(ackWaitMs / 3)));
    try {
      const outcome = await deliverOnce({
        db,
        schema,
        consumer: name,
        event,
        handler: options.handler,
        ...(ctx.offboarded && options.deliverOffboardedTenants !== true ? { offboarded: ctx.offboarded } : {}),
      });
      m.ack();
      lastErrors.delete(m.seq);
      consumerDeliveries.inc({ consumer: name, outcome });
    } catch (err) {
      const error = errorText(err);
      if (deliveryCount >= maxDeliver || err instanceof PermanentFailure) {
        await park(m, deliveryCount, error, event);
      } else {
        const delay = retryDelayMs(deliveryCount, options.backoff);
        remember(m.seq, error);
        m.nak(delay);
        consumerDeliveries.inc({ consumer: name, outcome: "failed" });
        logger.warn({ err, eventId: event.eventId, deliveryCount, retryInMs: delay }, "handler failed; will retry");
      }
    } finally {
      clearInterval(keepAlive);
    }
  }

  async function watch(current: ConsumerMessages): Promise<void> {
    for await (const s of current.status()) {
      switch (s.type) {
        case "heartbeat":
        case "discard":
          touch();
          break;
        case "heartbeats_missed":
          // Once per silence (NATS away): the client reports every few seconds until it is back.
          if (!silenceLogged) logger.warn({ count: s.count }, "consumer missed server heartbeats");
          silenceLogged = true;
          break;
        case "consumer_not_found":
        case "consumer_deleted":
        case "stream_not_found":
          // Restart the pull loop: it recreates the stream (if gone) and the durable consumer
          // before pulling again, with backoff while that fails.
          if (running && messages === current) {
            logger.warn({ status: s.type, stream: ctx.stream }, "consumer or stream vanished; recreating them");
            messages = undefined;
            void current.close().catch(() => undefined);
          }
          break;
        default:
          break;
      }
    }
  }

  async function pump(): Promise<void> {
    let failures = 0;
    // subscribe() has just ensured the consumer; later rounds re-ensure it (it may have vanished).
    let ensured = true;
    while (running) {
      try {
        if (!ensured) {
          await ctx.ensureStreams?.();
          await ensureConsumer(false);
        }
        ensured = false;
        const consumer = await ctx.js.consumers.get(ctx.stream, name);
        const current = await consumer.consume({
          max_messages: Math.max(concurrency * 2, 4),
          expires: Math.max(heartbeatMs * 3, 10_000),
          idle_heartbeat: heartbeatMs,
        });
        messages = current;
        touch();
        void watch(current).catch(() => undefined);
        if (failures > 0) logger.info({ failures }, "consumer pulling again");
        failures = 0;
        // Draining: every message pulled but not handled goes back at once (a bare nak is an
        // immediate redelivery), so another replica gets it without waiting the ack wait. The
        // iterator yields what was buffered before it ends, so none is left waiting. They are
        // nak'ed last first: the server then simply rewinds the consumer over them (nats-server
        // 2.9 can lose track of a message nak'ed ahead of later ones when the later ones are
        // nak'ed too — one of them was then not redelivered before its ack wait).
        const handBack: JsMsg[] = [];
        for await (const m of current) {
          touch();
          if (!running) {
            handBack.push(m);
            continue;
          }
          await slots.acquire();
          if (!running) {
            slots.release();
            handBack.push(m);
            continue;
          }
          const task = processMessage(m)
            .catch((err: unknown) => logger.error({ err, seq: m.seq }, "message processing failed"))
            .finally(() => {
              slots.release();
              inFlight.delete(task);
            });
          inFlight.add(task);
        }
        for (const m of handBack.reverse()) m.nak();
        if (handBack.length > 0) logger.info({ count: handBack.length }, "draining: handed back messages pulled but not handled");
      } catch (err) {
        failures += 1;
        // One line when the loop starts failing; the retries are quiet until it pulls again.
        if (failures === 1) logger.warn({ err }, "consumer pull loop failed; retrying with backoff");
        else logger.debug({ err: errorText(err), failures }, "consumer pull loop failed again");
      }
      messages = undefined;
      if (running) await signal.wait(backoffDelayMs(failures + 1, { initialMs: 500, maxMs: 30_000 }));
    }
  }

  const connection = (async () => {
    for await (const s of ctx.nats.status()) {
      if (!running) break;
      if (s.type === "disconnect") connected = false;
      if (s.type === "reconnect") {
        connected = true;
        touch();
      }
    }
  })().catch(() => undefined);
  void connection;

  // Housekeeping: lag from the server, heartbeat gauge, and a watchdog for a pull loop that
  // stopped hearing from a connected server (restart it rather than stall silently).
  const isHealthy = (): boolean => {
    const fresh = lastHeartbeatAt !== undefined && Date.now() - lastHeartbeatAt.getTime() < heartbeatMs * 3;
    // A long handler is not a stall: the loop is busy, not dead.
    return running && connected && messages !== undefined && (fresh || slots.inUse > 0);
  };
  // Lag in seconds, every second (R4.5): the stored time of the first message after the ack
  // floor while any is unhandled (consumer-lag.ts); the gauge ages it when read.
  let oldestUnhandledAt: Date | undefined;
  let lagKnown = false;
  let measuringLag = false;
  const lagCache: NatsLagCache = {};
  const lagTimer = setInterval(() => {
    if (!running || !connected || measuringLag) return;
    measuringLag = true;
    measureNatsConsumerLag(ctx.nats, ctx.jsm, ctx.stream, name, lagCache)
      .then((lag) => {
        if (!lag) return;
        oldestUnhandledAt = lag.oldestUnhandledAt;
        lagKnown = true;
      })
      .catch(() => undefined)
      .finally(() => {
        measuringLag = false;
      });
  }, ctx.lagIntervalMs ?? 1_000);
  lagTimer.unref();
  const lagSeconds = (): number | undefined => (running && lagKnown ? lagSecondsOf(oldestUnhandledAt) : undefined);
  const unregisterLag = registerConsumerLag(name, lagSeconds);

  const housekeeping = setInterval(() => {
    if (!running) return;
    consumerHealthy.set({ consumer: name }, isHealthy() ? 1 : 0);
    if (connected) {
      ctx.jsm.consumers
        .info(ctx.stream, name)
        .then((info) => {
          pending = info.num_pending;
          consumerPending.set({ consumer: name }, pending);
        })
        .catch(() => undefined);
    }
    const silentFor = lastHeartbeatAt ? Date.now() - lastHeartbeatAt.getTime() : Infinity;
    // A busy handler can legitimately starve the pull (no pending pull → no server heartbeats).
    if (connected && messages && slots.inUse === 0 && silentFor > heartbeatMs * 4) {
      logger.warn({ silentForMs: silentFor }, "consumer stalled; restarting its pull loop");
      void messages.close().catch(() => undefined);
    }
  }, heartbeatMs);
  housekeeping.unref();

  await ensureConsumer(true);
  const pumping = pump();

  return {
    name,
    status(): ConsumerStatus {
      const healthy = isHealthy();
      consumerHealthy.set({ consumer: name }, healthy ? 1 : 0);
      const lag = lagSeconds();
      return {
        name,
        healthy,
        lastHeartbeatAt,
        pending,
        inFlight: slots.inUse,
        ...(lag === undefined ? {} : { lagSeconds: lag }),
      };
    },
    async stop() {
      if (!running) return;
      running = false;
      clearInterval(housekeeping);
      clearInterval(lagTimer);
      unregisterLag();
      signal.wake();
      await messages?.close().catch(() => undefined);
      await pumping;
      await Promise.allSettled([...inFlight]);
    },
  };
}
