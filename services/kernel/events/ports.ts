import type { Database, Tx } from "../db/ports.js";

/**
 * Context carried by every event (stored as snake_case JSON in `platform.events.metadata` and
 * sent as `Nexus-*` / W3C trace headers on NATS). Filled from the current request scope and
 * the active OpenTelemetry span when the caller does not say otherwise.
 */
export interface EventMetadata {
  tenantId?: string;
  correlationId?: string;
  requestId?: string;
  /** W3C trace context of the operation that appended the event. */
  traceparent?: string;
  tracestate?: string;
  /** Who caused the event, e.g. an API key id or "system". */
  actor?: string;
  /**
   * The version of the payload's shape, as a decimal string; absent = "1". Stamped at append
   * for types with registered upcasters (upcasters.ts); on read, older shapes are upgraded.
   */
  schemaVersion?: string;
}

/** An event about to be appended. Build it with `eventOf(schema, value)` for protobuf payloads. */
export interface NewEvent {
  /** Full protobuf message name, e.g. "nexus.events.v1.ApiKeyRevoked". */
  type: string;
  /** JSON payload (the protobuf message's canonical JSON form). */
  payload: unknown;
  /**
   * `<domain>.<event>` part of the NATS subject, e.g. "auth.api_key_revoked". Default: the
   * registered topic of `type` (see topics.ts).
   */
  topic?: string;
  /** Default: a random UUID. */
  eventId?: string;
  /** Merged over the appender's metadata. */
  metadata?: EventMetadata;
  /**
   * When the fact happened by the deciding clock (event-sourced aggregates set it so that
   * replaying the stream reproduces the timestamps of their state). Default: the database's
   * `now()` at append.
   */
  occurredAt?: Date;
}

/** An event published straight to the bus (`EventBus.publish`): it needs its id and stream up front. */
export interface DirectEvent extends NewEvent {
  /** A UUID; derive it from what makes the event unique, so publishing it again is a no-op. */
  eventId: string;
  streamId: string;
}

/** An event as stored in `platform.events`. */
export interface RecordedEvent {
  /** Global position (bigserial): total order of commits. */
  position: bigint;
  eventId: string;
  streamId: string;
  /** 1-based version of the event within its stream. */
  version: number;
  type: string;
  topic: string;
  payload: unknown;
  metadata: EventMetadata;
  occurredAt: Date;
}

/** An event handed to a consumer's handler. */
export interface DeliveredEvent {
  eventId: string;
  type: string;
  streamId: string;
  version: number;
  payload: unknown;
  metadata: EventMetadata;
  /** Full subject, e.g. "nexus.auth.api_key_revoked". */
  subject: string;
  /** Subject without the prefix, e.g. "auth.api_key_revoked". */
  topic: string;
  occurredAt: Date;
  /** 1 on first delivery, then 2, 3, … (counts every attempt, including the failed ones). */
  deliveryCount: number;
}

/**
 * Thrown by a handler for a failure that retrying cannot fix (a refusal, a constraint
 * violation, input that does not fit): the message goes to the dead-letter queue at once,
 * with this error's message, instead of after `maxDeliver` attempts. Its transaction rolls
 * back like any failure's.
 */
export class PermanentFailure extends Error {
  override readonly name = "PermanentFailure";
}

/**
 * Handles one event inside the consumer's database transaction. Write the handler's state
 * with `tx`: the state change and the processed-event record commit (or roll back) together.
 * Throwing means "failed, retry later" ({@link PermanentFailure}: "failed for good, dead-letter it now").
 */
export type EventHandler = (event: DeliveredEvent, tx: Tx) => Promise<void>;

/** Retry delays after a failed delivery: `min(initialMs × 2^(deliveryCount-1), maxMs)`. */
export interface BackoffOptions {
  /** Default 1 000 ms. */
  initialMs?: number;
  /** Default 300 000 ms (5 min). */
  maxMs?: number;
  /** Spread each delay over [½, 1) of its value (many failing messages do not retry together). Default false. */
  jitter?: boolean;
}

