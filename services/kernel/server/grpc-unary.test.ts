import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { gunzipSync, gzipSync } from "node:zlib";
import { create, toBinary, toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Health,
  HealthCheckRequestSchema,
  HealthListRequestSchema,
  HealthCheckResponse_ServingStatus as Status,
} from "../../../gen/grpc/health/v1/health_pb.js";
import { callFailure } from "../../../tests/support/call-failure.js";
import { ended, parityAdapter, silentLogger } from "../../../tests/support/unary-parity.js";
import { createNodeAdapter } from "./node-adapter.js";

// The unary gRPC path without connect's streaming pipeline (grpc-unary.ts) against connect's own
// gRPC handler: two HTTP/2 servers, the same service, request gate, interceptor, limits and
// trailer fix (as server.ts configures them; tests/support/unary-parity.ts), one with the fast
// path and one without. Every
// request below, plain or malformed, is sent byte for byte to both, and the answers (status,
// headers, body bytes, trailers) must be the same.

let fastServer: http2.Http2Server;
const sessions = new Set<http2.ServerHttp2Session>();
let connectServer: http2.Http2Server;
let fastUrl: string;
let connectUrl: string;

beforeAll(async () => {
  fastServer = http2.createServer(parityAdapter(true, "fast"));
  connectServer = http2.createServer(parityAdapter(false, "connect"));
  for (const s of [fastServer, connectServer]) {
    s.on("session", (session) => sessions.add(session));
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  }
  fastUrl = `http://127.0.0.1:${(fastServer.address() as AddressInfo).port}`;
  connectUrl = `http://127.0.0.1:${(connectServer.address() as AddressInfo).port}`;
});

afterAll(async () => {
  // The gRPC transports keep their connections open: close them, then the servers.
  for (const session of sessions) session.destroy();
  for (const s of [fastServer, connectServer]) await new Promise((r) => s.close(r));
});

interface Answer {
  status: number | undefined;
  headers: Record<string, unknown>;
  body: string;
  trailers: Record<string, unknown>;
  rstCode: number;
}

/** One HTTP/2 request with exactly these headers and body chunks; the whole answer. */
async function send(url: string, path: string, headers: Record<string, string>, chunks: Buffer[]): Promise<Answer> {
  const session = http2.connect(url);
  try {
    return await new Promise<Answer>((resolve, reject) => {
      const req = session.request({ ":method": "POST", ":path": path, te: "trailers", ...headers });
      const answer: Answer = { status: undefined, headers: {}, body: "", trailers: {}, rstCode: 0 };
      const data: Buffer[] = [];
      req.on("response", (h) => {
        const { date: _date, ...rest } = h;
        answer.status = Number(rest[":status"]);
        answer.headers = rest;
      });
      req.on("trailers", (t) => (answer.trailers = { ...t }));
      req.on("data", (d: Buffer) => data.push(d));
      req.on("close", () => {
        answer.body = Buffer.concat(data).toString("hex");
        answer.rstCode = req.rstCode ?? 0;
        resolve(answer);
      });
      req.on("error", () => undefined);
      session.on("error", reject);
      (async () => {
        for (const [i, c] of chunks.entries()) {
          req.write(c);
          if (i < chunks.length - 1) await new Promise((r) => setTimeout(r, 2));
        }
        req.end();
      })().catch(reject);
    });
  } finally {
    session.close();
  }
}

const frame = (payload: Uint8Array, flags = 0, declared = payload.byteLength): Buffer => {
  const b = Buffer.alloc(5 + payload.byteLength);
  b[0] = flags;
  b.writeUInt32BE(declared, 1);
  Buffer.from(payload).copy(b, 5);
  return b;
};
/** `b` in `n` chunks of (about) the same size. */
const parts = (b: Buffer, n: number): Buffer[] => {
  const size = Math.ceil(b.byteLength / n);
  return Array.from({ length: n }, (_, i) => b.subarray(i * size, (i + 1) * size));
};
const checkOf = (service: string) => toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service }));
const CHECK = "/grpc.health.v1.Health/Check";
const LIST = "/grpc.health.v1.Health/List";
const PROTO = { "content-type": "application/grpc" };
const LIST_REQUEST = frame(toBinary(HealthListRequestSchema, create(HealthListRequestSchema)));

