import { ROUTE_CLASSES, type RouteClass } from "./route-class.js";
import type { BucketLimit } from "./token-bucket.js";

/** The limits of one route class: each API key's bucket and each tenant's. */
export interface ClassLimits {
  key: BucketLimit;
  tenant: BucketLimit;
}

/** Limits of every route class. */
export type RateLimits = Readonly<Record<RouteClass, ClassLimits>>;

/**
 * Default limits (requests per second, burst), per API key and per tenant. A run is the most
 * expensive call, so it has the smallest allowance; reads the largest.
 */
export const DEFAULT_RATE_LIMITS: RateLimits = Object.freeze({
  run: { key: { ratePerSecond: 1, burst: 5 }, tenant: { ratePerSecond: 3, burst: 15 } },
  mutation: { key: { ratePerSecond: 2, burst: 10 }, tenant: { ratePerSecond: 5, burst: 25 } },
  read: { key: { ratePerSecond: 5, burst: 20 }, tenant: { ratePerSecond: 15, burst: 60 } },
  ops: { key: { ratePerSecond: 2, burst: 10 }, tenant: { ratePerSecond: 4, burst: 20 } },
});

/** The default limits written as NEXUS_RATE_LIMITS expects them. */
export const DEFAULT_RATE_LIMITS_SPEC = formatRateLimits(DEFAULT_RATE_LIMITS);

function formatBucket(b: BucketLimit): string {
  return `${b.ratePerSecond}/${b.burst}`;
}

/** Limits in the NEXUS_RATE_LIMITS notation: `class=keyRate/keyBurst:tenantRate/tenantBurst,…`. */
export function formatRateLimits(limits: RateLimits): string {
  return ROUTE_CLASSES.map((c) => `${c}=${formatBucket(limits[c].key)}:${formatBucket(limits[c].tenant)}`).join(",");
}

const BUCKET = /^(\d+(?:\.\d+)?)\/(\d+)$/;

function parseBucket(raw: string, where: string): BucketLimit {
  const m = BUCKET.exec(raw.trim());
  const rate = Number(m?.[1]);
  const burst = Number(m?.[2]);
  if (!m || !(rate > 0) || !(burst >= 1)) throw new Error(`${where}: "${raw}" is not rate/burst with rate > 0 and burst ≥ 1`);
  return { ratePerSecond: rate, burst };
}

/**
 * Parses NEXUS_RATE_LIMITS: a comma list of `class=keyRate/keyBurst:tenantRate/tenantBurst`
 * (e.g. `run=1/5:3/15,read=10/40:30/120`). Classes not named keep their defaults.
 * Throws with a message naming the bad entry.
 */
export function parseRateLimits(raw: string): RateLimits {
  const out: Record<RouteClass, ClassLimits> = { ...DEFAULT_RATE_LIMITS };
  for (const entry of raw
    .split(",")
    .map((e) => e.trim())
    .filter(Boolean)) {
    const [name, value] = entry.split("=");
    if (!ROUTE_CLASSES.includes(name as RouteClass) || value === undefined) {
      throw new Error(`"${entry}": expected <${ROUTE_CLASSES.join("|")}>=keyRate/keyBurst:tenantRate/tenantBurst`);
    }
    const [key, tenant] = value.split(":");
    if (key === undefined || tenant === undefined)
      throw new Error(`"${entry}": give both the key's and the tenant's limit, separated by ':'`);
    out[name as RouteClass] = { key: parseBucket(key, name!), tenant: parseBucket(tenant, name!) };
  }
  return Object.freeze(out);
}
