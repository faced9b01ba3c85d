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
