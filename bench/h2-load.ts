import http2 from "node:http2";

/**
 * A small gRPC (HTTP/2 cleartext) load generator for `npm run bench rpc`, run as its own
 * process: `node h2-load.js <url> <path> <streams> <sessions> <seconds> <bodyHex> [authorization]`.
 * Keeps `streams` unary calls in flight, spread over `sessions` connections, for `seconds`
 * (after one warm-up second), and prints one JSON line: {rps, ok, errors, statuses}. A call
 * counts as ok only when its trailers say grpc-status 0.
 */
const [url, path, streamsArg, sessionsArg, secondsArg, bodyHex, authorization] = process.argv.slice(2);
const streams = Number(streamsArg);
const sessionCount = Number(sessionsArg);
const seconds = Number(secondsArg);
const payload = Buffer.from(bodyHex ?? "", "hex");
// gRPC message framing: 1 byte compressed flag, 4 bytes big-endian length, then the message.
const frame = Buffer.alloc(5 + payload.length);
frame.writeUInt32BE(payload.length, 1);
payload.copy(frame, 5);
const headers: http2.OutgoingHttpHeaders = {
  ":method": "POST",
  ":path": path,
  "content-type": "application/grpc+proto",
  te: "trailers",
  ...(authorization ? { authorization } : {}),
};

const sessions = Array.from({ length: sessionCount }, () => http2.connect(url!));
await Promise.all(sessions.map((s) => new Promise<void>((resolve, reject) => s.once("connect", () => resolve()).once("error", reject))));

let counting = false;
let stop = false;
let ok = 0;
let errors = 0;
const statuses: Record<string, number> = {};

function call(session: http2.ClientHttp2Session): Promise<void> {
  return new Promise((resolve) => {
    const req = session.request(headers);
    let status: string | undefined;
    req.on("response", (h) => {
      // Trailers-only responses carry grpc-status in the headers.
      if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]);
    });
    req.on("trailers", (t) => {
      if (t["grpc-status"] !== undefined) status = String(t["grpc-status"]);
    });
    req.on("data", () => undefined);
    const done = (failed: boolean) => {
      if (counting) {
        if (!failed && status === "0") ok++;
        else {
          errors++;
          const k = status ?? "no-status";
          statuses[k] = (statuses[k] ?? 0) + 1;
        }
      }
      resolve();
    };
    req.once("end", () => done(false));
    req.once("error", () => done(true));
    req.end(frame);
  });
}

async function worker(session: http2.ClientHttp2Session): Promise<void> {
  while (!stop) await call(session);
}

const workers = Array.from({ length: streams }, (_, i) => worker(sessions[i % sessionCount]!));
await new Promise((r) => setTimeout(r, 1000));
counting = true;
const started = performance.now();
await new Promise((r) => setTimeout(r, seconds * 1000));
counting = false;
const elapsed = (performance.now() - started) / 1000;
const rps = ok / elapsed;
stop = true;
await Promise.all(workers);
for (const s of sessions) s.close();
console.log(JSON.stringify({ rps, ok, errors, statuses }));
