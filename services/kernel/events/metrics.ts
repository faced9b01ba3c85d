import { Counter, Gauge, register } from "prom-client";

/*
 * Event metrics on prom-client's default registry (served on /metrics). Names are fixed:
 * dashboards depend on them. Looked up before created, because tests build many buses in one
 * process and prom-client refuses to register a name twice.
 */

function counter<L extends string>(name: string, help: string, labelNames: readonly L[]): Counter<L> {
  return (register.getSingleMetric(name) as Counter<L> | undefined) ?? new Counter({ name, help, labelNames });
}

function gauge<L extends string>(name: string, help: string, labelNames: readonly L[]): Gauge<L> {
  return (register.getSingleMetric(name) as Gauge<L> | undefined) ?? new Gauge({ name, help, labelNames });
}

/** Events appended to the store, by domain (counted at append; a rolled-back append still counts). */
export const eventsAppended = counter("nexus_events_appended_total", "Events appended to the event store.", ["domain"]);

/** Events the outbox relay published to NATS (acknowledged by JetStream), by domain. */
export const eventsPublished = counter("nexus_events_published_total", "Events published to NATS by the outbox relay.", ["domain"]);

/** Events appended but not yet published by the relay. */
export const outboxPending = gauge("nexus_outbox_pending", "Events in the outbox not yet published to NATS.", []);

/** Deliveries by outcome: handled, duplicate, skipped (an offboarded tenant's event), failed, dead_lettered. */
export const consumerDeliveries = counter(
  "nexus_consumer_deliveries_total",
  "Event deliveries to consumers, by outcome (handled, duplicate, skipped, failed, dead_lettered).",
  ["consumer", "outcome"],
);

/** Deliveries with a delivery count above 1. */
export const consumerRedeliveries = counter("nexus_consumer_redeliveries_total", "Event redeliveries (delivery count above 1).", [
  "consumer",
]);

/** Consumer lag: messages not yet delivered. */
export const consumerPending = gauge("nexus_consumer_pending", "Messages not yet delivered to the consumer (lag).", ["consumer"]);

/** Unix time (seconds) the consumer last heard from its source. */
export const consumerLastHeartbeat = gauge(
  "nexus_consumer_last_heartbeat_seconds",
  "Unix time the consumer last heard from its source (heartbeat, message or poll).",
  ["consumer"],
);

/** Messages parked in the dead-letter queue, by DLQ stream ("local" for the embedded bus). */
export const dlqMessages = gauge("nexus_dlq_messages", "Messages parked in the dead-letter queue.", ["stream"]);

/** Messages moved to the dead-letter queue, by consumer. */
export const dlqDeadLettered = counter("nexus_dlq_dead_lettered_total", "Messages moved to the dead-letter queue.", ["consumer"]);

/** The domain label of a topic ("auth.api_key_revoked" → "auth"). */
export function domainOf(topic: string): string {
  return topic.split(".", 1)[0] ?? topic;
}

/**
 * 1 while this process's connection to NATS is up, 0 while it is down (NATS bus only). The
 * bus's state lives here and in the consumers' health, not in /readyz: a NATS outage does not
 * stop a process from serving requests (docs/operations.md, "Readiness").
 */
export const busConnected = gauge("nexus_event_bus_connected", "1 while the connection to NATS is up, 0 while it is down.", []);

/** 1 while a consumer is healthy (running and hearing from its source), 0 otherwise. */
export const consumerHealthy = gauge("nexus_consumer_healthy", "1 while the consumer runs and hears from its source, else 0.", [
  "consumer",
]);

/** Consecutive failed rounds of the outbox relay (0 while it publishes). */
export const relayFailures = gauge(
  "nexus_outbox_relay_failures",
  "Consecutive failed rounds of the outbox relay (0 while it publishes).",
  [],
);
