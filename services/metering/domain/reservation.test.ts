import { describe, expect, it } from "vitest";
import { decideReservation, evolveReservation, type Reservation, type ReservationCommand, type ReservationEvent } from "./reservation.js";

const T0 = new Date("2025-03-10T12:00:00Z");
const base: Reservation = {
  id: "r1",
  tenantId: "t1",
  requestId: "req-1",
  state: "reserved",
  decision: "allowed",
  estimatedRunUnits: 2,
  dayStart: new Date("2025-03-10T00:00:00Z"),
  monthStart: new Date("2025-03-01T00:00:00Z"),
  createdAt: T0,
  expiresAt: new Date(T0.getTime() + 60_000),
  settledAt: undefined,
  releaseReason: undefined,
};

/** given(events).when(command) → the decision, on a reservation built from its history. */
function given(...events: ReservationEvent[]) {
  const state = events.reduce(evolveReservation, base);
  return { when: (cmd: ReservationCommand) => decideReservation(cmd, state) };
}

const at = new Date(T0.getTime() + 1_000);
const later = new Date(T0.getTime() + 120_000);

describe("reservation decider", () => {
  it("commit moves the run from reserved to used, once", () => {
    expect(given().when({ type: "Commit", at, source: "api" })).toEqual({
      kind: "changed",
      event: { type: "ReservationCommitted", at },
      delta: { runsReserved: -1, runUnitsReserved: -2, runsUsed: 1 },
    });
    expect(given({ type: "ReservationCommitted", at }).when({ type: "Commit", at, source: "run_ended" })).toEqual({ kind: "unchanged" });
  });

  it("release gives the capacity back; releasing a committed run through the API is refused", () => {
    expect(given().when({ type: "Release", at, reason: "run_failed", source: "run_ended" })).toMatchObject({
      kind: "changed",
      delta: { runsReserved: -1, runUnitsReserved: -2 },
    });
    expect(given({ type: "ReservationCommitted", at }).when({ type: "Release", at, reason: "x", source: "api" }).kind).toBe("rejected");
    expect(given({ type: "ReservationReleased", at, reason: "x" }).when({ type: "Release", at, reason: "y", source: "api" })).toEqual({
      kind: "unchanged",
    });
  });

  it("expires only after the TTL, and a late completion still counts the run", () => {
    expect(given().when({ type: "Expire", at })).toEqual({ kind: "unchanged" });
    expect(given().when({ type: "Expire", at: later })).toMatchObject({ kind: "changed", delta: { runsReserved: -1 } });
    expect(given({ type: "ReservationExpired", at: later }).when({ type: "Commit", at: later, source: "run_ended" })).toMatchObject({
      kind: "changed",
      delta: { runsUsed: 1 },
    });
  });

  it("a released reservation cannot be committed through the API, but the run's own completion counts", () => {
    const released = given({ type: "ReservationReleased", at, reason: "cancelled" });
    expect(released.when({ type: "Commit", at, source: "api" }).kind).toBe("rejected");
    expect(released.when({ type: "Commit", at, source: "run_ended" })).toMatchObject({ kind: "changed", delta: { runsUsed: 1 } });
  });
});
