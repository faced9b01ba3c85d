import { describe, expect, it } from "vitest";
import { limitColumn, usedColumn } from "./quota-status.js";

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

  it("shows USED in LIMIT's shape, so a daily-only limit is compared with today's runs", () => {
    const day = { runsUsed: 3, runUnitsUsed: 1.5 };
    const month = { runsUsed: 40, runUnitsUsed: 20.25 };
    expect(usedColumn({ ...day, runsLimit: 10 }, { ...month, runsLimit: 100 })).toBe("40 runs, 3/day");
    expect(usedColumn({ ...day }, { ...month, runsLimit: 100 })).toBe("40 runs");
    expect(usedColumn({ ...day, runsLimit: 1000 }, { ...month })).toBe("3 runs/day");
    expect(usedColumn({ ...day, runUnitsLimit: 50 }, { ...month, runUnitsLimit: 500 })).toBe("20.25 run units, 1.5/day");
    expect(usedColumn({ ...day }, { ...month })).toBe("40 runs");
  });
});
