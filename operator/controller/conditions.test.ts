import { describe, expect, it } from "vitest";
import { conditionTransitions, degradedCondition, readyCondition, setConditions } from "./conditions.js";

const t0 = new Date("2025-01-01T00:00:00Z");
const t1 = new Date("2025-01-01T00:05:00Z");

describe("conditions", () => {
  it("keep lastTransitionTime while the status stays, move it when the status changes", () => {
    const first = setConditions(undefined, [readyCondition(false, "Pending", "waiting", 1)], t0);
    expect(first[0]).toMatchObject({ type: "Ready", status: "False", lastTransitionTime: "2025-01-01T00:00:00Z", observedGeneration: 1 });
    const same = setConditions(first, [readyCondition(false, "StillPending", "still", 2)], t1);
    expect(same[0]).toMatchObject({ reason: "StillPending", lastTransitionTime: "2025-01-01T00:00:00Z", observedGeneration: 2 });
    const flipped = setConditions(same, [readyCondition(true, "KeysAuthenticate", "ok", 2)], t1);
    expect(flipped[0]?.lastTransitionTime).toBe("2025-01-01T00:05:00Z");
  });

  it("report only the conditions whose status changed", () => {
    const before = setConditions(undefined, [readyCondition(false, "A", "a"), degradedCondition(false, "Healthy", "h")], t0);
    const after = setConditions(before, [readyCondition(false, "B", "b"), degradedCondition(true, "NexusUnavailable", "down")], t1);
    expect(conditionTransitions(before, after)).toEqual([
      { type: "Degraded", from: "False", to: "True", reason: "NexusUnavailable", message: "down" },
    ]);
  });
});
