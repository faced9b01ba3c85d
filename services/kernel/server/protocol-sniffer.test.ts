import http2 from "node:http2";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../logger.js";
import { detectProtocol, HTTP2_PREFACE } from "./protocol-sniffer.js";
import type { BoundAddress, NexusServer } from "./server.js";
import { createServer } from "./server.js";

describe("detectProtocol", () => {
  it("waits while the bytes are a prefix of the HTTP/2 preface and decides as soon as they are not", () => {
    expect(detectProtocol(Buffer.from("P"))).toBeUndefined();
    expect(detectProtocol(Buffer.from("PRI * HTTP/2"))).toBeUndefined();
    expect(detectProtocol(HTTP2_PREFACE)).toBe("http2");
    expect(detectProtocol(Buffer.concat([HTTP2_PREFACE, Buffer.from([0, 0, 0, 4])]))).toBe("http2");
    expect(detectProtocol(Buffer.from("PO"))).toBe("http1");
    expect(detectProtocol(Buffer.from("GET / HTTP/1.1\r\n"))).toBe("http1");
    expect(detectProtocol(Buffer.from("PRI * HTTP/1.1"))).toBe("http1");
  });
});

/**
 * A TCP relay that hands the client's first bytes to the server one at a time, each in its
 * own segment, so the server sees the worst possible split of the first packet.
 */
async function dribblingRelay(targetPort: number, dribbleBytes: number): Promise<{ port: number; close(): void }> {
  const relay = net.createServer((client) => {
    const upstream = net.connect({ port: targetPort, host: "127.0.0.1", noDelay: true });
    upstream.pipe(client);
    let budget = dribbleBytes;
    let queue = Promise.resolve();
    client.on("data", (chunk: Buffer) => {
      queue = queue.then(async () => {
        let offset = 0;
        while (budget > 0 && offset < chunk.length) {
          upstream.write(chunk.subarray(offset, offset + 1));
          offset++;
          budget--;
          await new Promise((r) => setTimeout(r, 2));
        }
        if (offset < chunk.length) upstream.write(chunk.subarray(offset));
      });
    });
    client.on("end", () => void queue.then(() => upstream.end()));
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
  });
  await new Promise<void>((r) => relay.listen(0, "127.0.0.1", r));
  return { port: (relay.address() as net.AddressInfo).port, close: () => relay.close() };
}

function rawExchange(port: number, parts: string[], expectResponses: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: "127.0.0.1", noDelay: true });
    let received = "";
    socket.on("data", (d) => {
      received += d.toString();
      if ((received.match(/HTTP\/1\.1 \d{3}/g) ?? []).length >= expectResponses && /\r\n\r\n[\s\S]*$/.test(received)) {
        // Both status lines seen; wait for the bodies to arrive, then stop.
        setTimeout(() => {
          socket.destroy();
          resolve(received);
        }, 50);
      }
    });
    socket.on("error", reject);
    socket.on("close", () => resolve(received));
    socket.on("connect", async () => {
      for (const p of parts) {
        socket.write(p);
        await new Promise((r) => setTimeout(r, 10));
      }
    });
  });
}

describe("one port for HTTP/1.1 and HTTP/2, whatever the first packet looks like", () => {
  let server: NexusServer;
  let addr: BoundAddress;

  beforeAll(async () => {
    server = createServer({ logger: createLogger({ name: "test", level: "silent" }), services: [] });
    addr = await server.listen({ port: 0, host: "127.0.0.1" });
  });
  afterAll(() => server.close());

  it("serves HTTP/1.1 whose first bytes arrive split, with a second request pipelined behind the first", async () => {
    const body = "{}";
    const first =
      "POST /grpc.health.v1.Health/Check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
      `Content-Length: ${body.length}\r\n\r\n${body}`;
    const second = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    const out = await rawExchange(addr.port, ["P", "O", first.slice(2) + second], 2);
    const statuses = out.match(/HTTP\/1\.1 \d{3}/g);
    expect(statuses).toEqual(["HTTP/1.1 200", "HTTP/1.1 200"]);
    expect(out).toContain('{"status":"SERVING"}');
    expect(out).toContain('"status":"ok"');
  });

  it("serves HTTP/2 whose connection preface arrives one byte per packet", async () => {
    const relay = await dribblingRelay(addr.port, HTTP2_PREFACE.length + 20);
    const session = http2.connect(`http://127.0.0.1:${relay.port}`);
    try {
      const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = session.request({ ":path": "/healthz" });
        let status = 0;
        let body = "";
        req.on("response", (h) => (status = Number(h[":status"])));
        req.on("data", (d: Buffer) => (body += d.toString()));
        req.on("end", () => resolve({ status, body }));
        req.on("error", reject);
        req.end();
      });
      expect(status).toBe(200);
      expect(JSON.parse(body)).toMatchObject({ status: "ok" });
    } finally {
      session.close();
      relay.close();
    }
  });

  it("drops a connection that never says anything decisive without harming the server", async () => {
    const socket = net.connect({ port: addr.port, host: "127.0.0.1" });
    await new Promise((r) => socket.once("connect", r));
    socket.write("PRI * HTTP/2.0\r\n"); // a prefix of the preface, then silence
    socket.end();
    await new Promise((r) => socket.once("close", r));
    const res = await fetch(`${addr.url}/healthz`);
    expect(res.status).toBe(200);
  });
});
