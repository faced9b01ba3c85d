/**
 * Integration flows end to end over real PostgreSQL, NATS JetStream, MariaDB and local HTTP
 * receivers: sender apps post to `POST /ingress`, messages travel on their workflow's subject,
 * fan-out deliveries retry per destination, sequential workflows branch, payloads decrypt, bad
 * definitions are refused at save time, dead letters replay.
 */
import { create, toJson } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { connect } from "@nats-io/transport-node";
import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import {
  CreateDestinationRequestSchema,
  CreateSenderAppRequestSchema,
  CreateWorkflowRequestSchema,
  ExecuteWorkflowRequestSchema,
  IngestRequestSchema,
  ListDestinationColumnsRequestSchema,
  ListDestinationsRequestSchema,
  ListDestinationTablesRequestSchema,
  ListExecutionsRequestSchema,
  ListWorkflowsRequestSchema,
  ListWorkflowVersionsRequestSchema,
  RollbackWorkflowRequestSchema,
  RotateAppKeyRequestSchema,
  RotateMasterSecretRequestSchema,
  TestDestinationRequestSchema,
  UpdateDestinationRequestSchema,
  UpdateWorkflowRequestSchema,
} from "../../gen/nexus/integration/v1/integration_service_pb.js";
import {
  DestinationSchema,
  ExecutionStatus,
  FieldType,
  OnError,
  RestAuth,
  SqlEngine,
  SqlOperation,
  StepType,
  WorkflowDefinitionSchema,
  WorkflowKind,
} from "../../gen/nexus/integration/v1/resources_pb.js";
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
  TEST_NATS_URL,
  type TestDatabase,
  uniqueToken,
} from "../../tests/support/services.js";
import { createPgDatabase } from "../kernel/db/pg-database.js";
import type { Database } from "../kernel/db/ports.js";
import { createNatsEventBus, type NatsEventBus } from "../kernel/events/nats-bus.js";
import { sealPayload } from "./domain/payload-crypto.js";

const MARIADB = {
  host: "127.0.0.1",
  port: 3306,
  user: process.env.NEXUS_TEST_MYSQL_USER ?? "root",
  password: process.env.NEXUS_TEST_MYSQL_PASSWORD ?? "",
};

function reasonOf(err: unknown): { code: number; reason: string; message: string } {
  const ce = ConnectError.from(err);
  return { code: ce.code, reason: ce.findDetails(ErrorInfoSchema)[0]?.reason ?? "", message: ce.rawMessage };
}

async function refusal(p: Promise<unknown>) {
  try {
    await p;
  } catch (err) {
    return reasonOf(err);
  }
  throw new Error("expected a refusal");
}