/** A durable, idempotent consumer's definition (identical for both buses). */
export interface ConsumerOptions {
  /** Durable name, unique per bus: letters, digits, `_` and `-`. */
  name: string;
  /**
   * Topic filter relative to the bus's subject prefix, with NATS wildcards: "auth.api_key_revoked",
   * "auth.>", "*.document_failed", ">". One filter (NATS 2.9 has one filter_subject per consumer).
   */
  subject: string;
  handler: EventHandler;
  /**
   * Database holding the handler's state and `<schema>.processed_events`. Default: the bus's
   * database.
   */
  db?: Database;
  /** Schema of the handler's service, where `processed_events` lives. Default "platform". */
  schema?: string;
  /** Handlers running at once. Default 1 (in order). The local bus always runs one at a time. */
  concurrency?: number;
  /** Failed deliveries before the message goes to the dead-letter queue. Default 5. */
  maxDeliver?: number;
  /**
   * Called after a message was parked in the dead-letter queue (after `maxDeliver` failures, a
   * {@link PermanentFailure}, or deliveries without an outcome), outside any transaction: the
   * place to record the outcome the rolled-back handler could not. Errors are logged.
   */
  onDeadLettered?: (event: DeliveredEvent, error: string) => Promise<void>;
  backoff?: BackoffOptions;
  /** NATS only: ack wait; the framework sends "working" while a handler runs. Default 30 000 ms. */
  ackWaitMs?: number;
  /**
   * Where a new consumer starts: the whole history (default) or only new events. Applies when
   * the durable consumer is first created; one recreated at runtime on NATS (the server lost its
   * storage) reads the new stream from its start — what the relay published again — and skips
   * what it already handled.
   */
  deliverFrom?: "all" | "new";
  /**
   * Deliver the events of an offboarded tenant too (default false: they are acknowledged
   * without running the handler, see offboarded-tenants.ts). The audit trail sets it: it keeps
   * the record of the offboarding itself.
   */
  deliverOffboardedTenants?: boolean;
}

/** Liveness and lag of one consumer (readiness probes and metrics). */
export interface ConsumerStatus {
  name: string;
  /** Running, and heard from its source (NATS heartbeat / local poll) recently. */
  healthy: boolean;
  lastHeartbeatAt: Date | undefined;
  /** Messages not yet delivered to the consumer (lag). */
  pending: number;
  /** Handlers running right now. */
  inFlight: number;
  /**
   * Age in seconds of the oldest event this consumer has not handled (0: caught up); absent
   * until measured, and on a local-bus replica that does not hold the consumer's lease.
   */
  lagSeconds?: number;
}

/** A running consumer. */
export interface Subscription {
  readonly name: string;
  status(): ConsumerStatus;
  /** Stops pulling new messages and waits for in-flight handlers to finish. */
  stop(): Promise<void>;
}

/** A message parked after `maxDeliver` failed deliveries. */
export interface DeadLetter {
  /** Sequence in the dead-letter queue; pass it to `replay`. */
  seq: number;
  consumer: string;
  /** Original subject. */
  subject: string;
  eventId: string;
  type: string;
  streamId: string;
  payload: unknown;
  metadata: EventMetadata;
  /** Deliveries made before it was parked. */
  deliveryCount: number;
  /** The last handler error message. */
  error: string;
  deadLetteredAt: Date;
  /** How many times this event was replayed before (0 for a first dead-lettering). */
  replayCount: number;
}

/** Options of `DeadLetterStore.list`. */
export interface ListDeadLettersOptions {
  /** Only this consumer's messages. */
  consumer?: string;
  /** Default 100. */
  limit?: number;
}

/** Result of `DeadLetterStore.replay`. */
export interface ReplayResult {
  seq: number;
  consumer: string;
  subject: string;
  eventId: string;
  replayCount: number;
}

/** Inspect and replay dead letters (the CLI and, later, an RPC use this). */
export interface DeadLetterStore {
  /** Parked messages, oldest first. */
  list(options?: ListDeadLettersOptions): Promise<DeadLetter[]>;
  /**
   * Sends a parked message through its consumer again (fresh delivery count) and removes it
   * from the queue. NOT_FOUND when no such message is parked.
   */
  replay(seq: number): Promise<ReplayResult>;
  /** Messages parked right now. */
  depth(): Promise<number>;
}

/** An event seen by an observer: like a delivery, but with no retries behind it. */
export type ObservedEvent = Omit<DeliveredEvent, "deliveryCount">;

