/**
 * `nexus edge` against a real hub (`nexus dev`, PGlite + local bus, on a fixed port so it can be
 * stopped and started again): the proof of issue #14 — hub stopped, 1,000 messages sent to the
 * edge, the edge killed with SIGKILL and restarted, the hub back → all 1,000 reach the
 * destination exactly once, in order per app. Also: edge agents registered and managed from the
 * hub (token scoped to its tenant and assigned apps, revocation, RBAC, audit, last seen and
 * queue depth in the list), app keys checked locally, RPC ingress with the TypeScript sender,
 * /health, grpc.health.v1 and /metrics, and RESOURCE_EXHAUSTED when the queue is full.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import { Role } from "../gen/nexus/auth/v1/api_key_pb.js";
import { EdgeService } from "../gen/nexus/integration/v1/edge_service_pb.js";
import { FieldType, WorkflowKind } from "../gen/nexus/integration/v1/resources_pb.js";
import { createNexusClient } from "../services/client/index.js";
import { createSender } from "../services/client/sender.js";
import { eventually } from "./support/eventually.js";
import { type Receiver, startReceiver } from "./support/integration-harness.js";
import { devOwnerKey, type NexusProcess, startNexus, tempDir } from "./support/nexus-process.js";

const HUB_PORT = 19310;
const RX_PORT = 19311;
const EDGE_PORT = 19312;
const SMALL_EDGE_PORT = 19313;
const SCOPED_EDGE_PORT = 19314;
const HUB = `http://127.0.0.1:${HUB_PORT}`;
const PER_APP = 500;

interface EdgeHealth {
  status: string;
  token_refused: string | null;
  queue_depth: number;
  oldest_queued_age_seconds: number;
  apps: number;
  last_sync: string | null;
  hub_reachable: boolean;
  rejected_by_hub: number;
}

describe("nexus edge", () => {
  const hubData = tempDir("nexus-edge-hub-");
  const edgeData = tempDir("nexus-edge-q-");
  const smallData = tempDir("nexus-edge-small-");
  const scopedData = tempDir("nexus-edge-scoped-");
  let hub: NexusProcess | undefined;
  let edge: NexusProcess | undefined;
  let small: NexusProcess | undefined;
  let scoped: NexusProcess | undefined;
  let rx: Receiver;
  let ownerKey = "";
  let edgeToken = "";
  const apps: Array<{ appId: string; appKey: string; path: string }> = [];

  const startHub = () =>
    startNexus({
      args: ["dev", "--port", String(HUB_PORT), "--host", "127.0.0.1", "--data-dir", hubData.dir],
      env: { NEXUS_INTEGRATION_CONCURRENCY: "1", NEXUS_INTEGRATION_RETRY_INITIAL_MS: "100", NEXUS_INTEGRATION_RETRY_MAX_MS: "500" },
      timeoutMs: 90_000,
    });
  const startEdge = (port: number, dir: string, extra: string[] = [], token = edgeToken) =>
    startNexus({
      args: ["edge", "--hub", HUB, "--token", token, "--port", String(port), "--data-dir", dir, "--sync-interval-ms", "500", ...extra],
    });
  const health = async (port = EDGE_PORT) => (await (await fetch(`http://127.0.0.1:${port}/health`)).json()) as EdgeHealth;
  const owner = () => createNexusClient({ baseUrl: HUB, apiKey: ownerKey });
  /** The hub's EdgeService as an agent calls it, with an edge token. */
  const asEdge = (token: string) =>
    createClient(
      EdgeService,
      createGrpcTransport({
        baseUrl: HUB,
        interceptors: [
          (next) => (req) => {
            req.header.set("authorization", `Bearer ${token}`);
            return next(req);
          },
        ],
      }),
    );
  const failure = (p: Promise<unknown>) =>
    p.then(
      () => "ok",
      (e: unknown) => {
        const c = ConnectError.from(e);
        return `${Code[c.code]} ${c.findDetails(ErrorInfoSchema)[0]?.reason ?? ""}`;
      },
    );
  const post = (port: number, key: string, body: unknown, messageId?: string) =>
    fetch(`http://127.0.0.1:${port}/ingress`, {
      method: "POST",
      headers: { "x-api-key": key, "content-type": "application/json", ...(messageId ? { "x-message-id": messageId } : {}) },
      body: JSON.stringify(body),
    });

  beforeAll(async () => {
    rx = await startReceiver(RX_PORT);
    hub = await startHub();
    ownerKey = await devOwnerKey(hub);
    const client = createNexusClient({ baseUrl: HUB, apiKey: ownerKey });
    const { destination } = await client.integration.createDestination({
      name: "rx",
      config: { kind: { case: "rest", value: { url: rx.url } } },
    });
    for (const name of ["a", "b"]) {
      const { app, appKey } = await client.integration.createSenderApp({ name });
      await client.integration.createWorkflow({
        name: `wf-${name}`,
        definition: {
          kind: WorkflowKind.FAN_OUT,
          source: { appId: app?.appId ?? "" },
          targets: [{ destinationId: destination?.destinationId ?? "", path: `/${name}` }],
        },
      });
      apps.push({ appId: app?.appId ?? "", appKey, path: `/${name}` });
    }
    const registered = await client.edges.registerEdge({ name: "main", appIds: apps.map((a) => a.appId) });
    edgeToken = registered.edgeToken;
    expect(edgeToken).toMatch(/^nxe_/);
    edge = await startEdge(EDGE_PORT, edgeData.dir);
    await eventually("edge synced its apps", async () => (await health()).apps === 2, 20_000);
  }, 180_000);

  afterAll(async () => {
    await scoped?.stop();
    await small?.stop();
    await edge?.stop();
    await hub?.stop();
    await rx?.close();
    for (const d of [hubData, edgeData, smallData, scopedData]) d.remove();
  });

  it("checks app keys locally and forwards RPC and POST /ingress messages to the hub", async () => {
    const a = apps[0]!;
    expect((await post(EDGE_PORT, "nxa_000000000000000000000000_nope", { x: 1 })).status).toBe(401);
    expect((await post(EDGE_PORT, a.appKey, [1, 2])).status).toBe(400);
    const res = await post(EDGE_PORT, a.appKey, { warmup: 1 }, "warm-1");
    expect(res.status).toBe(202);
    expect(await res.json()).toMatchObject({ message_id: "warm-1", duplicate: false });

    // The RPC ingress: the TypeScript sender with the app key as its credential.
    const sender = createSender({
      transport: createNexusClient({ baseUrl: `http://127.0.0.1:${EDGE_PORT}`, apiKey: a.appKey, protocol: "grpc" }).transport,
      appId: a.appId,
    });
    await sender.send({ warmup: 2 }, "warm-2");
    const other = createSender({
      transport: createNexusClient({ baseUrl: `http://127.0.0.1:${EDGE_PORT}`, apiKey: a.appKey }).transport,
      appId: apps[1]!.appId,
    });
    const err = await other.send({ x: 1 }).catch((e: unknown) => e);
    expect((err as ConnectError).code).toBe(Code.PermissionDenied);

    await eventually("warm-up delivered", () => rx.received.filter((r) => r.path === a.path).length === 2, 30_000);
    expect(rx.received.map((r) => r.body)).toEqual([{ warmup: 1 }, { warmup: 2 }]);
    const h = await health();
    expect(h).toMatchObject({ queue_depth: 0, apps: 2, hub_reachable: true });
    expect(h.last_sync).not.toBeNull();
    const metrics = await (await fetch(`http://127.0.0.1:${EDGE_PORT}/metrics`)).text();
    expect(metrics).toMatch(/nexus_edge_forwarded_total 2/);
    expect(metrics).toMatch(/nexus_edge_refused_total\{reason="AUTH_UNAUTHORIZED"\} 1/);
    expect(metrics).toMatch(/nexus_edge_queue_depth 0/);
    expect(metrics).toMatch(/nexus_edge_oldest_queued_age_seconds 0/);
    expect(metrics).toMatch(/nexus_edge_apps 2/);
    expect(metrics).toMatch(/nexus_edge_hub_rejected_total 0/);
    expect(metrics).toMatch(/nexus_edge_token_refused 0/);
    const lastSync = Number(/^nexus_edge_last_sync_timestamp_seconds (\S+)$/m.exec(metrics)?.[1]);
    expect(Math.abs(lastSync - Date.now() / 1000)).toBeLessThan(60);

    // grpc.health.v1 on the agent's port, with the state of GET /health.
    const agentHealth = createClient(Health, createGrpcTransport({ baseUrl: `http://127.0.0.1:${EDGE_PORT}` }));
    expect((await agentHealth.check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    expect((await agentHealth.check({ service: "nexus.integration.v1.IntegrationService" })).status).toBe(
      HealthCheckResponse_ServingStatus.SERVING,
    );
    expect(await failure(agentHealth.check({ service: "nope" }))).toMatch(/^NotFound/);

    // The hub shows what the agent reported at its last sync.
    await eventually(
      "the hub shows the agent's report",
      async () => {
        const [e] = (await owner().edges.listEdges({})).edges;
        return e?.name === "main" && e.lastSeenTime !== undefined && e.status?.lastSyncTime !== undefined && e.status.forwardedTotal === 2n;
      },
      20_000,
    );
  }, 60_000);

  it("is registered and managed from the hub: token scoped to its tenant and apps, revoked at once, audited", async () => {
    const client = owner();
    const [a, b] = [apps[0]!, apps[1]!];
    const { edge: reg, edgeToken: token } = await client.edges.registerEdge({ name: "scoped", appIds: [a.appId] });
    expect(reg?.tokenPrefix).toBe(`nxe_${reg?.edgeId}_`);
    expect(token.startsWith(reg?.tokenPrefix ?? "?")).toBe(true);
    expect(await failure(client.edges.registerEdge({ name: "scoped" }))).toBe("AlreadyExists ALREADY_EXISTS");
    expect(await failure(client.edges.registerEdge({ name: "x", appIds: ["000000000000000000000000"] }))).toBe("NotFound NOT_FOUND");

    // Only the assigned app reaches the agent's configuration.
    const hubSide = asEdge(token);
    const cfg = await hubSide.getEdgeConfig({});
    expect(cfg.apps.map((x) => x.appId)).toEqual([a.appId]);
    expect(cfg.edgeId).toBe(reg?.edgeId);
    // Forwarding for another app is refused with a reason naming the fix.
    const other = await hubSide
      .forwardMessages({ appId: b.appId, messages: [{ clientMessageId: "x-1", payload: { n: 1 } }] })
      .catch((e) => e);
    expect(ConnectError.from(other).code).toBe(Code.PermissionDenied);
    expect(ConnectError.from(other).findDetails(ErrorInfoSchema)[0]?.reason).toBe("EDGE_APP_NOT_ASSIGNED");
    expect(ConnectError.from(other).rawMessage).toContain("not assigned");
    // No token, an API key or a made-up token: UNAUTHENTICATED.
    expect(await failure(asEdge(ownerKey).getEdgeConfig({}))).toBe("Unauthenticated EDGE_TOKEN_INVALID");
    expect(await failure(asEdge(`${token.slice(0, -4)}AAAA`).getEdgeConfig({}))).toBe("Unauthenticated EDGE_TOKEN_INVALID");

    // A batch is answered message by message: a payload the app's schema refuses is an error in
    // its place, the others are accepted in order; resending the batch is answered as duplicates.
    const { app: strict } = await client.integration.createSenderApp({
      name: "strict",
      fields: [{ name: "n", type: FieldType.INTEGER, required: true }],
    });
    const { edgeToken: strictToken } = await client.edges.registerEdge({ name: "strict", appIds: [strict?.appId ?? ""] });
    const batch = {
      appId: strict?.appId ?? "",
      messages: [
        { clientMessageId: "s-1", payload: { n: 1 } as JsonObject },
        { clientMessageId: "s-2", payload: { m: 2 } as JsonObject },
        { clientMessageId: "s-3", payload: { n: 3 } as JsonObject },
      ],
    };
    const first = await asEdge(strictToken).forwardMessages(batch);
    expect(first.results.map((r) => [r.clientMessageId, r.duplicate, r.error?.reason ?? ""])).toEqual([
      ["s-1", false, ""],
      ["s-2", false, "INVALID_ARGUMENT"],
      ["s-3", false, ""],
    ]);
    expect(first.results[1]?.error?.message).toContain("payload.n");
    const resent = await asEdge(strictToken).forwardMessages(batch);
    expect(resent.results.map((r) => r.duplicate)).toEqual([true, false, true]);
    expect(resent.results[0]?.messageId).toBe(first.results[0]?.messageId);

    // A running agent with this token serves only app a.
    scoped = await startEdge(SCOPED_EDGE_PORT, scopedData.dir, [], token);
    await eventually("scoped edge synced", async () => (await health(SCOPED_EDGE_PORT)).apps === 1, 20_000);
    expect((await post(SCOPED_EDGE_PORT, b.appKey, { n: 1 })).status).toBe(401);
    expect((await post(SCOPED_EDGE_PORT, a.appKey, { scoped: 1 }, "scoped-1")).status).toBe(202);
    await eventually("scoped message forwarded", async () => (await health(SCOPED_EDGE_PORT)).queue_depth === 0, 30_000);

    // Assign b: the agent picks it up at its next sync; unassign it again.
    const assigned = await client.edges.assignEdgeApps({ edgeId: reg?.edgeId ?? "", appIds: [b.appId] });
    expect(assigned.edge?.appIds).toEqual([a.appId, b.appId]);
    await eventually("scoped edge sees app b", async () => (await health(SCOPED_EDGE_PORT)).apps === 2, 20_000);
    const unassigned = await client.edges.unassignEdgeApps({ edgeId: reg?.edgeId ?? "", appIds: [b.appId] });
    expect(unassigned.edge?.appIds).toEqual([a.appId]);

    // RBAC: viewers list, only admins manage.
    const { plaintextKey: viewerKey } = await client.auth.createApiKey({ name: "edge-viewer", role: Role.VIEWER });
    const viewer = createNexusClient({ baseUrl: HUB, apiKey: viewerKey });
    const listed = await viewer.edges.listEdges({});
    expect(listed.edges.map((e) => e.name).sort()).toEqual(["main", "scoped", "strict"]);
    expect(await failure(viewer.edges.registerEdge({ name: "v" }))).toBe("PermissionDenied RBAC_FORBIDDEN");
    expect(await failure(viewer.edges.revokeEdge({ edgeId: reg?.edgeId ?? "" }))).toBe("PermissionDenied RBAC_FORBIDDEN");

    // Revoked: the very next call with the token is refused, and the agent stops serving.
    const revoked = await client.edges.revokeEdge({ edgeId: reg?.edgeId ?? "" });
    expect(revoked.edge?.revokeTime).toBeDefined();
    expect(await failure(hubSide.getEdgeConfig({}))).toBe("Unauthenticated EDGE_TOKEN_REVOKED");
    expect(await failure(hubSide.forwardMessages({ appId: a.appId, messages: [{ clientMessageId: "r-1", payload: {} }] }))).toBe(
      "Unauthenticated EDGE_TOKEN_REVOKED",
    );
    await eventually("the revoked agent stops serving", async () => (await health(SCOPED_EDGE_PORT)).status === "NOT_SERVING", 20_000);
    const refusedHealth = await fetch(`http://127.0.0.1:${SCOPED_EDGE_PORT}/health`);
    expect(refusedHealth.status).toBe(503);
    expect(((await refusedHealth.json()) as EdgeHealth).token_refused).toBe("EDGE_TOKEN_REVOKED");
    const scopedHealth = createClient(Health, createGrpcTransport({ baseUrl: `http://127.0.0.1:${SCOPED_EDGE_PORT}` }));
    expect((await scopedHealth.check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.NOT_SERVING);
    expect((await post(SCOPED_EDGE_PORT, a.appKey, { n: 2 })).status).toBe(503);
    expect(await (await fetch(`http://127.0.0.1:${SCOPED_EDGE_PORT}/metrics`)).text()).toMatch(/nexus_edge_token_refused 1/);
    expect((await client.edges.listEdges({})).edges.map((e) => e.name)).toEqual(["main", "strict"]);
    expect((await client.edges.listEdges({ includeRevoked: true })).edges.map((e) => e.name)).toEqual(["main", "scoped", "strict"]);

    // Every management change is in the audit log.
    await eventually(
      "audit entries",
      async () => {
        const { events } = await client.audit.listAuditEvents({ filter: { resourceType: "edge_agent", resourceId: reg?.edgeId ?? "" } });
        const types = events.map((e) => e.eventType).sort();
        return (
          JSON.stringify(types) ===
          JSON.stringify([
            "integration.edge_agent.apps_assigned",
            "integration.edge_agent.apps_unassigned",
            "integration.edge_agent.registered",
            "integration.edge_agent.revoked",
          ])
        );
      },
      30_000,
    );
    await scoped.stop();
    scoped = undefined;

    // A suspended tenant's edge tokens stop working (like its API keys), and work again once it is resumed.
    const platformKey = /platform operator key \([0-9a-f]+\):\s+(nxs_[0-9a-f]{24}_[A-Za-z0-9_-]{43})/.exec(hub?.output() ?? "")?.[1] ?? "";
    const platform = createNexusClient({ baseUrl: HUB, apiKey: platformKey });
    const tenantId = cfg.tenantId;
    await platform.auth.suspendTenant({ tenantId, reason: "edge test" });
    try {
      await eventually(
        "the suspended tenant's edge token is refused",
        async () => (await failure(asEdge(strictToken).getEdgeConfig({}))) === "PermissionDenied TENANT_SUSPENDED",
        30_000,
      );
    } finally {
      await platform.auth.resumeTenant({ tenantId });
    }
    await eventually(
      "the resumed tenant's edge token works",
      async () => (await failure(asEdge(strictToken).getEdgeConfig({}))) === "ok",
      30_000,
    );
  }, 120_000);

  it("hub stopped, 1,000 messages, edge killed -9 and restarted, hub back: all arrive exactly once, in order per app", async () => {
    rx.received.length = 0;
    await hub?.stop();
    hub = undefined;
    // Two senders, one per app, each sending its messages in order.
    await Promise.all(
      apps.map(async (a, k) => {
        for (let i = 0; i < PER_APP; i++) {
          const res = await post(EDGE_PORT, a.appKey, { app: k, i }, `m-${k}-${i}`);
          expect(res.status, await res.clone().text()).toBe(202);
        }
      }),
    );
    const queued = await health();
    expect(queued.queue_depth).toBe(2 * PER_APP);
    expect(queued.hub_reachable).toBe(false);

    edge?.child.kill("SIGKILL");
    await new Promise((r) => edge?.child.once("exit", r));
    edge = await startEdge(EDGE_PORT, edgeData.dir);
    const after = await health();
    expect(after.queue_depth, "the queue survives kill -9").toBe(2 * PER_APP);
    expect(after.apps, "the synced configuration survives too").toBe(2);
    expect(after.oldest_queued_age_seconds).toBeGreaterThan(0);
    // Still accepting with the hub down (keys checked from the cached configuration); a repeat is a duplicate.
    expect(await (await post(EDGE_PORT, apps[0]!.appKey, { app: 0, i: 0 }, "m-0-0")).json()).toMatchObject({ duplicate: true });

    hub = await startHub();
    await eventually("queue drained", async () => (await health()).queue_depth === 0, 120_000);
    await eventually("all delivered", () => rx.received.length >= 2 * PER_APP, 120_000);
    await new Promise((r) => setTimeout(r, 1_000));
    for (const [k, a] of apps.entries()) {
      const got = rx.received.filter((r) => r.path === a.path).map((r) => (r.body as { i: number }).i);
      expect(got, `app ${k} exactly once, in order`).toEqual(Array.from({ length: PER_APP }, (_, i) => i));
    }
    expect((await health()).rejected_by_hub).toBe(0);
  }, 400_000);

  it("refuses with RESOURCE_EXHAUSTED when its queue is full, and loses nothing it accepted", async () => {
    const { edgeToken: smallToken } = await owner().edges.registerEdge({ name: "small", appIds: apps.map((a) => a.appId) });
    small = await startEdge(SMALL_EDGE_PORT, smallData.dir, ["--max-queue-bytes", "100"], smallToken);
    await eventually("small edge synced", async () => (await health(SMALL_EDGE_PORT)).apps === 2, 20_000);
    await hub?.stop();
    hub = undefined;
    const a = apps[1]!;
    const statuses: number[] = [];
    let refusal: { code?: string; reason?: string; message?: string } = {};
    for (let i = 0; i < 10; i++) {
      const res = await post(SMALL_EDGE_PORT, a.appKey, { fill: i, pad: "xxxxxxxxxx" });
      statuses.push(res.status);
      if (res.status !== 202) refusal = (await res.json()) as typeof refusal;
    }
    const accepted = statuses.filter((s) => s === 202).length;
    expect(accepted).toBeGreaterThan(0);
    expect(statuses.slice(accepted).every((s) => s === 429)).toBe(true);
    expect(refusal).toMatchObject({ code: "ResourceExhausted", reason: "EDGE_QUEUE_FULL" });
    expect(refusal.message).toContain("queue is full");
    expect((await health(SMALL_EDGE_PORT)).queue_depth).toBe(accepted);
  }, 120_000);
});
