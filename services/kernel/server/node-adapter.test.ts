import http from "node:http";
import http2 from "node:http2";
import net, { type AddressInfo } from "node:net";
import { Writable } from "node:stream";
import type { HandlerContext } from "@connectrpc/connect";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../../gen/grpc/health/v1/health_pb.js";
import { createLogger } from "../logger.js";
import { createNodeAdapter, JSON_UTF8 } from "./node-adapter.js";

// The server's Node bridge (node-adapter.ts) on real HTTP/1.1 and HTTP/2 servers with a
// small grpc.health.v1 implementation: what a handler sees of the end of its call, clients
// that go away mid-stream, routing and the request's URL.

class LogCapture extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    for (const line of chunk.toString().split("\n")) if (line) this.lines.push(JSON.parse(line) as Record<string, unknown>);
    done();
  }
}

const logs = new LogCapture();
/** The context of each call, by the service name the client asked about. */
const seen = new Map<string, HandlerContext>();
/** Resolves when a Watch stream's handler is told its call ended. */
const watchEnded = new Map<string, Promise<unknown>>();

const handler = createNodeAdapter({
  logger: createLogger({ name: "node-adapter-test", level: "info", destination: logs }),
  routes: (router) =>
    router.service(Health, {
      check(req, ctx) {
        if (req.service === "missing") throw new ConnectError("no such service", Code.NotFound);
        seen.set(req.service, ctx);
        return { status: Status.SERVING };
      },
      list: () => ({ statuses: { "dienst-ü-✓": { status: Status.SERVING } } }),
      async *watch(req, ctx) {
        seen.set(req.service, ctx);
        watchEnded.set(
          req.service,
          new Promise((resolve) => ctx.signal.addEventListener("abort", () => resolve(ctx.signal.reason), { once: true })),
        );
        while (!ctx.signal.aborted) {
          yield { status: Status.SERVING };
          await new Promise((r) => setTimeout(r, 5));
        }
      },
    }),
});

let h1: http.Server;
let h2: http2.Http2Server;
let h1Url: string;
let h2Url: string;

beforeAll(async () => {
  h1 = http.createServer(handler);
  h2 = http2.createServer(handler);
  await new Promise<void>((r) => h1.listen(0, "127.0.0.1", r));
  await new Promise<void>((r) => h2.listen(0, "127.0.0.1", r));
  h1Url = `http://127.0.0.1:${(h1.address() as AddressInfo).port}`;
  h2Url = `http://127.0.0.1:${(h2.address() as AddressInfo).port}`;
});

afterAll(async () => {
  h1.closeAllConnections();
  await new Promise((r) => h1.close(r));
  await new Promise((r) => h2.close(r));
});

