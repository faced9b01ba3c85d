import {
  create,
  type DescMessage,
  fromJson,
  type JsonValue,
  type MessageInitShape,
  type MessageShape,
  type Registry,
  toJson,
} from "@bufbuild/protobuf";
import type { EventMetadata, NewEvent } from "./ports.js";
import { registeredTopic, topicFromProtoFile } from "./topics.js";

/** Options of {@link eventOf}. */
export interface EventOfOptions {
  /**
   * `<domain>.<event>`; default: the registered topic of the message type, else derived from
   * its proto file (`nexus/events/v1/auth_events.proto` → "auth.<snake_name>"), see topics.ts.
   */
  topic?: string;
  eventId?: string;
  metadata?: EventMetadata;
  /** Needed only when the message contains `google.protobuf.Any` fields. */
  registry?: Registry;
}

/**
 * Builds a {@link NewEvent} from a protobuf-es message: `type` is the message's full name
 * (e.g. "nexus.events.v1.ApiKeyRevoked"), `payload` its canonical protobuf JSON (`toJson`),
 * so consumers in any language can parse it with their own generated code.
 *
 *   appendToStream(tx, `api_key-${id}`, version, [eventOf(ApiKeyRevokedSchema, { keyId: id })])
 */
export function eventOf<Desc extends DescMessage>(schema: Desc, value: MessageInitShape<Desc>, options: EventOfOptions = {}): NewEvent {
  const message = create(schema, value);
  const event: NewEvent = {
    type: schema.typeName,
    payload: toJson(schema, message as MessageShape<Desc>, options.registry ? { registry: options.registry } : {}),
  };
  const topic = options.topic ?? registeredTopic(schema.typeName) ?? topicFromProtoFile(schema.name, schema.file.name);
  if (topic !== undefined) event.topic = topic;
  if (options.eventId !== undefined) event.eventId = options.eventId;
  if (options.metadata !== undefined) event.metadata = options.metadata;
  return event;
}

/**
 * Decodes a delivered or recorded event's payload with its protobuf schema. Throws when the
 * event is of another type, so a handler subscribed to a wildcard cannot misread a payload.
 * Unknown JSON fields are ignored (a newer producer may have added fields).
 */
export function payloadOf<Desc extends DescMessage>(
  schema: Desc,
  event: { type: string; payload: unknown },
  registry?: Registry,
): MessageShape<Desc> {
  if (event.type !== schema.typeName) {
    throw new Error(`event is a ${event.type}, not a ${schema.typeName}`);
  }
  return fromJson(schema, event.payload as JsonValue, { ignoreUnknownFields: true, ...(registry ? { registry } : {}) });
}
