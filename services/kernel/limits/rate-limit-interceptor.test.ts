import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { RetrievalService } from "../../../gen/nexus/retrieval/v1/retrieval_service_pb.js";
import { principalKey, type TenantPrincipal } from "../context.js";
import { errorReason } from "../errors.js";
import type { BucketStore } from "./bucket-store.js";
import { createMemoryBucketStore } from "./bucket-store.js";
import { MESH_TOKEN_HEADER } from "./mesh-token.js";
import { createRateLimitInterceptor, RATE_LIMIT_STATUS_HEADER } from "./rate-limit-interceptor.js";
import { parseRateLimits } from "./rate-limits.js";

const principal = { kind: "tenant", keyId: "k1", tenantId: "t1" } as TenantPrincipal;
const limits = parseRateLimits("read=1/1:10/10");
const failing: BucketStore = { kind: "postgres", take: () => Promise.reject(new Error("connection refused")), close() {} };

function call(interceptor: ReturnType<typeof createRateLimitInterceptor>, headers: Record<string, string> = {}) {
  const contextValues = createContextValues();
  contextValues.set(principalKey, principal);
  const req = {
    stream: false,
    service: RetrievalService,
    method: RetrievalService.method.listCorpora,
    header: new Headers(headers),
    contextValues,
  };
  const next = async () => ({ stream: false, header: new Headers(), trailer: new Headers(), message: {} });
  return (interceptor(next as never) as (r: unknown) => Promise<{ header: Headers }>)(req);
}

describe("rate limit interceptor", () => {
  it("refuses past the bucket with RATE_LIMITED and lets calls between Nexus processes through", async () => {
    const i = createRateLimitInterceptor({
      store: createMemoryBucketStore(),
      limits,
      failMode: "open",
      logger: pino({ level: "silent" }),
      meshToken: "mesh",
    });
    await call(i);
    const err = await call(i).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.ResourceExhausted);
    expect(errorReason(err)).toBe("RATE_LIMITED");
    await expect(call(i, { [MESH_TOKEN_HEADER]: "mesh" })).resolves.toBeDefined();
    await expect(call(i, { [MESH_TOKEN_HEADER]: "guess" })).rejects.toThrow(/rate limit/);
  });

  it("fail open: passes calls with x-ratelimit-status: degraded while the buckets cannot be reached", async () => {
    const i = createRateLimitInterceptor({ store: failing, limits, failMode: "open", logger: pino({ level: "silent" }) });
    const res = await call(i);
    expect(res.header.get(RATE_LIMIT_STATUS_HEADER)).toBe("degraded");
  });

  it("fail closed: refuses with UNAVAILABLE RATE_LIMIT_UNAVAILABLE and RetryInfo", async () => {
    const i = createRateLimitInterceptor({ store: failing, limits, failMode: "closed", logger: pino({ level: "silent" }) });
    const err = await call(i).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.Unavailable);
    expect(errorReason(err)).toBe("RATE_LIMIT_UNAVAILABLE");
  });
});
