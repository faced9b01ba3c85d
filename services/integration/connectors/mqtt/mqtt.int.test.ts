/**
 * MQTT sources against real Mosquitto brokers: the shared one on :1883 for topics, formats, QoS
 * and acknowledgement; one of this suite's own (port 15520, persistence in a temp directory,
 * started, stopped with SIGTERM and restarted) for the no-loss proof across a broker restart and
 * a source that is down.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "../../../../tests/support/eventually.js";
import { reachable } from "../../../../tests/support/services.js";
import { ConnectorError, type MqttMessage, type MqttSource, type MqttSourceConfig } from "../ports.js";
import { isMalformedPayload, mqttMessageId, startMqttSource, validateMqttSourceConfig } from "./index.js";

const REQUIRE = process.env.NEXUS_REQUIRE_SERVICES === "1";
const SHARED_URL = process.env.NEXUS_TEST_MQTT_URL ?? "mqtt://127.0.0.1:1883";
const MOSQUITTO = "/usr/sbin/mosquitto";
const OWN_PORT = 15520;
const logger = pino({ level: "silent" });

const sharedUp = await reachable(SHARED_URL, 1883);
if (!sharedUp && REQUIRE)
  throw new Error(`Mosquitto is not reachable at ${SHARED_URL} and NEXUS_REQUIRE_SERVICES=1: start it (.ci/run does)`);
if (!sharedUp) console.warn(`[nexus tests] skipping the MQTT source suite: nothing listens at ${SHARED_URL}`);
const binaryThere = existsSync(MOSQUITTO);
if (!binaryThere && REQUIRE)
  throw new Error(`${MOSQUITTO} is missing and NEXUS_REQUIRE_SERVICES=1: apt-get install mosquitto (.ci/run does)`);

const token = () => randomBytes(5).toString("hex");

/** A publisher with its own persistent session, so its QoS 1 publishes survive broker restarts too. */
async function publisher(url: string): Promise<MqttClient> {
  const client = mqtt.connect(url, { clientId: `nx-pub-${token()}`, clean: false, reconnectPeriod: 200, protocolVersion: 4 });
  await new Promise<void>((resolve, reject) => {
    client.once("connect", () => resolve());
    client.once("error", reject);
  });
  return client;
}

function collector() {
  const messages: MqttMessage[] = [];
  return { messages, onMessage: (m: MqttMessage) => void messages.push(m) };
}

async function subscribed(source: MqttSource, count: number): Promise<void> {
  await eventually(
    "the source is connected and subscribed",
    () => source.status().connected && source.status().subscribed.length === count,
    15_000,
  );
}

describe("validateMqttSourceConfig", () => {
  const good: MqttSourceConfig = {
    url: "mqtt://127.0.0.1:1883",
    clientId: "c1",
    topics: ["plant/+/temp", "alarms/#"],
    qos: 1,
    format: "json",
  };
  it("accepts wildcards used as whole levels", () => {
    expect(validateMqttSourceConfig(good)).toEqual([]);
  });
  it.each<[string, Partial<MqttSourceConfig>, RegExp]>([
    ["# not last", { topics: ["a/#/b"] }, /"#" must be a whole level and the last one/],
    ["+ inside a level", { topics: ["a+/b"] }, /"\+" must be a whole level/],
    ["no topics", { topics: [] }, /at least one topic filter/],
    ["http url", { url: "http://broker:80" }, /not MQTT/],
    ["credentials in the url", { url: "mqtt://u:secret@broker:1883" }, /must not carry credentials/],
    ["qos 3", { qos: 3 as 0 }, /qos 3 is not 0, 1 or 2/],
    ["format xml", { format: "xml" as "json" }, /format "xml" is unknown/],
    ["empty clientId", { clientId: "" }, /clientId must be 1-128/],
    ["password without username", { password: "pw" }, /a password needs a username/],
  ])("refuses %s", (_, over, message) => {
    expect(validateMqttSourceConfig({ ...good, ...over }).join("\n")).toMatch(message);
    expect(() => startMqttSource({ ...good, ...over }, () => undefined, { logger })).toThrowError(
      expect.objectContaining({ reason: "INVALID_SOURCE_CONFIG", retryable: false }),
    );
  });
  it("never puts the password into a validation message", () => {
    expect(validateMqttSourceConfig({ ...good, url: "mqtt://u:hunter2@b:1883", password: "hunter2" }).join()).not.toContain("hunter2");
  });
});

