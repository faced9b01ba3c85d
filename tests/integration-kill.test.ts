/**
 * kill -9 of an integration worker mid-batch loses and duplicates nothing: `nexus dev` (every
 * service, real PostgreSQL and NATS) and a second process `nexus serve --service integration` on
 * the same database and bus share each workflow's durable consumer; the worker is killed with
 * SIGKILL while deliveries are in flight; what it held is redelivered to the survivor after the
 * ack wait. The destination is a PostgreSQL table written by UPSERT on the message id, and a REST
 * receiver that records idempotency keys.
 */
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { toJsonString } from "@bufbuild/protobuf";
import mqtt from "mqtt";
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  DestinationSchema,
  FieldType,
  PayloadFormat,
  SqlEngine,
  SqlOperation,
  WorkflowKind,
} from "../gen/nexus/integration/v1/resources_pb.js";
import { createNexusClient } from "../services/client/create-nexus-client.js";
import { type AgentMesh, startAgentMesh } from "./support/agent-mesh.js";
import { eventually } from "./support/eventually.js";
import { deleteSuiteStreams } from "./support/nats-streams.js";
import { type NexusProcess, startNexus } from "./support/nexus-process.js";
import { createTestDatabase, describeWithPostgresAndNats, TEST_NATS_URL, type TestDatabase, uniqueToken } from "./support/services.js";

const MESSAGES = 60;
const BROKER = process.env.NEXUS_TEST_MQTT_URL ?? "mqtt://127.0.0.1:1883";

