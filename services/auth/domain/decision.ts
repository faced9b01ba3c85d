import type { Reason } from "../../kernel/errors.js";

/**
 * What a decider answers: the events a command produces (none when it changes nothing, which
 * is how idempotent commands succeed twice), or a rejection the caller turns into an error.
 * Expected refusals are values, not exceptions: callers branch on `kind`.
 */
export type Decision<E> =
  | { kind: "accepted"; events: E[] }
  | { kind: "rejected"; reason: Reason; message: string; metadata?: Record<string, string> };

/** An accepted decision with these events. */
export function accept<E>(...events: E[]): Decision<E> {
  return { kind: "accepted", events };
}

/** A rejected decision. */
export function reject<E>(reason: Reason, message: string, metadata?: Record<string, string>): Decision<E> {
  return metadata ? { kind: "rejected", reason, message, metadata } : { kind: "rejected", reason, message };
}
