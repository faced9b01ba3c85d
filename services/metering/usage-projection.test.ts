import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { Plan } from "../../gen/nexus/auth/v1/tenant_pb.js";
import {
  RunOutcome,
  UsageRecordBackfilledSchema,
  UsageRecordedSchema,
  UsageRecordsPurgedSchema,
} from "../../gen/nexus/events/v1/metering_events_pb.js";
import type { RecordedEvent } from "../kernel/events/ports.js";
import { eventOf } from "../kernel/events/protobuf-event.js";
import { foldUsageStream, usageRecordId } from "./usage-projection.js";

let version = 0;
function recorded(e: ReturnType<typeof eventOf>, at: string): RecordedEvent {
  version++;
  return {
    position: BigInt(version),
    eventId: `e${version}`,
    streamId: "usage-t1",
    version,
    type: e.type,
    topic: e.topic ?? "",
    payload: e.payload,
    metadata: {},
    occurredAt: new Date(at),
  };
}

const usage = (source: string, request: string, runUnits: number) =>
  eventOf(UsageRecordedSchema, {
    tenantId: "t1",
    plan: Plan.PRO,
    requestId: request,
    outcome: RunOutcome.COMPLETED,
    runUnits,
    tierMultiplier: 1.5,
    toolCallOverhead: 0.25,
    usageDate: "2026-10-10",
    sourceEventId: source,
    reservationId: "",
  });

describe("foldUsageStream", () => {
  it("UsageRecorded gives the row (id from the run event, recorded_at = occurred_at)", () => {
    const { rows } = foldUsageStream("t1", [recorded(usage("s1", "r1", 2.5), "2026-10-10T12:00:00.000Z")]);
    expect(rows).toEqual([
      expect.objectContaining({
        id: usageRecordId("s1"),
        request_id: "r1",
        run_units: 2.5,
        tier_multiplier: 1.5,
        reservation_id: null,
        recorded_at: "2026-10-10T12:00:00.000Z",
      }),
    ]);
  });

  it("a retention purge removes the rows recorded before its cutoff except the held runs, and marks their windows", () => {
    const events = [
      recorded(usage("s1", "r1", 1), "2026-10-10T12:00:00.000Z"),
      recorded(usage("s2", "held", 1), "2026-10-10T13:00:00.000Z"),
      recorded(usage("s3", "r3", 1), "2026-11-02T08:00:00.000Z"),
      recorded(
        eventOf(UsageRecordsPurgedSchema, {
          tenantId: "t1",
          reason: "retention",
          recordedBefore: timestampFromDate(new Date("2026-11-01T00:00:00Z")),
          keptRequestIds: ["held"],
        }),
        "2026-11-20T00:00:00.000Z",
      ),
      recorded(usage("s4", "r4", 1), "2026-10-31T23:00:00.000Z"), // after the purge: kept
    ];
    const folded = foldUsageStream("t1", events);
    expect(folded.rows.map((r) => r.request_id).sort()).toEqual(["held", "r3", "r4"]);
    expect(folded.purgedWindows).toEqual([
      { period: "day", periodStart: "2026-10-10" },
      { period: "month", periodStart: "2026-10-01" },
    ]);
  });

  it("a backfill restates an older row exactly; an offboarding purge removes every row", () => {
    const restated = eventOf(UsageRecordBackfilledSchema, {
      tenantId: "t1",
      recordId: "0b7f7c1e-2f0a-4c55-9a43-3f9a1b2c3d4e",
      usage: { sourceEventId: "s1", requestId: "r1", runUnits: 2, usageDate: "2026-10-10", reservationId: "" },
    });
    const stored = { ...(restated.payload as object), recordedAt: "2026-10-10T12:00:00.123456Z" };
    const old = [
      recorded(usage("s1", "r1", 2), "2026-10-10T12:00:00.200Z"),
      recorded({ ...restated, payload: stored }, "2026-12-06T00:00:00Z"),
    ];
    expect(foldUsageStream("t1", old).rows).toEqual([
      expect.objectContaining({ id: "0b7f7c1e-2f0a-4c55-9a43-3f9a1b2c3d4e", recorded_at: "2026-10-10T12:00:00.123456Z" }),
    ]);
    const gone = [
      ...old,
      recorded(eventOf(UsageRecordsPurgedSchema, { tenantId: "t1", reason: "offboarding", allRecords: true }), "2026-12-06T00:00:01Z"),
    ];
    expect(foldUsageStream("t1", gone).rows).toEqual([]);
  });
});
