import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../logger.js";
import { consoleRoute } from "./console-files.js";
import type { BoundAddress, NexusServer } from "./server.js";
import { createServer } from "./server.js";

// A real server serving a small built console (index.html and one hashed asset) at /console.

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function get(url: string, headers: Record<string, string> = {}, method = "GET"): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("the web console's static files (/console)", () => {
  let dir: string;
  let server: NexusServer;
  let addr: BoundAddress;
  const script = `console.log(${JSON.stringify("x".repeat(4000))});`;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "nexus-console-files-"));
    mkdirSync(path.join(dir, "assets"));
    writeFileSync(path.join(dir, "index.html"), '<!doctype html><script type="module" src="/console/assets/index-abc.js"></script>');
    writeFileSync(path.join(dir, "assets", "index-abc.js"), script);
    const route = consoleRoute(dir);
    expect(route).toBeDefined();
    server = createServer({
      services: [],
      logger: createLogger({ name: "test", level: "silent" }),
      collectDefaultMetrics: false,
      httpRoutes: [route!],
    });
    addr = await server.listen({ port: 0, host: "127.0.0.1" });
  });
  afterAll(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("is off when nothing is built", () => {
    expect(consoleRoute(undefined)).toBeUndefined();
    expect(consoleRoute(path.join(dir, "assets"))).toBeUndefined();
  });

  it("redirects /console to /console/ and serves the page, never cached, with a strict CSP", async () => {
    const redirect = await get(`${addr.url}/console`);
    expect(redirect.status).toBe(308);
    expect(redirect.headers.location).toBe("/console/");
    const page = await get(`${addr.url}/console/`);
    expect(page.status).toBe(200);
    expect(page.headers["content-type"]).toContain("text/html");
    expect(page.headers["cache-control"]).toBe("no-cache");
    expect(page.headers["content-security-policy"]).toContain("default-src 'self'");
    expect(page.headers["x-frame-options"]).toBe("DENY");
    expect(page.body.toString()).toContain("index-abc.js");
  });

  it("answers every page path of the app with index.html, and a missing asset with 404", async () => {
    const deep = await get(`${addr.url}/console/keys?tab=1`);
    expect(deep.status).toBe(200);
    expect(deep.body.toString()).toContain("<!doctype html>");
    expect((await get(`${addr.url}/console/assets/gone-123.js`)).status).toBe(404);
    expect((await get(`${addr.url}/console/favicon.ico`)).status).toBe(404);
    expect((await get(`${addr.url}/console/`, {}, "POST")).status).toBe(405);
  });

  it("serves hashed assets gzipped to clients that accept it, cached immutably", async () => {
    const zipped = await get(`${addr.url}/console/assets/index-abc.js`, { "accept-encoding": "gzip, br" });
    expect(zipped.headers["content-encoding"]).toBe("gzip");
    expect(zipped.headers["cache-control"]).toContain("immutable");
    expect(zipped.headers["content-type"]).toContain("text/javascript");
    expect(gunzipSync(zipped.body).toString()).toBe(script);
    expect(zipped.body.length).toBeLessThan(script.length / 10);
    const plainAnswer = await get(`${addr.url}/console/assets/index-abc.js`);
    expect(plainAnswer.headers["content-encoding"]).toBeUndefined();
    expect(plainAnswer.body.toString()).toBe(script);
  });
});
