/**
 * `nexus edge` against a real hub (`nexus dev`, PGlite + local bus, on a fixed port so it can be
 * stopped and started again): the proof of issue #14 — hub stopped, 1,000 messages sent to the
 * edge, the edge killed with SIGKILL and restarted, the hub back → all 1,000 reach the
 * destination exactly once, in order per app. Also: app keys checked locally, RPC ingress with
 * the TypeScript sender, /health and /metrics, and RESOURCE_EXHAUSTED when the queue is full.
 */
import { Code, type ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WorkflowKind } from "../gen/nexus/integration/v1/resources_pb.js";
import { createNexusClient } from "../services/client/index.js";
import { createSender } from "../services/client/sender.js";
import { eventually } from "./support/eventually.js";
import { type Receiver, startReceiver } from "./support/integration-harness.js";
import { devOwnerKey, type NexusProcess, startNexus, tempDir } from "./support/nexus-process.js";

const HUB_PORT = 15810;
const EDGE_PORT = 15812;
const SMALL_EDGE_PORT = 15813;
const HUB = `http://127.0.0.1:${HUB_PORT}`;
const PER_APP = 500;

interface Health {
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
  let hub: NexusProcess | undefined;
  let edge: NexusProcess | undefined;
  let small: NexusProcess | undefined;
  let rx: Receiver;
  let ownerKey = "";
  const apps: Array<{ appId: string; appKey: string; path: string }> = [];

  const startHub = () =>
    startNexus({
      args: ["dev", "--port", String(HUB_PORT), "--host", "127.0.0.1", "--data-dir", hubData.dir],
      env: { NEXUS_INTEGRATION_CONCURRENCY: "1", NEXUS_INTEGRATION_RETRY_INITIAL_MS: "100", NEXUS_INTEGRATION_RETRY_MAX_MS: "500" },
      timeoutMs: 90_000,
    });
  const startEdge = (port: number, dir: string, extra: string[] = []) =>
    startNexus({
      args: ["edge", "--hub", HUB, "--token", ownerKey, "--port", String(port), "--data-dir", dir, "--sync-interval-ms", "500", ...extra],
    });
  const health = async (port = EDGE_PORT) => (await (await fetch(`http://127.0.0.1:${port}/health`)).json()) as Health;
  const post = (port: number, key: string, body: unknown, messageId?: string) =>
    fetch(`http://127.0.0.1:${port}/ingress`, {
      method: "POST",
      headers: { "x-api-key": key, "content-type": "application/json", ...(messageId ? { "x-message-id": messageId } : {}) },
      body: JSON.stringify(body),
    });

  beforeAll(async () => {
    rx = await startReceiver(15811);
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
    edge = await startEdge(EDGE_PORT, edgeData.dir);
    await eventually("edge synced its apps", async () => (await health()).apps === 2, 20_000);
  }, 180_000);

  afterAll(async () => {
    await small?.stop();
    await edge?.stop();
    await hub?.stop();
    await rx?.close();
    for (const d of [hubData, edgeData, smallData]) d.remove();
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
  }, 60_000);

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
    small = await startEdge(SMALL_EDGE_PORT, smallData.dir, ["--max-queue-bytes", "100"]);
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