/** Each case: path, headers, body chunks, and the grpc-status the answer must carry. */
const cases: Record<string, { path?: string; headers?: Record<string, string>; chunks: Buffer[]; grpcStatus: string }> = {
  "a plain call": { chunks: [frame(checkOf("plain"))], grpcStatus: "0" },
  "a plain call, content type application/grpc+proto": {
    headers: { "content-type": "application/grpc+proto" },
    chunks: [frame(checkOf("down"))],
    grpcStatus: "0",
  },
  "a plain call in JSON (application/grpc+json)": {
    headers: { "content-type": "application/grpc+json" },
    chunks: [frame(Buffer.from(toJsonString(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: "json" }))))],
    grpcStatus: "0",
  },
  "a body in one-byte chunks": { chunks: [...frame(checkOf("bytewise"))].map((b) => Buffer.from([b])), grpcStatus: "0" },
  "an empty message": { chunks: [frame(new Uint8Array(0))], grpcStatus: "0" },
  "an error with metadata and a message to percent-encode": { chunks: [frame(checkOf("missing"))], grpcStatus: String(Code.NotFound) },
  "a handler that throws a plain Error": { chunks: [frame(checkOf("boom"))], grpcStatus: String(Code.Internal) },
  "headers and trailers the handler sets": { chunks: [frame(checkOf("headers"))], grpcStatus: "0" },
  "the request gate refuses": {
    headers: { "x-gate-refuses": "1" },
    chunks: [frame(checkOf("x"))],
    grpcStatus: String(Code.Unauthenticated),
  },
  "an interceptor refuses": {
    headers: { "x-interceptor-refuses": "1" },
    chunks: [frame(checkOf("x"))],
    grpcStatus: String(Code.PermissionDenied),
  },
  "a message that does not decode": {
    chunks: [frame(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]))],
    grpcStatus: String(Code.InvalidArgument),
  },
  "no message at all": { chunks: [], grpcStatus: String(Code.Unimplemented) },
  "two messages": { chunks: [Buffer.concat([frame(checkOf("a")), frame(checkOf("b"))])], grpcStatus: String(Code.Unimplemented) },
  "an envelope that promises more than it has": {
    chunks: [frame(checkOf("short"), 0, 40)],
    grpcStatus: String(Code.InvalidArgument),
  },
  "three bytes (not even an envelope header)": { chunks: [Buffer.from([0, 0, 0])], grpcStatus: String(Code.InvalidArgument) },
  // The gRPC spec: a compressed flag with no grpc-encoding is a protocol error, INTERNAL.
  "a compressed flag without grpc-encoding": {
    chunks: [frame(gzipSync(checkOf("z")), 1)],
    grpcStatus: String(Code.Internal),
  },
  "a gzip-compressed message": {
    headers: { "grpc-encoding": "gzip" },
    chunks: [frame(gzipSync(checkOf("gzipped")), 1)],
    grpcStatus: "0",
  },
  "an unknown grpc-encoding": {
    headers: { "grpc-encoding": "snappy" },
    chunks: [frame(checkOf("x"))],
    grpcStatus: String(Code.Unimplemented),
  },
  "a message over readMaxBytes": { chunks: [frame(checkOf("x".repeat(140_000)))], grpcStatus: String(Code.ResourceExhausted) },
  "a message over readMaxBytes, sent in parts": {
    chunks: parts(frame(checkOf("y".repeat(140_000))), 4),
    grpcStatus: String(Code.ResourceExhausted),
  },
  "a 15 KB message, in parts": { chunks: parts(frame(checkOf("v".repeat(15_000))), 3), grpcStatus: "0" },
  "a message over 16 KiB within readMaxBytes (connect's handler reads it after the gate)": {
    chunks: parts(frame(checkOf("w".repeat(100_000))), 3),
    grpcStatus: "0",
  },
  "an invalid grpc-timeout": {
    headers: { "grpc-timeout": "soon" },
    chunks: [frame(checkOf("x"))],
    grpcStatus: String(Code.InvalidArgument),
  },
  "a deadline that passes while the body arrives (counted from before the read, as connect does)": {
    headers: { "grpc-timeout": "15m" },
    chunks: [...frame(checkOf("deadline-passed?"))].map((b) => Buffer.from([b])),
    grpcStatus: "0",
  },
  "a deadline the handler misses": {
    headers: { "grpc-timeout": "50m" },
    chunks: [frame(checkOf("slow"))],
    grpcStatus: String(Code.DeadlineExceeded),
  },
  "a large answer to a client that accepts gzip": {
    path: LIST,
    headers: { "grpc-accept-encoding": "gzip" },
    chunks: [LIST_REQUEST],
    grpcStatus: "0",
  },
  "a client that accepts only an unknown encoding": {
    path: LIST,
    headers: { "grpc-accept-encoding": "snappy" },
    chunks: [LIST_REQUEST],
    grpcStatus: "0",
  },
  // gRPC-Web's status travels in its trailer frame, in the body.
  "gRPC-Web on HTTP/2 (not gRPC: connect's handler)": {
    headers: { "content-type": "application/grpc-web+proto" },
    chunks: [frame(checkOf("web"))],
    grpcStatus: "in the body",
  },
};

