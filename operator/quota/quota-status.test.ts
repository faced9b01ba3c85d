import { describe, expect, it } from "vitest";
import { limitColumn } from "./quota-status.js";

describe("Quota LIMIT column", () => {
  it("shows the month's runs limit, with the daily one and its window when there is one", () => {
    expect(limitColumn({ runsLimit: 10 }, { runsLimit: 100 })).toBe("100 runs, 10/day");
    expect(limitColumn({}, { runsLimit: 100 })).toBe("100 runs");
    expect(limitColumn(undefined, { runsLimit: 3 })).toBe("3 runs");
  });

  it("never says unlimited while a daily or run-unit limit is in force", () => {
    // The enterprise plan's month is unlimited: a Quota that only limits the day.
    expect(limitColumn({ runsLimit: 1000 }, {})).toBe("1000 runs/day");
    expect(limitColumn({}, { runUnitsLimit: 500 })).toBe("500 run units");
    expect(limitColumn({ runUnitsLimit: 50 }, { runUnitsLimit: 500 })).toBe("500 run units, 50/day");
    expect(limitColumn({ runUnitsLimit: 50 }, undefined)).toBe("50 run units/day");
    expect(limitColumn({}, {})).toBe("unlimited");
    expect(limitColumn(undefined, undefined)).toBe("unlimited");
  });
});
