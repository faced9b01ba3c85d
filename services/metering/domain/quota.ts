import type { PlanName } from "../../kernel/context.js";
import { type PeriodKind, periodEnd } from "./quota-period.js";

/**
 * The quota aggregate of one tenant: its settings (plan defaults or SetQuota's custom values)
 * and the counters of its day and month windows. Pure: no I/O here; the application loads
 * the state under the tenant's lock, asks {@link decideAdmission}, and writes the result.
 */

// ---------------------------------------------------------------- settings

/** What happens at a hard limit. */
export type HardCapMode = "enforce" | "observe";

/** Which counter a limit applies to. */
export type QuotaMetric = "runs" | "run_units";

/** Limits of one period; undefined = unlimited. */
export interface PeriodLimits {
  runs: number | undefined;
  runUnits: number | undefined;
}

/** Custom settings stored by SetQuota; an undefined limit falls back to the plan. */
export interface CustomQuota {
  dailyRuns?: number | undefined;
  monthlyRuns?: number | undefined;
  dailyRunUnits?: number | undefined;
  monthlyRunUnits?: number | undefined;
  softCapRatio?: number | undefined;
  hardCapMode: HardCapMode;
  updatedAt: Date;
}

/** The tenant's plan as metering needs it. */
export interface TenantPlan {
  plan: PlanName;
  /** Runs per UTC month the plan (with overrides) includes; undefined = unlimited. */
  monthlyRunAllowance: number | undefined;
}

/** The settings in force for a tenant. */
export interface EffectiveQuota {
  limits: Readonly<Record<PeriodKind, PeriodLimits>>;
  softCapRatio: number;
  hardCapMode: HardCapMode;
  source: "plan" | "custom";
  /** Unset while the plan's defaults apply. */
  updatedAt: Date | undefined;
}

/**
 * The effective quota: custom values where SetQuota gave them, else the plan's defaults.
 * Plans define only a monthly runs limit (free 100, pro 5,000, enterprise unlimited, or the
 * tenant's override); every other limit is unlimited unless set.
 */
export function effectiveQuota(custom: CustomQuota | undefined, plan: TenantPlan, defaultSoftCapRatio: number): EffectiveQuota {
  // A SetQuota that sets nothing (no limit, no soft cap, enforce) is how a tenant returns to its plan.
  const customized =
    custom !== undefined &&
    (custom.dailyRuns !== undefined ||
      custom.monthlyRuns !== undefined ||
      custom.dailyRunUnits !== undefined ||
      custom.monthlyRunUnits !== undefined ||
      custom.softCapRatio !== undefined ||
      custom.hardCapMode !== "enforce");
  return {
    limits: {
      day: { runs: custom?.dailyRuns, runUnits: custom?.dailyRunUnits },
      month: { runs: custom?.monthlyRuns ?? plan.monthlyRunAllowance, runUnits: custom?.monthlyRunUnits },
    },
    softCapRatio: custom?.softCapRatio ?? defaultSoftCapRatio,
    hardCapMode: custom?.hardCapMode ?? "enforce",
    source: customized ? "custom" : "plan",
    updatedAt: custom?.updatedAt,
  };
}

// ---------------------------------------------------------------- settings: decide and evolve

/** The settings part of the aggregate: SetQuota's custom values and who stored them. */
export interface QuotaSettings {
  custom: CustomQuota;
  /** API key id of the caller that stored them. */
  updatedBy: string;
}

/** SetQuota: replace a tenant's custom settings (the plan says what they replace). */
export interface SetQuota {
  type: "SetQuota";
  tenantId: string;
  custom: Omit<CustomQuota, "updatedAt">;
  plan: TenantPlan;
  defaultSoftCapRatio: number;
  /** API key id of the caller. */
  actor: string;
  now: Date;
}

/** A tenant's settings were replaced (published as QuotaUpdated, with the effective settings before and after). */
export interface QuotaSettingsReplaced {
  type: "QuotaSettingsReplaced";
  tenantId: string;
  custom: CustomQuota;
  updatedBy: string;
  previous: EffectiveQuota;
  quota: EffectiveQuota;
}

/**
 * decide: SetQuota always records its replacement, also of equal values (QuotaUpdated tells
 * who set the quota and when, which the audit trail keeps).
 */
export function decideQuotaSettings(command: SetQuota, state: QuotaSettings | undefined): QuotaSettingsReplaced[] {
  const custom: CustomQuota = { ...command.custom, updatedAt: command.now };
  return [
    {
      type: "QuotaSettingsReplaced",
      tenantId: command.tenantId,
      custom,
      updatedBy: command.actor,
      previous: effectiveQuota(state?.custom, command.plan, command.defaultSoftCapRatio),
      quota: effectiveQuota(custom, command.plan, command.defaultSoftCapRatio),
    },
  ];
}

