import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { gunzipSync, gzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckRequestSchema, HealthCheckResponse_ServingStatus as Status } from "../../../gen/grpc/health/v1/health_pb.js";
import { callFailure } from "../../../tests/support/call-failure.js";
import { ended, parityAdapter } from "../../../tests/support/unary-parity.js";

// The Connect unary path (connect-unary.ts) against connect's own Connect handler: servers with
// the same service, request gate, interceptor and limits (tests/support/unary-parity.ts), one
// pair over HTTP/1.1 and one over HTTP/2, each with and without the fast path. Every request
// below, plain or malformed, is sent byte for byte to both servers of a pair, and the answers
// (status, headers, body bytes) must be the same.

const servers: { close(cb: () => void): unknown }[] = [];
const sessions = new Set<http2.ServerHttp2Session>();
const url = { h1: { fast: "", connect: "" }, h2: { fast: "", connect: "" } };

beforeAll(async () => {
  for (const version of ["h1", "h2"] as const) {
    for (const kind of ["fast", "connect"] as const) {
      const listener = parityAdapter(kind === "fast", `${version}-${kind}`);
      let server: http.Server | http2.Http2Server;
      if (version === "h1") server = http.createServer(listener);
      else server = http2.createServer(listener).on("session", (s) => sessions.add(s));
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      servers.push(server);
      url[version][kind] = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    }
  }
});

afterAll(async () => {
  for (const session of sessions) session.destroy();
  for (const s of servers) {
    (s as http.Server).closeAllConnections?.();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

interface Answer {
  status: number | undefined;
  headers: Record<string, unknown>;
  body: string;
}

interface Request {
  method?: string;
  path?: string;
  headers: Record<string, string>;
  /** Sent one after the other with a short pause; with no content-length header they go chunked. */
  chunks: Buffer[];
}

/** Writes `chunks` with a short pause between them, then ends the request. */
async function writeChunks(req: { write(c: Buffer): unknown; end(): unknown }, chunks: readonly Buffer[]): Promise<void> {
  for (const [i, c] of chunks.entries()) {
    req.write(c);
    if (i < chunks.length - 1) await new Promise((r) => setTimeout(r, 2));
  }
  req.end();
}

/** One HTTP/1.1 request with exactly these headers and body chunks, on a connection of its own; the whole answer. */
function sendH1(base: string, r: Request): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    const req = http.request(`${base}${r.path ?? CHECK}`, { method: r.method ?? "POST", headers: r.headers, agent: false });
    req.on("response", (res) => {
      const data: Buffer[] = [];
      res.on("data", (d: Buffer) => data.push(d));
      res.on("end", () => {
        const { date: _date, ...headers } = res.headers;
        resolve({ status: res.statusCode, headers, body: Buffer.concat(data).toString("hex") });
      });
    });
    req.on("error", reject);
    writeChunks(req, r.chunks).catch(reject);
  });
}

/** The same over HTTP/2. */
async function sendH2(base: string, r: Request): Promise<Answer> {
  const session = http2.connect(base);
  try {
    return await new Promise<Answer>((resolve, reject) => {
      const req = session.request({ ":method": r.method ?? "POST", ":path": r.path ?? CHECK, ...r.headers });
      const answer: Answer = { status: undefined, headers: {}, body: "" };
      const data: Buffer[] = [];
      req.on("response", (h) => {
        const { date: _date, ...rest } = h;
        answer.status = Number(rest[":status"]);
        answer.headers = rest;
      });
      req.on("data", (d: Buffer) => data.push(d));
      req.on("close", () => {
        answer.body = Buffer.concat(data).toString("hex");
        resolve(answer);
      });
      req.on("error", () => undefined);
      session.on("error", reject);
      writeChunks(req, r.chunks).catch(reject);
    });
  } finally {
    session.close();
  }
}

const CHECK = "/grpc.health.v1.Health/Check";
const LIST = "/grpc.health.v1.Health/List";
const checkProto = (service: string) => Buffer.from(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service })));
const checkJson = (service: string) => Buffer.from(JSON.stringify({ service }));
const JSON_TYPE = { "content-type": "application/json" };
const PROTO_TYPE = { "content-type": "application/proto" };
/** `b` in `n` chunks of (about) the same size. */
const parts = (b: Buffer, n: number): Buffer[] => {
  const size = Math.ceil(b.byteLength / n);
  return Array.from({ length: n }, (_, i) => b.subarray(i * size, (i + 1) * size));
};
/** A request with a content-length, as clients send one. */
const withLength = (headers: Record<string, string>, chunks: Buffer[]): Request => ({
  headers: { ...headers, "content-length": String(chunks.reduce((n, c) => n + c.byteLength, 0)) },
  chunks,
});

