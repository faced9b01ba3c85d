import type { ConnectError } from "@connectrpc/connect";
import { RetryInfoSchema } from "../../../gen/google/rpc/error_details_pb.js";
import { domainError, errorMetadata } from "../../kernel/errors.js";
import type { QuotaAdmission } from "../ports.js";

/** Prefix of the quota headers on Run responses. */
export const QUOTA_HEADER_PREFIX = "x-nexus-quota";

/**
 * The quota state of an admitted run as response headers (sent before the first event):
 *
 * - `x-nexus-quota-decision`: allowed, allowed_soft_cap, allowed_overage, or unchecked
 *   (metering unreachable and NEXUS_AGENT_QUOTA_FAIL_OPEN on);
 * - per period (`day`, `month`): `x-nexus-quota-<period>-used` (runs used + in flight,
 *   this one included), `-limit` and `-remaining` (absent when unlimited), `-reset`
 *   (RFC 3339 time the counters reset).
 */
export function quotaHeaders(admission: QuotaAdmission): [string, string][] {
  if (admission.kind === "unchecked") return [[`${QUOTA_HEADER_PREFIX}-decision`, "unchecked"]];
  const out: [string, string][] = [[`${QUOTA_HEADER_PREFIX}-decision`, admission.decision]];
  for (const w of admission.windows) {
    const p = `${QUOTA_HEADER_PREFIX}-${w.period}`;
    out.push([`${p}-used`, String(w.runsUsed + w.runsReserved)]);
    if (w.runsLimit !== undefined) out.push([`${p}-limit`, String(w.runsLimit)]);
    if (w.runsRemaining !== undefined) out.push([`${p}-remaining`, String(w.runsRemaining)]);
    if (w.resetsAt !== undefined) out.push([`${p}-reset`, w.resetsAt.toISOString()]);
  }
  return out;
}

/**
 * The refusal a client gets when metering refuses the run: RESOURCE_EXHAUSTED reason
 * QUOTA_EXCEEDED with metering's ErrorInfo metadata (period, limit, used, remaining, metric)
 * and RetryInfo, plus the same figures as `x-nexus-quota-*` headers (decision `refused`).
 */
export function quotaRefusal(err: ConnectError): ConnectError {
  const meta = errorMetadata(err);
  const retry = err.findDetails(RetryInfoSchema)[0]?.retryDelay;
  const refusal = domainError("QUOTA_EXCEEDED", err.rawMessage || "the tenant's run quota is used up", meta, {
    cause: err,
    ...(retry ? { retryAfterMs: Number(retry.seconds) * 1000 + retry.nanos / 1e6 } : {}),
  });
  refusal.metadata.set(`${QUOTA_HEADER_PREFIX}-decision`, "refused");
  const period = meta.period?.toLowerCase().replace(/^period_/, "");
  if (period === "day" || period === "month") {
    for (const key of ["limit", "used", "remaining"] as const) {
      const v = meta[key];
      if (v !== undefined) refusal.metadata.set(`${QUOTA_HEADER_PREFIX}-${period}-${key}`, v);
    }
  }
  return refusal;
}
