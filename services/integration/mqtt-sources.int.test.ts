/**
 * MQTT sources over the real Mosquitto broker (:1883): two replicas of the service subscribe the
 * same source through a shared subscription, so each published message becomes workflow input
 * exactly once (PostgreSQL + NATS + a local HTTP receiver as the workflow's destination).
 */
import { create } from "@bufbuild/protobuf";
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CreateDestinationRequestSchema,
  CreateMqttSourceRequestSchema,
  CreateWorkflowRequestSchema,
  GetMqttSourceRequestSchema,
  ListDeadLettersRequestSchema,
} from "../../gen/nexus/integration/v1/integration_service_pb.js";
import { PayloadFormat, WorkflowKind } from "../../gen/nexus/integration/v1/resources_pb.js";
import { eventually } from "../../tests/support/eventually.js";
import {
  type Integration,
  integrationContext,
  integrationPrincipal,
  openIntegration,
  type Receiver,
  startReceiver,
} from "../../tests/support/integration-harness.js";
import { deleteSuiteStreams, suiteStreams } from "../../tests/support/nats-streams.js";
import {
  createTestDatabase,
  describeWithPostgresAndNats,
  reachable,
  TEST_NATS_URL,
  type TestDatabase,
  uniqueToken,
} from "../../tests/support/services.js";
import { createPgDatabase } from "../kernel/db/pg-database.js";
import type { Database } from "../kernel/db/ports.js";
import { createNatsEventBus, type NatsEventBus } from "../kernel/events/nats-bus.js";

const BROKER = process.env.NEXUS_TEST_MQTT_URL ?? "mqtt://127.0.0.1:1883";
const brokerUp = await reachable(BROKER, 1883);

