import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { type Logger, pino } from "pino";
import type { Database } from "../db/ports.js";
import { BusMembers } from "./bus-members.js";
import { measureNatsConsumerLag } from "./consumer-lag.js";
import { createNatsDeadLetters } from "./dead-letters.js";
import { directEvents, publishToJetStream } from "./direct-publish.js";
import { busConnected } from "./metrics.js";
import { createNatsConsumer } from "./nats-consumer.js";
import { createNatsObserver } from "./nats-observer.js";
import {
  type ConnectNatsOptions,
  connectNats,
  DEFAULT_DLQ_STREAM,
  DEFAULT_DUPLICATE_WINDOW_MS,
  DEFAULT_EVENTS_STREAM,
  type EnsuredStream,
  ensureStream,
  JS_ERRORS,
  jsErrorCode,
} from "./nats-streams.js";
import { createOffboardedTenants } from "./offboarded-tenants.js";
import { migratePlatform } from "./platform-migrations.js";
import type { ConsumerOptions, EventBus } from "./ports.js";
import { ensureProcessedEvents } from "./processed-events.js";
import { createOutboxRelay, type OutboxRelay, type OutboxRelayOptions } from "./relay.js";
import { assertSubjectPrefix, DEFAULT_SUBJECT_PREFIX, subjectOf } from "./topics.js";

/** Options of {@link createNatsEventBus}. */
export interface NatsEventBusOptions {
  /** Database holding `platform.events` (the outbox) and, by default, handlers' state. */
  db: Database;
  /** A connection to reuse (the caller closes it), or how to open one (the bus closes it). */
  nats: NatsConnection | ConnectNatsOptions;
  /** First subject token. Default "nexus". */
  subjectPrefix?: string;
  /** Events stream (subjects `<prefix>.>`). Default "NEXUS_EVENTS". */
  stream?: string;
  /** Dead-letter stream (subjects `<prefix>_dlq.>`). Default "NEXUS_DLQ". */
  dlqStream?: string;
  /** Publish dedupe window of both streams. Default 120 000 ms. */
  duplicateWindowMs?: number;
  /** Events older than this are dropped from the stream (the database keeps them). Default 0 = never. */
  streamMaxAgeMs?: number;
  /** Stream replicas (clustered NATS). Default 1. */
  replicas?: number;
  /**
   * The outbox relay of this process, or `false` for a process that only consumes (another
   * process relays). Default: a relay named "default".
   */
  relay?: false | Omit<OutboxRelayOptions, "db" | "nats" | "subjectPrefix" | "logger">;
  /** Server idle heartbeat of consumers' pulls. Default 5 000 ms. */
  consumerHeartbeatMs?: number;
  logger?: Logger;
}

/** The NATS bus, plus its relay for status and tests. */
export interface NatsEventBus extends EventBus {
  readonly kind: "nats";
  readonly relay: OutboxRelay | undefined;
  readonly nats: NatsConnection;
  /** True while the connection to NATS is up (false from a disconnect until the reconnect). */
  connected(): boolean;
}

/** JetStream publish ack timeout of `publish`. */
const PUBLISH_TIMEOUT_MS = 5_000;

const isConnection = (n: NatsConnection | ConnectNatsOptions): n is NatsConnection => typeof (n as NatsConnection).publish === "function";

/**
 * The production event bus: the outbox relay publishes `platform.events` to JetStream
 * (`<prefix>.<domain>.<event>`), consumers are durable JetStream pull consumers, dead letters go
 * to a DLQ stream. Connecting happens here (fails when NATS is unreachable); `start()` ensures
 * the streams and starts the relay.
 */
