/**
 * The TypeScript sender SDK in a real browser (Debian's chromium through playwright-core):
 * services/client/browser.ts bundled by vite for the browser (no Node module may enter the
 * bundle), loaded by a page served from another origin than the hub, against a real
 * `nexus dev` started with NEXUS_CORS_ORIGINS naming that origin. The page sends plain and
 * encrypted (WebCrypto AES-256-GCM) messages with `createSender` over connect-web; each must
 * reach a REST destination through a fan-out workflow exactly once. A wrong master secret is
 * refused with the hub's INVALID_ARGUMENT reason, visible to the page; the same page served
 * from an origin the hub does not allow cannot call it at all (CORS) and the hub receives
 * nothing.
 */
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import path from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WorkflowKind } from "../gen/nexus/integration/v1/resources_pb.js";
import { chromiumPath } from "../scripts/chromium-path.js";
import { createNexusClient, type NexusClient } from "../services/client/index.js";
import { eventually } from "./support/eventually.js";
import { type Receiver, startReceiver } from "./support/integration-harness.js";
import { devOwnerKey, type NexusProcess, startNexus, tempDir } from "./support/nexus-process.js";

const executablePath = chromiumPath();
const required = process.env.NEXUS_REQUIRE_SERVICES === "1";
if (executablePath === undefined && !required) {
  console.warn("[sender-web-browser] chromium is not installed (apt-get install -y chromium): the browser sender tests are skipped");
}

/** The page's origin the hub allows, one it does not, and the REST destination (ports 187xx). */
const ALLOWED_PORT = 18710;
const FOREIGN_PORT = 18711;
const RECEIVER_PORT = 18712;
const ALLOWED_ORIGIN = `http://127.0.0.1:${ALLOWED_PORT}`;
const FOREIGN_ORIGIN = `http://127.0.0.1:${FOREIGN_PORT}`;
const WAIT = 60_000;

/** What the page reports back for one send. */
interface PageOutcome {
  results?: Array<{ messageId: string; clientMessageId: string; duplicate: boolean; workflows: number }>;
  error?: { name: string; code?: number; reason?: string; message: string };
}

interface SendArgs {
  baseUrl: string;
  apiKey: string;
  appId: string;
  masterSecret?: string;
  payloads: Record<string, unknown>[];
  messageIds?: string[];
}

/** Bundles the browser entry with vite (library mode, browser target) into one ES module. */
async function bundleBrowserSdk(): Promise<{ code: string; modules: string[] }> {
  const { build } = await import("vite");
  const out = await build({
    configFile: false,
    logLevel: "silent",
    root: process.cwd(),
    build: {
      write: false,
      minify: false,
      target: "es2022",
      lib: { entry: path.resolve("services/client/browser.ts"), formats: ["es"], fileName: "sdk" },
    },
  });
  const outputs = (Array.isArray(out) ? out : [out]) as Array<{ output: Array<{ type: string; code?: string; moduleIds?: string[] }> }>;
  const chunk = outputs[0]?.output.find((o) => o.type === "chunk");
  if (!chunk?.code) throw new Error("vite produced no bundle");
  return { code: chunk.code, modules: chunk.moduleIds ?? [] };
}

