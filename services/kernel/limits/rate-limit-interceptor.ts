import type { Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { type Principal, principalKey } from "../context.js";
import { domainError } from "../errors.js";
import { counter, gauge } from "../metrics.js";
import type { BucketRequest, BucketStore } from "./bucket-store.js";
import { fromMesh } from "./mesh-token.js";
import type { RateLimits } from "./rate-limits.js";
import { type RouteClass, routeClassOf } from "./route-class.js";
import type { TakeResult } from "./token-bucket.js";

/** `nexus_rate_limited_total{scope,route_class}`: calls refused RATE_LIMITED. */
export const rateLimited = counter<"scope" | "route_class">(
  "nexus_rate_limited_total",
  "Calls refused with RESOURCE_EXHAUSTED RATE_LIMITED, by the bucket that refused (api_key or tenant) and route class.",
  ["scope", "route_class"],
);

/** `nexus_rate_limit_degraded`: 1 while the shared buckets cannot be reached. */
export const rateLimitDegraded = gauge(
  "nexus_rate_limit_degraded",
  "1 while the rate limiter's shared buckets cannot be reached (calls pass unlimited with fail mode open, or are refused with closed).",
);

/** What the limiter does when its bucket store fails. */
export type RateLimitFailMode = "open" | "closed";

/** Options of {@link createRateLimitInterceptor}. */
export interface RateLimitOptions {
  store: BucketStore;
  limits: RateLimits;
  /** open: let calls through with `x-ratelimit-status: degraded`; closed: UNAVAILABLE RATE_LIMIT_UNAVAILABLE. */
  failMode: RateLimitFailMode;
  logger: Logger;
  /** Calls carrying the installation's mesh token (one service calling another for a caller already counted) pass unlimited. */
  meshToken?: string;
}

/** The header a degraded (fail-open) limiter adds to every answer. */
export const RATE_LIMIT_STATUS_HEADER = "x-ratelimit-status";

/**
 * Token buckets per API key and per tenant, by route class (run, mutation, read, ops): a call
 * passes when both its key's bucket and its tenant's hold a token. Runs after authentication,
 * the permission table and the write freeze, and before the handler — so a refused call
 * consumes no quota and does no work. A refusal is RESOURCE_EXHAUSTED reason RATE_LIMITED
 * naming the scope and route class, with RetryInfo and the `retry-after` (seconds),
 * `x-ratelimit-scope`, `x-ratelimit-route-class` and `x-ratelimit-retry-after-ms` headers
 * (HTTP 429 for Connect JSON). Calls without a principal (Authenticate, health, reflection)
 * and calls of one Nexus service to another (mesh token) are not limited here.
 */
export function createRateLimitInterceptor(options: RateLimitOptions): Interceptor {
  const { store, limits, failMode, logger } = options;
  let degraded = false;
  const setDegraded = (next: boolean, err?: unknown) => {
    if (next === degraded) return;
    degraded = next;
    rateLimitDegraded.set(next ? 1 : 0);
    if (next)
      logger.warn(
        { err, fail_mode: failMode },
        `rate limiter cannot reach its buckets; calls are ${failMode === "open" ? "passed unlimited" : "refused"}`,
      );
    else logger.info("rate limiter reaches its buckets again");
  };
  // The route class of a method and the buckets of a (cached, frozen) principal are the same
  // on every call: worked out once, not per call.
  const routeClasses = new WeakMap<object, RouteClass>();
  const routeClassOfCall = (req: Parameters<ReturnType<Interceptor>>[0]): RouteClass => {
    let routeClass = routeClasses.get(req.method);
    if (routeClass === undefined) {
      routeClass = routeClassOf(req.service.typeName, req.method.name);
      routeClasses.set(req.method, routeClass);
    }
    return routeClass;
  };
  const bucketsByPrincipal = new WeakMap<Principal, Partial<Record<RouteClass, readonly BucketRequest[]>>>();
  const bucketsOf = (principal: Principal, routeClass: RouteClass): readonly BucketRequest[] => {
    let byClass = bucketsByPrincipal.get(principal);
    if (byClass === undefined) {
      byClass = {};
      bucketsByPrincipal.set(principal, byClass);
    }
    let buckets = byClass[routeClass];
    if (buckets === undefined) {
      const classLimits = limits[routeClass];
      const list: BucketRequest[] = [{ name: `k:${principal.keyId}:${routeClass}`, limit: classLimits.key }];
      if (principal.kind === "tenant") list.push({ name: `t:${principal.tenantId}:${routeClass}`, limit: classLimits.tenant });
      buckets = list;
      byClass[routeClass] = buckets;
    }
    return buckets;
  };

  // Not an async function: a call that is not limited here, or whose buckets are in memory
  // (`nexus dev`), goes straight on without a frame of its own.
  return (next) => (req) => {
    const principal = req.contextValues.get(principalKey);
    if (principal === undefined || !req.service.typeName.startsWith("nexus.") || fromMesh(req.header, options.meshToken)) return next(req);
    const routeClass = routeClassOfCall(req);
    const buckets = bucketsOf(principal, routeClass);
    if (store.takeNow === undefined) return limited(next, req, routeClass, buckets);
    let result: TakeResult;
    try {
      result = store.takeNow(buckets);
    } catch (err) {
      return unreachable(next, req, routeClass, err);
    }
    setDegraded(false);
    if (!result.allowed) return Promise.reject(refusal(routeClass, result));
    return next(req);
  };

  async function limited(
    next: Parameters<Interceptor>[0],
    req: Parameters<ReturnType<Interceptor>>[0],
    routeClass: RouteClass,
    buckets: readonly BucketRequest[],
  ): ReturnType<ReturnType<Interceptor>> {
    let result: TakeResult;
    try {
      result = await store.take(buckets);
      setDegraded(false);
    } catch (err) {
      return unreachable(next, req, routeClass, err);
    }
    if (!result.allowed) throw refusal(routeClass, result);
    return next(req);
  }

  /** The bucket store failed: pass degraded (fail open) or refuse UNAVAILABLE (closed). */
  async function unreachable(
    next: Parameters<Interceptor>[0],
    req: Parameters<ReturnType<Interceptor>>[0],
    routeClass: RouteClass,
    err: unknown,
  ): ReturnType<ReturnType<Interceptor>> {
    setDegraded(true, err);
    if (failMode === "closed") {
      throw domainError(
        "RATE_LIMIT_UNAVAILABLE",
        "the rate limiter cannot reach its shared state; retry shortly",
        { route_class: routeClass },
        { retryAfterMs: 1000, cause: err },
      );
    }
    const res = await next(req);
    res.header.set(RATE_LIMIT_STATUS_HEADER, "degraded");
    return res;
  }

  /** RESOURCE_EXHAUSTED RATE_LIMITED for a refused take, counted. */
  function refusal(routeClass: RouteClass, result: Extract<TakeResult, { allowed: false }>): Error {
    const classLimits = limits[routeClass];
    const scope = result.refusedBy === 0 ? "api_key" : "tenant";
    const limit = scope === "api_key" ? classLimits.key : classLimits.tenant;
    rateLimited.inc({ scope, route_class: routeClass });
    const seconds = Math.max(1, Math.ceil(result.retryAfterMs / 1000));
    return domainError(
      "RATE_LIMITED",
      `rate limit exceeded: this ${scope === "api_key" ? "API key" : "tenant"} may make ${limit.ratePerSecond} ${routeClass} calls a second (bursts of ${limit.burst}); retry in ${seconds} s`,
      { scope, route_class: routeClass, retry_after_ms: result.retryAfterMs },
      {
        retryAfterMs: result.retryAfterMs,
        headers: {
          "retry-after": String(seconds),
          "x-ratelimit-scope": scope,
          "x-ratelimit-route-class": routeClass,
          "x-ratelimit-retry-after-ms": String(result.retryAfterMs),
        },
      },
    );
  }
}
