/**
 * The run state machine, pure: which step comes next after a step's outcome.
 *
 *   accepted → quota_check → retrieve → generate → persist → done
 *
 * `accepted` is admission (principal, bulkhead, provider and model within the plan, the
 * session); `quota_check` reserves the run with metering. Both happen before the first event
 * is sent, so their refusals are ordinary RPC errors (the contract's "failures before
 * acceptance") and nothing is stored. From `retrieve` on the run is accepted: a failure or a
 * cancellation still goes through `persist` (the user's message and RunFailed/RunCancelled),
 * and the stream ends with `error` and `done`.
 */

/** The steps, in order. */
export const RUN_STEPS = ["accepted", "quota_check", "retrieve", "generate", "persist", "done"] as const;
/** One of {@link RUN_STEPS}. */
export type RunStep = (typeof RUN_STEPS)[number];

/** How a run ends (or "running" while it has not). "refused": failed before acceptance. */
export type RunOutcome = "running" | "completed" | "failed" | "cancelled" | "refused";

/** Where a run is. */
export interface RunState {
  step: RunStep;
  outcome: RunOutcome;
  /** The step that failed or was cancelled, once one did. */
  failedStep?: RunStep;
}

/** What a step's work came to. */
export type StepResult = { kind: "ok" } | { kind: "failed" } | { kind: "cancelled" };

/** The state of a run that was just admitted. */
export const INITIAL_RUN_STATE: RunState = Object.freeze({ step: "accepted", outcome: "running" });

const NEXT: Readonly<Record<Exclude<RunStep, "done">, RunStep>> = {
  accepted: "quota_check",
  quota_check: "retrieve",
  retrieve: "generate",
  generate: "persist",
  persist: "done",
};

/** True for steps after which the client has seen `accepted` (failures then persist and stream `error`). */
export function isAccepted(step: RunStep): boolean {
  return step !== "accepted" && step !== "quota_check";
}

/** The state after `state.step` ended with `result`. Throws when the run is already done. */
export function advance(state: RunState, result: StepResult): RunState {
  const { step } = state;
  if (step === "done") throw new Error("the run is done: no step follows");

  if (step === "persist") {
    // Persisting ends every accepted run; a failed persist of an answer fails the run.
    if (state.outcome === "running") {
      return result.kind === "ok" ? { step: "done", outcome: "completed" } : { step: "done", outcome: "failed", failedStep: "persist" };
    }
    return { ...state, step: "done" };
  }

  switch (result.kind) {
    case "ok":
      return { ...state, step: NEXT[step] };
    case "failed":
    case "cancelled": {
      if (!isAccepted(step)) return { step: "done", outcome: "refused", failedStep: step };
      return { step: "persist", outcome: result.kind === "failed" ? "failed" : "cancelled", failedStep: step };
    }
    default: {
      const exhaustive: never = result;
      throw new Error(`unknown step result ${JSON.stringify(exhaustive)}`);
    }
  }
}
