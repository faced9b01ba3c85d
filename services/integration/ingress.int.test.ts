/**
 * Ingress straight to JetStream, over real PostgreSQL and a nats-server of this suite's own
 * (stopped and started again): accepted messages are on their workflow's subject without an
 * event-store row; duplicates within the window are accepted once; a message whose publish
 * fails is answered 503 and accepted once when the sender sends it again.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { AckPolicy, jetstreamManager } from "@nats-io/jetstream";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import {
  CreateDestinationRequestSchema,
  CreateWorkflowRequestSchema,
  DeleteWorkflowRequestSchema,
  DisableWorkflowRequestSchema,
  EnableWorkflowRequestSchema,
} from "../../gen/nexus/integration/v1/integration_service_pb.js";
import { FieldType, WorkflowDefinitionSchema, WorkflowKind } from "../../gen/nexus/integration/v1/resources_pb.js";
import { ThrowawayNats } from "../../tests/support/chaos.js";
import { eventually } from "../../tests/support/eventually.js";
import {
  type Integration,
  integrationContext,
  integrationPrincipal,
  openIntegration,
  type Receiver,
  startReceiver,
} from "../../tests/support/integration-harness.js";
import { createTestDatabase, describeWithPostgresAndNats, type TestDatabase, uniqueToken } from "../../tests/support/services.js";
import { createPgDatabase } from "../kernel/db/pg-database.js";
import type { Database } from "../kernel/db/ports.js";
import { errorReason } from "../kernel/errors.js";
import { createNatsEventBus, type NatsEventBus } from "../kernel/events/nats-bus.js";
import { DEFAULT_EVENTS_STREAM } from "../kernel/events/nats-streams.js";
import { IngressQueue } from "./ingress-queue.js";

const NATS_PORT = 19201;
const RECEIVER_PORT = 19202;

describeWithPostgresAndNats("integration ingress straight to JetStream (PostgreSQL + own nats-server)", () => {
  let testDb: TestDatabase;
  let db: Database;
  let nats: ThrowawayNats;
  let bus: NatsEventBus;
  let integ: Integration;
  let receiver: Receiver;
  let appKey = "";
  let appId = "";
  const tenant = uniqueToken("tenant");
  const ctx = integrationContext(integrationPrincipal(tenant));
  const h = () => integ.parts.handler;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    db = await createPgDatabase({ url: testDb.url, poolSize: 8 });
    nats = await ThrowawayNats.start(NATS_PORT);
    bus = await createNatsEventBus({
      db,
      nats: { servers: nats.url, name: "integration-ingress-suite" },
      subjectPrefix: uniqueToken("p"),
      relay: { pollIntervalMs: 20 },
      consumerHeartbeatMs: 1_000,
    });
    integ = await openIntegration(db, bus, { NATS_URL: nats.url });
    receiver = await startReceiver(RECEIVER_PORT);
    const created = await h().createSenderApp(
      {
        tenantId: "",
        name: "meters",
        fields: [{ name: "kwh", type: FieldType.NUMBER, required: true }],
        encryptionRequired: false,
      } as never,
      ctx,
    );
    appKey = created.appKey;
    appId = created.app!.appId;
    const { destination } = await h().createDestination(
      create(CreateDestinationRequestSchema, {
        name: "receiver",
        config: { kind: { case: "rest", value: { url: receiver.url, method: "POST", timeoutMs: 2_000 } } },
      }),
      ctx,
    );
    await h().createWorkflow(
      create(CreateWorkflowRequestSchema, {
        name: "meters-out",
        definition: create(WorkflowDefinitionSchema, {
          kind: WorkflowKind.FAN_OUT,
          source: { appId: created.app!.appId },
          targets: [{ destinationId: destination!.destinationId }],
        }),
      }),
      ctx,
    );
    await integ.parts.reconcile();
  }, 60_000);

  afterAll(async () => {
    await integ?.close();
    await bus?.close();
    await db?.close();
    await testDb?.drop();
    await receiver?.close();
    await nats?.destroy();
  });

  async function post(body: unknown, messageId?: string) {
    const res = await fetch(`${integ.httpUrl}/ingress`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": appKey, ...(messageId ? { "x-message-id": messageId } : {}) },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as { message_id?: string; duplicate?: boolean; reason?: string } };
  }

  /** Idempotency keys the receiver got, with how often each. */
  const keys = () => {
    const counts = new Map<string, number>();
    for (const r of receiver.received) {
      const k = String(r.headers["idempotency-key"]);
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    return counts;
  };

  describe("accepting", () => {
    it("puts each message on the bus once, without an event-store row; duplicates in the window get the first id", async () => {
      const n = 40;
      const first = await Promise.all(Array.from({ length: n }, (_, i) => post({ kwh: i, meter: `m-${i}` }, `msg-${i}`)));
      // The same messages again at once: by client message id, and (without one) by payload.
      const again = await Promise.all(Array.from({ length: n }, (_, i) => post({ kwh: i, meter: `m-${i}` }, `msg-${i}`)));
      const byPayload = await Promise.all([post({ kwh: 1_000 }), post({ kwh: 1_000 }), post({ kwh: 1_000 })]);
      expect(first.map((r) => r.status)).toEqual(Array(n).fill(202));
      expect(first.every((r) => r.body.duplicate === false)).toBe(true);
      expect(again.map((r) => r.body.message_id)).toEqual(first.map((r) => r.body.message_id));
      expect(again.every((r) => r.body.duplicate === true)).toBe(true);
      expect(new Set(byPayload.map((r) => r.body.message_id)).size).toBe(1);
      expect(byPayload.filter((r) => r.body.duplicate === false)).toHaveLength(1);

      await eventually("every message delivered", () => keys().size === n + 1, 60_000);
      // No message reached the receiver twice, and none went through the event store.
      expect([...keys().values()].every((c) => c === 1)).toBe(true);
      const stored = await db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM platform.events WHERE type IN ('nexus.events.v1.WorkflowMessageAccepted', 'nexus.events.v1.DeliveryRequested')",
      );
      expect(stored.rows[0]?.n).toBe(0);
      await eventually(
        "every claim marked published",
        async () =>
          (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM integration.messages WHERE NOT published")).rows[0]?.n === 0,
      );
    }, 120_000);
  });

  describe("a full queue", () => {
    it("refuses what does not fit with RESOURCE_EXHAUSTED INGRESS_QUEUE_FULL and RetryInfo instead of growing; the retry is accepted once", async () => {
      // The bus slower than the senders: publishes wait until released.
      let release: () => void = () => undefined;
      const slow = new Promise<void>((r) => (release = r));
      const queue = new IngressQueue({
        db,
        publish: async (events) => {
          await slow;
          await bus.publish(events);
        },
        clock: () => new Date(),
        logger: pino({ level: "silent" }),
        maxBatch: 2,
        maxInFlight: 1,
        maxQueued: 3,
      });
      const item = (n: number) => ({
        tenantId: tenant,
        source: `app:${appId}`,
        dedupeKey: `cid:full-${n}`,
        data: { kwh: n },
        actor: `app:${appId}`,
        feed: { appId },
      });
      // The first goes into flight at once (a batch of one), three wait: the fifth does not fit.
      const admitted = [0, 1, 2, 3].map((n) => queue.submit(item(n)));
      expect(queue.queued).toBe(3);
      const refused = await queue.submit(item(4)).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(refused).toBeInstanceOf(ConnectError);
      const e = refused as ConnectError;
      expect(e.code).toBe(Code.ResourceExhausted);
      expect(errorReason(e)).toBe("INGRESS_QUEUE_FULL");
      expect(e.findDetails(RetryInfoSchema)[0]?.retryDelay?.seconds).toBe(1n);
      expect(e.metadata.get("retry-after")).toBe("1");
      expect(queue.queued).toBe(3);
      release();
      const answers = await Promise.all(admitted);
      expect(answers.every((a) => !a.duplicate && a.workflows === 1)).toBe(true);
      // The sender's retry after the delay is accepted, once.
      const retried = await queue.submit(item(4));
      expect(retried.duplicate).toBe(false);
      expect((await queue.submit(item(4))).messageId).toBe(retried.messageId);
      await queue.settled();
      await eventually(
        "the five messages delivered",
        () => answers.concat(retried).every((a) => keys().get(`${a.messageId}-0`) === 1),
        60_000,
      );
    }, 120_000);
  });

  describe("with NATS down", () => {
    it("answers 503 DEPENDENCY_UNAVAILABLE; the sender's retry after NATS is back is accepted and delivered once", async () => {
      await nats.kill();
      const refused = await post({ kwh: 7 }, "outage-1");
      expect(refused.status).toBe(503);
      expect(refused.body.reason).toBe("DEPENDENCY_UNAVAILABLE");
      await nats.start();
      let accepted: Awaited<ReturnType<typeof post>> | undefined;
      await eventually(
        "the retry accepted",
        async () => {
          accepted = await post({ kwh: 7 }, "outage-1");
          return accepted.status === 202;
        },
        60_000,
        500,
      );
      // The refused attempt had claimed the id: the retry is told so, and its message goes out now.
      expect(accepted?.body.message_id).toBeTruthy();
      const repeat = await post({ kwh: 7 }, "outage-1");
      expect(repeat.body).toMatchObject({ message_id: accepted?.body.message_id, duplicate: true });
      const key = `${accepted?.body.message_id}-0`;
      await eventually("the message delivered", () => keys().get(key) === 1, 60_000);
      // Whatever the client buffered during the outage and sent after it is the same message: still once.
      await new Promise((r) => setTimeout(r, 1_500));
      expect(keys().get(key)).toBe(1);
    }, 180_000);
  });

  describe("pausing and deleting workflows", () => {
    it("a paused workflow's messages wait on its subject and are delivered once when it is enabled again; deleting it removes its durable consumer and stored messages", async () => {
      const app = await h().createSenderApp({ tenantId: "", name: "pausable", fields: [], encryptionRequired: false } as never, ctx);
      const { destinations } = await h().listDestinations({ tenantId: "" } as never, ctx);
      const { workflow } = await h().createWorkflow(
        create(CreateWorkflowRequestSchema, {
          name: "pausable-out",
          definition: create(WorkflowDefinitionSchema, {
            kind: WorkflowKind.FAN_OUT,
            source: { appId: app.app!.appId },
            targets: [{ destinationId: destinations[0]!.destinationId, path: "/paused" }],
          }),
        }),
        ctx,
      );
      const id = workflow!.workflowId;
      const durable = `integration-wf-${id}`;
      await integ.parts.reconcile();
      expect(bus.status().map((s) => s.name)).toContain(durable);
      const paused = await h().disableWorkflow(create(DisableWorkflowRequestSchema, { workflowId: id }), ctx);
      expect(paused.workflow?.enabled).toBe(false);
      await integ.parts.reconcile();
      expect(bus.status().map((s) => s.name)).not.toContain(durable);
      expect(await bus.consumerNames()).toContain(durable);

      const send = (n: number) =>
        fetch(`${integ.httpUrl}/ingress`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-api-key": app.appKey },
          body: JSON.stringify({ n }),
        });
      for (const n of [1, 2, 3, 4, 5]) expect((await send(n)).status).toBe(202);
      const atPaused = () => receiver.received.filter((r) => r.path === "/paused");
      await new Promise((r) => setTimeout(r, 1_500));
      expect(atPaused()).toHaveLength(0);

      const resumed = await h().enableWorkflow(create(EnableWorkflowRequestSchema, { workflowId: id }), ctx);
      expect(resumed.workflow?.enabled).toBe(true);
      await eventually("the waiting messages delivered", () => atPaused().length === 5, 30_000);
      expect(new Set(atPaused().map((r) => (r.body as { n: number }).n))).toEqual(new Set([1, 2, 3, 4, 5]));

      // Pause again so messages are stored undelivered, then delete: consumer and messages go.
      await h().disableWorkflow(create(DisableWorkflowRequestSchema, { workflowId: id }), ctx);
      await integ.parts.reconcile();
      for (const n of [6, 7]) expect((await send(n)).status).toBe(202);
      const jsm = await jetstreamManager(bus.nats);
      const subject = `${bus.subjectPrefix}.integration.wf.${id}`;
      const stored = async () =>
        (await jsm.streams.info(DEFAULT_EVENTS_STREAM, { subjects_filter: subject })).state.subjects?.[subject] ?? 0;
      expect(await stored()).toBeGreaterThan(0);
      await h().deleteWorkflow(create(DeleteWorkflowRequestSchema, { workflowId: id }), ctx);
      await integ.parts.reconcile();
      expect(await bus.consumerNames()).not.toContain(durable);
      expect(await stored()).toBe(0);

      // A durable consumer whose workflow no longer exists (left by a replica that ran it) goes too.
      await jsm.consumers.add(DEFAULT_EVENTS_STREAM, { durable_name: "integration-wf-gone", ack_policy: AckPolicy.Explicit });
      await integ.parts.reconcile();
      expect(await bus.consumerNames()).not.toContain("integration-wf-gone");
      expect(atPaused()).toHaveLength(5);
    }, 90_000);
  });
});
