import type { Logger } from "pino";
import type { Database } from "../kernel/db/ports.js";
import { gauge } from "../kernel/metrics.js";

/** Keys count as "expiring soon" this long before their expiry. */
export const EXPIRING_SOON_SECONDS = 7 * 24 * 3600;

/**
 * `nexus_api_keys_expiring_soon{kind}`: usable API keys (not revoked, not rotating out) whose
 * `expires_at` falls within the next 7 days, by kind (`platform`, `tenant`). A platform key that
 * expires locks operators (and the operator's reconciles) out; the chart's alert
 * NexusPlatformKeyExpiringSoon fires on it.
 */
export const apiKeysExpiringSoon = gauge<"kind">(
  "nexus_api_keys_expiring_soon",
  "Usable API keys (not revoked, not rotating out) that expire within 7 days, by kind (platform or tenant).",
  ["kind"],
);

/**
 * Reads how many keys expire soon and sets the gauge (a periodic task of the auth service: one
 * indexed count per minute, not one per scrape).
 */
export async function refreshKeyExpiryMetric(db: Database, now: Date, logger?: Logger): Promise<void> {
  const { rows } = await db.query<{ kind: string; n: number }>(
    `SELECT kind, count(*)::int AS n FROM auth.api_keys
     WHERE revoked_at IS NULL AND grace_ends_at IS NULL
       AND expires_at > $1::timestamptz AND expires_at <= $1::timestamptz + $2 * interval '1 second'
     GROUP BY kind`,
    [now, EXPIRING_SOON_SECONDS],
  );
  const counts = new Map(rows.map((r) => [r.kind, Number(r.n)]));
  for (const kind of ["platform", "tenant"]) apiKeysExpiringSoon.set({ kind }, counts.get(kind) ?? 0);
  logger?.debug({ expiring: Object.fromEntries(counts) }, "API keys expiring within 7 days");
}
