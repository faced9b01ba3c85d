/**
 * The kernel's events layer, as services use it: the event store (append in your transaction),
 * protobuf event helpers, and the one `EventBus` contract with its two implementations.
 */

export { retryDelayMs } from "./backoff.js";
export { createNatsDeadLetters, type NatsDeadLetters } from "./dead-letters.js";
export {
  type AppendOptions,
  appendToStream,
  type ExpectedVersion,
  lastPosition,
  readAll,
  readEvent,
  readEventAt,
  readStream,
  readStreamBetween,
  readTenantEvents,
  type StreamRangeQuery,
  streamVersion,
  type TenantEventPage,
  type TenantEventQuery,
  tenantOwnsStream,
} from "./event-store.js";
export { createLocalEventBus, type LocalEventBusOptions } from "./local-bus.js";
export { createLocalDeadLetters } from "./local-dead-letters.js";
export { createNatsEventBus, type NatsEventBus, type NatsEventBusOptions } from "./nats-bus.js";
export { type ConnectNatsOptions, connectNats, DEFAULT_DLQ_STREAM, DEFAULT_EVENTS_STREAM } from "./nats-streams.js";
export { EVENTS_CHANNEL, migratePlatform, PLATFORM_MIGRATIONS, PLATFORM_SCHEMA } from "./platform-migrations.js";
export type {
  ConsumerLag,
  ConsumerOptions,
  ConsumerStatus,
  DeadLetter,
  DeadLetterStore,
  DeliveredEvent,
  DirectEvent,
  EventBus,
  EventHandler,
  EventMetadata,
  ListDeadLettersOptions,
  NewEvent,
  Observation,
  ObservedEvent,
  ObserveOptions,
  RecordedEvent,
  ReplayResult,
  Subscription,
} from "./ports.js";
export { PermanentFailure } from "./ports.js";
export { processedEventsMigration } from "./processed-events.js";
export { type EventOfOptions, eventOf, payloadOf } from "./protobuf-event.js";
export { createOutboxRelay, type OutboxRelay, type OutboxRelayOptions, type RelayStatus } from "./relay.js";
export { DEFAULT_SUBJECT_PREFIX, registerEventTopics, subjectOf, topicOfType } from "./topics.js";
export { clearUpcasters, currentSchemaVersion, registeredUpcasters, registerUpcaster, type Upcaster, upcast } from "./upcasters.js";