describe("unary gRPC calls without connect's streaming pipeline", () => {
  for (const [name, c] of Object.entries(cases)) {
    it(`answers exactly as connect's gRPC handler: ${name}`, async () => {
      const headers = { ...PROTO, ...c.headers };
      const [fast, viaConnect] = await Promise.all([
        send(fastUrl, c.path ?? CHECK, headers, c.chunks),
        send(connectUrl, c.path ?? CHECK, headers, c.chunks),
      ]);
      expect(fast).toEqual(viaConnect);
      expect(fast.status).toBe(200);
      if (c.grpcStatus === "in the body") expect(Buffer.from(fast.body, "hex").toString()).toContain("grpc-status: 0");
      else expect(fast.trailers["grpc-status"] ?? fast.headers["grpc-status"]).toBe(c.grpcStatus);
    });
  }

  it("compresses a large answer for a client that accepts gzip, and the answer decodes", async () => {
    const a = await send(fastUrl, LIST, { ...PROTO, "grpc-accept-encoding": "gzip" }, [LIST_REQUEST]);
    expect(a.headers["grpc-encoding"]).toBe("gzip");
    const body = Buffer.from(a.body, "hex");
    expect(body[0]).toBe(1);
    expect(gunzipSync(body.subarray(5)).toString()).toContain("service-number-59");
  });

  it("ends the handler's signal as connect does: with an AbortError when the call succeeded", async () => {
    const client = createClient(Health, createGrpcTransport({ baseUrl: fastUrl }));
    expect((await client.check({ service: "signal-ok" })).status).toBe(Status.SERVING);
    await expect.poll(() => ended.get("fast:signal-ok")).toBeInstanceOf(DOMException);
    expect((ended.get("fast:signal-ok") as DOMException).name).toBe("AbortError");
    const late = await callFailure(client.check({ service: "slow" }, { timeoutMs: 30 }));
    expect(late.code).toBe(Code.DeadlineExceeded);
    await expect.poll(() => ConnectError.from(ended.get("fast:slow")).code).toBe(Code.DeadlineExceeded);
    // A call that failed: the signal's reason is the error, on both paths.
    for (const url of [fastUrl, connectUrl]) {
      const refused = await callFailure(createClient(Health, createGrpcTransport({ baseUrl: url })).check({ service: "missing" }));
      expect(refused.code).toBe(Code.NotFound);
    }
    for (const server of ["fast", "connect"]) {
      await expect.poll(() => ended.get(`${server}:missing`)).toBeInstanceOf(ConnectError);
      expect((ended.get(`${server}:missing`) as ConnectError).rawMessage).toBe("no such service: é/%");
    }
  });

  it("tells the handler when the client cancels, and keeps serving", async () => {
    const client = createClient(Health, createGrpcTransport({ baseUrl: fastUrl }));
    ended.delete("fast:slow");
    const controller = new AbortController();
    const call = callFailure(client.check({ service: "slow" }, { signal: controller.signal }));
    await new Promise((r) => setTimeout(r, 100));
    controller.abort();
    expect((await call).code).toBe(Code.Canceled);
    await expect.poll(() => ConnectError.from(ended.get("fast:slow")).code).toBe(Code.Canceled);
    expect((await client.check({ service: "after" })).status).toBe(Status.SERVING);
  });

  it("serves the last registration of a method, also when it has options of its own (then through connect's handler)", async () => {
    const impl = (status: Status) => ({ check: () => ({ status }), list: () => ({}), watch: async function* () {} });
    const servers: http2.Http2Server[] = [];
    try {
      for (const [second, options] of [
        [Status.NOT_SERVING, undefined],
        [Status.SERVICE_UNKNOWN, { readMaxBytes: 4096 }],
      ] as const) {
        const server = http2.createServer(
          createNodeAdapter({
            logger: silentLogger(),
            routes: (router) => router.service(Health, impl(Status.SERVING)).service(Health, impl(second), options),
          }),
        );
        servers.push(server);
        await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
        const answer = await send(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, CHECK, PROTO, [frame(checkOf("which"))]);
        expect(answer.trailers["grpc-status"]).toBe("0");
        // The answer's status field (field 1, varint) is the second implementation's.
        expect(answer.body.slice(10)).toBe(`08${second.toString(16).padStart(2, "0")}`);
      }
    } finally {
      for (const server of servers) await new Promise((r) => server.close(r));
    }
  });

  it("reads a plain call's body before the request gate, where connect's handler refuses without it (the one difference)", async () => {
    // A refused call whose body has not ended: connect's handler answers at once; the fast path
    // answers once the body (one envelope, at most readMaxBytes) is in.
    const held = async (url: string) => {
      const session = http2.connect(url);
      const req = session.request({ ":method": "POST", ":path": CHECK, te: "trailers", ...PROTO, "x-gate-refuses": "1" });
      req.on("error", () => undefined);
      const whole = frame(checkOf("held"));
      req.write(whole.subarray(0, 3));
      const answered = new Promise<string>((resolve) => {
        let status = "";
        req.on("trailers", (t) => (status = String(t["grpc-status"])));
        req.on("response", (h) => h["grpc-status"] !== undefined && (status = String(h["grpc-status"])));
        req.on("close", () => resolve(status));
        req.resume();
      });
      const early = await Promise.race([answered, new Promise<string>((r) => setTimeout(() => r("not yet"), 300))]);
      req.end(whole.subarray(3));
      const final = await answered;
      session.close();
      return { early, final };
    };
    expect(await held(connectUrl)).toEqual({ early: String(Code.Unauthenticated), final: String(Code.Unauthenticated) });
    expect(await held(fastUrl)).toEqual({ early: "not yet", final: String(Code.Unauthenticated) });
  });
});
