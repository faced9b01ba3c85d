/**
 * The kernel's events layer, as services use it: the event store (append in your transaction),
 * protobuf event helpers, and the one `EventBus` contract with its two implementations.
 */
export type {
  ConsumerOptions,
  ConsumerStatus,
  DeadLetter,
  DeadLetterStore,
  DeliveredEvent,
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
export {
  appendToStream,
  lastPosition,
  readAll,
  readEvent,
  readEventAt,
  readStream,
  streamVersion,
  type AppendOptions,
  type ExpectedVersion,
} from "./event-store.js";
export { eventOf, payloadOf, type EventOfOptions } from "./protobuf-event.js";
export { DEFAULT_SUBJECT_PREFIX, registerEventTopics, subjectOf, topicOfType } from "./topics.js";
export { EVENTS_CHANNEL, migratePlatform, PLATFORM_MIGRATIONS, PLATFORM_SCHEMA } from "./platform-migrations.js";
export { processedEventsMigration } from "./processed-events.js";
export { createLocalEventBus, type LocalEventBusOptions } from "./local-bus.js";
export { createNatsEventBus, type NatsEventBus, type NatsEventBusOptions } from "./nats-bus.js";
export { createOutboxRelay, type OutboxRelay, type OutboxRelayOptions, type RelayStatus } from "./relay.js";
export { connectNats, DEFAULT_DLQ_STREAM, DEFAULT_EVENTS_STREAM, type ConnectNatsOptions } from "./nats-streams.js";
export { createNatsDeadLetters, type NatsDeadLetters } from "./dead-letters.js";
export { createLocalDeadLetters } from "./local-dead-letters.js";
export { retryDelayMs } from "./backoff.js";