const PAGE = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>sender</title></head><body>
<script type="module">import * as sdk from "/sdk.js"; globalThis.nexus = sdk; document.title = "ready";</script>
</body></html>`;

/** A static server for the page and the bundle (one per origin). */
function servePage(port: number, bundle: string): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url === "/sdk.js") res.writeHead(200, { "content-type": "text/javascript" }).end(bundle);
    else if (req.url === "/") res.writeHead(200, { "content-type": "text/html" }).end(PAGE);
    else res.writeHead(404).end();
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
}

describe.skipIf(executablePath === undefined && !required)("sender SDK in a real browser, cross-origin", () => {
  let nexus: NexusProcess;
  let client: NexusClient;
  let ownerKey = "";
  let rx: Receiver;
  let bundle: { code: string; modules: string[] };
  const pages: Server[] = [];
  let browser: Browser;
  const data = tempDir("nexus-websend-");
  const apps: Record<string, { appId: string; secret: string }> = {};

  async function appFeeding(name: string, encrypted: boolean) {
    const { app, masterSecret } = await client.integration.createSenderApp({ name, encryptionRequired: encrypted });
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
    apps[name] = { appId: app?.appId ?? "", secret: masterSecret };
  }
  const bodiesAt = (p: string) => rx.received.filter((r) => r.path === p).map((r) => r.body);

  async function openPage(origin: string): Promise<Page> {
    const page = await browser.newPage();
    page.setDefaultTimeout(WAIT);
    await page.goto(`${origin}/`);
    await page.waitForFunction('document.title === "ready"', undefined, { timeout: WAIT });
    return page;
  }

  /** Runs `createSender(...).sendBatch(...)` in the page; errors come back as data. */
  function sendFromPage(page: Page, args: SendArgs): Promise<PageOutcome> {
    return page.evaluate(async (a) => {
      // Runs in the page: the bundle put the SDK on globalThis.nexus.
      const sdk = (globalThis as any).nexus;
      const sender = sdk.createSender({
        transport: sdk.createWebTransport({ baseUrl: a.baseUrl, apiKey: a.apiKey }),
        appId: a.appId,
        masterSecret: a.masterSecret,
        retry: { maxAttempts: 1 },
      });
      try {
        return { results: await sender.sendBatch(a.payloads, a.messageIds) };
      } catch (e) {
        const err = e as { name: string; code?: number; message: string };
        return { error: { name: err.name, code: err.code, reason: sdk.errorReason(e), message: err.message } };
      }
    }, args);
  }

  beforeAll(async () => {
    if (executablePath === undefined) throw new Error("chromium is required (NEXUS_REQUIRE_SERVICES=1): apt-get install -y chromium");
    bundle = await bundleBrowserSdk();
    pages.push(await servePage(ALLOWED_PORT, bundle.code), await servePage(FOREIGN_PORT, bundle.code));
    rx = await startReceiver(RECEIVER_PORT);
    nexus = await startNexus({
      args: ["dev", "--port", "0", "--host", "127.0.0.1", "--data-dir", data.dir],
      env: { NEXUS_CORS_ORIGINS: ALLOWED_ORIGIN },
      timeoutMs: 120_000,
    });
    ownerKey = await devOwnerKey(nexus);
    client = createNexusClient({ baseUrl: nexus.url, apiKey: ownerKey });
    await appFeeding("plain", false);
    await appFeeding("sealed", true);
    browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    await nexus?.stop();
    await rx?.close();
    for (const s of pages) await new Promise((r) => s.close(r));
    data.remove();
  }, 60_000);

  it("the browser bundle holds no Node module (node:*, Buffer, the Node transports)", () => {
    const nodeModules = bundle.modules.filter((m) => m.startsWith("node:") || /connect-node|@grpc\//.test(m));
    expect(nodeModules).toEqual([]);
    expect(bundle.code).not.toMatch(/from\s*["']node:|require\(["']node:|\bBuffer\./);
    expect(bundle.modules.some((m) => m.includes("connect-web"))).toBe(true);
  });

  it("a page on an allowed origin sends plain and WebCrypto-sealed messages; each arrives once, decrypted", async () => {
    const page = await openPage(ALLOWED_ORIGIN);
    try {
      const plain = await sendFromPage(page, {
        baseUrl: nexus.url,
        apiKey: ownerKey,
        appId: apps.plain!.appId,
        payloads: [{ n: 1 }, { n: 2, text: "grüße" }],
      });
      expect(plain.error).toBeUndefined();
      expect(plain.results?.map((r) => [r.duplicate, r.workflows])).toEqual([
        [false, 1],
        [false, 1],
      ]);
      const sealed = await sendFromPage(page, {
        baseUrl: nexus.url,
        apiKey: ownerKey,
        appId: apps.sealed!.appId,
        masterSecret: apps.sealed!.secret,
        payloads: [{ secret: "web-α", total: 12.5 }],
      });
      expect(sealed.error).toBeUndefined();
      // The same client message id again: the hub dedupes it, nothing is delivered twice.
      const again = await sendFromPage(page, {
        baseUrl: nexus.url,
        apiKey: ownerKey,
        appId: apps.sealed!.appId,
        masterSecret: apps.sealed!.secret,
        payloads: [{ secret: "web-α", total: 12.5 }],
        messageIds: [sealed.results?.[0]?.clientMessageId ?? ""],
      });
      expect(again.results?.[0]).toMatchObject({ duplicate: true, messageId: sealed.results?.[0]?.messageId });

      await eventually("plain messages delivered", () => bodiesAt("/plain").length >= 2, WAIT);
      await eventually("sealed message delivered", () => bodiesAt("/sealed").length >= 1, WAIT);
      // A later marker from the same page is the barrier: everything before it has arrived.
      await sendFromPage(page, { baseUrl: nexus.url, apiKey: ownerKey, appId: apps.plain!.appId, payloads: [{ marker: 1 }] });
      await eventually("marker delivered", () => bodiesAt("/plain").some((b) => (b as { marker?: number }).marker === 1), WAIT);
      expect(bodiesAt("/plain")).toEqual([{ n: 1 }, { n: 2, text: "grüße" }, { marker: 1 }]);
      expect(bodiesAt("/sealed")).toEqual([{ secret: "web-α", total: 12.5 }]);
    } finally {
      await page.close();
    }
  }, 180_000);

  it("a wrong master secret is refused with the hub's INVALID_ARGUMENT reason, visible to the page", async () => {
    const page = await openPage(ALLOWED_ORIGIN);
    try {
      const before = bodiesAt("/sealed").length;
      const wrong = await sendFromPage(page, {
        baseUrl: nexus.url,
        apiKey: ownerKey,
        appId: apps.sealed!.appId,
        masterSecret: randomBytes(32).toString("base64"),
        payloads: [{ from: "mallory" }],
      });
      expect(wrong.error).toMatchObject({ name: "ConnectError", code: 3, reason: "INVALID_ARGUMENT" });
      expect(wrong.error?.message).toContain("does not decrypt");
      const unsealed = await sendFromPage(page, { baseUrl: nexus.url, apiKey: ownerKey, appId: apps.sealed!.appId, payloads: [{ x: 1 }] });
      expect(unsealed.error).toMatchObject({ code: 3, reason: "INVALID_ARGUMENT" });
      expect(unsealed.error?.message).toContain("requires an encrypted payload");
      // Barrier: a good sealed message sent after them arrives, the refused ones never do.
      await sendFromPage(page, {
        baseUrl: nexus.url,
        apiKey: ownerKey,
        appId: apps.sealed!.appId,
        masterSecret: apps.sealed!.secret,
        payloads: [{ marker: 2 }],
      });
      await eventually("marker delivered", () => bodiesAt("/sealed").length > before, WAIT);
      expect(bodiesAt("/sealed").slice(before)).toEqual([{ marker: 2 }]);
    } finally {
      await page.close();
    }
  }, 180_000);

  it("a page on an origin NEXUS_CORS_ORIGINS does not list cannot call the hub; nothing arrives", async () => {
    const page = await openPage(FOREIGN_ORIGIN);
    const corsErrors: string[] = [];
    page.on("console", (m) => {
      if (/CORS|Access-Control/i.test(m.text())) corsErrors.push(m.text());
    });
    const before = bodiesAt("/plain").length;
    try {
      const refused = await sendFromPage(page, {
        baseUrl: nexus.url,
        apiKey: ownerKey,
        appId: apps.plain!.appId,
        payloads: [{ from: "foreign" }],
      });
      expect(refused.results).toBeUndefined();
      expect(refused.error?.reason).toBeUndefined();
      expect(refused.error?.message).toMatch(/fetch/i);
      await eventually("the browser reported the CORS refusal", () => corsErrors.length > 0, WAIT);
    } finally {
      await page.close();
    }
    // Barrier from the allowed origin: it arrives, the foreign one never did.
    const ok = await openPage(ALLOWED_ORIGIN);
    try {
      await sendFromPage(ok, { baseUrl: nexus.url, apiKey: ownerKey, appId: apps.plain!.appId, payloads: [{ marker: 3 }] });
    } finally {
      await ok.close();
    }
    await eventually("marker delivered", () => bodiesAt("/plain").length > before, WAIT);
    expect(bodiesAt("/plain").slice(before)).toEqual([{ marker: 3 }]);
  }, 180_000);
});