/** Options of `EventBus.observe`. */
export interface ObserveOptions {
  /** Topic filter relative to the prefix, with NATS wildcards ("auth.>", "auth.api_key_revoked"). */
  subject: string;
  /**
   * Called for every matching event appended after `observe` resolved, in order. Errors are
   * logged and do not stop the feed (there is no redelivery).
   */
  handler: (event: ObservedEvent) => void | Promise<void>;
  /**
   * Called when the feed goes down (false: events may be missed from now on) and when it is
   * back (true). Caches fed by the observer should stop trusting themselves while it is down.
   */
  onStateChange?: (live: boolean) => void;
}

/** A running observer. */
export interface Observation {
  /** True while the feed is up (no event can have been missed since it last came up). */
  readonly live: boolean;
  /** Stops the feed. */
  stop(): Promise<void>;
}

/**
 * The event bus a service sees. Two implementations with one contract: `createNatsEventBus`
 * (outbox relay → NATS JetStream) and `createLocalEventBus` (embedded: consumers read
 * `platform.events` directly). Events enter the bus only through `appendToStream` in the
 * writer's transaction, or `publish` for messages that need no outbox.
 */
/** A durable consumer's lag as measured on the bus (consumer-lag.ts). */
export interface ConsumerLag {
  /** Events matching the consumer not handled yet (pending, in flight, waiting for a retry). */
  unhandled: number;
  /** Commit time of the oldest of them (undefined when there is none). */
  oldestUnhandledAt: Date | undefined;
}

export interface EventBus {
  readonly kind: "nats" | "local";
  /** First subject token, default "nexus". */
  readonly subjectPrefix: string;
  /** Migrates the platform schema and starts the relay/streams. Idempotent. */
  start(): Promise<void>;
  /** Starts a durable consumer. */
  subscribe(options: ConsumerOptions): Promise<Subscription>;
  /**
   * Measures a durable consumer's lag from the bus itself (any process, e.g. the CLI): events
   * matching `subject` it has not handled and the commit time of the oldest of them.
   * Undefined when the consumer does not exist on this bus (never started).
   */
  consumerLag(consumer: string, subject: string): Promise<ConsumerLag | undefined>;
  /**
   * Publishes events straight to the bus, outside any transaction: no outbox row, no
   * event-store lock — for high-volume messages whose durability is the bus's own (integration
   * ingress). Resolves once the bus durably holds every event; rejects (the caller publishes
   * the same events again) when it could not. Publishing an event id again is a no-op: NATS
   * drops it inside the stream's duplicate window (`Nats-Msg-Id` = event id) and consumers
   * skip an event id they handled; the local bus appends the events to `platform.events` in
   * one transaction (`options.tx` when given: a consumer's handler publishing from its own
   * transaction; NATS publishes at once, before that transaction commits — so publish events
   * whose ids make a repeat harmless), leaving out ids already there. Such events are not in
   * the outbox, so a NATS server that loses its storage loses them (the relay cannot publish
   * them again).
   */
  publish(events: readonly DirectEvent[], options?: { metadata?: EventMetadata; tx?: Tx }): Promise<void>;
  /**
   * Starts a non-durable, per-process observer: unlike durable consumers (whose replicas
   * share the work), EVERY process that observes sees EVERY matching event appended from now
   * on — the fan-out caches need to learn about invalidations (e.g. API key revocations).
   * At-most-once: no acks, no retries, no DLQ; a feed outage is reported via `onStateChange`.
   * NATS: a core subscription on the events' subjects; local bus: a poller of
   * `platform.events` from the current position, woken by NOTIFY.
   */
  observe(options: ObserveOptions): Promise<Observation>;
  readonly deadLetters: DeadLetterStore;
  /** Names of the durable consumers the bus keeps a position for (NATS: on the events stream; local: checkpoints). */
  consumerNames(): Promise<string[]>;
  /**
   * Deletes a durable consumer for good — its position and pending redeliveries — once no
   * process runs it any more (a process still subscribed recreates it). `purgeTopic` also drops
   * the stream's stored messages on that topic (NATS; the local bus's event table is
   * append-only). Deleting one that does not exist is fine.
   */
  deleteConsumer(name: string, options?: { purgeTopic?: string }): Promise<void>;
  /** Every subscription's status. */
  status(): ConsumerStatus[];
  /** Drains every subscription, stops the relay and releases connections the bus opened. */
  close(): Promise<void>;
}