describe("the Node bridge of the server", () => {
  it("serves unary calls over HTTP/1.1 (Connect JSON) and HTTP/2 (gRPC); a call that ended has an AbortError as its signal's reason", async () => {
    const overH1 = createClient(Health, createConnectTransport({ baseUrl: h1Url, httpVersion: "1.1" }));
    const overH2 = createClient(Health, createGrpcTransport({ baseUrl: h2Url }));
    expect((await overH1.check({ service: "h1" })).status).toBe(Status.SERVING);
    expect((await overH2.check({ service: "h2" })).status).toBe(Status.SERVING);
    for (const name of ["h1", "h2"]) {
      const ctx = seen.get(name)!;
      await expect.poll(() => ctx.signal.aborted).toBe(true);
      expect(ctx.signal.reason).toBeInstanceOf(DOMException);
      expect((ctx.signal.reason as DOMException).name).toBe("AbortError");
    }
    // The URL a handler sees is the request's: scheme, authority, path.
    expect(seen.get("h1")!.url).toBe(`${h1Url}/grpc.health.v1.Health/Check`);
  });

  it("answers a unary call whole on every protocol: gRPC-Web's message and trailer frames, and errors", async () => {
    const transports = [
      createConnectTransport({ baseUrl: h1Url, httpVersion: "1.1" }),
      createGrpcWebTransport({ baseUrl: h1Url, httpVersion: "1.1" }),
      createGrpcTransport({ baseUrl: h2Url }),
    ];
    for (const transport of transports) {
      const client = createClient(Health, transport);
      expect((await client.check({ service: "whole" })).status).toBe(Status.SERVING);
      const refused = await client.check({ service: "missing" }).catch((e: unknown) => ConnectError.from(e));
      expect(refused).toBeInstanceOf(ConnectError);
      expect((refused as ConnectError).code).toBe(Code.NotFound);
      expect((refused as ConnectError).rawMessage).toBe("no such service");
    }
  });

  it("reads a body that arrives in many chunks whole, over HTTP/1.1 and HTTP/2", async () => {
    const name = `big-${"x".repeat(600_000)}`;
    const overH1 = createClient(Health, createConnectTransport({ baseUrl: h1Url, httpVersion: "1.1" }));
    const overH2 = createClient(Health, createGrpcTransport({ baseUrl: h2Url }));
    expect((await overH1.check({ service: name })).status).toBe(Status.SERVING);
    expect(seen.get(name)).toBeDefined();
    seen.delete(name);
    expect((await overH2.check({ service: name })).status).toBe(Status.SERVING);
    expect(seen.get(name)).toBeDefined();
  });

  it("reads an HTTP/1.1 body sent in parts with pauses between them whole, by content-length or chunked", async () => {
    const port = (h1.address() as AddressInfo).port;
    /** Sends a Check for `service` by hand: the headers, then the body in three parts 30 ms apart. */
    const send = async (service: string, chunked: boolean): Promise<string> => {
      const body = Buffer.from(JSON.stringify({ service }));
      const parts = [body.subarray(0, 5), body.subarray(5, 12), body.subarray(12)];
      const socket = net.connect(port, "127.0.0.1");
      let answer = "";
      socket.on("data", (d: Buffer) => (answer += d.toString()));
      const closed = new Promise((r) => socket.once("close", r));
      await new Promise((r) => socket.once("connect", r));
      const framing = chunked ? "transfer-encoding: chunked" : `content-length: ${body.byteLength}`;
      socket.write(
        `POST /grpc.health.v1.Health/Check HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n${framing}\r\nconnection: close\r\n\r\n`,
      );
      for (const part of parts) {
        await new Promise((r) => setTimeout(r, 30));
        socket.write(chunked ? Buffer.concat([Buffer.from(`${part.byteLength.toString(16)}\r\n`), part, Buffer.from("\r\n")]) : part);
      }
      if (chunked) socket.write("0\r\n\r\n");
      await closed;
      return answer;
    };
    for (const chunked of [false, true]) {
      const service = `parts-${chunked ? "chunked" : "length"}-ü`;
      const answer = await send(service, chunked);
      expect(answer).toMatch(/^HTTP\/1\.1 200/);
      expect(answer).toContain('"status":"SERVING"');
      expect(seen.get(service)).toBeDefined();
    }
  });

  it("writes JSON answers in UTF-8 with JSON_UTF8, which connect takes from jsonOptions.textEncoder", async () => {
    // The encoder is an option connect's serialization reads but its router type does not
    // declare: if an upgrade stopped reading it, answers would still be right, only slower.
    const encode = vi.spyOn(JSON_UTF8, "encode");
    try {
      const res = await fetch(`${h1Url}/grpc.health.v1.Health/List`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      const bytes = new Uint8Array(await res.arrayBuffer());
      expect(Number(res.headers.get("content-length"))).toBe(bytes.byteLength);
      expect(JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes))).toEqual({
        statuses: { "dienst-ü-✓": { status: "SERVING" } },
      });
      expect(encode).toHaveBeenCalledTimes(1);
    } finally {
      encode.mockRestore();
    }
  });

  it("routes by path with a query string, and answers 404 for a path no RPC has", async () => {
    const ok = await fetch(`${h1Url}/grpc.health.v1.Health/Check?trace=1`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ service: "query" }),
    });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ status: "SERVING" });
    const missing = await fetch(`${h1Url}/grpc.health.v1.Health/Nope`, { method: "POST", body: "{}" });
    expect(missing.status).toBe(404);
  });

  it("tells a streaming handler when an HTTP/2 client cancels (CANCELED), and keeps serving", async () => {
    const client = createClient(Health, createGrpcTransport({ baseUrl: h2Url }));
    const abort = new AbortController();
    let received = 0;
    await expect(
      (async () => {
        for await (const _ of client.watch({ service: "h2-cancel" }, { signal: abort.signal })) {
          if (++received === 3) abort.abort();
        }
      })(),
    ).rejects.toMatchObject({ code: Code.Canceled });
    const reason = await watchEnded.get("h2-cancel");
    expect(reason).toBeInstanceOf(ConnectError);
    expect((reason as ConnectError).code).toBe(Code.Canceled);
    expect((await client.check({ service: "after-h2-cancel" })).status).toBe(Status.SERVING);
  });

  it("ends a streaming handler whose HTTP/1.1 client went away mid-stream, logs nothing, and keeps serving", async () => {
    const req = http.request(`${h1Url}/grpc.health.v1.Health/Watch`, {
      method: "POST",
      headers: { "content-type": "application/connect+json" },
    });
    const body = JSON.stringify({ service: "h1-gone" });
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt32BE(body.length, 1);
    frame.write(body, 5);
    req.end(frame);
    const res = await new Promise<http.IncomingMessage>((resolve) => req.once("response", resolve));
    await new Promise((resolve) => res.once("data", resolve));
    req.destroy();
    const reason = await watchEnded.get("h1-gone");
    expect(reason).toBeDefined();
    const client = createClient(Health, createConnectTransport({ baseUrl: h1Url, httpVersion: "1.1" }));
    expect((await client.check({ service: "after-h1-gone" })).status).toBe(Status.SERVING);
    // A client that went away is not a server failure.
    expect(logs.lines.filter((l) => (l.level as number) >= 50)).toEqual([]);
  });
});
