import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { RetryInfoSchema } from "../../../gen/google/rpc/error_details_pb.js";
import { domainError, errorMetadata, errorReason } from "../../kernel/errors.js";
import { quotaHeaders, quotaRefusal } from "./quota-headers.js";

describe("quota headers", () => {
  it("spell out each window, omitting unlimited limits", () => {
    const headers = quotaHeaders({
      kind: "reserved",
      reservationId: "r1",
      decision: "allowed_soft_cap",
      windows: [
        { period: "day", runsUsed: 7, runsReserved: 1, runsLimit: 10, runsRemaining: 2, resetsAt: new Date("2026-01-02T00:00:00Z") },
        { period: "month", runsUsed: 70, runsReserved: 1 },
      ],
    });
    expect(Object.fromEntries(headers)).toEqual({
      "x-nexus-quota-decision": "allowed_soft_cap",
      "x-nexus-quota-day-used": "8",
      "x-nexus-quota-day-limit": "10",
      "x-nexus-quota-day-remaining": "2",
      "x-nexus-quota-day-reset": "2026-01-02T00:00:00.000Z",
      "x-nexus-quota-month-used": "71",
    });
    expect(quotaHeaders({ kind: "unchecked", reason: "down" })).toEqual([["x-nexus-quota-decision", "unchecked"]]);
  });

  it("turn metering's refusal into QUOTA_EXCEEDED with its figures, RetryInfo and headers", () => {
    const upstream = domainError(
      "QUOTA_EXCEEDED",
      "daily runs used up",
      { period: "PERIOD_DAY", limit: 10, used: 10, remaining: 0, metric: "runs" },
      { retryAfterMs: 5000 },
    );
    const refusal = quotaRefusal(upstream);
    expect(refusal.code).toBe(Code.ResourceExhausted);
    expect(errorReason(refusal)).toBe("QUOTA_EXCEEDED");
    expect(errorMetadata(refusal)).toMatchObject({ period: "PERIOD_DAY", limit: "10", used: "10", remaining: "0" });
    expect(refusal.findDetails(RetryInfoSchema)[0]?.retryDelay?.seconds).toBe(5n);
    expect(refusal.metadata.get("x-nexus-quota-decision")).toBe("refused");
    expect(refusal.metadata.get("x-nexus-quota-day-limit")).toBe("10");
    expect(refusal.metadata.get("x-nexus-quota-day-remaining")).toBe("0");
  });
});
