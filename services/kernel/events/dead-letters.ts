import type { JetStreamClient, JetStreamManager, JsMsg, MsgRequest, StoredMsg } from "@nats-io/jetstream";
import { Match } from "@nats-io/nats-core";
import { domainError } from "../errors.js";
import { dlqDeadLettered, dlqMessages } from "./metrics.js";
import { copyHeaders, DLQ_HEADERS, decodeEventMessage, EVENT_HEADERS, headerValue } from "./nats-message.js";
import { dlqSubjectOf, JS_ERRORS, jsErrorCode } from "./nats-streams.js";
import type { DeadLetter, DeadLetterStore, ListDeadLettersOptions, ReplayResult } from "./ports.js";

/** Options of {@link createNatsDeadLetters}. */
export interface NatsDeadLettersOptions {
  js: JetStreamClient;
  jsm: JetStreamManager;
  /** DLQ stream name (captures `<prefix>_dlq.>`). */
  stream: string;
  subjectPrefix: string;
}

/** Details of one failed message being parked. */
export interface ParkedMessage {
  msg: JsMsg;
  consumer: string;
  deliveryCount: number;
  error: string;
}

/** The NATS dead-letter queue: park, list, replay. */
export interface NatsDeadLetters extends DeadLetterStore {
  /**
   * Publishes a failed message to `<prefix>_dlq.<consumer>` with its original body and headers
   * plus `Nexus-Dlq-*` headers (subject, consumer, delivery count, last error, time, source
   * stream and sequence). Deduplicated per source message, so a crash between parking and
   * `term()` does not park it twice. The caller `term()`s the original afterwards.
   */
  park(parked: ParkedMessage): Promise<void>;
}

const isMissing = (err: unknown): boolean => {
  const code = jsErrorCode(err);
  return code === JS_ERRORS.STREAM_NOT_FOUND || code === JS_ERRORS.NO_MESSAGE_FOUND;
};

/** The NATS bus's dead-letter queue on its DLQ stream (default NEXUS_DLQ). */
export function createNatsDeadLetters(options: NatsDeadLettersOptions): NatsDeadLetters {
  const { js, jsm, stream, subjectPrefix: prefix } = options;

  const toDeadLetter = (sm: StoredMsg): DeadLetter => {
    const h = (k: string): string => sm.header?.get(k, Match.IgnoreCase) ?? "";
    const subject = h(DLQ_HEADERS.SUBJECT) || sm.subject;
    let event: ReturnType<typeof decodeEventMessage> | undefined;
    try {
      event = decodeEventMessage({ subject, headers: sm.header, data: sm.data }, prefix);
    } catch {
      event = undefined;
    }
    return {
      seq: sm.seq,
      consumer: h(DLQ_HEADERS.CONSUMER) || sm.subject.slice(`${prefix}_dlq.`.length),
      subject,
      eventId: event?.eventId ?? h(DLQ_HEADERS.ORIGINAL_MSG_ID),
      type: event?.type ?? "",
      streamId: event?.streamId ?? "",
      payload: event?.payload ?? new TextDecoder().decode(sm.data),
      metadata: event?.metadata ?? {},
      deliveryCount: Number(h(DLQ_HEADERS.DELIVERIES) || 0),
      error: h(DLQ_HEADERS.ERROR),
      deadLetteredAt: h(DLQ_HEADERS.AT) ? new Date(h(DLQ_HEADERS.AT)) : sm.time,
      replayCount: Number(h(EVENT_HEADERS.REPLAY_COUNT) || 0),
    };
  };

  const store: NatsDeadLetters = {
    async park({ msg, consumer, deliveryCount, error }) {
      const h = copyHeaders(msg.headers, [EVENT_HEADERS.MSG_ID, ...Object.values(DLQ_HEADERS)]);
      const originalMsgId = msg.headers?.get(EVENT_HEADERS.MSG_ID, Match.IgnoreCase) ?? "";
      if (originalMsgId) h.set(DLQ_HEADERS.ORIGINAL_MSG_ID, originalMsgId);
      h.set(DLQ_HEADERS.SUBJECT, msg.subject);
      h.set(DLQ_HEADERS.CONSUMER, consumer);
      h.set(DLQ_HEADERS.DELIVERIES, String(deliveryCount));
      h.set(DLQ_HEADERS.ERROR, headerValue(error || "unknown error"));
      h.set(DLQ_HEADERS.AT, new Date().toISOString());
      h.set(DLQ_HEADERS.STREAM, msg.info.stream);
      h.set(DLQ_HEADERS.SEQUENCE, String(msg.seq));
      await js.publish(dlqSubjectOf(prefix, consumer), msg.data, {
        msgID: `dlq:${consumer}:${msg.info.stream}:${msg.seq}`,
        headers: h,
      });
      dlqDeadLettered.inc({ consumer });
      await store.depth().catch(() => undefined);
    },

    async list(opts: ListDeadLettersOptions = {}) {
      const limit = opts.limit ?? 100;
      const filter = opts.consumer ? dlqSubjectOf(prefix, opts.consumer) : `${prefix}_dlq.>`;
      const out: DeadLetter[] = [];
      let seq = 1;
      while (out.length < limit) {
        let sm: StoredMsg | null;
        try {
          // STREAM.MSG.GET accepts next_by_subj (server 2.9+); the client's type only lists seq/last_by_subj.
          const request = { seq, next_by_subj: filter } as unknown as MsgRequest;
          sm = await jsm.streams.getMessage(stream, request);
        } catch (err) {
          if (isMissing(err)) break;
          throw err;
        }
        if (!sm) break;
        out.push(toDeadLetter(sm));
        seq = sm.seq + 1;
      }
      return out;
    },

    async replay(seq: number): Promise<ReplayResult> {
      let sm: StoredMsg | null = null;
      try {
        sm = await jsm.streams.getMessage(stream, { seq });
      } catch (err) {
        if (!isMissing(err)) throw err;
      }
      if (!sm?.subject.startsWith(`${prefix}_dlq.`)) {
        throw domainError("NOT_FOUND", `no dead letter ${seq} in ${stream}`, { seq });
      }
      const letter = toDeadLetter(sm);
      const replayCount = letter.replayCount + 1;
      const h = copyHeaders(sm.header, [EVENT_HEADERS.MSG_ID, EVENT_HEADERS.REPLAY_COUNT, ...Object.values(DLQ_HEADERS)]);
      h.set(EVENT_HEADERS.REPLAY_COUNT, String(replayCount));
      // A fresh message id: the original id is still inside the dedupe window of the events
      // stream (or may be), and JetStream would silently drop the replay (nats-server#2921).
      // Derived from the DLQ sequence, so replaying the same letter twice stays one message.
      const originalMsgId = sm.header?.get(DLQ_HEADERS.ORIGINAL_MSG_ID, Match.IgnoreCase) || letter.eventId;
      await js.publish(letter.subject, sm.data, { msgID: `${originalMsgId}:replay:${replayCount}:${seq}`, headers: h });
      try {
        await jsm.streams.deleteMessage(stream, seq, false);
      } catch (err) {
        if (!isMissing(err)) throw err;
      }
      await store.depth().catch(() => undefined);
      return { seq, consumer: letter.consumer, subject: letter.subject, eventId: letter.eventId, replayCount };
    },

    async depth() {
      try {
        const info = await jsm.streams.info(stream);
        dlqMessages.set({ stream }, info.state.messages);
        return info.state.messages;
      } catch (err) {
        if (jsErrorCode(err) === JS_ERRORS.STREAM_NOT_FOUND) return 0;
        throw err;
      }
    },
  };
  return store;
}
