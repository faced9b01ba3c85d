/**
 * The sender SDKs against a real `nexus dev` process (PGlite + local bus, the integration
 * service in it): the Python `Sender` (sdk/python, grpcio stubs generated from proto/ by
 * sdk/python/generate.sh, run with /usr/bin/python3) and the TypeScript `createSender` over the
 * Node gRPC transport and over connect-web's fetch transport (the browser one; run here in Node,
 * not in a browser). Each message must reach a REST destination through a fan-out workflow;
 * encrypted payloads arrive decrypted; a wrong master secret is refused with INVALID_ARGUMENT;
 * a sender whose hub is not reachable yet retries UNAVAILABLE until it is.
 */
import { execFile, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer, Socket as NetSocket, type Server, type Socket } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WorkflowKind } from "../gen/nexus/integration/v1/resources_pb.js";
import { createNexusClient, type NexusClient } from "../services/client/index.js";
import { createSender } from "../services/client/sender.js";
import { createWebTransport } from "../services/client/web.js";
import { eventually } from "./support/eventually.js";
import { type Receiver, startReceiver } from "./support/integration-harness.js";
import { devOwnerKey, type NexusProcess, startNexus, tempDir } from "./support/nexus-process.js";

const PYTHON = "/usr/bin/python3";
const pythonReady = (() => {
  try {
    execFileSync(PYTHON, ["-c", "import grpc, google.protobuf, cryptography"], { stdio: "ignore" });
    execFileSync("bash", ["sdk/python/generate.sh"], { stdio: "ignore" });
    return true;
  } catch {
    if (process.env.NEXUS_REQUIRE_SERVICES === "1")
      throw new Error(
        "python3-grpcio / python3-protobuf / python3-cryptography / protobuf-compiler-grpc missing and NEXUS_REQUIRE_SERVICES=1 (.ci/run installs them)",
      );
    return false;
  }
})();

interface PyOutcome {
  results?: Array<{ message_id: string; client_message_id: string; duplicate: boolean; workflows: number }>;
  error?: { code: string; reason: string; details: string; attempts: number };
}