/** evolve: the settings after a replacement. */
export function evolveQuotaSettings(_state: QuotaSettings | undefined, event: QuotaSettingsReplaced): QuotaSettings {
  return { custom: event.custom, updatedBy: event.updatedBy };
}

// ---------------------------------------------------------------- state

/** Counters of one period window. Reserved = admitted runs not yet settled (in flight). */
export interface WindowCounters {
  period: PeriodKind;
  periodStart: Date;
  runsUsed: number;
  runsReserved: number;
  runUnitsUsed: number;
  runUnitsReserved: number;
}

/** An empty window. */
export function emptyWindow(period: PeriodKind, periodStart: Date): WindowCounters {
  return { period, periodStart, runsUsed: 0, runsReserved: 0, runUnitsUsed: 0, runUnitsReserved: 0 };
}

/** A change to a window's counters. */
export interface WindowDelta {
  runsUsed?: number;
  runsReserved?: number;
  runUnitsUsed?: number;
  runUnitsReserved?: number;
}

/** evolve: a window after a delta (counters never go below 0). */
export function applyDelta(w: WindowCounters, d: WindowDelta): WindowCounters {
  const add = (a: number, b = 0) => Math.max(0, round6(a + b));
  return {
    ...w,
    runsUsed: add(w.runsUsed, d.runsUsed),
    runsReserved: add(w.runsReserved, d.runsReserved),
    runUnitsUsed: add(w.runUnitsUsed, d.runUnitsUsed),
    runUnitsReserved: add(w.runUnitsReserved, d.runUnitsReserved),
  };
}

function round6(n: number): number {
  return Math.round(n * 1e6) / 1e6;
}

/** How a window stands against its limits (what QuotaWindow reports). */
export interface WindowStanding {
  period: PeriodKind;
  periodStart: Date;
  resetsAt: Date;
  runsUsed: number;
  runsReserved: number;
  runsLimit: number | undefined;
  runsRemaining: number | undefined;
  runUnitsUsed: number;
  runUnitsLimit: number | undefined;
  runUnitsRemaining: number | undefined;
  softCapReached: boolean;
  hardCapReached: boolean;
  /** Highest (used + reserved) / limit over the limited metrics; undefined when unlimited. */
  usedRatio: number | undefined;
}

/** The standing of a window under a quota. Reservations count against limits. */
export function windowStanding(w: WindowCounters, quota: EffectiveQuota): WindowStanding {
  const limits = quota.limits[w.period];
  const runsLoad = w.runsUsed + w.runsReserved;
  const unitsLoad = round6(w.runUnitsUsed + w.runUnitsReserved);
  const ratios: number[] = [];
  if (limits.runs !== undefined) ratios.push(limits.runs === 0 ? Infinity : runsLoad / limits.runs);
  if (limits.runUnits !== undefined) ratios.push(limits.runUnits === 0 ? Infinity : unitsLoad / limits.runUnits);
  const usedRatio = ratios.length === 0 ? undefined : Math.max(...ratios);
  const hard = (limits.runs !== undefined && runsLoad >= limits.runs) || (limits.runUnits !== undefined && unitsLoad >= limits.runUnits);
  return {
    period: w.period,
    periodStart: w.periodStart,
    resetsAt: periodEnd(w.period, w.periodStart),
    runsUsed: w.runsUsed,
    runsReserved: w.runsReserved,
    runsLimit: limits.runs,
    runsRemaining: limits.runs === undefined ? undefined : Math.max(0, limits.runs - runsLoad),
    runUnitsUsed: w.runUnitsUsed,
    runUnitsLimit: limits.runUnits,
    runUnitsRemaining: limits.runUnits === undefined ? undefined : Math.max(0, round6(limits.runUnits - unitsLoad)),
    softCapReached: hard || (usedRatio !== undefined && usedRatio >= quota.softCapRatio),
    hardCapReached: hard,
    usedRatio: usedRatio === undefined ? undefined : Math.min(usedRatio, 1e6),
  };
}

// ---------------------------------------------------------------- commands and decisions

/** CheckQuota as the aggregate sees it. */
export interface AdmitRun {
  estimatedRunUnits: number;
  now: Date;
}

