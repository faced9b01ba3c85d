/**
 * MQTT sources (ING-02) on MQTT.js: topic filters with `+`/`#`, QoS 0/1/2, payloads parsed as
 * JSON, CSV or raw (payload.ts), and delivery a workflow can rely on:
 *
 * - A QoS 1/2 message is acknowledged (PUBACK / PUBREC) only after `onMessage` resolved, through
 *   MQTT.js `customHandleAcks`. If `onMessage` rejects, the message is not acknowledged and the
 *   connection is dropped on purpose, so the broker delivers it again after the reconnect. QoS 0
 *   is at most once by definition: a rejected QoS 0 message is logged and gone.
 * - Messages are handed over one at a time, in order (MQTT.js processes the next packet only when
 *   the previous one is done): `onMessage` is the backpressure.
 * - Persistent session (MQTT 5, `clean: false`, session expiry {@link MQTT_SESSION_EXPIRY_S})
 *   under the source's fixed clientId, so the broker queues
 *   QoS 1/2 messages published while the source is down or reconnecting and delivers them when it
 *   is back. Subscriptions are (re)made on every connect whose session the broker did not keep
 *   (first start, broker restarted without persistence).
 * - Reconnects forever (every 2 s), also after a refused CONNACK; `status()` shows the last error.
 *
 * At least once, not exactly once: a message whose acknowledgement was lost (crash after
 * onMessage, broker restart before the PUBACK arrived) comes again. MQTT has no message id
 * that survives redelivery (the packet id is reused), so the service deduplicates by {@link mqttMessageId} (topic + payload
 * hash) within its dedupe window, the same rule REST ingress applies to payload hashes (REL-05).
 */
import { createHash } from "node:crypto";
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from "mqtt";
import type { Logger } from "pino";
import { ConnectorError, type MqttMessage, type MqttSource, type MqttSourceConfig } from "../ports.js";
import { isMalformedPayload, parsePayload } from "./payload.js";

export { isMalformedPayload, MalformedPayload, parsePayload } from "./payload.js";

/** Reconnect period after a lost or refused connection. */
export const MQTT_RECONNECT_MS = 2_000;
/**
 * How long the broker keeps a source's session (subscriptions and queued QoS 1/2 messages) while
 * it is disconnected: 7 days, the default JetStream retention of a workflow.
 */
export const MQTT_SESSION_EXPIRY_S = 7 * 24 * 3600;
/** How long `close()` waits for the message in hand to finish before it disconnects anyway. */
export const MQTT_CLOSE_GRACE_MS = 10_000;

const PROTOCOLS = new Set(["mqtt:", "mqtts:", "tcp:", "ssl:", "ws:", "wss:"]);

/** Why a topic filter is invalid (MQTT 3.1.1 §4.7), or `undefined`. */
function topicFilterProblem(filter: unknown): string | undefined {
  if (typeof filter !== "string" || filter.length === 0) return "a topic filter is empty";
  if (Buffer.byteLength(filter) > 65_535) return "a topic filter is longer than 65535 bytes";
  if (filter.includes("\u0000")) return `topic filter ${JSON.stringify(filter)} contains a NUL character`;
  const levels = filter.split("/");
  for (const [i, level] of levels.entries()) {
    if (level.includes("#") && (level !== "#" || i !== levels.length - 1)) {
      return `topic filter ${JSON.stringify(filter)}: "#" must be a whole level and the last one (e.g. sensors/#)`;
    }
    if (level.includes("+") && level !== "+")
      return `topic filter ${JSON.stringify(filter)}: "+" must be a whole level (e.g. sensors/+/temp)`;
  }
  return undefined;
}

/**
 * The save-time check of an MQTT source: URL (mqtt, mqtts, ws, wss), clientId (1-128 characters),
 * at least one valid topic filter, QoS 0/1/2, format json/csv/raw. One message per problem; the
 * password never appears.
 */