function python(args: Record<string, unknown>): Promise<PyOutcome> {
  return new Promise((resolve, reject) => {
    execFile(PYTHON, ["tests/support/python/sdk_send.py", JSON.stringify(args)], { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`sdk_send.py failed: ${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout) as PyOutcome);
    });
  });
}

describe("sender SDKs against nexus dev", () => {
  let nexus: NexusProcess;
  let client: NexusClient;
  let ownerKey = "";
  let rx: Receiver;
  const data = tempDir();
  const apps: Record<string, { appId: string; appKey: string; secret: string }> = {};

  async function appFeeding(name: string, encrypted: boolean) {
    const { app, appKey, masterSecret } = await client.integration.createSenderApp({ name, encryptionRequired: encrypted });
    const { destination } = await client.integration.createDestination({
      name: `rx-${name}`,
      config: { kind: { case: "rest", value: { url: rx.url } } },
    });
    await client.integration.createWorkflow({
      name: `wf-${name}`,
      definition: {
        kind: WorkflowKind.FAN_OUT,
        source: { appId: app?.appId ?? "" },
        targets: [{ destinationId: destination?.destinationId ?? "", path: `/${name}` }],
      },
    });
    apps[name] = { appId: app?.appId ?? "", appKey, secret: masterSecret };
    return apps[name];
  }
  const bodiesAt = (path: string) => rx.received.filter((r) => r.path === path).map((r) => r.body);

  beforeAll(async () => {
    rx = await startReceiver(15801);
    nexus = await startNexus({ args: ["dev", "--port", "0", "--host", "127.0.0.1", "--data-dir", data.dir] });
    ownerKey = await devOwnerKey(nexus);
    client = createNexusClient({ baseUrl: nexus.url, apiKey: ownerKey });
    await appFeeding("plain", false);
    await appFeeding("sealed", true);
  }, 120_000);
  afterAll(async () => {
    await nexus?.stop();
    await rx?.close();
    data.remove();
  });

  it.skipIf(!pythonReady)(
    "Python: send_batch delivers in order, a repeated message id is a duplicate",
    async () => {
      const a = apps.plain!;
      const target = `127.0.0.1:${nexus.port}`;
      const out = await python({ target, api_key: ownerKey, app_id: a.appId, payloads: [{ n: 1 }, { n: 2 }, { n: 3 }] });
      expect(out.error).toBeUndefined();
      expect(out.results?.map((r) => r.duplicate)).toEqual([false, false, false]);
      expect(out.results?.every((r) => r.workflows === 1 && r.message_id !== "")).toBe(true);
      const again = await python({
        target,
        api_key: ownerKey,
        app_id: a.appId,
        payloads: [{ n: 1 }],
        message_ids: [out.results?.[0]?.client_message_id],
      });
      expect(again.results?.[0]).toMatchObject({ duplicate: true, message_id: out.results?.[0]?.message_id });
      await eventually("python messages delivered", () => bodiesAt("/plain").length >= 3, 30_000);
      await new Promise((r) => setTimeout(r, 500));
      expect(bodiesAt("/plain")).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
    },
    90_000,
  );

  it.skipIf(!pythonReady)(
    "Python: an encrypted payload decrypts on the hub; a wrong master secret is refused",
    async () => {
      const a = apps.sealed!;
      const target = `127.0.0.1:${nexus.port}`;
      const ok = await python({ target, api_key: ownerKey, app_id: a.appId, master_secret: a.secret, payloads: [{ secret: "py-α" }] });
      expect(ok.error).toBeUndefined();
      await eventually("decrypted payload delivered", () => bodiesAt("/sealed").length >= 1, 30_000);
      expect(bodiesAt("/sealed")).toEqual([{ secret: "py-α" }]);

      const wrong = await python({
        target,
        api_key: ownerKey,
        app_id: a.appId,
        master_secret: randomBytes(32).toString("base64"),
        payloads: [{ secret: "x" }],
      });
      expect(wrong.error).toMatchObject({ code: "INVALID_ARGUMENT", attempts: 1 });
      expect(wrong.error?.details).toContain("does not decrypt");
      const plainToSealed = await python({ target, api_key: ownerKey, app_id: a.appId, payloads: [{ secret: "x" }] });
      expect(plainToSealed.error?.code).toBe("INVALID_ARGUMENT");
      expect(plainToSealed.error?.details).toContain("requires an encrypted payload");
    },
    90_000,
  );

  it.skipIf(!pythonReady)(
    "Python: retries UNAVAILABLE with backoff until the hub is reachable, then sends once",
    async () => {
      // A TCP relay on 15802 that opens 1.5 s after the sender starts.
      let relay: Server | undefined;
      const sockets: Socket[] = [];
      const opened = setTimeout(() => {
        relay = createServer((inbound) => {
          const out = new NetSocket();
          sockets.push(inbound, out);
          out.connect(nexus.port, "127.0.0.1");
          inbound.pipe(out).pipe(inbound);
          inbound.on("error", () => out.destroy());
          out.on("error", () => inbound.destroy());
        }).listen(15802, "127.0.0.1");
      }, 1500);
      try {
        const out = await python({
          target: "127.0.0.1:15802",
          api_key: ownerKey,
          app_id: apps.plain!.appId,
          payloads: [{ n: "late" }],
          max_attempts: 10,
          initial_backoff: 0.3,
        });
        expect(out.error).toBeUndefined();
        expect(out.results?.[0]?.duplicate).toBe(false);
        await eventually("late message delivered", () => bodiesAt("/plain").some((b) => (b as { n?: string }).n === "late"), 30_000);
        expect(bodiesAt("/plain").filter((b) => (b as { n?: string }).n === "late")).toHaveLength(1);
      } finally {
        clearTimeout(opened);
        for (const s of sockets) s.destroy();
        await new Promise((r) => (relay ? relay.close(r) : r(undefined)));
      }
    },
    90_000,
  );

  it("TypeScript: send over gRPC (Node) and over connect-web (fetch), sealed with WebCrypto, opened by the hub", async () => {
    const a = apps.sealed!;
    const node = createSender({
      transport: createNexusClient({ baseUrl: nexus.url, apiKey: ownerKey, protocol: "grpc" }).transport,
      appId: a.appId,
      masterSecret: a.secret,
    });
    const web = createSender({
      transport: createWebTransport({ baseUrl: nexus.url, apiKey: ownerKey }),
      appId: a.appId,
      masterSecret: a.secret,
    });
    const r1 = await node.send({ from: "node" });
    const [r2, r3] = await web.sendBatch([
      { from: "web", i: 1 },
      { from: "web", i: 2 },
    ]);
    expect([r1.duplicate, r2?.duplicate, r3?.duplicate]).toEqual([false, false, false]);
    expect((await web.send({ from: "web", i: 1 }, r2?.clientMessageId)).duplicate).toBe(true);
    await eventually("ts messages delivered", () => bodiesAt("/sealed").length >= 4, 30_000);
    expect(bodiesAt("/sealed").slice(1)).toEqual([{ from: "node" }, { from: "web", i: 1 }, { from: "web", i: 2 }]);

    const wrong = createSender({
      transport: createWebTransport({ baseUrl: nexus.url, apiKey: ownerKey }),
      appId: a.appId,
      masterSecret: randomBytes(32).toString("base64"),
    });
    const err = await wrong.send({ from: "mallory" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect((err as ConnectError).rawMessage).toContain("does not decrypt");
  }, 90_000);
});
