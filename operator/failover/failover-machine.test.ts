import { describe, expect, it } from "vitest";
import { FAILOVER_PHASES } from "../crds/failover-crd.js";
import { canTransition, FAILOVER_TRANSITIONS, precheckDecision } from "./failover-machine.js";

describe("failover state machine", () => {
  it("allows exactly the issue's transitions", () => {
    const allowed = FAILOVER_PHASES.flatMap((from) =>
      FAILOVER_PHASES.filter((to) => canTransition(from, to)).map((to) => `${from}->${to}`),
    );
    expect(allowed.sort()).toEqual(
      [
        "idle->freeze_writes",
        "freeze_writes->precheck",
        "precheck->promoting",
        "promoting->verification",
        "verification->completed",
        "freeze_writes->failed",
        "precheck->failed",
        "promoting->failed",
        "verification->failed",
        "failed->rollback_pending",
        "rollback_pending->rolled_back",
        "completed->rollback_pending",
      ].sort(),
    );
    expect(FAILOVER_TRANSITIONS.rolled_back).toEqual([]);
    expect(canTransition("idle", "completed")).toBe(false);
    expect(canTransition("completed", "idle")).toBe(false);
  });

  it("refuses a planned failover whose target lags over the threshold (REPLICATION_LAG_TOO_HIGH)", () => {
    expect(precheckDecision({ lagSeconds: 3, maxLagSeconds: 10, mode: "Planned" })).toEqual({ kind: "proceed" });
    expect(precheckDecision({ lagSeconds: 10, maxLagSeconds: 10, mode: "Planned" })).toEqual({ kind: "proceed" });
    expect(precheckDecision({ lagSeconds: 42.5, maxLagSeconds: 10, mode: "Planned" })).toEqual({
      kind: "refuse",
      reason: "REPLICATION_LAG_TOO_HIGH",
      message: "target replica lags 42.5 s behind, threshold 10 s",
    });
  });

  it("lets an emergency failover through a high lag, saying so", () => {
    const d = precheckDecision({ lagSeconds: 42.5, maxLagSeconds: 10, mode: "Emergency" });
    expect(d.kind).toBe("proceed");
    expect(d.kind === "proceed" && d.note).toContain("Emergency");
  });
});
