import { counter } from "../metrics.js";

/**
 * `nexus_auth_cache_lookups_total{outcome}`: authentication gate lookups answered from the
 * per-process cache (`hit`) or by the authenticator (`miss`). A hit ratio near zero under
 * steady traffic means the cache is off (feed down) or the TTL is too short.
 */
export const authCacheLookups = counter<"outcome">(
  "nexus_auth_cache_lookups_total",
  "Authentication gate lookups by outcome: hit (answered from the per-process cache) or miss.",
  ["outcome"],
);

/** `nexus_auth_refusals_total{reason}`: calls refused by the gate or the permission table. */
export const authRefusals = counter<"reason">(
  "nexus_auth_refusals_total",
  "Calls refused at authentication or by the permission table, by ErrorInfo reason.",
  ["reason"],
);

/**
 * `nexus_auth_throttled_total{scope}`: calls refused AUTH_RATE_LIMITED by the refused-
 * authentication limiter without a key lookup, by the bucket that was dry (client_address or
 * key_id). Steady growth is someone guessing keys (or a client with a wrong one in a loop).
 */
export const authThrottled = counter<"scope">(
  "nexus_auth_throttled_total",
  "Calls refused with RESOURCE_EXHAUSTED AUTH_RATE_LIMITED before any key lookup, by the dry bucket (client_address or key_id).",
  ["scope"],
);
