import { headers as createHeaders, Match, type MsgHdrs } from "@nats-io/nats-core";
import { propagation, ROOT_CONTEXT, type TextMapSetter } from "@opentelemetry/api";
import type { DeliveredEvent, EventMetadata, RecordedEvent } from "./ports.js";

/**
 * Header names of event messages on NATS. The body is the payload's JSON (the protobuf
 * message's canonical JSON); everything else travels in headers so any NATS client can route
 * and filter without parsing the body.
 */
export const EVENT_HEADERS = {
  /** JetStream publish dedupe: the event id on first publish, a derived id on replay. */
  MSG_ID: "Nats-Msg-Id",
  EVENT_ID: "Nexus-Event-Id",
  EVENT_TYPE: "Nexus-Event-Type",
  STREAM_ID: "Nexus-Stream-Id",
  STREAM_VERSION: "Nexus-Stream-Version",
  POSITION: "Nexus-Event-Position",
  OCCURRED_AT: "Nexus-Occurred-At",
  TENANT_ID: "Nexus-Tenant-Id",
  CORRELATION_ID: "Nexus-Correlation-Id",
  REQUEST_ID: "Nexus-Request-Id",
  ACTOR: "Nexus-Actor",
  TRACEPARENT: "traceparent",
  TRACESTATE: "tracestate",
  /** The payload shape version (upcasters.ts); absent = 1. */
  SCHEMA_VERSION: "Nexus-Schema-Version",
  CONTENT_TYPE: "Content-Type",
  /** How many times this message was replayed from the DLQ. */
  REPLAY_COUNT: "Nexus-Replay-Count",
} as const;

/** Extra headers of a message parked in the DLQ stream (besides the original's headers). */
export const DLQ_HEADERS = {
  SUBJECT: "Nexus-Dlq-Subject",
  CONSUMER: "Nexus-Dlq-Consumer",
  DELIVERIES: "Nexus-Dlq-Deliveries",
  ERROR: "Nexus-Dlq-Error",
  AT: "Nexus-Dlq-At",
  STREAM: "Nexus-Dlq-Stream",
  SEQUENCE: "Nexus-Dlq-Sequence",
  /** The original message's Nats-Msg-Id (the DLQ publish has its own). */
  ORIGINAL_MSG_ID: "Nexus-Dlq-Original-Msg-Id",
} as const;

const METADATA_HEADERS = {
  tenantId: EVENT_HEADERS.TENANT_ID,
  correlationId: EVENT_HEADERS.CORRELATION_ID,
  requestId: EVENT_HEADERS.REQUEST_ID,
  actor: EVENT_HEADERS.ACTOR,
  traceparent: EVENT_HEADERS.TRACEPARENT,
  tracestate: EVENT_HEADERS.TRACESTATE,
  schemaVersion: EVENT_HEADERS.SCHEMA_VERSION,
} as const satisfies Record<keyof EventMetadata, string>;

/** Header values cannot hold line breaks; long values (error messages) are cut. */
export function headerValue(value: string, max = 1024): string {
  const flat = value.replace(/[\r\n]+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

const setter: TextMapSetter<MsgHdrs> = {
  set: (carrier, key, value) => carrier.set(key, headerValue(value, 4096)),
};

/**
 * Headers of a recorded event's NATS message, with its origin's trace context. An event
 * published straight to the bus (direct-publish.ts) has no outbox position (0): no position header.
 */
export function eventHeaders(event: RecordedEvent): MsgHdrs {
  const h = createHeaders();
  h.set(EVENT_HEADERS.EVENT_ID, event.eventId);
  h.set(EVENT_HEADERS.EVENT_TYPE, event.type);
  h.set(EVENT_HEADERS.STREAM_ID, headerValue(event.streamId, 512));
  h.set(EVENT_HEADERS.STREAM_VERSION, String(event.version));
  if (event.position > 0n) h.set(EVENT_HEADERS.POSITION, event.position.toString());
  h.set(EVENT_HEADERS.OCCURRED_AT, event.occurredAt.toISOString());
  h.set(EVENT_HEADERS.CONTENT_TYPE, "application/json");
  for (const [k, name] of Object.entries(METADATA_HEADERS) as [keyof EventMetadata, string][]) {
    const v = event.metadata[k];
    if (v && k !== "traceparent" && k !== "tracestate") h.set(name, headerValue(v));
  }
  // The configured propagator (W3C by default with the OTel SDK) writes the origin's context;
  // without an SDK the API's propagator is a no-op, so fall back to copying the stored values.
  const { traceparent, tracestate } = event.metadata;
  if (traceparent) {
    const carrier: Record<string, string> = { traceparent, ...(tracestate ? { tracestate } : {}) };
    const origin = propagation.extract(ROOT_CONTEXT, carrier);
    propagation.inject(origin, h, setter);
    if (!h.has(EVENT_HEADERS.TRACEPARENT)) {
      h.set(EVENT_HEADERS.TRACEPARENT, traceparent);
      if (tracestate) h.set(EVENT_HEADERS.TRACESTATE, tracestate);
    }
  }
  return h;
}

/** Copies headers, optionally leaving some out (case-insensitive). */
export function copyHeaders(source: MsgHdrs | undefined, omit: readonly string[] = []): MsgHdrs {
  const h = createHeaders();
  const skip = new Set(omit.map((k) => k.toLowerCase()));
  for (const key of source?.keys() ?? []) {
    if (skip.has(key.toLowerCase())) continue;
    for (const v of source?.values(key) ?? []) h.append(key, v);
  }
  return h;
}

/** Thrown for a message that is not a Nexus event (it goes straight to the DLQ). */
export class UndecodableMessageError extends Error {
  override readonly name = "UndecodableMessageError";
}

/**
 * Reads an event message back (body JSON + headers). Throws {@link UndecodableMessageError}
 * when the body is not JSON or the event id/type headers are missing.
 */
export function decodeEventMessage(
  msg: { subject: string; headers: MsgHdrs | undefined; data: Uint8Array },
  prefix: string,
): Omit<DeliveredEvent, "deliveryCount"> {
  const get = (k: string): string => msg.headers?.get(k, Match.IgnoreCase) ?? "";
  const eventId = get(EVENT_HEADERS.EVENT_ID) || get(EVENT_HEADERS.MSG_ID);
  const type = get(EVENT_HEADERS.EVENT_TYPE);
  if (!eventId || !type) {
    throw new UndecodableMessageError(`message on ${msg.subject} has no ${EVENT_HEADERS.EVENT_ID}/${EVENT_HEADERS.EVENT_TYPE} header`);
  }
  let payload: unknown;
  try {
    payload = msg.data.length === 0 ? null : JSON.parse(new TextDecoder().decode(msg.data));
  } catch (err) {
    throw new UndecodableMessageError(`event ${eventId} on ${msg.subject} has a body that is not JSON: ${(err as Error).message}`);
  }
  const metadata: EventMetadata = {};
  for (const [k, name] of Object.entries(METADATA_HEADERS) as [keyof EventMetadata, string][]) {
    const v = get(name);
    if (v) metadata[k] = v;
  }
  const occurred = get(EVENT_HEADERS.OCCURRED_AT);
  const topic = msg.subject.startsWith(`${prefix}.`) ? msg.subject.slice(prefix.length + 1) : msg.subject;
  return {
    eventId,
    type,
    streamId: get(EVENT_HEADERS.STREAM_ID),
    version: Number(get(EVENT_HEADERS.STREAM_VERSION) || 0),
    payload,
    metadata,
    subject: msg.subject,
    topic,
    occurredAt: occurred ? new Date(occurred) : new Date(0),
  };
}