describe.skipIf(!sharedUp)("MQTT source on the shared broker", () => {
  let pub: MqttClient;
  const sources: MqttSource[] = [];
  const start = (config: Omit<MqttSourceConfig, "url" | "clientId">, onMessage: (m: MqttMessage) => Promise<void> | void) => {
    const source = startMqttSource({ url: SHARED_URL, clientId: `nx-src-${token()}`, ...config }, onMessage, { logger });
    sources.push(source);
    return source;
  };
  beforeAll(async () => {
    pub = await publisher(SHARED_URL);
  });
  afterEach(async () => {
    await Promise.all(sources.splice(0).map((s) => s.close()));
  });
  afterAll(async () => {
    await pub?.endAsync();
  });

  it("receives exactly the topics its + and # filters match", async () => {
    const base = `nx/${token()}`;
    const { messages, onMessage } = collector();
    const source = start({ topics: [`${base}/+/temp`, `${base}/alarms/#`], qos: 1, format: "json" }, onMessage);
    await subscribed(source, 2);
    for (const topic of [
      `${base}/p1/temp`,
      `${base}/p1/humidity`,
      `${base}/p1/x/temp`,
      `${base}/alarms`,
      `${base}/alarms/a/b`,
      `${base}/p2/temp`,
    ]) {
      await pub.publishAsync(topic, JSON.stringify({ topic }), { qos: 1 });
    }
    await eventually("four matching messages", () => messages.length >= 4 && messages, 10_000);
    // A last marker proves nothing else was on its way.
    await pub.publishAsync(`${base}/end/temp`, "{}", { qos: 1 });
    await eventually("the marker", () => messages.some((m) => m.topic.endsWith("/end/temp")), 10_000);
    expect(messages.map((m) => m.topic).sort()).toEqual(
      [`${base}/alarms`, `${base}/alarms/a/b`, `${base}/end/temp`, `${base}/p1/temp`, `${base}/p2/temp`].sort(),
    );
    expect(messages[0]?.payload).toEqual({ topic: messages[0]?.topic });
    expect(source.status().received).toBe(5);
  });

  it("parses CSV with several rows, hands raw payloads over as base64 and bytes", async () => {
    const base = `nx/${token()}`;
    const csv = collector();
    const raw = collector();
    const csvSource = start({ topics: [`${base}/csv`], qos: 1, format: "csv" }, csv.onMessage);
    const rawSource = start({ topics: [`${base}/raw`], qos: 1, format: "raw" }, raw.onMessage);
    await subscribed(csvSource, 1);
    await subscribed(rawSource, 1);
    await pub.publishAsync(`${base}/csv`, "device,temp\npump-1,21.5\npump-2,19\n", { qos: 1 });
    await pub.publishAsync(`${base}/raw`, Buffer.from([0, 1, 2, 250]), { qos: 1 });
    await eventually("both messages", () => csv.messages.length === 1 && raw.messages.length === 1, 10_000);
    expect(csv.messages[0]?.payload).toEqual([
      { device: "pump-1", temp: "21.5" },
      { device: "pump-2", temp: "19" },
    ]);
    expect(raw.messages[0]?.payload).toBe("AAEC+g==");
    expect([...(raw.messages[0]?.raw ?? [])]).toEqual([0, 1, 2, 250]);
  });

  it("hands malformed JSON over marked as malformed, counts it, and keeps running", async () => {
    const topic = `nx/${token()}/json`;
    const { messages, onMessage } = collector();
    const source = start({ topics: [topic], qos: 1, format: "json" }, onMessage);
    await subscribed(source, 1);
    await pub.publishAsync(topic, "{broken", { qos: 1 });
    await pub.publishAsync(topic, '{"ok":true}', { qos: 1 });
    await eventually("both messages", () => messages.length === 2, 10_000);
    expect(isMalformedPayload(messages[0]?.payload)).toBe(true);
    expect(new TextDecoder().decode(messages[0]?.raw)).toBe("{broken");
    expect(messages[1]?.payload).toEqual({ ok: true });
    expect(source.status()).toMatchObject({ connected: true, malformed: 1, received: 2 });
  });

  it("delivers at the lower of the publish and subscription QoS (0, 1, 2)", async () => {
    const topic = `nx/${token()}/qos`;
    const { messages, onMessage } = collector();
    const source = start({ topics: [topic], qos: 2, format: "json" }, onMessage);
    await subscribed(source, 1);
    for (const qos of [0, 1, 2] as const) await pub.publishAsync(topic, JSON.stringify({ qos }), { qos });
    await eventually("three messages", () => messages.length === 3, 10_000);
    expect(messages.map((m) => [(m.payload as { qos: number }).qos, m.qos]).sort()).toEqual([
      [0, 0],
      [1, 1],
      [2, 2],
    ]);
  });

  it.each([1, 2] as const)("acknowledges a QoS %i message only after onMessage resolved: a rejected one comes again", async (qos) => {
    const topic = `nx/${token()}/ack`;
    const seen: string[] = [];
    let failedOnce = false;
    const source = start({ topics: [topic], qos, format: "json" }, (m) => {
      const n = String((m.payload as { n: number }).n);
      if (n === "2" && !failedOnce) {
        failedOnce = true;
        throw new Error("JetStream unavailable");
      }
      seen.push(n);
    });
    await subscribed(source, 1);
    for (const n of [1, 2, 3]) await pub.publishAsync(topic, JSON.stringify({ n }), { qos });
    await eventually("all three accepted", () => ["1", "2", "3"].every((n) => seen.includes(n)), 15_000);
    expect(failedOnce).toBe(true);
    expect(new Set(seen)).toEqual(new Set(["1", "2", "3"]));
  });

  it("gives a stable id for deduplication of redelivered messages", () => {
    const raw = new TextEncoder().encode('{"t":1}');
    expect(mqttMessageId({ topic: "a/b", raw })).toBe(mqttMessageId({ topic: "a/b", raw: new Uint8Array(raw) }));
    expect(mqttMessageId({ topic: "a/c", raw })).not.toBe(mqttMessageId({ topic: "a/b", raw }));
    expect(mqttMessageId({ topic: "a/b", raw })).toMatch(/^[0-9a-f]{32}$/);
  });

  it("reports a broker that is not there and keeps trying", async () => {
    const source = startMqttSource(
      {
        url: "mqtt://127.0.0.1:15599",
        clientId: `nx-${token()}`,
        topics: ["x"],
        qos: 1,
        format: "json",
        username: "u",
        password: "pw-secret-1",
      },
      () => undefined,
      {
        logger,
      },
    );
    sources.push(source);
    const status = await eventually("an error is reported", () => (source.status().lastError ? source.status() : undefined), 10_000);
    expect(status.connected).toBe(false);
    expect(status.lastError).toMatch(/ECONNREFUSED/);
    expect(status.lastError).not.toContain("pw-secret-1");
  });

  it("ConnectorError is what it throws", () => {
    expect(() =>
      startMqttSource({ url: "nope", clientId: "x", topics: ["a"], qos: 1, format: "json" }, () => undefined, { logger }),
    ).toThrowError(ConnectorError);
  });
});