export async function createNatsEventBus(options: NatsEventBusOptions): Promise<NatsEventBus> {
  const { db } = options;
  const prefix = options.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX;
  assertSubjectPrefix(prefix);
  const stream = options.stream ?? DEFAULT_EVENTS_STREAM;
  const dlqStream = options.dlqStream ?? DEFAULT_DLQ_STREAM;
  const logger = options.logger ?? pino({ level: "silent" });
  const ownsConnection = !isConnection(options.nats);
  const nc = isConnection(options.nats) ? options.nats : await connectNats(options.nats);
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const deadLetters = createNatsDeadLetters({ js, jsm, stream: dlqStream, subjectPrefix: prefix });
  const common = {
    duplicateWindowMs: options.duplicateWindowMs ?? DEFAULT_DUPLICATE_WINDOW_MS,
    replicas: options.replicas ?? 1,
  };
  /**
   * Both streams, created when missing. Run at start and again by the relay and the consumers
   * whenever they find a stream gone, so a NATS server restarted with empty storage is
   * repopulated at runtime. Resolves to the events stream's identity.
   */
  const ensureStreams = async (): Promise<EnsuredStream> => {
    const events = await ensureStream(jsm, { ...common, name: stream, subjects: [`${prefix}.>`], maxAgeMs: options.streamMaxAgeMs ?? 0 });
    const dlq = await ensureStream(jsm, { ...common, name: dlqStream, subjects: [`${prefix}_dlq.>`] });
    if (events.createdNow || dlq.createdNow) {
      logger.warn(
        { stream: events.createdNow ? stream : undefined, dlqStream: dlq.createdNow ? dlqStream : undefined },
        "created missing NATS streams",
      );
    }
    return events;
  };
  const relay =
    options.relay === false
      ? undefined
      : createOutboxRelay({ ...(options.relay ?? {}), db, nats: nc, subjectPrefix: prefix, logger, ensureStreams });
  // The bus's connection state, for metrics and alerts (not readiness: see docs/operations.md).
  let connected = !nc.isClosed();
  busConnected.set(connected ? 1 : 0);
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect" || s.type === "close") connected = false;
      else if (s.type === "reconnect") connected = true;
      else continue;
      busConnected.set(connected ? 1 : 0);
    }
  })().catch(() => undefined);
  const members = new BusMembers();
  // Consumers skip an offboarded tenant's events (offboarded-tenants.ts).
  const offboarded = createOffboardedTenants(db, logger);
  let started: Promise<void> | undefined;
  let closed = false;

  const bus: NatsEventBus = {
    kind: "nats",
    subjectPrefix: prefix,
    relay,
    nats: nc,
    connected: () => connected && !nc.isClosed(),
    start() {
      started ??= (async () => {
        await migratePlatform(db, logger);
        await ensureStreams();
        await deadLetters.depth();
        await relay?.start();
      })();
      started.catch(() => {
        started = undefined;
      });
      return started;
    },
    async consumerLag(consumer) {
      await bus.start();
      return measureNatsConsumerLag(nc, jsm, stream, consumer);
    },
    async subscribe(consumer: ConsumerOptions) {
      if (closed) throw new Error("event bus is closed");
      members.assertNew(consumer.name);
      await bus.start();
      await ensureProcessedEvents(consumer.db ?? db, consumer.schema ?? "platform");
      if (consumer.deliverOffboardedTenants !== true) await offboarded.watch(bus);
      const subscription = await createNatsConsumer(
        {
          nats: nc,
          js,
          jsm,
          stream,
          subjectPrefix: prefix,
          deadLetters,
          db,
          logger,
          offboarded,
          ensureStreams,
          ...(options.consumerHeartbeatMs ? { heartbeatMs: options.consumerHeartbeatMs } : {}),
        },
        consumer,
      );
      return members.addSubscription(subscription);
    },
    async publish(events, publishOptions) {
      if (closed) throw new Error("event bus is closed");
      if (events.length === 0) return;
      await bus.start();
      const recorded = directEvents(events, publishOptions?.metadata);
      try {
        await publishToJetStream(js, prefix, recorded, PUBLISH_TIMEOUT_MS);
      } catch (err) {
        // The stream may have vanished (a NATS server restarted with empty storage): recreate
        // it and try once more; anything else is the caller's to retry.
        if (
          !(await ensureStreams()
            .then((s) => s.createdNow)
            .catch(() => false))
        )
          throw err;
        await publishToJetStream(js, prefix, recorded, PUBLISH_TIMEOUT_MS);
      }
    },
    async observe(observeOptions) {
      if (closed) throw new Error("event bus is closed");
      const observation = await createNatsObserver({ nats: nc, subjectPrefix: prefix, logger }, observeOptions);
      return members.addObservation(observation);
    },
    deadLetters,
    async consumerNames() {
      const names: string[] = [];
      try {
        for await (const c of jsm.consumers.list(stream)) names.push(c.name);
      } catch (err) {
        if (jsErrorCode(err) !== JS_ERRORS.STREAM_NOT_FOUND) throw err;
      }
      return names;
    },
    async deleteConsumer(name, deleteOptions) {
      try {
        await jsm.consumers.delete(stream, name);
      } catch (err) {
        const code = jsErrorCode(err);
        if (code !== JS_ERRORS.CONSUMER_NOT_FOUND && code !== JS_ERRORS.STREAM_NOT_FOUND) throw err;
      }
      if (deleteOptions?.purgeTopic) {
        await jsm.streams.purge(stream, { filter: subjectOf(prefix, deleteOptions.purgeTopic) }).catch((err: unknown) => {
          if (jsErrorCode(err) !== JS_ERRORS.STREAM_NOT_FOUND) throw err;
        });
      }
    },
    status: () => members.status(),
    async close() {
      if (closed) return;
      closed = true;
      await members.stopAll();
      await relay?.stop();
      if (ownsConnection) await nc.drain().catch(() => nc.close());
    },
  };
  return bus;
}