export function validateMqttSourceConfig(config: MqttSourceConfig): string[] {
  const problems: string[] = [];
  let url: URL | undefined;
  try {
    url = new URL(config.url);
  } catch {
    problems.push("url is not a URL (use mqtt://host:1883 or mqtts://host:8883)");
  }
  if (url && !PROTOCOLS.has(url.protocol)) problems.push(`url scheme "${url.protocol}" is not MQTT (use mqtt, mqtts, ws or wss)`);
  if (url && (url.username || url.password)) problems.push("url must not carry credentials: use username and password");
  if (config.password !== undefined && !config.username) problems.push("a password needs a username");
  if (typeof config.clientId !== "string" || config.clientId.length === 0 || config.clientId.length > 128) {
    problems.push("clientId must be 1-128 characters (it names the persistent session on the broker)");
  }
  if (!Array.isArray(config.topics) || config.topics.length === 0) problems.push("at least one topic filter is needed");
  else
    for (const topic of config.topics) {
      const problem = topicFilterProblem(topic);
      if (problem) problems.push(problem);
    }
  if (config.qos !== 0 && config.qos !== 1 && config.qos !== 2) problems.push(`qos ${String(config.qos)} is not 0, 1 or 2`);
  if (!["json", "csv", "raw"].includes(config.format)) problems.push(`format "${String(config.format)}" is unknown (use json, csv or raw)`);
  return problems;
}

/**
 * A stable id for deduplication: hex SHA-256 of topic, a NUL byte and the payload bytes (first 32
 * hex characters). A redelivered message has the same id; so do two identical payloads on one
 * topic, which is why devices should put a timestamp or sequence number in their payloads.
 */
export function mqttMessageId(message: Pick<MqttMessage, "topic" | "raw">): string {
  return createHash("sha256").update(message.topic).update("\u0000").update(message.raw).digest("hex").slice(0, 32);
}

/** Dependencies of {@link startMqttSource}. */
export interface MqttSourceDeps {
  logger: Pick<Logger, "warn" | "info" | "debug">;
}

/**
 * Starts a source: connects (and keeps reconnecting) to the broker, subscribes, and hands every
 * message to `onMessage`, acknowledging QoS 1/2 messages only after it resolved. Returns at once,
 * also when the broker is down (see `status()`). Throws INVALID_SOURCE_CONFIG for a configuration
 * that can never work.
 */
