import { degradedCondition, readyCondition, reconcilingCondition, setConditions } from "../controller/conditions.js";
import type { FailoverPhase, FailoverStatus } from "../crds/types.js";
import { assertTransition } from "./failover-machine.js";

const stamp = (d: Date) => d.toISOString().replace(/\.\d+Z$/, "Z");

/** Conditions for a phase: Ready on completed/rolled_back, Degraded on the failure path, Reconciling otherwise. */
function phaseConditions(previous: FailoverStatus, phase: FailoverPhase, message: string, generation: number, now: Date) {
  const failing = phase === "failed" || ((phase === "rollback_pending" || phase === "rolled_back") && previous.failureReason !== undefined);
  const reason = previous.failureReason ?? "Healthy";
  const terminal = phase === "completed" || phase === "rolled_back";
  const readyReason = phase === "completed" ? "FailoverCompleted" : phase === "rolled_back" ? "RolledBack" : "InProgress";
  return setConditions(
    previous.conditions,
    [
      readyCondition(terminal, readyReason, message, generation),
      reconcilingCondition(!terminal, terminal ? "Finished" : phaseReason(phase), message, generation),
      degradedCondition(failing, failing ? reason : "Healthy", failing ? message : "no failure", generation),
    ],
    now,
  );
}

function phaseReason(phase: FailoverPhase): string {
  return phase
    .split("_")
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join("");
}

/**
 * The status after moving `from → to` (checked against the machine): phase, phaseStartedAt,
 * one history entry, conditions; `extra` carries step results (lag, endpoints, failure reason).
 */
export function transitionStatus(
  previous: FailoverStatus | undefined,
  from: FailoverPhase,
  to: FailoverPhase,
  message: string,
  generation: number,
  now: Date,
  extra: Partial<FailoverStatus> = {},
): FailoverStatus {
  assertTransition(from, to);
  const base: FailoverStatus = { ...(previous ?? {}), ...extra };
  const history = [...(base.history ?? []), { phase: to, at: stamp(now), message }].slice(-32);
  return {
    ...base,
    phase: to,
    phaseStartedAt: stamp(now),
    ...(to === "freeze_writes" ? { startedAt: stamp(now) } : {}),
    ...(to === "completed" || to === "rolled_back" ? { finishedAt: stamp(now) } : {}),
    history,
    conditions: phaseConditions(base, to, message, generation, now),
  };
}

/** The status while staying in a phase (waiting for the lock, the cooldown, health), with a reason. */
export function waitingStatus(
  previous: FailoverStatus | undefined,
  phase: FailoverPhase,
  reason: string,
  message: string,
  generation: number,
  now: Date,
): FailoverStatus {
  const base: FailoverStatus = { ...(previous ?? {}), phase };
  // Waiting on the failure path (a rollback waiting for the services) keeps the failure visible.
  const failure = phase === "rollback_pending" || phase === "failed" ? base.failureReason : undefined;
  return {
    ...base,
    conditions: setConditions(
      base.conditions,
      [
        readyCondition(false, reason, message, generation),
        reconcilingCondition(true, reason, message, generation),
        failure
          ? degradedCondition(true, failure, `${failure}; ${message}`, generation)
          : degradedCondition(false, "Healthy", "no failure", generation),
      ],
      now,
    ),
  };
}

/** The status after an unexpected error inside a step (Kubernetes or database): Degraded, phase unchanged, retried. */
export function errorStatus(
  previous: FailoverStatus | undefined,
  phase: FailoverPhase,
  reason: string,
  message: string,
  generation: number,
  now: Date,
): FailoverStatus {
  const base: FailoverStatus = { ...(previous ?? {}), phase };
  return {
    ...base,
    conditions: setConditions(
      base.conditions,
      [
        readyCondition(false, reason, message, generation),
        reconcilingCondition(true, "Retrying", "retrying with backoff", generation),
        degradedCondition(true, reason, message, generation),
      ],
      now,
    ),
  };
}