/** Each case: the request, and the HTTP status the answer must have. */
const cases: Record<string, { request: Request; status: number }> = {
  "a plain JSON call": { request: withLength(JSON_TYPE, [checkJson("plain")]), status: 200 },
  "a plain binary call (application/proto)": { request: withLength(PROTO_TYPE, [checkProto("down")]), status: 200 },
  "JSON with a charset and connect-protocol-version": {
    request: withLength({ "content-type": "application/json; charset=utf-8", "connect-protocol-version": "1" }, [checkJson("cs")]),
    status: 200,
  },
  "a content type in capitals": { request: withLength({ "content-type": "Application/JSON" }, [checkJson("caps")]), status: 200 },
  "a body in one-byte chunks, no content-length (chunked)": {
    request: { headers: JSON_TYPE, chunks: [...checkJson("bytewise")].map((b) => Buffer.from([b])) },
    status: 200,
  },
  "an empty binary message": { request: withLength(PROTO_TYPE, [Buffer.alloc(0)]), status: 200 },
  "an empty JSON body": { request: withLength(JSON_TYPE, [Buffer.alloc(0)]), status: 400 },
  "an error with metadata and a message with non-ASCII": { request: withLength(JSON_TYPE, [checkJson("missing")]), status: 404 },
  "a handler that throws a plain Error": { request: withLength(JSON_TYPE, [checkJson("boom")]), status: 500 },
  "headers and trailers the handler sets": { request: withLength(PROTO_TYPE, [checkProto("headers")]), status: 200 },
  "the request gate refuses": { request: withLength({ ...JSON_TYPE, "x-gate-refuses": "1" }, [checkJson("x")]), status: 401 },
  "an interceptor refuses": { request: withLength({ ...JSON_TYPE, "x-interceptor-refuses": "1" }, [checkJson("x")]), status: 403 },
  // INTERNAL from connect, INVALID_ARGUMENT with ErrorInfo after the server's rewrite (decode-errors.ts).
  "a binary message that does not decode": {
    request: withLength(PROTO_TYPE, [Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])]),
    status: 400,
  },
  "JSON that does not parse": { request: withLength(JSON_TYPE, [Buffer.from('{"service": ')]), status: 400 },
  "JSON with an unknown field": { request: withLength(JSON_TYPE, [Buffer.from('{"nope": 1}')]), status: 400 },
  "a gzip-compressed request": {
    request: withLength({ ...JSON_TYPE, "content-encoding": "gzip" }, [gzipSync(checkJson("gzipped"))]),
    status: 200,
  },
  "a content-encoding gzip body that is not gzip": {
    request: withLength({ ...JSON_TYPE, "content-encoding": "gzip" }, [checkJson("plain")]),
    status: 400,
  },
  "an unknown content-encoding": { request: withLength({ ...JSON_TYPE, "content-encoding": "snappy" }, [checkJson("x")]), status: 501 },
  "a content-length over readMaxBytes (refused unread)": {
    request: withLength(JSON_TYPE, [checkJson("x".repeat(140_000))]),
    status: 429,
  },
  "a chunked body over readMaxBytes": {
    request: { headers: JSON_TYPE, chunks: parts(checkJson("y".repeat(140_000)), 4) },
    status: 429,
  },
  "a 100 KB message in parts within readMaxBytes": {
    request: withLength(JSON_TYPE, parts(checkJson("w".repeat(100_000)), 3)),
    status: 200,
  },
  "an invalid connect-timeout-ms": { request: withLength({ ...JSON_TYPE, "connect-timeout-ms": "soon" }, [checkJson("x")]), status: 400 },
  "a deadline that passes while the body arrives": {
    request: {
      headers: { ...JSON_TYPE, "connect-timeout-ms": "15" },
      chunks: [...checkJson("deadline-passed?")].map((b) => Buffer.from([b])),
    },
    status: 200,
  },
  "a deadline the handler misses": {
    request: withLength({ ...JSON_TYPE, "connect-timeout-ms": "50" }, [checkJson("slow")]),
    status: 504,
  },
  "a large answer to a client that accepts gzip": {
    request: { ...withLength({ ...JSON_TYPE, "accept-encoding": "gzip" }, [Buffer.from("{}")]), path: LIST },
    status: 200,
  },
  "a client that accepts only an unknown encoding": {
    request: { ...withLength({ ...JSON_TYPE, "accept-encoding": "snappy" }, [Buffer.from("{}")]), path: LIST },
    status: 200,
  },
  "a Connect streaming content type on a unary method": {
    request: withLength({ "content-type": "application/connect+json" }, [checkJson("x")]),
    status: 415,
  },
  "an unknown content type": { request: withLength({ "content-type": "text/plain" }, [checkJson("x")]), status: 415 },
  "a GET of a method with side effects": {
    request: { method: "GET", path: `${CHECK}?encoding=json&message=%7B%7D`, headers: {}, chunks: [] },
    status: 405,
  },
  "a PUT": { request: { method: "PUT", headers: JSON_TYPE, chunks: [checkJson("x")] }, status: 405 },
};

