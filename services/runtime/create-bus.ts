import type { Logger } from "pino";
import type { NexusConfig } from "../kernel/config.js";
import type { Database } from "../kernel/db/ports.js";
import { createLocalEventBus, createNatsEventBus } from "../kernel/events/index.js";
import type { EventBus } from "../kernel/events/ports.js";

/** The local bus's longest sleep between polls while LISTEN works (see LocalEventBusOptions.idlePollIntervalMs). */
export const LOCAL_BUS_IDLE_POLL_MS = 10_000;

/** Options of {@link createBus}. */
export interface CreateBusOptions {
  config: NexusConfig;
  db: Database;
  logger: Logger;
  /**
   * Run the outbox relay (NATS only). Default true; one-shot commands (migrate, dlq) pass
   * false so they never publish on behalf of the services.
   */
  relay?: boolean;
}

/**
 * The event bus the config names: NATS JetStream when NATS_URL is set (events stream
 * NEXUS_NATS_STREAM, dead letters NEXUS_DLQ_STREAM, subjects under NEXUS_SUBJECT_PREFIX), else
 * the embedded local bus reading the event table. Services cannot tell which one runs.
 */
export async function createBus(options: CreateBusOptions): Promise<EventBus> {
  const { config, db, logger } = options;
  const common = { db, subjectPrefix: config.subjectPrefix, logger: logger.child({ component: "event-bus" }) };
  // Idle consumers and observers poll every 10 s while NOTIFY wakes them (it does on every
  // append): an idle `nexus dev` then spends no CPU polling its event table every second.
  if (!config.natsUrl) return createLocalEventBus({ ...common, idlePollIntervalMs: LOCAL_BUS_IDLE_POLL_MS });
  return createNatsEventBus({
    ...common,
    nats: { servers: [...config.natsUrl], name: `nexus-${config.services.join("-")}` },
    stream: config.natsStream,
    dlqStream: config.dlqStream,
    replicas: config.natsReplicas,
    ...(options.relay === false ? { relay: false as const } : {}),
  });
}