describeWithPostgresAndNats("integration flows (PostgreSQL + NATS + MariaDB + HTTP receivers)", () => {
  let testDb: TestDatabase;
  let db: Database;
  let bus: NatsEventBus;
  let integ: Integration;
  let a: Receiver;
  let b: Receiver;
  let c: Receiver;
  let maria: mysql.Connection;
  const token = uniqueToken("ig").toUpperCase();
  const mariaDb = `nexus_integ_${token.toLowerCase()}`;
  const tenant = uniqueToken("tenant");
  const ctx = integrationContext(integrationPrincipal(tenant));
  const h = () => integ.parts.handler;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    db = await createPgDatabase({ url: testDb.url, poolSize: 16 });
    bus = await createNatsEventBus({
      db,
      nats: { servers: TEST_NATS_URL, name: "integration-flows-suite" },
      subjectPrefix: uniqueToken("p"),
      ...suiteStreams(token),
      relay: { pollIntervalMs: 20 },
      consumerHeartbeatMs: 1_000,
    });
    // Enough retries (100 ms doubling to 400 ms) to outlast receiver B's outage.
    integ = await openIntegration(db, bus, { NEXUS_INTEGRATION_MAX_RETRIES: "60", NATS_URL: TEST_NATS_URL });
    a = await startReceiver(15401);
    b = await startReceiver(15402);
    c = await startReceiver(15403);
    maria = await mysql.createConnection({ ...MARIADB });
    await maria.query(`CREATE DATABASE ${mariaDb}`);
    await maria.query(
      `CREATE TABLE ${mariaDb}.readings (message_id VARCHAR(64) PRIMARY KEY, device VARCHAR(100) NOT NULL, temp DOUBLE, seen_at DATETIME(3))`,
    );
  }, 60_000);

  afterAll(async () => {
    await integ?.close();
    await bus?.close();
    await db?.close();
    await testDb?.drop();
    await Promise.all([a?.close(), b?.close(), c?.close()]);
    await maria?.query(`DROP DATABASE IF EXISTS ${mariaDb}`).catch(() => undefined);
    await maria?.end();
    await deleteSuiteStreams(token);
  });

  async function restDestination(name: string, r: Receiver, extra: Record<string, unknown> = {}) {
    const { destination } = await h().createDestination(
      create(CreateDestinationRequestSchema, {
        name,
        config: {
          kind: {
            case: "rest",
            value: { url: r.url, method: "POST", auth: RestAuth.BEARER, secret: `s3cret-${name}`, timeoutMs: 2_000, ...extra },
          },
        },
      }),
      ctx,
    );
    return destination!.destinationId;
  }

  async function postIngress(appKey: string, body: unknown, messageId?: string) {
    const res = await fetch(`${integ.httpUrl}/ingress`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": appKey, ...(messageId ? { "x-message-id": messageId } : {}) },
      body: JSON.stringify(body),
    });
    return {
      status: res.status,
      body: (await res.json()) as { message_id?: string; duplicate?: boolean; reason?: string; message?: string },
    };
  }

  describe("fan-out", () => {
    it("writes every message exactly once to each destination while one is down for a while; the others never wait", async () => {
      const { app, appKey } = await h().createSenderApp(
        {
          tenantId: "",
          name: "sensors",
          fields: [
            { name: "device", type: FieldType.STRING, required: true },
            { name: "temp", type: FieldType.NUMBER, required: false },
          ],
          encryptionRequired: false,
        } as never,
        ctx,
      );
      const restA = await restDestination("receiver-a", a);
      const restB = await restDestination("receiver-b", b);
      const { destination: sql } = await h().createDestination(
        create(CreateDestinationRequestSchema, {
          name: "mariadb",
          config: { kind: { case: "sql", value: { engine: SqlEngine.MYSQL, ...MARIADB, database: mariaDb, poolMax: 4 } } },
        }),
        ctx,
      );
      const definition = create(WorkflowDefinitionSchema, {
        kind: WorkflowKind.FAN_OUT,
        source: { appId: app!.appId },
        targets: [
          { destinationId: restA, path: "/a", transform: '{"device": device, "celsius": temp}' },
          { destinationId: restB, path: "/b" },
          {
            destinationId: sql!.destinationId,
            transform: '$merge([$, {"message_id": $messageId}])',
            sql: {
              operation: SqlOperation.UPSERT,
              table: "readings",
              keyColumns: ["message_id"],
              mappings: [
                { source: "device", column: "device", type: FieldType.STRING },
                { source: "message_id", column: "message_id", type: FieldType.STRING },
                { source: "temp", column: "temp", type: FieldType.NUMBER },
              ],
            },
          },
        ],
      });
      const { workflow } = await h().createWorkflow({ tenantId: "", name: "fan-out", definition } as never, ctx);
      expect(workflow?.subject).toMatch(new RegExp(`\\.integration\\.wf\\.${workflow?.workflowId}$`));

      await b.down();
      const ids: string[] = [];
      for (let i = 0; i < 20; i++) {
        const r = await postIngress(appKey, { device: `dev-${i}`, temp: 20 + i });
        expect(r.status).toBe(202);
        ids.push(r.body.message_id as string);
      }
      // A and the database get everything while B is down.
      await eventually("A received all 20", () => a.received.filter((x) => x.path === "/a").length === 20, 20_000);
      await eventually("MariaDB has 20 rows", async () => {
        const [rows] = await maria.query(`SELECT count(*) AS n FROM ${mariaDb}.readings`);
        return (rows as { n: number }[])[0]?.n === 20;
      });
      expect(b.received).toHaveLength(0);
      // B comes back and catches up: each message once.
      await new Promise((r) => setTimeout(r, 500));
      await b.up();
      const caughtUp = Date.now();
      await eventually("B caught up", () => b.received.length >= 20, 30_000);
      // Catching up takes at most about one retry interval (400 ms), not the outage again.
      expect(Date.now() - caughtUp).toBeLessThan(5_000);
      await new Promise((r) => setTimeout(r, 1_000));
      const bKeys = b.received.map((x) => x.headers["idempotency-key"]);
      expect(new Set(bKeys).size).toBe(20);
      expect(b.received).toHaveLength(20);
      expect(a.received.filter((x) => x.path === "/a")).toHaveLength(20);
      expect(a.received[0]?.headers.authorization).toBe("Bearer s3cret-receiver-a");
      expect(a.received.map((x) => x.body)).toContainEqual({ device: "dev-3", celsius: 23 });
      // The execution log shows B's retries and every delivery succeeded.
      const log = await h().listExecutions(
        {
          tenantId: "",
          workflowId: workflow!.workflowId,
          messageId: "",
          destinationId: restB,
          status: 0,
          pageSize: 100,
          pageToken: "",
        } as never,
        ctx,
      );
      expect(log.executions).toHaveLength(20);
      expect(log.executions.every((e) => e.status === ExecutionStatus.SUCCEEDED)).toBe(true);
      expect(log.executions.some((e) => e.attempts > 1)).toBe(true);
      const logA = await h().listExecutions(
        { tenantId: "", workflowId: "", messageId: ids[0], destinationId: restA, status: 0, pageSize: 10, pageToken: "" } as never,
        ctx,
      );
      expect(logA.executions[0]?.attempts).toBe(1);
      // Secrets never come back.
      const got = await h().getDestination({ tenantId: "", destinationId: restA } as never, ctx);
      expect(JSON.stringify(toJson(DestinationSchema, got.destination!))).not.toContain("s3cret");
      expect(got.destination?.hasSecret).toBe(true);
    }, 90_000);
  });

  describe("NATS subject destination", () => {
    it("publishes each message's transform to the subject", async () => {
      const nc = await connect({ servers: TEST_NATS_URL });
      const subject = `integration.test.${token.toLowerCase()}`;
      const seen: unknown[] = [];
      const sub = nc.subscribe(subject);
      void (async () => {
        for await (const m of sub) seen.push(m.json());
      })();
      const { destination } = await h().createDestination(
        create(CreateDestinationRequestSchema, { name: "nats-out", config: { kind: { case: "nats", value: { subject } } } }),
        ctx,
      );
      const tested = await h().testDestination(create(TestDestinationRequestSchema, { destinationId: destination!.destinationId }), ctx);
      expect(tested.ok).toBe(true);
      const { workflow } = await h().createWorkflow(
        create(CreateWorkflowRequestSchema, {
          name: "to-nats",
          definition: {
            kind: WorkflowKind.FAN_OUT,
            targets: [{ destinationId: destination!.destinationId, transform: '{"id": $messageId, "v": v}' }],
          },
        }),
        ctx,
      );
      const { messageId } = await h().executeWorkflow(
        create(ExecuteWorkflowRequestSchema, { workflowId: workflow!.workflowId, payload: { v: 42 } }),
        ctx,
      );
      await eventually("published", () => seen.length === 1, 20_000);
      expect(seen).toEqual([{ id: messageId, v: 42 }]);
      sub.unsubscribe();
      await nc.close();
    }, 60_000);

    it("tests connections before saving and browses a database's tables and columns", async () => {
      const down = await h().testDestination(
        create(TestDestinationRequestSchema, {
          config: { kind: { case: "sql", value: { engine: SqlEngine.MYSQL, ...MARIADB, port: 15499, database: mariaDb } } },
        }),
        ctx,
      );
      expect(down).toMatchObject({ ok: false });
      expect(down.error).not.toBe("");
      const up = await h().testDestination(
        create(TestDestinationRequestSchema, {
          config: { kind: { case: "sql", value: { engine: SqlEngine.MYSQL, ...MARIADB, database: mariaDb } } },
        }),
        ctx,
      );
      expect(up.ok).toBe(true);
      expect(up.serverVersion).toMatch(/MariaDB/i);
      const { destinations } = await h().listDestinations(create(ListDestinationsRequestSchema, {}), ctx);
      const maria = destinations.find((d) => d.name === "mariadb")!;
      const { tables } = await h().listDestinationTables(
        create(ListDestinationTablesRequestSchema, { destinationId: maria.destinationId }),
        ctx,
      );
      expect(tables.map((t) => t.name)).toContain("readings");
      const { columns } = await h().listDestinationColumns(
        create(ListDestinationColumnsRequestSchema, { destinationId: maria.destinationId, table: "readings" }),
        ctx,
      );
      expect(columns.find((c) => c.name === "message_id")).toMatchObject({ primaryKey: true, nullable: false });
    });
  });

  describe("UpdateDestination", () => {
    it("replaces the configuration and secret in place: workflows keep the destination and use the new secret", async () => {
      const id = await restDestination("updatable", c);
      const { workflow } = await h().createWorkflow(
        create(CreateWorkflowRequestSchema, {
          name: "to-updatable",
          definition: { kind: WorkflowKind.FAN_OUT, targets: [{ destinationId: id, path: "/upd" }] },
        }),
        ctx,
      );
      const send = (v: number) =>
        h().executeWorkflow(create(ExecuteWorkflowRequestSchema, { workflowId: workflow!.workflowId, payload: { v } }), ctx);
      await send(1);
      await eventually("the first delivery", () => c.received.find((x) => x.path === "/upd"), 20_000);
      const { destination } = await h().updateDestination(
        create(UpdateDestinationRequestSchema, {
          destinationId: id,
          name: "updatable-renamed",
          config: {
            kind: { case: "rest", value: { url: c.url, method: "PUT", auth: RestAuth.BEARER, secret: "rotated", timeoutMs: 2_000 } },
          },
        }),
        ctx,
      );
      expect(destination).toMatchObject({ destinationId: id, name: "updatable-renamed", hasSecret: true, managedByKubernetes: false });
      await send(2);
      const second = await eventually(
        "the delivery after the update",
        () => c.received.find((x) => x.path === "/upd" && x.method === "PUT"),
        20_000,
      );
      expect(second.headers.authorization).toBe("Bearer rotated");
      expect(second.body).toEqual({ v: 2 });
      // The kind cannot change; a name in use is refused; both leave it as it was.
      const toNats = h().updateDestination(
        create(UpdateDestinationRequestSchema, {
          destinationId: id,
          name: "x",
          config: { kind: { case: "nats", value: { subject: "a.b" } } },
        }),
        ctx,
      );
      await expect(toNats).rejects.toMatchObject({ code: Code.FailedPrecondition });
      await restDestination("name-in-use", c);
      const taken = h().updateDestination(
        create(UpdateDestinationRequestSchema, {
          destinationId: id,
          name: "name-in-use",
          config: { kind: { case: "rest", value: { url: c.url } } },
        }),
        ctx,
      );
      await expect(taken).rejects.toMatchObject({ code: Code.AlreadyExists });
      expect((await h().getDestination({ tenantId: "", destinationId: id } as never, ctx)).destination?.name).toBe("updatable-renamed");
    }, 60_000);
  });

  describe("sequential", () => {
    it("a condition takes both branches; a transform shapes the data; steps are logged", async () => {
      const rest = await restDestination("seq-receiver", c);
      const definition = create(WorkflowDefinitionSchema, {
        kind: WorkflowKind.SEQUENTIAL,
        steps: [
          { name: "shape", type: StepType.TRANSFORM, expression: '{"order": id, "amount": amount * 100}' },
          { name: "is_big", type: StepType.CONDITION, expression: "amount > 10000", thenStep: "big", elseStep: "small" },
          { name: "big", type: StepType.REST_CALL, target: { destinationId: rest, path: "/big" }, nextStep: "end" },
          {
            name: "small",
            type: StepType.REST_CALL,
            target: { destinationId: rest, path: "/small" },
            onError: OnError.RETRY,
            maxRetries: 2,
          },
        ],
      });
      const { workflow } = await h().createWorkflow(create(CreateWorkflowRequestSchema, { name: "sequential", definition }), ctx);
      const id = workflow!.workflowId;
      const big = await h().executeWorkflow(
        create(ExecuteWorkflowRequestSchema, { workflowId: id, payload: { id: "o-1", amount: 500 } }),
        ctx,
      );
      const small = await h().executeWorkflow(
        create(ExecuteWorkflowRequestSchema, { workflowId: id, payload: { id: "o-2", amount: 5 } }),
        ctx,
      );
      await eventually(
        "both branches ran",
        () => c.received.some((x) => x.path === "/big") && c.received.some((x) => x.path === "/small"),
        20_000,
      );
      expect(c.received.filter((x) => x.path === "/big").map((x) => x.body)).toEqual([{ order: "o-1", amount: 50000 }]);
      expect(c.received.filter((x) => x.path === "/small").map((x) => x.body)).toEqual([{ order: "o-2", amount: 500 }]);
      const steps = async (messageId: string) =>
        (await h().listExecutions(create(ListExecutionsRequestSchema, { workflowId: id, messageId }), ctx)).executions
          .map((e) => [e.step, e.status])
          .sort();
      // The log is written when a message's steps finish, just after the receiver saw the call.
      const logged = (messageId: string, expected: unknown[]) =>
        eventually(`steps of ${messageId} logged`, async () => JSON.stringify(await steps(messageId)) === JSON.stringify(expected), 20_000);
      await logged(big.messageId, [
        ["big", ExecutionStatus.SUCCEEDED],
        ["is_big", ExecutionStatus.SUCCEEDED],
        ["shape", ExecutionStatus.SUCCEEDED],
      ]);
      await logged(small.messageId, [
        ["is_big", ExecutionStatus.SUCCEEDED],
        ["shape", ExecutionStatus.SUCCEEDED],
        ["small", ExecutionStatus.SUCCEEDED],
      ]);
    }, 60_000);
  });

  describe("sender apps and ingress", () => {
    it("an encrypted payload round-trips; a wrong key, a retired version and a bad envelope are refused cleanly", async () => {
      const rest = await restDestination("enc-receiver", c);
      const { app, appKey, masterSecret } = await h().createSenderApp(
        create(CreateSenderAppRequestSchema, { name: "secure", encryptionRequired: true }),
        ctx,
      );
      expect(masterSecret).toMatch(/^[A-Za-z0-9+/]{43}=$/);
      await h().createWorkflow(
        create(CreateWorkflowRequestSchema, {
          name: "secure-flow",
          definition: { kind: WorkflowKind.FAN_OUT, source: { appId: app!.appId }, targets: [{ destinationId: rest, path: "/secure" }] },
        }),
        ctx,
      );
      const ok = await postIngress(appKey, sealPayload(app!.appId, masterSecret, 1, { secret: "plain text", n: 1 }));
      expect(ok.status).toBe(202);
      await eventually("decrypted payload delivered", () => c.received.find((x) => x.path === "/secure"), 20_000);
      expect(c.received.filter((x) => x.path === "/secure").map((x) => x.body)).toEqual([{ secret: "plain text", n: 1 }]);

      const wrong = await postIngress(appKey, sealPayload(app!.appId, Buffer.alloc(32, 7).toString("base64"), 1, { n: 2 }));
      expect(wrong.status).toBe(400);
      expect(wrong.body.reason).toBe("INVALID_ARGUMENT");
      expect(wrong.body.message).toMatch(/does not decrypt with master secret version 1/);
      const plain = await postIngress(appKey, { n: 3 });
      expect(plain.status).toBe(400);
      expect(plain.body.message).toMatch(/requires an encrypted payload/);
      const other = await postIngress(appKey, sealPayload("another-app", masterSecret, 1, { n: 4 }));
      expect(other.status).toBe(400);

      // Rotation: the new version works, the old one until it is retired.
      const rotated = await h().rotateMasterSecret(create(RotateMasterSecretRequestSchema, { appId: app!.appId }), ctx);
      expect(rotated.keyVersion).toBe(2);
      expect((await postIngress(appKey, sealPayload(app!.appId, rotated.masterSecret, 2, { n: 5 }))).status).toBe(202);
      expect((await postIngress(appKey, sealPayload(app!.appId, masterSecret, 1, { n: 6 }))).status).toBe(202);
      const third = await h().rotateMasterSecret(create(RotateMasterSecretRequestSchema, { appId: app!.appId, retireBefore: 3 }), ctx);
      const retired = await postIngress(appKey, sealPayload(app!.appId, masterSecret, 1, { n: 7 }));
      expect(retired.status).toBe(400);
      expect(retired.body.message).toMatch(/version 1 of this app is unknown or retired/);
      expect((await postIngress(appKey, sealPayload(app!.appId, third.masterSecret, 3, { n: 8 }))).status).toBe(202);
      await eventually("every accepted payload delivered", () => c.received.filter((x) => x.path === "/secure").length === 4, 20_000);
    }, 60_000);

    it("checks the field schema (INVALID_ARGUMENT naming the field), dedupes for 24 h, refuses bad and rotated keys", async () => {
      const { app, appKey } = await h().createSenderApp(
        create(CreateSenderAppRequestSchema, {
          name: "typed",
          fields: [
            { name: "device", type: FieldType.STRING, required: true },
            { name: "temp", type: FieldType.NUMBER },
          ],
        }),
        ctx,
      );
      const missing = await postIngress(appKey, { temp: 3 });
      expect(missing).toMatchObject({ status: 400, body: { reason: "INVALID_ARGUMENT" } });
      expect(missing.body.message).toMatch(/^payload\.device is required/);
      const typed = await refusal(
        h().ingest(create(IngestRequestSchema, { appId: app!.appId, payload: { device: "d", temp: "hot" } }), ctx),
      );
      expect(typed).toMatchObject({ code: 3, reason: "INVALID_ARGUMENT" });
      expect(typed.message).toMatch(/payload\.temp must be a number/);

      const first = await postIngress(appKey, { device: "d1", temp: 1 });
      const again = await postIngress(appKey, { temp: 1, device: "d1" });
      expect(again.body).toEqual({ message_id: first.body.message_id, duplicate: true });
      const byId = await postIngress(appKey, { device: "d2" }, "client-1");
      const byIdAgain = await postIngress(appKey, { device: "d3" }, "client-1");
      expect(byIdAgain.body).toEqual({ message_id: byId.body.message_id, duplicate: true });

      expect((await postIngress("nxa_nope", { device: "x" })).status).toBe(401);
      const { appKey: newKey } = await h().rotateAppKey(create(RotateAppKeyRequestSchema, { appId: app!.appId }), ctx);
      expect((await postIngress(appKey, { device: "old key" })).status).toBe(401);
      expect((await postIngress(newKey, { device: "new key" })).status).toBe(202);
    });
  });

  describe("workflow definitions", () => {
    it("refuses a bad expression or a bad mapping at save time, naming it", async () => {
      const rest = await restDestination("def-receiver", a);
      const bad = await refusal(
        h().createWorkflow(
          create(CreateWorkflowRequestSchema, {
            name: "bad-expression",
            definition: { kind: WorkflowKind.FAN_OUT, targets: [{ destinationId: rest, transform: '{"a": }' }] },
          }),
          ctx,
        ),
      );
      expect(bad).toMatchObject({ code: 3, reason: "INVALID_ARGUMENT" });
      expect(bad.message).toMatch(/^definition\.targets\[0\]\.transform: JSONata expression does not compile/);
      const { destination: sql } = await h().createDestination(
        create(CreateDestinationRequestSchema, {
          name: "pg-def",
          config: {
            kind: {
              case: "sql",
              value: { engine: SqlEngine.POSTGRES, host: "127.0.0.1", port: 5432, database: "postgres", user: "postgres" },
            },
          },
        }),
        ctx,
      );
      const badMapping = await refusal(
        h().createWorkflow(
          create(CreateWorkflowRequestSchema, {
            name: "bad-mapping",
            definition: {
              kind: WorkflowKind.FAN_OUT,
              targets: [
                {
                  destinationId: sql!.destinationId,
                  sql: { operation: SqlOperation.INSERT, table: "t", mappings: [{ source: "a", column: "bad column; drop table x" }] },
                },
              ],
            },
          }),
          ctx,
        ),
      );
      expect(badMapping).toMatchObject({ code: 3, reason: "INVALID_ARGUMENT" });
      expect(badMapping.message).toMatch(/^definition\.targets\[0\]\.sql\.mappings: /);
      const noKeys = await refusal(
        h().createWorkflow(
          create(CreateWorkflowRequestSchema, {
            name: "no-keys",
            definition: {
              kind: WorkflowKind.FAN_OUT,
              targets: [
                {
                  destinationId: sql!.destinationId,
                  sql: { operation: SqlOperation.UPSERT, table: "t", mappings: [{ source: "a", column: "a" }] },
                },
              ],
            },
          }),
          ctx,
        ),
      );
      expect(noKeys.message).toMatch(/^definition\.targets\[0\]\.sql\.key_columns: upsert needs key columns/);
      const badStep = await refusal(
        h().createWorkflow(
          create(CreateWorkflowRequestSchema, {
            name: "bad-step",
            definition: {
              kind: WorkflowKind.SEQUENTIAL,
              steps: [{ name: "c", type: StepType.CONDITION, expression: "a >", thenStep: "nowhere" }],
            },
          }),
          ctx,
        ),
      );
      expect(badStep.message).toMatch(/^definition\.steps\[0\]\.then_step: no step named nowhere/);
      const versions = await h().listWorkflows(create(ListWorkflowsRequestSchema, {}), ctx);
      expect(versions.workflows.map((w) => w.name)).not.toContain("bad-mapping");
    });

    it("an edit is a new version, queued messages finish on theirs, and a rollback restores an earlier definition", async () => {
      const rest = await restDestination("ver-receiver", a);
      const { workflow } = await h().createWorkflow(
        create(CreateWorkflowRequestSchema, {
          name: "versioned",
          definition: { kind: WorkflowKind.FAN_OUT, targets: [{ destinationId: rest, path: "/v1" }] },
        }),
        ctx,
      );
      const id = workflow!.workflowId;
      const v2 = await h().updateWorkflow(
        create(UpdateWorkflowRequestSchema, {
          workflowId: id,
          expectedVersion: 1,
          definition: { kind: WorkflowKind.FAN_OUT, targets: [{ destinationId: rest, path: "/v2" }] },
        }),
        ctx,
      );
      expect(v2.workflow?.currentVersion).toBe(2);
      const stale = await refusal(
        h().updateWorkflow(
          create(UpdateWorkflowRequestSchema, {
            workflowId: id,
            expectedVersion: 1,
            definition: { kind: WorkflowKind.FAN_OUT, targets: [{ destinationId: rest, path: "/x" }] },
          }),
          ctx,
        ),
      );
      expect(stale).toMatchObject({ code: 10, reason: "CONCURRENCY_CONFLICT" });
      await h().executeWorkflow(create(ExecuteWorkflowRequestSchema, { workflowId: id, payload: { n: 2 } }), ctx);
      const back = await h().rollbackWorkflow(create(RollbackWorkflowRequestSchema, { workflowId: id, version: 1 }), ctx);
      expect(back.workflow?.currentVersion).toBe(3);
      expect(back.workflow?.definition?.targets[0]?.path).toBe("/v1");
      await h().executeWorkflow(create(ExecuteWorkflowRequestSchema, { workflowId: id, payload: { n: 3 } }), ctx);
      await eventually(
        "both delivered",
        () => a.received.some((x) => x.path === "/v2") && a.received.some((x) => x.path === "/v1"),
        20_000,
      );
      expect(a.received.filter((x) => x.path === "/v2").map((x) => x.body)).toEqual([{ n: 2 }]);
      expect(a.received.filter((x) => x.path === "/v1").map((x) => x.body)).toEqual([{ n: 3 }]);
      const versions = await h().listWorkflowVersions(create(ListWorkflowVersionsRequestSchema, { workflowId: id }), ctx);
      expect(versions.versions.map((v) => v.version)).toEqual([3, 2, 1]);
    }, 60_000);
  });
});