export function startMqttSource(
  config: MqttSourceConfig,
  onMessage: (message: MqttMessage) => Promise<void> | void,
  deps: MqttSourceDeps,
): MqttSource {
  const problems = validateMqttSourceConfig(config);
  if (problems.length > 0) throw new ConnectorError("INVALID_SOURCE_CONFIG", `MQTT source: ${problems.join("; ")}`);
  const log = deps.logger;
  const where = `MQTT broker ${new URL(config.url).host} (client ${config.clientId})`;
  const redact = (text: string) => (config.password && config.password.length >= 3 ? text.replaceAll(config.password, "[REDACTED]") : text);

  let connected = false;
  let subscribed: string[] = [];
  let lastError: string | undefined;
  let received = 0;
  let malformed = 0;
  let firstConnect = true;
  let closing = false;
  const inFlight = new Set<Promise<void>>();

  async function deliver(packet: IPublishPacket): Promise<void> {
    const raw = new Uint8Array(packet.payload as Buffer);
    const payload = parsePayload(config.format, raw);
    if (isMalformedPayload(payload)) {
      malformed += 1;
      log.warn({ source: where, topic: packet.topic, reason: payload.reason }, "MQTT payload did not parse: handed over as malformed");
    }
    const message: MqttMessage = { topic: packet.topic, payload, raw, qos: packet.qos, receivedAt: new Date() };
    const work = Promise.resolve().then(() => onMessage(message));
    const tracked = work.then(
      () => undefined,
      () => undefined,
    );
    inFlight.add(tracked);
    try {
      await work;
      received += 1;
    } finally {
      inFlight.delete(tracked);
    }
  }

  const options: IClientOptions = {
    clientId: config.clientId,
    username: config.username,
    password: config.password,
    // MQTT 5: customHandleAcks (acknowledge after onMessage) exists only there, and the session
    // outlives a disconnect only with a session expiry interval.
    clean: false,
    protocolVersion: 5,
    properties: { sessionExpiryInterval: MQTT_SESSION_EXPIRY_S },
    keepalive: 30,
    connectTimeout: 10_000,
    reconnectPeriod: MQTT_RECONNECT_MS,
    reconnectOnConnackError: true,
    resubscribe: false,
    customHandleAcks: (_topic, _message, packet, done) => {
      deliver(packet).then(
        () => done(0),
        (err: unknown) => {
          const reason = err instanceof Error ? err.message : String(err);
          lastError = redact(`message on ${packet.topic} was not accepted and will be redelivered: ${reason}`);
          log.warn({ source: where, topic: packet.topic, err: reason }, "MQTT message not acknowledged; reconnecting for redelivery");
          // No acknowledgement: the broker redelivers on the next connection of this session.
          done(err instanceof Error ? err : new Error(reason));
          setImmediate(() => client.stream?.destroy());
        },
      );
    },
  };
  const client: MqttClient = mqtt.connect(config.url, options);
  // MQTT.js keeps socket errors (refused, reset, unreachable) to itself and just reconnects; the
  // status should still say why the source is not connected.
  const watchStream = () => {
    client.stream?.once("error", (err: Error) => {
      lastError = redact(`${where}: ${err.message}`);
    });
  };
  watchStream();
  client.on("reconnect", () => queueMicrotask(watchStream));

  // QoS 1/2 were handed over in customHandleAcks; QoS 0 arrives only here.
  client.handleMessage = (packet, callback) => {
    if (packet.qos !== 0) return callback();
    deliver(packet).then(
      () => callback(),
      (err: unknown) => {
        log.warn(
          { source: where, topic: packet.topic, err: err instanceof Error ? err.message : String(err) },
          "QoS 0 MQTT message not accepted (at most once: not redelivered)",
        );
        callback();
      },
    );
  };

  client.on("connect", (connack) => {
    connected = true;
    lastError = undefined;
    const mustSubscribe = firstConnect || !connack.sessionPresent;
    firstConnect = false;
    log.info({ source: where, sessionPresent: connack.sessionPresent }, "MQTT source connected");
    if (!mustSubscribe) return;
    client.subscribe(config.topics.map(String), { qos: config.qos }, (err, granted) => {
      if (err) {
        lastError = redact(`subscribe failed: ${err.message}`);
        return;
      }
      const refused = (granted ?? []).filter((g) => g.qos === 128).map((g) => g.topic);
      subscribed = (granted ?? []).filter((g) => g.qos !== 128).map((g) => g.topic);
      if (refused.length > 0) lastError = `the broker refused the subscription to ${refused.join(", ")} (not authorized?)`;
    });
  });
  client.on("close", () => {
    if (connected) log.warn({ source: where }, "MQTT source disconnected; reconnecting");
    connected = false;
  });
  client.on("error", (err) => {
    lastError = redact(`${where}: ${err.message}`);
    log.debug({ source: where, err: lastError }, "MQTT client error");
  });

  /**
   * Ends the broker's session of this clientId: one connection with clean start and no session
   * expiry, so the broker drops the subscriptions and everything it queued for the source.
   */
  async function forgetSession(): Promise<void> {
    const once = mqtt.connect(config.url, {
      clientId: config.clientId,
      username: config.username,
      password: config.password,
      clean: true,
      protocolVersion: 5,
      properties: { sessionExpiryInterval: 0 },
      reconnectPeriod: 0,
      connectTimeout: 10_000,
    });
    try {
      await new Promise<void>((resolve, reject) => {
        once.once("connect", () => resolve());
        once.once("error", reject);
        once.once("close", () => reject(new Error("connection closed")));
      });
    } catch (err) {
      throw new ConnectorError("DESTINATION_UNAVAILABLE", redact(`${where}: could not end the session: ${(err as Error).message}`), {
        cause: err,
      });
    } finally {
      await once.endAsync(true);
    }
  }

  return {
    async close(opts = {}) {
      if (closing) return;
      closing = true;
      // Let the message in hand finish (and be acknowledged) before disconnecting.
      await Promise.race([Promise.all([...inFlight]), new Promise((r) => setTimeout(r, MQTT_CLOSE_GRACE_MS).unref())]);
      await new Promise((r) => setImmediate(r));
      // DISCONNECT keeps the persistent session: the broker queues what arrives meanwhile.
      await client.endAsync(!connected);
      connected = false;
      if (opts.forgetSession) await forgetSession();
    },
    status() {
      return { connected, subscribed: connected ? [...subscribed] : [], lastError, received, malformed };
    },
  };
}
