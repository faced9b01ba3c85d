import type { MessageInitShape } from "@bufbuild/protobuf";
import type { SetQuotaRequestSchema } from "../../gen/nexus/metering/v1/metering_service_pb.js";
import { HardCapMode, type Quota as NexusQuota, QuotaSource } from "../../gen/nexus/metering/v1/quota_pb.js";
import type { QuotaSpec } from "../crds/types.js";

/** Default soft-cap ratio when the spec leaves it out (the CRD defaults it too). */
export const DEFAULT_SOFT_CAP_RATIO = 0.8;

/** The SetQuota request a Quota spec stands for. */
export function setQuotaRequest(tenantId: string, spec: QuotaSpec): MessageInitShape<typeof SetQuotaRequestSchema> {
  return {
    tenantId,
    ...(spec.daily?.runs !== undefined ? { dailyRunsLimit: BigInt(spec.daily.runs) } : {}),
    ...(spec.monthly?.runs !== undefined ? { monthlyRunsLimit: BigInt(spec.monthly.runs) } : {}),
    ...(spec.daily?.runUnits !== undefined ? { dailyRunUnitsLimit: spec.daily.runUnits } : {}),
    ...(spec.monthly?.runUnits !== undefined ? { monthlyRunUnitsLimit: spec.monthly.runUnits } : {}),
    softCapRatio: spec.softCapRatio ?? DEFAULT_SOFT_CAP_RATIO,
    hardCapMode: spec.hardCapMode === "Observe" ? HardCapMode.OBSERVE : HardCapMode.ENFORCE,
  };
}

/**
 * Whether the quota in force already is what the spec asks for: custom settings, the same
 * ratio and mode, and every limit the spec sets equal (limits the spec leaves out follow the
 * plan, whatever their value).
 */
export function quotaMatches(current: NexusQuota | undefined, spec: QuotaSpec): boolean {
  if (!current || current.source !== QuotaSource.CUSTOM) return false;
  const want = setQuotaRequest(current.tenantId, spec);
  const l = current.limits;
  if (Math.abs(current.softCapRatio - (want.softCapRatio ?? DEFAULT_SOFT_CAP_RATIO)) > 1e-9) return false;
  if (current.hardCapMode !== want.hardCapMode) return false;
  if (want.dailyRunsLimit !== undefined && l?.dailyRuns !== want.dailyRunsLimit) return false;
  if (want.monthlyRunsLimit !== undefined && l?.monthlyRuns !== want.monthlyRunsLimit) return false;
  if (want.dailyRunUnitsLimit !== undefined && l?.dailyRunUnits !== want.dailyRunUnitsLimit) return false;
  if (want.monthlyRunUnitsLimit !== undefined && l?.monthlyRunUnits !== want.monthlyRunUnitsLimit) return false;
  return true;
}
