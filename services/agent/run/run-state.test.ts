import { describe, expect, it } from "vitest";
import { advance, INITIAL_RUN_STATE, type RunState, type StepResult } from "./run-state.js";

const ok: StepResult = { kind: "ok" };
const failed: StepResult = { kind: "failed" };
const cancelled: StepResult = { kind: "cancelled" };

function walk(results: StepResult[]): RunState[] {
  const states: RunState[] = [INITIAL_RUN_STATE];
  for (const r of results) states.push(advance(states.at(-1)!, r));
  return states;
}

describe("run state machine", () => {
  it("goes accepted → quota_check → retrieve → generate → persist → done and completes", () => {
    const states = walk([ok, ok, ok, ok, ok]);
    expect(states.map((s) => s.step)).toEqual(["accepted", "quota_check", "retrieve", "generate", "persist", "done"]);
    expect(states.at(-1)).toEqual({ step: "done", outcome: "completed" });
  });

  it("a refused quota ends the run before acceptance without persisting", () => {
    const states = walk([ok, failed]);
    expect(states.at(-1)).toEqual({ step: "done", outcome: "refused", failedStep: "quota_check" });
  });

  it("a failure after acceptance persists (the user message) and then finishes failed", () => {
    const states = walk([ok, ok, failed]);
    expect(states.at(-1)).toEqual({ step: "persist", outcome: "failed", failedStep: "retrieve" });
    expect(advance(states.at(-1)!, ok)).toEqual({ step: "done", outcome: "failed", failedStep: "retrieve" });
  });

  it("a cancellation during generation persists and finishes cancelled", () => {
    const states = walk([ok, ok, ok, cancelled, ok]);
    expect(states.at(-1)).toEqual({ step: "done", outcome: "cancelled", failedStep: "generate" });
  });

  it("a failed persist of an answer fails the run", () => {
    const states = walk([ok, ok, ok, ok, failed]);
    expect(states.at(-1)).toEqual({ step: "done", outcome: "failed", failedStep: "persist" });
  });

  it("refuses to advance a finished run", () => {
    const done = walk([ok, ok, ok, ok, ok]).at(-1)!;
    expect(() => advance(done, ok)).toThrow(/done/);
  });
});
