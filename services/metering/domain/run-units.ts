import type { PlanName } from "../../kernel/context.js";

/**
 * The run-unit price list: how much one run costs in run units.
 *
 *   run units = max(cpu_seconds, gpu_seconds) × tier multiplier + tool calls × tool-call overhead
 *
 * (REQ-006). The tier multiplier is the plan's weight of a compute second; the tool-call
 * overhead is a flat charge per tool call (retrieval counts as one). Both come from
 * configuration (NEXUS_RUN_UNIT_TIER_MULTIPLIERS, NEXUS_RUN_UNIT_TOOL_CALL_OVERHEAD).
 */
export interface RunUnitRates {
  /** Multiplier of a compute second per plan. Default 1 for every plan. */
  tierMultipliers: Readonly<Record<PlanName, number>>;
  /** Run units charged per tool call. Default 0.1. */
  toolCallOverhead: number;
}

/** The default price list: a compute second is one run unit on every plan, a tool call 0.1. */
export const DEFAULT_RUN_UNIT_RATES: RunUnitRates = Object.freeze({
  tierMultipliers: Object.freeze({ free: 1, pro: 1, enterprise: 1 }),
  toolCallOverhead: 0.1,
});

/** What a run used, as the agent measured it. */
export interface RunResourceUse {
  cpuSeconds: number;
  gpuSeconds: number;
  toolCalls: number;
}

/** The run units of one run, with the rates applied (for the usage record). */
export interface RunUnitCharge {
  runUnits: number;
  tierMultiplier: number;
  toolCallOverhead: number;
}

/** Six decimals: enough for sub-millisecond CPU time, and sums stay free of float noise. */
function round6(n: number): number {
  return Math.round(n * 1e6) / 1e6;
}

/**
 * Run units of one run. Negative or non-finite measurements count as 0 (a clock glitch must
 * not credit a tenant); an unknown plan is charged at the free tier's multiplier.
 */
export function runUnits(use: RunResourceUse, plan: PlanName | undefined, rates: RunUnitRates = DEFAULT_RUN_UNIT_RATES): RunUnitCharge {
  const clean = (n: number) => (Number.isFinite(n) && n > 0 ? n : 0);
  const tierMultiplier = rates.tierMultipliers[plan ?? "free"];
  const compute = Math.max(clean(use.cpuSeconds), clean(use.gpuSeconds));
  return {
    runUnits: round6(compute * tierMultiplier + clean(use.toolCalls) * rates.toolCallOverhead),
    tierMultiplier,
    toolCallOverhead: rates.toolCallOverhead,
  };
}