describeWithPostgresAndNats("integration: kill -9 of a worker mid-batch", () => {
  let mesh: AgentMesh;
  let worker: NexusProcess;
  let sink: TestDatabase;
  let sinkDb: pg.Client;
  let receiver: Server;
  let receiverUrl = "";
  const keys: string[] = [];
  const token = uniqueToken("ik");

  let shared: Record<string, string> = {};
  beforeAll(async () => {
    shared = {
      NATS_URL: TEST_NATS_URL,
      NEXUS_SUBJECT_PREFIX: token,
      NEXUS_NATS_STREAM: `${token}_EVENTS`,
      NEXUS_DLQ_STREAM: `${token}_DLQ`,
      NEXUS_MASTER_KEYS: `1:${randomBytes(32).toString("base64")}`,
      NEXUS_INTEGRATION_ACK_WAIT_MS: "3000",
      NEXUS_INTEGRATION_RETRY_INITIAL_MS: "100",
      NEXUS_INTEGRATION_RETRY_MAX_MS: "500",
      NEXUS_INTEGRATION_CONCURRENCY: "4",
    };
    sink = await createTestDatabase("nexus_integ_sink");
    sinkDb = new pg.Client({ connectionString: sink.url });
    await sinkDb.connect();
    await sinkDb.query("CREATE TABLE readings (message_id text PRIMARY KEY, n integer NOT NULL)");
    // A slow REST receiver, so the worker is killed with deliveries in flight.
    receiver = createServer((req, res) => {
      keys.push(String(req.headers["idempotency-key"]));
      req.resume();
      setTimeout(() => res.writeHead(200).end("{}"), 60);
    });
    await new Promise<void>((r) => receiver.listen(15420, "127.0.0.1", r));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
    mesh = await startAgentMesh(shared);
    worker = await startNexus({
      args: ["serve", "--service", "integration", "--port", "0", "--host", "127.0.0.1"],
      env: { ...shared, DATABASE_URL: mesh.databaseUrl, NEXUS_AUTH_URL: mesh.url, NEXUS_INGESTION_URL: mesh.url, LOG_LEVEL: "error" },
    });
  }, 180_000);

  afterAll(async () => {
    await worker?.stop("SIGKILL");
    await mesh?.close();
    await sinkDb?.end();
    await sink?.drop();
    await new Promise((r) => receiver?.close(r));
    await deleteSuiteStreams(token, [`${token}_EVENTS`, `${token}_DLQ`]);
  });

  /** The sink database as a PostgreSQL destination's configuration. */
  function sinkSql() {
    const sinkUrl = new URL(sink.url);
    return {
      engine: SqlEngine.POSTGRES,
      host: sinkUrl.hostname,
      port: Number(sinkUrl.port || 5432),
      database: sink.name,
      user: sinkUrl.username || "postgres",
      poolMax: 4,
    };
  }

  it("every message reaches the table exactly once and the receiver at least once with no key missing", async () => {
    const client = mesh.client().integration;
    const { destination: table } = await client.createDestination({ name: "sink", config: { kind: { case: "sql", value: sinkSql() } } });
    const { destination: rest } = await client.createDestination({
      name: "slow",
      config: { kind: { case: "rest", value: { url: receiverUrl, timeoutMs: 5_000 } } },
    });
    const { app, appKey } = await client.createSenderApp({
      name: "batch",
      fields: [{ name: "n", type: FieldType.INTEGER, required: true }],
    });
    await client.createWorkflow({
      name: "batch-flow",
      definition: {
        kind: WorkflowKind.FAN_OUT,
        source: { appId: app!.appId },
        targets: [
          { destinationId: rest!.destinationId, path: "/in" },
          {
            destinationId: table!.destinationId,
            transform: '{"message_id": $messageId, "n": n}',
            sql: {
              operation: SqlOperation.UPSERT,
              table: "readings",
              keyColumns: ["message_id"],
              mappings: [
                { source: "message_id", column: "message_id", type: FieldType.STRING },
                { source: "n", column: "n", type: FieldType.INTEGER },
              ],
            },
          },
        ],
      },
    });
    // Both processes subscribe the workflow's consumer (reconcile every 2 s).
    await new Promise((r) => setTimeout(r, 3_000));
    const ids = new Set<string>();
    for (let n = 0; n < MESSAGES; n++) {
      const res = await fetch(`${mesh.url}/ingress`, {
        method: "POST",
        headers: { "x-api-key": appKey, "content-type": "application/json" },
        body: JSON.stringify({ n }),
      });
      expect(res.status).toBe(202);
      ids.add(((await res.json()) as { message_id: string }).message_id);
    }
    // Kill the worker while the batch is being delivered.
    await eventually("deliveries under way", () => keys.length >= 10, 30_000);
    expect(keys.length).toBeLessThan(MESSAGES);
    worker.child.kill("SIGKILL");

    await eventually(
      "every message in the table",
      async () => (await sinkDb.query<{ n: number }>("SELECT count(*)::int AS n FROM readings")).rows[0]?.n === MESSAGES,
      60_000,
    );
    await eventually("every message at the receiver", () => new Set(keys).size === MESSAGES * 1, 60_000);
    const rows = (await sinkDb.query<{ message_id: string; n: number }>("SELECT message_id, n FROM readings ORDER BY n")).rows;
    expect(rows.map((r) => r.n)).toEqual([...Array(MESSAGES).keys()]);
    expect(new Set(rows.map((r) => r.message_id))).toEqual(ids);
    // Each REST delivery names its message and target; none is missing.
    expect(new Set(keys)).toEqual(new Set([...ids].map((id) => `${id}-0`)));
    // The execution log agrees: one succeeded entry per message and target (each is committed
    // just after its destination answered).
    await eventually("execution log complete", async () => {
      const { executions } = await client.listExecutions({ pageSize: 500 });
      return executions.filter((e) => e.status === 2).length === MESSAGES * 2;
    });
    const { executions } = await client.listExecutions({ pageSize: 500 });
    expect(executions).toHaveLength(MESSAGES * 2);
    expect(
      executions.filter((e) => e.status !== 2).map((e) => `${e.messageId} ${e.destinationId} ${e.status} ${e.attempts} ${e.error}`),
    ).toEqual([]);
  }, 180_000);

  it("a corpus destination feeds messages into retrieval as documents, once each", async () => {
    const owner = mesh.client();
    await owner.retrieval.createCorpus({ corpusId: "field-notes", displayName: "Field notes" });
    const { destination } = await owner.integration.createDestination({
      name: "notes-corpus",
      config: { kind: { case: "corpus", value: { corpusId: "field-notes", apiKey: mesh.ownerKey } } },
    });
    expect(toJsonString(DestinationSchema, destination!)).not.toContain(mesh.ownerKey);
    const { workflow } = await owner.integration.createWorkflow({
      name: "notes",
      definition: {
        kind: WorkflowKind.FAN_OUT,
        targets: [{ destinationId: destination!.destinationId, transform: "note", title: '"Note from " & author' }],
      },
    });
    const { messageId } = await owner.integration.executeWorkflow({
      workflowId: workflow!.workflowId,
      payload: { author: "Ada", note: "The north valve leaks when the pressure passes four bar." },
    });
    const documentId = `${messageId}-0`;
    const doc = await eventually(
      "the document exists",
      async () => (await owner.ingestion.getDocument({ documentId }).catch(() => undefined))?.document,
      60_000,
    );
    expect(doc.corpusId).toBe("field-notes");
    expect(doc.filename).toBe("Note from Ada");
    await eventually(
      "searchable",
      async () => {
        const r = await owner.retrieval.search({ corpusId: "field-notes", query: "north valve pressure" });
        return r.hits.some((x) => x.documentId === documentId);
      },
      60_000,
    );
  }, 120_000);

  it("an MQTT replica killed with -9 and restarted resumes its session: no QoS 1 message is left to an orphaned session", async () => {
    const client = mesh.client().integration;
    await sinkDb.query("CREATE TABLE mqtt_rows (n integer PRIMARY KEY)");
    const root = `nexus-test/${token}`;
    const { destination } = await client.createDestination({ name: "mqtt-sink", config: { kind: { case: "sql", value: sinkSql() } } });
    const { source } = await client.createMqttSource({
      name: "devices",
      url: BROKER,
      topics: [`${root}/#`],
      qos: 1,
      format: PayloadFormat.JSON,
    });
    await client.createWorkflow({
      name: "devices-to-table",
      definition: {
        kind: WorkflowKind.FAN_OUT,
        source: { mqttSourceId: source!.sourceId },
        // A plain INSERT on n: a message written twice would be a constraint violation (dead-lettered).
        targets: [
          {
            destinationId: destination!.destinationId,
            sql: { operation: SqlOperation.INSERT, table: "mqtt_rows", mappings: [{ source: "n", column: "n", type: FieldType.INTEGER }] },
          },
        ],
      },
    });
    const replicaEnv = {
      ...shared,
      DATABASE_URL: mesh.databaseUrl,
      NEXUS_AUTH_URL: mesh.url,
      NEXUS_INGESTION_URL: mesh.url,
      LOG_LEVEL: "error",
      NEXUS_INTEGRATION_REPLICA_ID: `mqtt-replica-${token}`,
    };
    const start = () => startNexus({ args: ["serve", "--service", "integration", "--port", "0", "--host", "127.0.0.1"], env: replicaEnv });
    const connectedAt = async (p: NexusProcess) =>
      eventually(
        "the replica's MQTT source connected",
        async () =>
          (await createNexusClient({ baseUrl: p.url, apiKey: mesh.ownerKey }).integration.getMqttSource({ sourceId: source!.sourceId }))
            .source?.connected,
        30_000,
        200,
      );
    let replica = await start();
    try {
      await connectedAt(replica);
      await eventually(
        "the mesh's MQTT source connected",
        async () => (await client.getMqttSource({ sourceId: source!.sourceId })).source?.connected,
        30_000,
        200,
      );
      replica.child.kill("SIGKILL");
      await new Promise((r) => replica.child.once("exit", r));
      // Published while the replica is dead: the broker shares them between the mesh's session and
      // the dead replica's (persistent) one, which queues its share.
      const publisher = await mqtt.connectAsync(BROKER, { clientId: `pub-${token}` });
      for (let n = 0; n < 30; n++) await publisher.publishAsync(`${root}/d${n % 3}`, JSON.stringify({ n }), { qos: 1 });
      await publisher.endAsync();
      replica = await start();
      await eventually(
        "all 30 rows, the dead replica's share included",
        async () => (await sinkDb.query<{ n: number }>("SELECT count(*)::int AS n FROM mqtt_rows")).rows[0]?.n === 30,
        60_000,
        200,
      );
      expect((await client.listDeadLetters({})).deadLetters).toEqual([]);
    } finally {
      await replica.stop("SIGKILL");
    }
  }, 180_000);
});
