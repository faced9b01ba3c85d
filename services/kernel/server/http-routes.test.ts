import http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../logger.js";
import { plain } from "./node-http.js";
import type { BoundAddress, NexusServer } from "./server.js";
import { createServer } from "./server.js";
import type { ServiceModule } from "./service-module.js";

// A real server with a module serving plain HTTP routes beside its (empty) RPCs.

const module: ServiceModule = {
  name: "test.Routes",
  register() {},
  httpRoutes: [
    {
      path: "/ingress",
      methods: ["POST"],
      handle: async (req, res) => {
        let body = "";
        for await (const chunk of req) body += String(chunk);
        plain(res).writeHead(202, { "content-type": "application/json" });
        plain(res).end(JSON.stringify({ got: body }));
      },
    },
    {
      path: "/scim/v2",
      prefix: true,
      handle: (req, res) => {
        plain(res).writeHead(200, { "content-type": "text/plain" });
        plain(res).end(`scim ${req.method} ${req.url}`);
      },
    },
    { path: "/boom", handle: () => Promise.reject(new Error("secret detail")) },
  ],
};

describe("service HTTP routes", () => {
  let server: NexusServer;
  let addr: BoundAddress;
  beforeAll(async () => {
    server = createServer({ services: [module], logger: createLogger({ name: "test", level: "silent" }), collectDefaultMetrics: false });
    addr = await server.listen({ host: "127.0.0.1", port: 0 });
  });
  afterAll(() => server.close());

  it("answers an exact path with its method, and 405 naming the allowed methods otherwise", async () => {
    const ok = await fetch(`${addr.url}/ingress`, { method: "POST", body: "hello" });
    expect(ok.status).toBe(202);
    expect(await ok.json()).toEqual({ got: "hello" });
    const wrong = await fetch(`${addr.url}/ingress`);
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get("allow")).toBe("POST");
  });

  it("matches a prefix at a path boundary only, over HTTP/1.1 and HTTP/2", async () => {
    const users = await fetch(`${addr.url}/scim/v2/Users?filter=x`);
    expect(await users.text()).toBe("scim GET /scim/v2/Users?filter=x");
    expect((await fetch(`${addr.url}/scim/v2x`)).status).toBe(404);
    const session = http2.connect(addr.url);
    try {
      const text = await new Promise<string>((resolve, reject) => {
        const req = session.request({ ":path": "/scim/v2/Groups", ":method": "DELETE" });
        let body = "";
        req.on("data", (c: Buffer) => (body += c.toString()));
        req.on("end", () => resolve(body));
        req.on("error", reject);
        req.end();
      });
      expect(text).toBe("scim DELETE /scim/v2/Groups");
    } finally {
      session.close();
    }
  });

  it("answers 500 without the error's details when a handler fails", async () => {
    const res = await fetch(`${addr.url}/boom`);
    expect(res.status).toBe(500);
    expect(await res.text()).not.toContain("secret detail");
  });

  it("refuses two modules claiming overlapping paths", () => {
    const other: ServiceModule = { name: "test.Other", register() {}, httpRoutes: [{ path: "/scim/v2/Users", handle: () => {} }] };
    expect(() =>
      createServer({ services: [module, other], logger: createLogger({ name: "test", level: "silent" }), collectDefaultMetrics: false }),
    ).toThrow(/clashes/);
  });
});