(brokerUp ? describeWithPostgresAndNats : describe.skip)("integration MQTT sources (Mosquitto + PostgreSQL + NATS)", () => {
  let testDb: TestDatabase;
  let db: Database;
  let bus: NatsEventBus;
  let bus2: NatsEventBus;
  let one: Integration;
  let two: Integration;
  let r: Receiver;
  const token = uniqueToken("mq").toUpperCase();
  const topicRoot = `nexus-test/${token}`;
  const ctx = integrationContext(integrationPrincipal(uniqueToken("tenant")));

  beforeAll(async () => {
    testDb = await createTestDatabase();
    db = await createPgDatabase({ url: testDb.url, poolSize: 16 });
    // Two replicas: one database, one stream, a bus (NATS connection) each.
    const prefix = uniqueToken("p");
    const busOf = (name: string) =>
      createNatsEventBus({
        db,
        nats: { servers: TEST_NATS_URL, name },
        subjectPrefix: prefix,
        ...suiteStreams(token),
        relay: { pollIntervalMs: 20 },
        consumerHeartbeatMs: 1_000,
      });
    bus = await busOf("integration-mqtt-suite-1");
    bus2 = await busOf("integration-mqtt-suite-2");
    one = await openIntegration(db, bus);
    two = await openIntegration(db, bus2);
    r = await startReceiver(15430);
  }, 60_000);

  afterAll(async () => {
    await one?.close();
    await two?.close();
    await bus?.close();
    await bus2?.close();
    await db?.close();
    await testDb?.drop();
    await r?.close();
    await deleteSuiteStreams(token);
  });

  it("each message on a wildcard topic reaches the workflow once, though two replicas subscribe", async () => {
    const h = one.parts.handler;
    const refused = await h
      .createMqttSource(
        create(CreateMqttSourceRequestSchema, { name: "bad", url: BROKER, topics: ["a/#/b"], qos: 1, format: PayloadFormat.JSON }),
        ctx,
      )
      .catch((err: Error) => err);
    expect(String(refused)).toMatch(/"#" must be a whole level and the last one/);
    const { source } = await h.createMqttSource(
      create(CreateMqttSourceRequestSchema, {
        name: "sensors",
        url: BROKER,
        topics: [`${topicRoot}/+/temp`],
        qos: 1,
        format: PayloadFormat.JSON,
      }),
      ctx,
    );
    const { destination } = await h.createDestination(
      create(CreateDestinationRequestSchema, { name: "rx", config: { kind: { case: "rest", value: { url: r.url } } } }),
      ctx,
    );
    await h.createWorkflow(
      create(CreateWorkflowRequestSchema, {
        name: "from-mqtt",
        definition: {
          kind: WorkflowKind.FAN_OUT,
          source: { mqttSourceId: source!.sourceId },
          targets: [{ destinationId: destination!.destinationId, transform: '{"device": $split(_topic, "/")[2], "celsius": c}' }],
        },
      }),
      ctx,
    );
    await Promise.all([one.parts.reconcile(), two.parts.reconcile()]);
    await eventually(
      "both replicas subscribed",
      async () => {
        const s1 = one.parts.mqtt.status(source!.sourceId);
        const s2 = two.parts.mqtt.status(source!.sourceId);
        return s1?.connected && s2?.connected;
      },
      20_000,
    );
    const got = await h.getMqttSource(create(GetMqttSourceRequestSchema, { sourceId: source!.sourceId }), ctx);
    expect(got.source?.connected).toBe(true);

    const publisher = await mqtt.connectAsync(BROKER, { clientId: `pub-${token}` });
    for (let i = 0; i < 20; i++) await publisher.publishAsync(`${topicRoot}/dev${i}/temp`, JSON.stringify({ c: i }), { qos: 1 });
    await publisher.endAsync();

    await eventually("20 deliveries", () => r.received.length >= 20, 30_000);
    await new Promise((res) => setTimeout(res, 1_500));
    expect(r.received).toHaveLength(20);
    expect(new Set(r.received.map((x) => JSON.stringify(x.body))).size).toBe(20);
    expect(r.received.map((x) => x.body)).toContainEqual({ device: "dev7", celsius: 7 });
    // Both replicas took part (the broker shares the subscription between them).
    const taken = [one.parts.mqtt.status(source!.sourceId)?.received ?? 0, two.parts.mqtt.status(source!.sourceId)?.received ?? 0];
    expect(taken[0]! + taken[1]!).toBe(20);
  }, 60_000);

  it("a payload that does not parse in its source's format goes to the dead-letter queue with the parse error, never into a workflow", async () => {
    const h = one.parts.handler;
    const source = async (name: string, topic: string, format: PayloadFormat) =>
      (
        await h.createMqttSource(
          create(CreateMqttSourceRequestSchema, { name, url: BROKER, topics: [`${topicRoot}/${topic}/#`], qos: 1, format }),
          ctx,
        )
      ).source!.sourceId;
    const json = await source("json-in", "json", PayloadFormat.JSON);
    const csv = await source("csv-in", "csv", PayloadFormat.CSV);
    const { destination } = await h.createDestination(
      create(CreateDestinationRequestSchema, { name: "rx-parsed", config: { kind: { case: "rest", value: { url: r.url } } } }),
      ctx,
    );
    for (const [name, id] of [
      ["from-json", json],
      ["from-csv", csv],
    ] as const)
      await h.createWorkflow(
        create(CreateWorkflowRequestSchema, {
          name,
          definition: {
            kind: WorkflowKind.FAN_OUT,
            source: { mqttSourceId: id },
            targets: [{ destinationId: destination!.destinationId, path: `/${name}` }],
          },
        }),
        ctx,
      );
    await Promise.all([one.parts.reconcile(), two.parts.reconcile()]);
    await eventually("sources subscribed", () =>
      [json, csv].every((id) => one.parts.mqtt.status(id)?.connected && two.parts.mqtt.status(id)?.connected),
    );
    const publisher = await mqtt.connectAsync(BROKER, { clientId: `pub2-${token}` });
    await publisher.publishAsync(`${topicRoot}/json/d1`, "{not json", { qos: 1 });
    await publisher.publishAsync(`${topicRoot}/json/d1`, JSON.stringify({ ok: 1 }), { qos: 1 });
    await publisher.publishAsync(`${topicRoot}/csv/d1`, "device,celsius\n", { qos: 1 });
    await publisher.publishAsync(`${topicRoot}/csv/d1`, "device,celsius\nd1,21.5\n", { qos: 1 });
    await publisher.endAsync();

    const parked = await eventually("both malformed payloads parked", async () => {
      const { deadLetters } = await h.listDeadLetters(create(ListDeadLettersRequestSchema, {}), ctx);
      return deadLetters.length >= 2 && deadLetters;
    });
    expect(parked).toHaveLength(2);
    const bySource = new Map(parked.map((d) => [d.mqttSourceId, d]));
    expect(bySource.get(json)?.error).toMatch(/not valid JSON/);
    expect(bySource.get(csv)?.error).toMatch(/no data rows/);
    expect(bySource.get(json)).toMatchObject({ attempts: 1, workflowId: "", destinationId: "" });
    // Only the well-formed ones reached the workflows.
    await eventually("the valid messages delivered", () => r.received.filter((x) => x.path.startsWith("/from-")).length === 2);
    await new Promise((res) => setTimeout(res, 1_000));
    const delivered = r.received.filter((x) => x.path.startsWith("/from-"));
    expect(delivered.map((x) => x.path).sort()).toEqual(["/from-csv", "/from-json"]);
    expect(delivered.find((x) => x.path === "/from-json")?.body).toMatchObject({ ok: 1 });
  }, 60_000);
});
