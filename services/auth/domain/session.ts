import { accept, type Decision, reject } from "./decision.js";

/**
 * The sign-in session aggregate: a person signed in to one tenant through its OpenID provider,
 * valid until `expiresAt` or until ended (sign-out). Only the SHA-256 of the session token is
 * kept; the token (`nxss_<session id>_<secret>`) is handed out once, at sign-in.
 */

// ---- Events ----

/** A person signed in. */
export interface SessionStarted {
  type: "SessionStarted";
  sessionId: string;
  tenantId: string;
  userId: string;
  /** The groups the ID token stated (carried by the principal). */
  groups: readonly string[];
  digest: Uint8Array;
  expiresAt: Date;
  at: Date;
}

/** The session ended (sign-out). */
export interface SessionEnded {
  type: "SessionEnded";
  sessionId: string;
  tenantId: string;
  userId: string;
  reason: string;
  at: Date;
}

/** Every session event. */
export type SessionEvent = SessionStarted | SessionEnded;

// ---- State ----

/** A session as the decider sees it. */
export interface Session {
  id: string;
  tenantId: string;
  userId: string;
  groups: readonly string[];
  digest: Uint8Array;
  createdAt: Date;
  expiresAt: Date;
  endedAt: Date | undefined;
}

/** The state of a session stream. */
export type SessionState = Session | undefined;

/** Whether the session authenticates at `now`. */
export function sessionLive(session: Session, now: Date): boolean {
  return session.endedAt === undefined && session.expiresAt > now;
}

// ---- evolve ----

/** Applies one event to the state. */
export function evolveSession(state: SessionState, event: SessionEvent): SessionState {
  switch (event.type) {
    case "SessionStarted":
      return {
        id: event.sessionId,
        tenantId: event.tenantId,
        userId: event.userId,
        groups: event.groups,
        digest: event.digest,
        createdAt: event.at,
        expiresAt: event.expiresAt,
        endedAt: undefined,
      };
    case "SessionEnded":
      return state && { ...state, endedAt: event.at };
    default: {
      const _exhaustive: never = event;
      return _exhaustive;
    }
  }
}

// ---- Commands ----

/** Start a session. */
export interface StartSession {
  type: "StartSession";
  sessionId: string;
  tenantId: string;
  userId: string;
  groups: readonly string[];
  digest: Uint8Array;
  ttlMs: number;
  now: Date;
}

/** End a session (idempotent). */
export interface EndSession {
  type: "EndSession";
  reason: string;
  now: Date;
}

/** Every session command. */
export type SessionCommand = StartSession | EndSession;

// ---- decide ----

/** Decides which events a command produces against the current state. */
export function decideSession(command: SessionCommand, state: SessionState): Decision<SessionEvent> {
  switch (command.type) {
    case "StartSession":
      if (state !== undefined) return reject("ALREADY_EXISTS", "a session with this id exists");
      if (command.ttlMs <= 0) return reject("INVALID_ARGUMENT", "a session needs a positive lifetime");
      return accept({
        type: "SessionStarted",
        sessionId: command.sessionId,
        tenantId: command.tenantId,
        userId: command.userId,
        groups: command.groups,
        digest: command.digest,
        expiresAt: new Date(command.now.getTime() + command.ttlMs),
        at: command.now,
      });
    case "EndSession":
      if (state === undefined) return reject("NOT_FOUND", "session not found");
      if (state.endedAt !== undefined || state.expiresAt <= command.now) return accept();
      return accept({
        type: "SessionEnded",
        sessionId: state.id,
        tenantId: state.tenantId,
        userId: state.userId,
        reason: command.reason,
        at: command.now,
      });
    default: {
      const _exhaustive: never = command;
      return _exhaustive;
    }
  }
}
