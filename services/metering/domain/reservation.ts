import type { WindowDelta } from "./quota.js";

/**
 * The reservation aggregate: one admitted run's claim on its tenant's day and month windows.
 *
 *   reserved ──commit──▶ committed        (CommitQuota, or RunCompleted/RunCancelled)
 *      │  └──release──▶ released          (ReleaseQuota, or RunFailed)
 *      └──────expire──▶ expired           (nobody settled it within the TTL)
 *   expired/released ──run ended──▶ committed   (the run did happen: usage is the truth)
 *
 * A run counts as used exactly once: on the transition into `committed`. Its run units come
 * only from the run's usage record, whichever of the two arrives first.
 */

// ---------------------------------------------------------------- events

/** What happened to a reservation. */
export type ReservationEvent =
  | { type: "ReservationCommitted"; at: Date }
  | { type: "ReservationReleased"; at: Date; reason: string }
  | { type: "ReservationExpired"; at: Date };

// ---------------------------------------------------------------- state

/** Where a reservation stands. */
export type ReservationState = "reserved" | "committed" | "released" | "expired";

/** A reservation as stored. */
export interface Reservation {
  id: string;
  tenantId: string;
  requestId: string;
  state: ReservationState;
  decision: "allowed" | "soft_cap" | "overage";
  estimatedRunUnits: number;
  /** The windows the run was admitted in (it counts there whenever it settles). */
  dayStart: Date;
  monthStart: Date;
  createdAt: Date;
  expiresAt: Date;
  settledAt: Date | undefined;
  releaseReason: string | undefined;
}

// ---------------------------------------------------------------- evolve

/** evolve: the reservation after an event. */
export function evolveReservation(r: Reservation, e: ReservationEvent): Reservation {
  switch (e.type) {
    case "ReservationCommitted":
      return { ...r, state: "committed", settledAt: e.at };
    case "ReservationReleased":
      return { ...r, state: "released", settledAt: e.at, releaseReason: e.reason };
    case "ReservationExpired":
      return { ...r, state: "expired", settledAt: e.at };
    default: {
      const _exhaustive: never = e;
      return _exhaustive;
    }
  }
}

// ---------------------------------------------------------------- commands

/** Settle commands. `source` tells an API call from the run's own event. */
export type ReservationCommand =
  | { type: "Commit"; at: Date; source: "api" | "run_ended" }
  | { type: "Release"; at: Date; reason: string; source: "api" | "run_ended" }
  | { type: "Expire"; at: Date };

/** The answer of {@link decideReservation}. */
export type ReservationDecision =
  | {
      kind: "changed";
      event: ReservationEvent;
      /** What to add to both windows the run was admitted in. */
      delta: WindowDelta;
    }
  | { kind: "unchanged" }
  | { kind: "rejected"; message: string };

/** Moves a reserved run out of the in-flight counters. */
function unreserve(r: Reservation): WindowDelta {
  return { runsReserved: -1, runUnitsReserved: -r.estimatedRunUnits };
}

// ---------------------------------------------------------------- decide

/** decide: what a settle command does to a reservation. Idempotent by construction. */
export function decideReservation(cmd: ReservationCommand, r: Reservation): ReservationDecision {
  switch (cmd.type) {
    case "Commit": {
      const event: ReservationEvent = { type: "ReservationCommitted", at: cmd.at };
      switch (r.state) {
        case "reserved":
          return { kind: "changed", event, delta: { ...unreserve(r), runsUsed: 1 } };
        case "committed":
          return { kind: "unchanged" };
        case "expired":
          // Settled late: the capacity was already given back, the run still counts.
          return { kind: "changed", event, delta: { runsUsed: 1 } };
        case "released":
          if (cmd.source === "api") {
            return { kind: "rejected", message: "the reservation was released; a released reservation cannot be committed" };
          }
          return { kind: "changed", event, delta: { runsUsed: 1 } };
        default: {
          const _exhaustive: never = r.state;
          return _exhaustive;
        }
      }
    }
    case "Release":
      switch (r.state) {
        case "reserved":
          return { kind: "changed", event: { type: "ReservationReleased", at: cmd.at, reason: cmd.reason }, delta: unreserve(r) };
        case "committed":
          if (cmd.source === "api") {
            return { kind: "rejected", message: "the reservation was committed: its run counts as used and cannot be released" };
          }
          return { kind: "unchanged" };
        case "released":
        case "expired":
          return { kind: "unchanged" };
        default: {
          const _exhaustive: never = r.state;
          return _exhaustive;
        }
      }
    case "Expire":
      if (r.state !== "reserved" || r.expiresAt.getTime() > cmd.at.getTime()) return { kind: "unchanged" };
      return { kind: "changed", event: { type: "ReservationExpired", at: cmd.at }, delta: unreserve(r) };
    default: {
      const _exhaustive: never = cmd;
      return _exhaustive;
    }
  }
}
