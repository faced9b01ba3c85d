import { Writable } from "node:stream";
import type { HandlerContext, Interceptor } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";
import { createLogger } from "../../services/kernel/logger.js";
import { fixGrpcStatus, rewriteDecodeErrors } from "../../services/kernel/server/decode-errors.js";
import { createNodeAdapter } from "../../services/kernel/server/node-adapter.js";

// The fixture of the unary fast paths' parity tests (grpc-unary.test.ts, connect-unary.test.ts):
// a Node bridge with or without the fast paths, serving grpc.health.v1.Health with the same
// request gate, interceptor, limits, JSON options and answer rewrites as server.ts configures. Health/Check's
// `service` field picks what the handler does.

class Sink extends Writable {
  override _write(_chunk: Buffer, _enc: string, done: () => void): void {
    done();
  }
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      reject(signal.reason);
    });
  });

/** What a handler saw of its call's end (its signal's reason), by `server:service`. */
export const ended = new Map<string, unknown>();

async function check(service: string, ctx: HandlerContext, server: string) {
  ctx.signal.addEventListener("abort", () => ended.set(`${server}:${service}`, ctx.signal.reason));
  switch (service) {
    case "missing":
      throw new ConnectError("no such service: é/%", Code.NotFound, { "x-error-meta": "m" });
    case "boom":
      throw new Error("a bug, not for the client");
    case "headers":
      ctx.responseHeader.set("x-answer-header", "h");
      ctx.responseTrailer.set("x-answer-trailer", "t");
      return { status: Status.SERVING };
    case "deadline-passed?":
      // Whether the call's deadline passed before the handler ran (while its body arrived).
      return { status: ctx.signal.aborted ? Status.NOT_SERVING : Status.SERVING };
    case "slow":
      await sleep(2_000, ctx.signal);
      return { status: Status.SERVING };
    default:
      return { status: service === "down" ? Status.NOT_SERVING : Status.SERVING };
  }
}

/** An interceptor of the kind the server has: sees every call, refuses some. */
const interceptor: Interceptor = (next) => async (req) => {
  if (req.header.get("x-interceptor-refuses") !== null) throw new ConnectError("refused by an interceptor", Code.PermissionDenied);
  const res = await next(req);
  res.header.set("x-intercepted", "yes");
  return res;
};

/** A silent logger for bridges in tests. */
export function silentLogger() {
  return createLogger({ name: "unary-parity-test", level: "silent", destination: new Sink() });
}

/**
 * The Node bridge under test: `fast` with the unary fast paths, or connect's handlers only.
 * `server` names it in {@link ended}. readMaxBytes is 128 KiB; the request gate refuses a
 * request with `x-gate-refuses` (UNAUTHENTICATED), the interceptor one with
 * `x-interceptor-refuses` (PERMISSION_DENIED). Health/List answers 60 statuses (a large answer).
 */
export function parityAdapter(fast: boolean, server: string) {
  return createNodeAdapter({
    logger: silentLogger(),
    unaryFastPath: fast,
    readMaxBytes: 128 * 1024,
    beforeTrailers: fixGrpcStatus,
    rewriteAnswer: rewriteDecodeErrors,
    jsonOptions: { ignoreUnknownFields: false },
    interceptors: [interceptor],
    requestGate: (ctx) => {
      if (ctx.requestHeader.get("x-gate-refuses") !== null) throw new ConnectError("no credentials", Code.Unauthenticated);
    },
    routes: (router) =>
      router.service(Health, {
        check: (req, ctx) => check(req.service, ctx, server),
        list: () => ({
          statuses: Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`service-number-${i}`, { status: Status.SERVING }])),
        }),
        // eslint-disable-next-line require-yield
        watch: async function* () {},
      }),
  });
}
