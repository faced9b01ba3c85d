import type { FailoverPhase } from "../crds/types.js";

/**
 * The failover state machine's transitions, and only these:
 *
 *   idle → freeze_writes → precheck → promoting → verification → completed
 *   freeze_writes | precheck | promoting | verification → failed
 *   failed → rollback_pending → rolled_back
 *   completed → rollback_pending (spec.rollback: true)
 */
export const FAILOVER_TRANSITIONS: Readonly<Record<FailoverPhase, readonly FailoverPhase[]>> = Object.freeze({
  idle: ["freeze_writes"],
  freeze_writes: ["precheck", "failed"],
  precheck: ["promoting", "failed"],
  promoting: ["verification", "failed"],
  verification: ["completed", "failed"],
  completed: ["rollback_pending"],
  failed: ["rollback_pending"],
  rollback_pending: ["rolled_back"],
  rolled_back: [],
});

/** Phases in which a failover holds the one-at-a-time Lease. */
export const ACTIVE_PHASES: readonly FailoverPhase[] = [
  "freeze_writes",
  "precheck",
  "promoting",
  "verification",
  "failed",
  "rollback_pending",
];

/** Whether `from → to` is one of the machine's transitions. */
export function canTransition(from: FailoverPhase, to: FailoverPhase): boolean {
  return FAILOVER_TRANSITIONS[from].includes(to);
}

/** Throws when `from → to` is not allowed (a programming error: the reconcile never asks for one). */
export function assertTransition(from: FailoverPhase, to: FailoverPhase): void {
  if (!canTransition(from, to)) throw new Error(`failover transition ${from} -> ${to} is not allowed`);
}

/** Machine reasons a failover fails with (status.failureReason, condition reasons). */
export const FAILOVER_FAILURES = {
  unknownRegion: "UNKNOWN_REGION",
  targetAlreadyActive: "TARGET_ALREADY_ACTIVE",
  targetUnreachable: "TARGET_UNREACHABLE",
  lagTooHigh: "REPLICATION_LAG_TOO_HIGH",
  promotionFailed: "PROMOTION_FAILED",
  verificationFailed: "VERIFICATION_FAILED",
  lockLost: "LOCK_LOST",
} as const;

/** The precheck's verdict on the target's replication lag. */
export type PrecheckDecision = { kind: "proceed"; note?: string } | { kind: "refuse"; reason: string; message: string };

/**
 * Decides the lag check: Planned mode refuses with REPLICATION_LAG_TOO_HIGH when the target lags
 * more than the threshold; Emergency mode (the source is gone) proceeds and notes the lag.
 */
export function precheckDecision(input: { lagSeconds: number; maxLagSeconds: number; mode: "Planned" | "Emergency" }): PrecheckDecision {
  if (input.lagSeconds <= input.maxLagSeconds) return { kind: "proceed" };
  const message = `target replica lags ${input.lagSeconds.toFixed(1)} s behind, threshold ${input.maxLagSeconds} s`;
  if (input.mode === "Emergency") return { kind: "proceed", note: `${message}; proceeding (Emergency mode)` };
  return { kind: "refuse", reason: FAILOVER_FAILURES.lagTooHigh, message };
}
