import type { Logger } from "pino";
import type { Database } from "../kernel/db/ports.js";
import { type MqttRow, store } from "./adapters/postgres.js";
import type { Connectors } from "./connector-bridge.js";
import { isMalformedPayload } from "./connectors/mqtt/payload.js";
import type { MqttSource } from "./connectors/ports.js";
import type { IntegrationApplication } from "./integration-application.js";

/** Shared-subscription group of every replica: the broker gives each message to one of them. */
export const MQTT_SHARE_GROUP = "nexus-integration";

/** Runs the configured MQTT sources in this process. */
export interface MqttRunner {
  /** Starts sources that are new, stops deleted ones. */
  reconcile(): Promise<void>;
  status(sourceId: string): { connected: boolean; received: number; lastError?: string } | undefined;
  close(): Promise<void>;
}

/**
 * Starts the connector library's MQTT client for every configured source, subscribed through
 * `$share/nexus-integration/<filter>`: with several replicas each message goes to one of them
 * (no lease needed, a replica that dies leaves the others consuming). A message is acknowledged
 * only after it was queued durably (`acceptMqtt` committed); a failure leaves it unacknowledged
 * for redelivery.
 */
export function createMqttRunner(o: {
  db: Database;
  app: IntegrationApplication;
  connectors: () => Promise<Connectors>;
  logger: Logger;
  /** This replica's stable token (the same across restarts): client id `nexus-<source>-<token>`. */
  processId: string;
}): MqttRunner {
  const running = new Map<string, { row: MqttRow; source: MqttSource }>();
  let closed = false;
  return {
    async reconcile() {
      if (closed) return;
      const rows = await store.mqttSources(o.db);
      const wanted = new Map(rows.map((r) => [r.id, r]));
      for (const [id, r] of running) {
        if (!wanted.has(id)) {
          running.delete(id);
          // Deleted for good: the broker may drop its session and whatever it queued for it.
          await r.source.close({ forgetSession: true }).catch((err) => o.logger.warn({ err, source: id }, "MQTT source close failed"));
        }
      }
      const missing = rows.filter((r) => !running.has(r.id));
      if (missing.length === 0) return;
      const c = await o.connectors();
      for (const row of missing) {
        const password = await o.app.mqttPassword(row);
        let source: MqttSource;
        try {
          source = c.startMqttSource(
            {
              url: row.url,
              ...(row.username ? { username: row.username } : {}),
              ...(password ? { password } : {}),
              clientId: `nexus-${row.id}-${o.processId}`.slice(0, 64),
              topics: row.topics.map((t) => `$share/${MQTT_SHARE_GROUP}/${t}`),
              qos: row.qos,
              format: row.format,
            },
            // Acknowledged once queued; a redelivered message (lost PUBACK) is deduplicated by topic + payload hash.
            // A payload that does not parse never enters a workflow: it goes to the dead-letter queue.
            async (m) => {
              if (isMalformedPayload(m.payload)) {
                await o.app.rejectMqtt(row, {
                  topic: m.topic,
                  messageId: c.mqttMessageId(m),
                  reason: m.payload.reason,
                  base64: m.payload.base64,
                });
                return;
              }
              await o.app.acceptMqtt(row, m.payload, m.topic, c.mqttMessageId(m));
            },
            { logger: o.logger.child({ mqttSource: row.id }) },
          );
        } catch (err) {
          // A configuration that can never work: reported in the source's status, not retried.
          const lastError = (err as Error).message;
          source = { close: async () => {}, status: () => ({ connected: false, subscribed: [], received: 0, lastError }) };
        }
        running.set(row.id, { row, source });
      }
    },
    status(id) {
      const s = running.get(id)?.source.status();
      return s ? { connected: s.connected, received: s.received, ...(s.lastError ? { lastError: s.lastError } : {}) } : undefined;
    },
    async close() {
      closed = true;
      // A graceful stop ends this replica's sessions, so the broker gives the shared
      // subscriptions' messages to the replicas still running. A process that dies instead
      // leaves its session; the restarted replica (same client id) resumes it with what was
      // queued for it meanwhile.
      await Promise.allSettled([...running.values()].map((r) => r.source.close({ forgetSession: true })));
      running.clear();
    },
  };
}
