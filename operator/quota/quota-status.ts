import { Period, type QuotaWindow } from "../../gen/nexus/metering/v1/quota_pb.js";
import {
  degradedCondition,
  failedConditions,
  readyCondition,
  reconcilingCondition,
  setConditions,
  softCapReachedCondition,
  waitingConditions,
} from "../controller/conditions.js";
import type { QuotaStatus, QuotaWindowStatus } from "../crds/types.js";

/** What one reconcile of a Quota found. */
export type QuotaOutcome =
  | { kind: "applied"; tenantId: string; windows: QuotaWindow[] }
  | { kind: "waitingForTenant"; reason: "TenantNotFound" | "TenantNotReady"; message: string }
  | { kind: "failed"; reason: string; message: string };

function timestamp(t: { seconds: bigint; nanos: number } | undefined): string | undefined {
  return t ? new Date(Number(t.seconds) * 1000).toISOString().replace(/\.\d+Z$/, "Z") : undefined;
}

/** One metering window as status fields. */
export function windowStatus(w: QuotaWindow | undefined): QuotaWindowStatus | undefined {
  if (!w) return undefined;
  const resetsAt = timestamp(w.resetsAt);
  return {
    runsUsed: Number(w.runsUsed),
    ...(w.runsLimit !== undefined ? { runsLimit: Number(w.runsLimit) } : {}),
    runUnitsUsed: w.runUnitsUsed,
    ...(w.runUnitsLimit !== undefined ? { runUnitsLimit: w.runUnitsLimit } : {}),
    softCapReached: w.softCapReached,
    hardCapReached: w.hardCapReached,
    ...(resetsAt ? { resetsAt } : {}),
  };
}

/**
 * The LIMIT printer column: the limits in force, so it never says "unlimited" while one binds.
 * Runs per month as "100 runs" (USED counts this month's runs), a daily runs limit with its
 * window ("100 runs, 10/day", or "1000 runs/day" when only the day is limited). Run-unit
 * limits show the same way ("500 run units", "50 run units/day") when no runs limit is set;
 * status.daily / status.monthly always carry every limit.
 */
export function limitColumn(daily: QuotaWindowStatus | undefined, monthly: QuotaWindowStatus | undefined): string {
  return columns(daily, monthly).limit;
}

/**
 * The USED printer column, in the same shape as LIMIT so the two read side by side: "40 runs"
 * next to "100 runs", "40 runs, 3/day" next to "100 runs, 10/day", "3 runs/day" (today's runs)
 * next to "1000 runs/day"; run units likewise. With no limit at all, this month's runs.
 */
export function usedColumn(daily: QuotaWindowStatus | undefined, monthly: QuotaWindowStatus | undefined): string {
  return columns(daily, monthly).used;
}

function columns(daily: QuotaWindowStatus | undefined, monthly: QuotaWindowStatus | undefined): { used: string; limit: string } {
  const describe = (month: number | undefined, day: number | undefined, unit: string): string | undefined => {
    if (month !== undefined && day !== undefined) return `${month} ${unit}, ${day}/day`;
    if (month !== undefined) return `${month} ${unit}`;
    if (day !== undefined) return `${day} ${unit}/day`;
    return undefined;
  };
  // USED shows a window exactly when LIMIT does.
  const pick = (limitMonth: number | undefined, limitDay: number | undefined, usedMonth: number, usedDay: number, unit: string) => {
    const limit = describe(limitMonth, limitDay, unit);
    if (limit === undefined) return undefined;
    return { limit, used: describe(limitMonth === undefined ? undefined : usedMonth, limitDay === undefined ? undefined : usedDay, unit)! };
  };
  const round = (n: number) => Math.round(n * 100) / 100;
  return (
    pick(monthly?.runsLimit, daily?.runsLimit, monthly?.runsUsed ?? 0, daily?.runsUsed ?? 0, "runs") ??
    pick(monthly?.runUnitsLimit, daily?.runUnitsLimit, round(monthly?.runUnitsUsed ?? 0), round(daily?.runUnitsUsed ?? 0), "run units") ?? {
      limit: "unlimited",
      used: `${monthly?.runsUsed ?? 0} runs`,
    }
  );
}

/** The Quota status for an outcome: usage windows, USED/LIMIT columns, SoftCapReached and the common conditions. */
export function quotaStatus(previous: QuotaStatus | undefined, outcome: QuotaOutcome, generation: number, now: Date): QuotaStatus {
  const base: QuotaStatus = { ...(previous ?? {}) };
  switch (outcome.kind) {
    case "applied": {
      const daily = windowStatus(outcome.windows.find((w) => w.period === Period.DAY));
      const monthly = windowStatus(outcome.windows.find((w) => w.period === Period.MONTH));
      const soft = [daily, monthly].some((w) => w?.softCapReached);
      const hard = [daily, monthly].some((w) => w?.hardCapReached);
      return {
        ...base,
        phase: "Ready",
        tenantId: outcome.tenantId,
        ...(daily ? { daily } : {}),
        ...(monthly ? { monthly } : {}),
        ...columns(daily, monthly),
        lastSyncedAt: now.toISOString().replace(/\.\d+Z$/, "Z"),
        conditions: setConditions(
          previous?.conditions,
          [
            readyCondition(true, "QuotaApplied", "limits are in force in the metering service", generation),
            reconcilingCondition(false, "Reconciled", "spec applied", generation),
            degradedCondition(false, "Healthy", "last reconcile succeeded", generation),
            softCapReachedCondition(
              soft,
              hard ? "HardCapReached" : soft ? "SoftCapReached" : "BelowSoftCap",
              hard ? "usage reached a hard limit" : soft ? "usage reached the soft cap of a limit" : "usage is below the soft cap",
              generation,
            ),
          ],
          now,
        ),
      };
    }
    case "waitingForTenant":
      return {
        ...base,
        phase: "Pending",
        conditions: waitingConditions(previous?.conditions, outcome.reason, outcome.message, generation, now),
      };
    case "failed":
      return {
        ...base,
        phase: "Degraded",
        conditions: failedConditions(previous?.conditions, outcome.reason, outcome.message, generation, now),
      };
    default: {
      const _exhaustive: never = outcome;
      return _exhaustive;
    }
  }
}