describe("unary Connect calls without connect's per-call machinery", () => {
  for (const [name, c] of Object.entries(cases)) {
    for (const version of ["h1", "h2"] as const) {
      it(`answers exactly as connect's handler over ${version === "h1" ? "HTTP/1.1" : "HTTP/2"}: ${name}`, async () => {
        const send = version === "h1" ? sendH1 : sendH2;
        const [fast, viaConnect] = await Promise.all([send(url[version].fast, c.request), send(url[version].connect, c.request)]);
        expect(fast).toEqual(viaConnect);
        expect(fast.status).toBe(c.status);
      });
    }
  }

  it("answers a plain call with the handler's result, headers and trailers", async () => {
    const a = await sendH1(url.h1.fast, withLength(PROTO_TYPE, [checkProto("headers")]));
    expect(a.headers).toMatchObject({
      "content-type": "application/proto",
      "x-answer-header": "h",
      "trailer-x-answer-trailer": "t",
      "x-intercepted": "yes",
    });
    const body = Buffer.from(a.body, "hex");
    expect(a.headers["content-length"]).toBe(String(body.byteLength));
    expect(body).toEqual(Buffer.from([0x08, Status.SERVING]));
    const missing = await sendH1(url.h1.fast, withLength(JSON_TYPE, [checkJson("missing")]));
    expect(missing.headers["x-error-meta"]).toBe("m");
    expect(JSON.parse(Buffer.from(missing.body, "hex").toString())).toEqual({ code: "not_found", message: "no such service: é/%" });
  });

  it("compresses a large answer for a client that accepts gzip, and the answer decodes", async () => {
    const a = await sendH1(url.h1.fast, { ...withLength({ ...JSON_TYPE, "accept-encoding": "gzip" }, [Buffer.from("{}")]), path: LIST });
    expect(a.headers["content-encoding"]).toBe("gzip");
    expect(gunzipSync(Buffer.from(a.body, "hex")).toString()).toContain("service-number-59");
  });

  it("ends the handler's signal as connect does: an AbortError when the call succeeded, the error when it failed", async () => {
    const client = createClient(Health, createConnectTransport({ baseUrl: url.h1.fast, httpVersion: "1.1" }));
    expect((await client.check({ service: "signal-ok" })).status).toBe(Status.SERVING);
    await expect.poll(() => ended.get("h1-fast:signal-ok")).toBeInstanceOf(DOMException);
    expect((ended.get("h1-fast:signal-ok") as DOMException).name).toBe("AbortError");
    const late = await callFailure(client.check({ service: "slow" }, { timeoutMs: 30 }));
    expect(late.code).toBe(Code.DeadlineExceeded);
    await expect.poll(() => ConnectError.from(ended.get("h1-fast:slow")).code).toBe(Code.DeadlineExceeded);
    for (const kind of ["fast", "connect"] as const) {
      const refused = await callFailure(
        createClient(Health, createConnectTransport({ baseUrl: url.h1[kind], httpVersion: "1.1" })).check({ service: "missing" }),
      );
      expect(refused.code).toBe(Code.NotFound);
      await expect.poll(() => ended.get(`h1-${kind}:missing`)).toBeInstanceOf(ConnectError);
      expect((ended.get(`h1-${kind}:missing`) as ConnectError).rawMessage).toBe("no such service: é/%");
    }
  });

  it("tells the handler when the client goes away, and keeps serving", async () => {
    const client = createClient(Health, createConnectTransport({ baseUrl: url.h1.fast, httpVersion: "1.1" }));
    ended.delete("h1-fast:slow");
    const controller = new AbortController();
    const call = callFailure(client.check({ service: "slow" }, { signal: controller.signal }));
    await new Promise((r) => setTimeout(r, 100));
    controller.abort();
    expect((await call).code).toBe(Code.Canceled);
    await expect.poll(() => ended.get("h1-fast:slow")).toBeDefined();
    expect((await client.check({ service: "after" })).status).toBe(Status.SERVING);
  });

  it("asks the request gate before reading the body, as connect's handler does", async () => {
    // A refused call whose body has not ended is answered at once by both servers.
    const held = async (base: string) => {
      const whole = checkJson("held");
      const req = http.request(`${base}${CHECK}`, {
        method: "POST",
        agent: false,
        headers: { ...JSON_TYPE, "x-gate-refuses": "1", "content-length": String(whole.byteLength) },
      });
      req.on("error", () => undefined);
      const answered = new Promise<number>((resolve) =>
        req.on("response", (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        }),
      );
      req.write(whole.subarray(0, 3));
      const early = await Promise.race([answered, new Promise<string>((r) => setTimeout(() => r("not yet"), 1_000))]);
      req.destroy();
      return early;
    };
    expect(await held(url.h1.connect)).toBe(401);
    expect(await held(url.h1.fast)).toBe(401);
  });
});