/** A mosquitto of this suite: same port, config and persistence directory across restarts. */
class OwnMosquitto {
  private proc: ChildProcess | undefined;
  constructor(
    readonly port: number,
    readonly dir: string,
    /** Without persistence a restart forgets every session (and subscription). */
    readonly persistence = true,
  ) {}
  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }
  async start(): Promise<void> {
    const conf = join(this.dir, "mosquitto.conf");
    // `user root` keeps mosquitto from dropping to a user that cannot write the temp directory.
    await writeFile(
      conf,
      [
        `listener ${this.port} 127.0.0.1`,
        "allow_anonymous true",
        `persistence ${this.persistence}`,
        `persistence_location ${this.dir}/`,
        "user root",
        "max_queued_messages 10000",
        "",
      ].join("\n"),
    );
    this.proc = spawn(MOSQUITTO, ["-c", conf], { stdio: "ignore" });
    await eventually("own mosquitto listens", () => reachable(this.url, this.port, 200), 15_000);
  }
  /** SIGTERM: mosquitto writes its persistence file (sessions and queued messages) and exits. */
  async stop(): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (!proc || proc.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      proc.once("exit", () => resolve());
      proc.kill("SIGTERM");
    });
  }
}

describe.skipIf(!binaryThere)("MQTT source across a broker restart and its own downtime (own mosquitto)", () => {
  let broker: OwnMosquitto;
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "nexus-mosquitto-"));
    broker = new OwnMosquitto(OWN_PORT, dir);
    await broker.start();
  });
  afterAll(async () => {
    await broker?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("loses no QoS 1 message published while the source is down or the broker restarts", async () => {
    const topic = `nx/${token()}/readings`;
    const config: MqttSourceConfig = {
      url: broker.url,
      clientId: `nx-src-${token()}`,
      topics: [`${topic.split("/").slice(0, 2).join("/")}/+`],
      qos: 1,
      format: "json",
    };
    const got: number[] = [];
    const onMessage = (m: MqttMessage) => void got.push((m.payload as { n: number }).n);
    const pub = await publisher(broker.url);
    let n = 0;
    const publish = async (count: number) => {
      for (let i = 0; i < count; i++) {
        n += 1;
        // Not awaited: while the broker is down the publisher queues and resends on reconnect.
        pub.publish(topic, JSON.stringify({ n }), { qos: 1 });
      }
    };

    // 1. Live delivery.
    let source = startMqttSource(config, onMessage, { logger });
    await subscribed(source, 1);
    await publish(20);
    await eventually("live messages", () => new Set(got).size === 20, 15_000);

    // 2. The source is down: the broker queues for its persistent session.
    await source.close();
    await publish(20);

    // 3. The broker restarts while the source is still down, with messages published during the restart.
    await eventually(
      "the publisher handed over its messages",
      () => pub.getLastMessageId() >= 40 && Object.keys((pub as unknown as { outgoing: object }).outgoing).length === 0,
      15_000,
    );
    await broker.stop();
    await publish(20);
    await broker.start();

    // 4. The source comes back under the same clientId and gets everything queued.
    source = startMqttSource(config, onMessage, { logger });
    await eventually("everything queued arrives", () => new Set(got).size === 60, 30_000);

    // 5. The broker restarts under a connected source: it reconnects by itself and carries on.
    await broker.stop();
    await eventually("the source noticed", () => !source.status().connected, 10_000);
    await publish(20);
    await broker.start();
    await eventually("the source reconnected", () => source.status().connected, 15_000);
    await publish(20);
    await eventually("all 100 messages", () => new Set(got).size === 100, 30_000);

    expect([...new Set(got)].sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    // QoS 1 is at least once: duplicates are possible (the service dedupes by mqttMessageId), losses are not.
    expect(got.length).toBeGreaterThanOrEqual(100);
    await source.close();
    await pub.endAsync(true);
  }, 120_000);
});

describe.skipIf(!binaryThere)("MQTT source after a broker restart that lost every session (own mosquitto, no persistence)", () => {
  let broker: OwnMosquitto;
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "nexus-mosquitto-"));
    broker = new OwnMosquitto(OWN_PORT + 1, dir, false);
    await broker.start();
  });
  afterAll(async () => {
    await broker?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("subscribes again by itself and receives what is published after the restart", async () => {
    const topic = `nx/${token()}/t`;
    const { messages, onMessage } = collector();
    const source = startMqttSource({ url: broker.url, clientId: `nx-src-${token()}`, topics: [topic], qos: 1, format: "json" }, onMessage, {
      logger,
    });
    try {
      await subscribed(source, 1);
      await broker.stop();
      await eventually("the source noticed", () => !source.status().connected, 10_000);
      await broker.start();
      await subscribed(source, 1);
      const pub = await publisher(broker.url);
      await pub.publishAsync(topic, '{"after":"restart"}', { qos: 1 });
      await eventually("the message after the restart", () => messages.length === 1, 10_000);
      expect(messages[0]?.payload).toEqual({ after: "restart" });
      await pub.endAsync();
    } finally {
      await source.close();
    }
  });
});

describe.skipIf(!sharedUp)("MQTT source deleted for good", () => {
  it("close({ forgetSession: true }) ends the broker's session: nothing is queued for it any more", async () => {
    const topic = `nx/${token()}/gone`;
    const config: MqttSourceConfig = { url: SHARED_URL, clientId: `nx-src-${token()}`, topics: [topic], qos: 1, format: "json" };
    const first = collector();
    const source = startMqttSource(config, first.onMessage, { logger });
    await subscribed(source, 1);
    await source.close({ forgetSession: true });
    const pub = await publisher(SHARED_URL);
    await pub.publishAsync(topic, '{"n":1}', { qos: 1 });
    // A new source under the same clientId starts a fresh session: the message was never queued.
    const second = collector();
    const again = startMqttSource(config, second.onMessage, { logger });
    await subscribed(again, 1);
    await pub.publishAsync(topic, '{"n":2}', { qos: 1 });
    await eventually("the message published after the new start", () => second.messages.length >= 1, 10_000);
    expect(second.messages.map((m) => (m.payload as { n: number }).n)).toEqual([2]);
    await again.close({ forgetSession: true });
    await pub.endAsync();
  });
});
