import { createHash } from "node:crypto";

/**
 * A stable 64-bit key for `pg_advisory_lock(bigint)` and friends, derived from a name
 * (first 8 bytes of its SHA-256, signed). Every process computes the same key for the same
 * name, so replicas contend on the same lock without a registry of lock numbers.
 */
export function advisoryKey(name: string): bigint {
  return createHash("sha256").update(name).digest().readBigInt64BE(0);
}
