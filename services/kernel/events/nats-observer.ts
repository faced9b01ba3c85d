import type { NatsConnection, Subscription as NatsSubscription } from "@nats-io/nats-core";
import type { Logger } from "pino";
import { decodeEventMessage } from "./nats-message.js";
import type { Observation, ObserveOptions } from "./ports.js";
import { subjectOf, topicPattern } from "./topics.js";

/** What a NATS observer needs from its bus. */
export interface NatsObserverContext {
  nats: NatsConnection;
  subjectPrefix: string;
  logger: Logger;
}

/**
 * The NATS bus's per-process observer: a core NATS subscription on the events' subjects.
 * The relay publishes each event to JetStream with a plain publish, which core subscribers
 * receive as well — a deliver-new fan-out to every process with no consumer state on the
 * server. Messages published while the connection is down are missed, so the feed reports
 * itself down on disconnect and up again once the client has reconnected (and re-sent its
 * subscriptions).
 */
export async function createNatsObserver(ctx: NatsObserverContext, options: ObserveOptions): Promise<Observation> {
  topicPattern(options.subject); // validates the filter
  const logger = ctx.logger.child({ component: "nats-observer", subject: options.subject });
  const nc = ctx.nats;
  let live = !nc.isClosed();
  let running = true;

  const setLive = (next: boolean): void => {
    if (live === next) return;
    live = next;
    options.onStateChange?.(next);
  };

  // Handlers run one at a time, in arrival order.
  let chain: Promise<void> = Promise.resolve();
  const sub: NatsSubscription = nc.subscribe(subjectOf(ctx.subjectPrefix, options.subject), {
    callback(err, msg) {
      if (err) {
        logger.warn({ err }, "observer subscription error");
        return;
      }
      let event: ReturnType<typeof decodeEventMessage>;
      try {
        event = decodeEventMessage({ subject: msg.subject, headers: msg.headers, data: msg.data }, ctx.subjectPrefix);
      } catch (decodeErr) {
        logger.warn({ err: decodeErr, subject: msg.subject }, "observer skipped a message that is not an event");
        return;
      }
      chain = chain
        .then(() => options.handler(event))
        .catch((handlerErr: unknown) =>
          logger.warn({ err: handlerErr, eventId: event.eventId }, "observer handler failed; the event is skipped"),
        );
    },
  });
  // The subscription exists on the server once the flush returns: events published after
  // `observe` resolves are seen.
  await nc.flush();

  const statuses = nc.status();
  const statusLoop = (async () => {
    for await (const s of statuses) {
      if (!running) break;
      if (s.type === "disconnect" || s.type === "staleConnection" || s.type === "close") setLive(false);
      else if (s.type === "reconnect") setLive(true);
    }
  })().catch((err: unknown) => logger.debug({ err }, "observer status loop ended"));
  void nc.closed().then(() => setLive(false));

  return {
    get live() {
      return live && !nc.isClosed();
    },
    async stop() {
      if (!running) return;
      running = false;
      sub.unsubscribe();
      (statuses as { stop?: () => void }).stop?.();
      await chain;
      await statusLoop;
    },
  };
}
