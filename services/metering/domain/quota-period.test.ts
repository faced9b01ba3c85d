import { describe, expect, it } from "vitest";
import { isReason } from "../../kernel/errors.js";
import { daysBetween, parseIsoDate, periodEnd, periodStart } from "./quota-period.js";

describe("quota periods", () => {
  it("are UTC calendar days and months", () => {
    const at = new Date("2024-02-29T23:59:59.999Z");
    expect(periodStart("day", at).toISOString()).toBe("2024-02-29T00:00:00.000Z");
    expect(periodStart("month", at).toISOString()).toBe("2024-02-01T00:00:00.000Z");
    expect(periodEnd("month", periodStart("month", at)).toISOString()).toBe("2024-03-01T00:00:00.000Z");
    expect(periodEnd("month", new Date("2024-12-01T00:00:00Z")).toISOString()).toBe("2025-01-01T00:00:00.000Z");
  });

  it("rejects dates that match the pattern but are not on the calendar", () => {
    expect(parseIsoDate("2025-02-29")).toBeUndefined();
    expect(parseIsoDate("2025-04-31")).toBeUndefined();
    expect(parseIsoDate("2024-02-29")?.toISOString()).toBe("2024-02-29T00:00:00.000Z");
  });

  it("allows history ranges of at most 366 days", () => {
    const start = parseIsoDate("2024-01-01")!;
    expect(daysBetween(start, parseIsoDate("2024-12-31")!)).toHaveLength(366);
    let err: unknown;
    try {
      daysBetween(start, parseIsoDate("2025-01-01")!);
    } catch (e) {
      err = e;
    }
    expect(isReason(err, "INVALID_ARGUMENT")).toBe(true);
  });
});
