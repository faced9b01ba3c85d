/**
 * Integration in the embedded mode `nexus dev` uses without DATABASE_URL / NATS_URL: PGlite and
 * the local bus. A fan-out workflow and a sequential one deliver to a local HTTP receiver; a
 * receiver that is down for a while catches up. Destinations with a stored secret deliver too
 * (the secret is opened through the delivery's own transaction: PGlite has one connection), from
 * an app sending encrypted payloads; an MQTT source with a stored password subscribes (Mosquitto
 * :1883, skipped when it is not running).
 */
import { create } from "@bufbuild/protobuf";
import mqtt from "mqtt";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  CreateDestinationRequestSchema,
  CreateMqttSourceRequestSchema,
  CreateSenderAppRequestSchema,
  CreateWorkflowRequestSchema,
  ExecuteWorkflowRequestSchema,
  ListExecutionsRequestSchema,
} from "../../gen/nexus/integration/v1/integration_service_pb.js";
import { ExecutionStatus, PayloadFormat, RestAuth, StepType, WorkflowKind } from "../../gen/nexus/integration/v1/resources_pb.js";
import { eventually } from "../../tests/support/eventually.js";
import {
  type Integration,
  integrationContext,
  integrationPrincipal,
  openIntegration,
  type Receiver,
  startReceiver,
} from "../../tests/support/integration-harness.js";
import { reachable, uniqueToken } from "../../tests/support/services.js";
import { createPgliteDatabase } from "../kernel/db/pglite-database.js";
import type { Database } from "../kernel/db/ports.js";
import { createLocalEventBus } from "../kernel/events/local-bus.js";
import type { EventBus } from "../kernel/events/ports.js";
import { sealPayload } from "./domain/payload-crypto.js";

const BROKER = process.env.NEXUS_TEST_MQTT_URL ?? "mqtt://127.0.0.1:1883";
const brokerUp = await reachable(BROKER, 1883);

let db: Database;
let bus: EventBus;
let integ: Integration;
let r: Receiver;
const ctx = integrationContext(integrationPrincipal("embedded-tenant"));

beforeAll(async () => {
  db = await createPgliteDatabase();
  bus = await createLocalEventBus({ db, pollIntervalMs: 50 });
  integ = await openIntegration(db, bus, { NEXUS_INTEGRATION_MAX_RETRIES: "30" });
  r = await startReceiver(15440);
}, 60_000);

afterAll(async () => {
  await integ?.close();
  await bus?.close();
  await db?.close();
  await r?.close();
});

it("delivers fan-out and sequential workflows on PGlite and the local bus, catching up after an outage", async () => {
  const h = integ.parts.handler;
  const { app, appKey } = await h.createSenderApp(create(CreateSenderAppRequestSchema, { name: "embedded" }), ctx);
  const { destination } = await h.createDestination(
    create(CreateDestinationRequestSchema, { name: "rx", config: { kind: { case: "rest", value: { url: r.url } } } }),
    ctx,
  );
  await h.createWorkflow(
    create(CreateWorkflowRequestSchema, {
      name: "fan",
      definition: {
        kind: WorkflowKind.FAN_OUT,
        source: { appId: app!.appId },
        targets: [{ destinationId: destination!.destinationId, path: "/fan" }],
      },
    }),
    ctx,
  );
  const { workflow: seq } = await h.createWorkflow(
    create(CreateWorkflowRequestSchema, {
      name: "seq",
      definition: {
        kind: WorkflowKind.SEQUENTIAL,
        steps: [
          { name: "double", type: StepType.TRANSFORM, expression: '{"v": v * 2}' },
          { name: "post", type: StepType.REST_CALL, target: { destinationId: destination!.destinationId, path: "/seq" } },
        ],
      },
    }),
    ctx,
  );
  await r.down();
  for (let i = 0; i < 5; i++) {
    const res = await fetch(`${integ.httpUrl}/ingress`, { method: "POST", headers: { "x-api-key": appKey }, body: JSON.stringify({ i }) });
    expect(res.status).toBe(202);
  }
  await new Promise((res) => setTimeout(res, 800));
  await r.up();
  await eventually("fan-out caught up", () => r.received.filter((x) => x.path === "/fan").length === 5, 30_000);
  await h.executeWorkflow(create(ExecuteWorkflowRequestSchema, { workflowId: seq!.workflowId, payload: { v: 21 } }), ctx);
  await eventually("sequential ran", () => r.received.find((x) => x.path === "/seq"), 30_000);
  expect(r.received.filter((x) => x.path === "/seq").map((x) => x.body)).toEqual([{ v: 42 }]);
  expect(new Set(r.received.filter((x) => x.path === "/fan").map((x) => JSON.stringify(x.body))).size).toBe(5);
  const log = await h.listExecutions(create(ListExecutionsRequestSchema, { workflowId: seq!.workflowId }), ctx);
  expect(log.executions.map((e) => e.status)).toEqual([ExecutionStatus.SUCCEEDED, ExecutionStatus.SUCCEEDED]);
}, 90_000);