/** A limit a run would go over (or went over, in observe mode). */
export interface LimitBreach {
  period: PeriodKind;
  periodStart: Date;
  resetsAt: Date;
  metric: QuotaMetric;
  limit: number;
  /** Usage including reservations, before this run. */
  used: number;
  /** limit − used, never below 0. */
  remaining: number;
}

/** A limit whose soft cap the usage has reached (the event fires once per period). */
export interface SoftCapMark {
  period: PeriodKind;
  periodStart: Date;
  metric: QuotaMetric;
  limit: number;
  used: number;
}

/** The answer to {@link AdmitRun}: expected outcomes are values, not exceptions. */
export type Admission =
  | {
      kind: "admitted";
      decision: "allowed" | "soft_cap" | "overage";
      /** Observe mode: the first limit the run goes over. */
      overage: LimitBreach | undefined;
      /** Every limit at or above its soft cap once the run is reserved. */
      softCaps: SoftCapMark[];
      /** What to add to each window. */
      deltas: Readonly<Record<PeriodKind, WindowDelta>>;
    }
  | { kind: "refused"; breach: LimitBreach };

/**
 * Breaches are checked month first, so the reported (and Retry-After) limit is the one that
 * frees up last when both periods are exhausted.
 */
const CHECK_ORDER: ReadonlyArray<[PeriodKind, QuotaMetric]> = [
  ["month", "runs"],
  ["month", "run_units"],
  ["day", "runs"],
  ["day", "run_units"],
];

/**
 * decide: may one more run start? A run breaches the runs limit when used + reserved + 1 >
 * limit, and the run-units limit when used + reserved + its estimate > limit (or usage is
 * already at the limit). Enforce mode refuses; observe mode admits and reports the overage.
 */
export function decideAdmission(
  command: AdmitRun,
  quota: EffectiveQuota,
  windows: Readonly<Record<PeriodKind, WindowCounters>>,
): Admission {
  const estimate = Math.max(0, command.estimatedRunUnits);
  let breach: LimitBreach | undefined;
  for (const [period, metric] of CHECK_ORDER) {
    const w = windows[period];
    const limit = metric === "runs" ? quota.limits[period].runs : quota.limits[period].runUnits;
    if (limit === undefined) continue;
    const used = metric === "runs" ? w.runsUsed + w.runsReserved : round6(w.runUnitsUsed + w.runUnitsReserved);
    const over = metric === "runs" ? used + 1 > limit : used >= limit || used + estimate > limit;
    if (over) {
      breach = {
        period,
        periodStart: w.periodStart,
        resetsAt: periodEnd(period, w.periodStart),
        metric,
        limit,
        used,
        remaining: Math.max(0, round6(limit - used)),
      };
      break;
    }
  }
  if (breach && quota.hardCapMode === "enforce") return { kind: "refused", breach };

  const delta: WindowDelta = { runsReserved: 1, runUnitsReserved: estimate };
  const softCaps: SoftCapMark[] = [];
  for (const period of ["day", "month"] as const) {
    const after = applyDelta(windows[period], delta);
    const limits = quota.limits[period];
    const check = (metric: QuotaMetric, limit: number | undefined, used: number) => {
      if (limit !== undefined && used >= limit * quota.softCapRatio) {
        softCaps.push({ period, periodStart: after.periodStart, metric, limit, used });
      }
    };
    check("runs", limits.runs, after.runsUsed + after.runsReserved);
    check("run_units", limits.runUnits, round6(after.runUnitsUsed + after.runUnitsReserved));
  }
  return {
    kind: "admitted",
    decision: breach ? "overage" : softCaps.length > 0 ? "soft_cap" : "allowed",
    overage: breach,
    softCaps,
    deltas: { day: delta, month: delta },
  };
}

/**
 * The soft caps reached after usage was added to a window (run units arrive after the run,
 * so the run-units soft cap may be crossed by a usage record rather than by an admission).
 */
export function softCapsReached(w: WindowCounters, quota: EffectiveQuota): SoftCapMark[] {
  const limits = quota.limits[w.period];
  const marks: SoftCapMark[] = [];
  const runs = w.runsUsed + w.runsReserved;
  const units = round6(w.runUnitsUsed + w.runUnitsReserved);
  if (limits.runs !== undefined && runs >= limits.runs * quota.softCapRatio) {
    marks.push({ period: w.period, periodStart: w.periodStart, metric: "runs", limit: limits.runs, used: runs });
  }
  if (limits.runUnits !== undefined && units >= limits.runUnits * quota.softCapRatio) {
    marks.push({ period: w.period, periodStart: w.periodStart, metric: "run_units", limit: limits.runUnits, used: units });
  }
  return marks;
}
