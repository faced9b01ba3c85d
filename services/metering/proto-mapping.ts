import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Plan } from "../../gen/nexus/auth/v1/tenant_pb.js";
import { RunOutcome } from "../../gen/nexus/events/v1/metering_events_pb.js";
import { type UsageTotals as UsageTotalsMessage, UsageTotalsSchema } from "../../gen/nexus/metering/v1/metering_service_pb.js";
import {
  HardCapMode as HardCapModeProto,
  Period,
  type Quota,
  QuotaDecision,
  QuotaMetric as QuotaMetricProto,
  QuotaSchema,
  QuotaSource,
  type QuotaWindow,
  QuotaWindowSchema,
} from "../../gen/nexus/metering/v1/quota_pb.js";
import type { PlanName } from "../kernel/context.js";
import type { EffectiveQuota, HardCapMode, QuotaMetric, WindowStanding } from "./domain/quota.js";
import type { PeriodKind } from "./domain/quota-period.js";
import type { Reservation } from "./domain/reservation.js";
import type { RunOutcome as Outcome, UsageTotals } from "./ports.js";

/** Proto Period of a period kind. */
export function periodToProto(p: PeriodKind): Period {
  return p === "day" ? Period.DAY : Period.MONTH;
}

/** Period kind of a proto Period; undefined for UNSPECIFIED. */
export function periodFromProto(p: Period): PeriodKind | undefined {
  return p === Period.DAY ? "day" : p === Period.MONTH ? "month" : undefined;
}

/** Proto QuotaMetric of a metric. */
export function metricToProto(m: QuotaMetric): QuotaMetricProto {
  return m === "runs" ? QuotaMetricProto.RUNS : QuotaMetricProto.RUN_UNITS;
}

/** Proto HardCapMode of a mode. */
export function hardCapModeToProto(m: HardCapMode): HardCapModeProto {
  return m === "observe" ? HardCapModeProto.OBSERVE : HardCapModeProto.ENFORCE;
}

/** Mode of a proto HardCapMode (UNSPECIFIED means enforce). */
export function hardCapModeFromProto(m: HardCapModeProto): HardCapMode {
  return m === HardCapModeProto.OBSERVE ? "observe" : "enforce";
}

/** Proto QuotaDecision of an admission decision. */
export function decisionToProto(d: Reservation["decision"]): QuotaDecision {
  switch (d) {
    case "allowed":
      return QuotaDecision.ALLOWED;
    case "soft_cap":
      return QuotaDecision.ALLOWED_SOFT_CAP;
    case "overage":
      return QuotaDecision.ALLOWED_OVERAGE;
    default: {
      const _exhaustive: never = d;
      return _exhaustive;
    }
  }
}

const PLAN_PROTO: Readonly<Record<PlanName, Plan>> = { free: Plan.FREE, pro: Plan.PRO, enterprise: Plan.ENTERPRISE };

/** Proto Plan of a plan name. */
export function planToProto(p: PlanName): Plan {
  return PLAN_PROTO[p];
}

/** Plan name of a proto Plan; undefined for UNSPECIFIED. */
export function planFromProto(p: Plan): PlanName | undefined {
  return p === Plan.FREE ? "free" : p === Plan.PRO ? "pro" : p === Plan.ENTERPRISE ? "enterprise" : undefined;
}

/** Proto RunOutcome of an outcome. */
export function outcomeToProto(o: Outcome): RunOutcome {
  return o === "completed" ? RunOutcome.COMPLETED : o === "failed" ? RunOutcome.FAILED : RunOutcome.CANCELLED;
}

/** Outcome of a proto RunOutcome (UNSPECIFIED reads as completed, the charged case). */
export function outcomeFromProto(o: RunOutcome): Outcome {
  return o === RunOutcome.FAILED ? "failed" : o === RunOutcome.CANCELLED ? "cancelled" : "completed";
}

/** The Quota message init of a tenant's effective settings. */
export function quotaInit(tenantId: string, q: EffectiveQuota): MessageInitShape<typeof QuotaSchema> {
  const limits: MessageInitShape<typeof QuotaSchema>["limits"] = {};
  if (q.limits.day.runs !== undefined) limits.dailyRuns = BigInt(q.limits.day.runs);
  if (q.limits.month.runs !== undefined) limits.monthlyRuns = BigInt(q.limits.month.runs);
  if (q.limits.day.runUnits !== undefined) limits.dailyRunUnits = q.limits.day.runUnits;
  if (q.limits.month.runUnits !== undefined) limits.monthlyRunUnits = q.limits.month.runUnits;
  return {
    tenantId,
    limits,
    softCapRatio: q.softCapRatio,
    hardCapMode: hardCapModeToProto(q.hardCapMode),
    source: q.source === "custom" ? QuotaSource.CUSTOM : QuotaSource.PLAN,
    ...(q.updatedAt ? { updatedAt: timestampFromDate(q.updatedAt) } : {}),
  };
}

/** The Quota message of a tenant's effective settings. */
export function quotaToMessage(tenantId: string, q: EffectiveQuota): Quota {
  return create(QuotaSchema, quotaInit(tenantId, q));
}

/** The QuotaWindow message of a window's standing. */
export function windowToMessage(s: WindowStanding): QuotaWindow {
  return create(QuotaWindowSchema, {
    period: periodToProto(s.period),
    periodStart: timestampFromDate(s.periodStart),
    resetsAt: timestampFromDate(s.resetsAt),
    runsUsed: BigInt(s.runsUsed),
    runsReserved: BigInt(s.runsReserved),
    ...(s.runsLimit !== undefined ? { runsLimit: BigInt(s.runsLimit) } : {}),
    ...(s.runsRemaining !== undefined ? { runsRemaining: BigInt(s.runsRemaining) } : {}),
    runUnitsUsed: s.runUnitsUsed,
    ...(s.runUnitsLimit !== undefined ? { runUnitsLimit: s.runUnitsLimit } : {}),
    ...(s.runUnitsRemaining !== undefined ? { runUnitsRemaining: s.runUnitsRemaining } : {}),
    softCapReached: s.softCapReached,
    hardCapReached: s.hardCapReached,
  });
}

/** The UsageTotals message of stored totals. */
export function totalsToMessage(t: UsageTotals): UsageTotalsMessage {
  return create(UsageTotalsSchema, {
    runsCompleted: t.runsCompleted,
    runsFailed: t.runsFailed,
    runUnits: t.runUnits,
    cpuSeconds: t.cpuSeconds,
    gpuSeconds: t.gpuSeconds,
    toolCalls: t.toolCalls,
    inputTokens: t.inputTokens,
    outputTokens: t.outputTokens,
  });
}