it("delivers to destinations with a bearer token and an API key on PGlite, from an app sending encrypted payloads", async () => {
  const h = integ.parts.handler;
  const { app, appKey, masterSecret } = await h.createSenderApp(
    create(CreateSenderAppRequestSchema, { name: "embedded-secure", encryptionRequired: true }),
    ctx,
  );
  const { destination: bearer } = await h.createDestination(
    create(CreateDestinationRequestSchema, {
      name: "rx-bearer",
      config: { kind: { case: "rest", value: { url: r.url, auth: RestAuth.BEARER, secret: "tok-embedded-1" } } },
    }),
    ctx,
  );
  const { destination: apiKey } = await h.createDestination(
    create(CreateDestinationRequestSchema, {
      name: "rx-key",
      config: { kind: { case: "rest", value: { url: r.url, auth: RestAuth.API_KEY, apiKeyHeader: "X-Rx-Key", secret: "key-embedded-2" } } },
    }),
    ctx,
  );
  await h.createWorkflow(
    create(CreateWorkflowRequestSchema, {
      name: "fan-secret",
      definition: {
        kind: WorkflowKind.FAN_OUT,
        source: { appId: app!.appId },
        targets: [{ destinationId: bearer!.destinationId, path: "/bearer" }],
      },
    }),
    ctx,
  );
  const { workflow: seq } = await h.createWorkflow(
    create(CreateWorkflowRequestSchema, {
      name: "seq-secret",
      definition: {
        kind: WorkflowKind.SEQUENTIAL,
        steps: [{ name: "post", type: StepType.REST_CALL, target: { destinationId: apiKey!.destinationId, path: "/apikey" } }],
      },
    }),
    ctx,
  );
  // As in a `nexus dev` session where messages come later than the keyring's cache lasts: the
  // data keys are read from the database again, while the delivery's transaction holds PGlite.
  integ.keyring.forget();
  const res = await fetch(`${integ.httpUrl}/ingress`, {
    method: "POST",
    headers: { "x-api-key": appKey },
    body: JSON.stringify(sealPayload(app!.appId, masterSecret, 1, { sealed: "yes" })),
  });
  expect(res.status).toBe(202);
  const got = await eventually("bearer delivery", () => r.received.find((x) => x.path === "/bearer"), 30_000);
  expect(got.headers.authorization).toBe("Bearer tok-embedded-1");
  expect(got.body).toEqual({ sealed: "yes" });
  integ.keyring.forget();
  await h.executeWorkflow(create(ExecuteWorkflowRequestSchema, { workflowId: seq!.workflowId, payload: { k: 1 } }), ctx);
  const keyed = await eventually("API key delivery", () => r.received.find((x) => x.path === "/apikey"), 30_000);
  expect(keyed.headers["x-rx-key"]).toBe("key-embedded-2");
  expect(keyed.body).toEqual({ k: 1 });
}, 90_000);

it.skipIf(!brokerUp)(
  "an MQTT source with a stored password subscribes on PGlite and feeds its workflow",
  async () => {
    const h = integ.parts.handler;
    const topic = `nexus-test/${uniqueToken("emb")}/t`;
    const { source } = await h.createMqttSource(
      create(CreateMqttSourceRequestSchema, {
        name: "embedded-mqtt",
        url: BROKER,
        username: "embedded",
        password: "pw-embedded-3",
        topics: [topic],
        qos: 1,
        format: PayloadFormat.JSON,
      }),
      ctx,
    );
    const { destination } = await h.createDestination(
      create(CreateDestinationRequestSchema, { name: "rx-mqtt", config: { kind: { case: "rest", value: { url: r.url } } } }),
      ctx,
    );
    await h.createWorkflow(
      create(CreateWorkflowRequestSchema, {
        name: "from-mqtt",
        definition: {
          kind: WorkflowKind.FAN_OUT,
          source: { mqttSourceId: source!.sourceId },
          targets: [{ destinationId: destination!.destinationId, path: "/mqtt" }],
        },
      }),
      ctx,
    );
    integ.keyring.forget();
    await integ.parts.reconcile();
    await eventually("subscribed", () => integ.parts.mqtt.status(source!.sourceId)?.connected, 20_000);
    const publisher = await mqtt.connectAsync(BROKER, { clientId: `pub-${uniqueToken("emb")}` });
    await publisher.publishAsync(topic, JSON.stringify({ c: 7 }), { qos: 1 });
    await publisher.endAsync();
    const got = await eventually("MQTT message delivered", () => r.received.find((x) => x.path === "/mqtt"), 30_000);
    expect(got.body).toMatchObject({ c: 7 });
  },
  90_000,
);
