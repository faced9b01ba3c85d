import type { JetStreamClient } from "@nats-io/jetstream";
import type { Tx } from "../db/ports.js";
import { currentEventMetadata } from "./event-metadata.js";
import { appendToStream } from "./event-store.js";
import { eventHeaders } from "./nats-message.js";
import type { DirectEvent, EventMetadata, RecordedEvent } from "./ports.js";
import { assertTopic, subjectOf, topicOfType } from "./topics.js";
import { currentSchemaVersion } from "./upcasters.js";

/**
 * The events of one direct publish as the bus carries them: metadata from the caller's scope
 * (request ids, trace) under the options' and each event's own, no outbox position, version =
 * the event's place among the batch's events of the same stream.
 */
export function directEvents(events: readonly DirectEvent[], metadata: EventMetadata = {}): RecordedEvent[] {
  const base = currentEventMetadata(metadata);
  const versions = new Map<string, number>();
  const now = new Date();
  return events.map((e) => {
    const topic = e.topic ?? topicOfType(e.type);
    assertTopic(topic);
    const version = (versions.get(e.streamId) ?? 0) + 1;
    versions.set(e.streamId, version);
    const schema = currentSchemaVersion(e.type);
    const own: EventMetadata = {};
    for (const [k, v] of Object.entries(e.metadata ?? {}) as [keyof EventMetadata, string | undefined][]) if (v !== undefined) own[k] = v;
    return {
      position: 0n,
      eventId: e.eventId,
      streamId: e.streamId,
      version,
      type: e.type,
      topic,
      payload: e.payload ?? null,
      metadata: { ...base, ...(schema > 1 ? { schemaVersion: String(schema) } : {}), ...own },
      occurredAt: e.occurredAt ?? now,
    };
  });
}

/**
 * NATS: every event is published to JetStream at once (pipelined on the one connection) with
 * `Nats-Msg-Id` = its event id, so a re-publish inside the stream's duplicate window is
 * dropped by the server. Resolves when every publish was acknowledged (stored); rejects with
 * the first failure — the caller publishes the whole batch again (same ids), which is safe.
 */
export async function publishToJetStream(
  js: JetStreamClient,
  prefix: string,
  events: readonly RecordedEvent[],
  timeoutMs: number,
): Promise<void> {
  const acks = await Promise.allSettled(
    events.map((e) =>
      js.publish(subjectOf(prefix, e.topic), JSON.stringify(e.payload), { msgID: e.eventId, headers: eventHeaders(e), timeout: timeoutMs }),
    ),
  );
  const failed = acks.find((a) => a.status === "rejected");
  if (failed) throw failed.reason;
}

/**
 * Local bus: the events go into `platform.events` (what its consumers read) in the caller's
 * one transaction; an event id already there is left out, the local equivalent of JetStream's
 * duplicate window.
 */
export async function appendDirect(tx: Tx, events: readonly DirectEvent[], metadata: EventMetadata = {}): Promise<void> {
  const { rows } = await tx.query<{ event_id: string }>("SELECT event_id::text FROM platform.event_ids WHERE event_id = ANY($1::uuid[])", [
    events.map((e) => e.eventId),
  ]);
  const seen = new Set(rows.map((r) => r.event_id));
  const byStream = new Map<string, DirectEvent[]>();
  for (const e of events) {
    if (seen.has(e.eventId)) continue;
    seen.add(e.eventId);
    const list = byStream.get(e.streamId) ?? [];
    list.push(e);
    byStream.set(e.streamId, list);
  }
  for (const [streamId, list] of byStream) await appendToStream(tx, streamId, "any", list, { metadata });
}
