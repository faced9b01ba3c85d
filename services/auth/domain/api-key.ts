import type { TenantRole } from "../../kernel/context.js";
import { accept, type Decision, reject } from "./decision.js";

/**
 * The API key aggregate: one key's lifecycle — issued, rotated (valid until its grace ends),
 * revoked, role changed, reactivated after inactivity. The secret never enters this module:
 * only its SHA-256 digest, which the store keeps and no event carries.
 */

/** Platform key (operators) or tenant key (members with a role). */
export type KeyKind = "platform" | "tenant";

// ---- Events ----

/** A key was issued (directly or as a rotation's successor). */
export interface ApiKeyIssued {
  type: "ApiKeyIssued";
  keyId: string;
  kind: KeyKind;
  /** Empty for platform keys. */
  tenantId: string;
  name: string;
  /** Undefined for platform keys. */
  role: TenantRole | undefined;
  /** SHA-256 of the plaintext key: stored in the key's row, never published. */
  digest: Uint8Array;
  expiresAt: Date | undefined;
  predecessorKeyId: string;
  /** Key id of the principal that issued it; empty for bootstrap keys. */
  createdByKeyId: string;
  /** The user who owns the key (dies with the user's membership); empty for machine keys. */
  ownerUserId: string;
  at: Date;
}

/** A key was rotated: its successor exists and it works until the grace ends. */
export interface ApiKeyRotated {
  type: "ApiKeyRotated";
  keyId: string;
  tenantId: string;
  successorKeyId: string;
  graceEndsAt: Date;
  at: Date;
}

/** A key was revoked (explicitly, or at the end of a rotation grace). */
export interface ApiKeyRevoked {
  type: "ApiKeyRevoked";
  keyId: string;
  tenantId: string;
  revokedAt: Date;
  reason: string;
}

/** A tenant key's role changed. */
export interface ApiKeyRoleChanged {
  type: "ApiKeyRoleChanged";
  keyId: string;
  tenantId: string;
  previousRole: TenantRole;
  role: TenantRole;
  at: Date;
}

/** An inactive key was made usable again (its inactivity clock restarts). */
export interface ApiKeyReactivated {
  type: "ApiKeyReactivated";
  keyId: string;
  tenantId: string;
  at: Date;
}

/** Every API key event. */
export type ApiKeyEvent = ApiKeyIssued | ApiKeyRotated | ApiKeyRevoked | ApiKeyRoleChanged | ApiKeyReactivated;

// ---- State ----

/** A key as the decider sees it; `undefined` before it is issued. */
export interface ApiKey {
  id: string;
  kind: KeyKind;
  tenantId: string;
  name: string;
  role: TenantRole | undefined;
  digest: Uint8Array;
  createdAt: Date;
  expiresAt: Date | undefined;
  /** Coarse (updated at most about once a minute by authentication, not by events). */
  lastUsedAt: Date | undefined;
  reactivatedAt: Date | undefined;
  revokedAt: Date | undefined;
  revocationReason: string;
  successorKeyId: string;
  predecessorKeyId: string;
  graceEndsAt: Date | undefined;
  createdByKeyId: string;
  /** The user who owns the key; empty for machine keys. */
  ownerUserId: string;
}

/** The state of a key stream. */
export type ApiKeyState = ApiKey | undefined;

/** Lifecycle state of a key at a moment (ApiKeyStatus in the API). */
export type KeyStatus = "active" | "rotating" | "revoked" | "expired" | "inactive";

/** Revocation reason recorded when a rotation grace ends. */
export const ROTATED_REASON = "rotated";

/**
 * Where the inactivity clock starts: the latest of creation, last use and reactivation.
 */
export function inactivityAnchor(key: Omit<ApiKey, "digest">): Date {
  let anchor = key.createdAt;
  for (const d of [key.lastUsedAt, key.reactivatedAt]) if (d && d > anchor) anchor = d;
  return anchor;
}

/**
 * The key's status at `now`. `inactivityMs` 0 disables the inactivity limit. Precedence:
 * revoked (including an ended rotation grace) > expired > inactive > rotating > active.
 */
export function keyStatus(key: Omit<ApiKey, "digest">, now: Date, inactivityMs: number): KeyStatus {
  if (key.revokedAt !== undefined) return "revoked";
  if (key.graceEndsAt !== undefined && key.graceEndsAt <= now) return "revoked";
  if (key.expiresAt !== undefined && key.expiresAt <= now) return "expired";
  if (inactivityMs > 0 && inactivityAnchor(key).getTime() + inactivityMs <= now.getTime()) return "inactive";
  if (key.graceEndsAt !== undefined) return "rotating";
  return "active";
}

// ---- evolve ----

/** Applies one event to the state. */
export function evolveApiKey(state: ApiKeyState, event: ApiKeyEvent): ApiKeyState {
  switch (event.type) {
    case "ApiKeyIssued":
      return {
        id: event.keyId,
        kind: event.kind,
        tenantId: event.tenantId,
        name: event.name,
        role: event.role,
        digest: event.digest,
        createdAt: event.at,
        expiresAt: event.expiresAt,
        lastUsedAt: undefined,
        reactivatedAt: undefined,
        revokedAt: undefined,
        revocationReason: "",
        successorKeyId: "",
        predecessorKeyId: event.predecessorKeyId,
        graceEndsAt: undefined,
        createdByKeyId: event.createdByKeyId,
        ownerUserId: event.ownerUserId,
      };
    case "ApiKeyRotated":
      return state && { ...state, successorKeyId: event.successorKeyId, graceEndsAt: event.graceEndsAt };
    case "ApiKeyRevoked":
      return state && { ...state, revokedAt: event.revokedAt, revocationReason: event.reason };
    case "ApiKeyRoleChanged":
      return state && { ...state, role: event.role };
    case "ApiKeyReactivated":
      return state && { ...state, reactivatedAt: event.at };
    default: {
      const _exhaustive: never = event;
      return _exhaustive;
    }
  }
}

// ---- Commands ----

/** Issue a key (the caller generated the secret and passes only its digest). */
export interface IssueApiKey {
  type: "IssueApiKey";
  keyId: string;
  kind: KeyKind;
  tenantId: string;
  name: string;
  role: TenantRole | undefined;
  digest: Uint8Array;
  expiresAt: Date | undefined;
  predecessorKeyId: string;
  createdByKeyId: string;
  /** The owning user; empty (or absent) for machine keys. */
  ownerUserId?: string;
  now: Date;
}

/** Rotate a key: record its successor and when it stops working (grace 0 revokes at once). */
export interface RotateApiKey {
  type: "RotateApiKey";
  successorKeyId: string;
  graceMs: number;
  inactivityMs: number;
  now: Date;
}

/** Revoke a key (idempotent: revoking again keeps the first revoked_at). */
export interface RevokeApiKey {
  type: "RevokeApiKey";
  reason: string;
  now: Date;
}

/** Turn a rotated key whose grace has ended into a revoked one (the sweeper sends it). */
export interface EndRotationGrace {
  type: "EndRotationGrace";
  now: Date;
}

/** Change a tenant key's role. */
export interface ChangeApiKeyRole {
  type: "ChangeApiKeyRole";
  role: TenantRole;
  inactivityMs: number;
  now: Date;
}

/** Make an inactive key usable again. */
export interface ReactivateApiKey {
  type: "ReactivateApiKey";
  inactivityMs: number;
  now: Date;
}

/** Every API key command. */
export type ApiKeyCommand = IssueApiKey | RotateApiKey | RevokeApiKey | EndRotationGrace | ChangeApiKeyRole | ReactivateApiKey;

// ---- decide ----

const notFound = <E>(): Decision<E> => reject("NOT_FOUND", "API key not found");

/** Decides which events a command produces against the current state. */
export function decideApiKey(command: ApiKeyCommand, state: ApiKeyState): Decision<ApiKeyEvent> {
  switch (command.type) {
    case "IssueApiKey": {
      if (state !== undefined) return reject("ALREADY_EXISTS", "an API key with this id already exists", { key_id: command.keyId });
      if ((command.kind === "tenant") !== (command.role !== undefined) || (command.kind === "tenant") !== (command.tenantId !== "")) {
        return reject("INVALID_ARGUMENT", "tenant keys need a tenant and a role; platform keys take neither");
      }
      if (command.expiresAt !== undefined && command.expiresAt <= command.now) {
        return reject("INVALID_ARGUMENT", "expires_at must lie in the future", { field: "expires_at" });
      }
      return accept({
        type: "ApiKeyIssued",
        keyId: command.keyId,
        kind: command.kind,
        tenantId: command.tenantId,
        name: command.name,
        role: command.role,
        digest: command.digest,
        expiresAt: command.expiresAt,
        predecessorKeyId: command.predecessorKeyId,
        createdByKeyId: command.createdByKeyId,
        ownerUserId: command.ownerUserId ?? "",
        at: command.now,
      });
    }
    case "RotateApiKey": {
      if (state === undefined) return notFound();
      const status = keyStatus(state, command.now, command.inactivityMs);
      if (status !== "active" && status !== "inactive") {
        return reject("FAILED_PRECONDITION", `a ${status} key cannot be rotated`, { key_id: state.id, status });
      }
      const graceEndsAt = new Date(command.now.getTime() + Math.max(0, command.graceMs));
      const rotated: ApiKeyRotated = {
        type: "ApiKeyRotated",
        keyId: state.id,
        tenantId: state.tenantId,
        successorKeyId: command.successorKeyId,
        graceEndsAt,
        at: command.now,
      };
      if (command.graceMs > 0) return accept<ApiKeyEvent>(rotated);
      return accept<ApiKeyEvent>(rotated, {
        type: "ApiKeyRevoked",
        keyId: state.id,
        tenantId: state.tenantId,
        revokedAt: command.now,
        reason: ROTATED_REASON,
      });
    }
    case "RevokeApiKey":
      if (state === undefined) return notFound();
      if (state.revokedAt !== undefined) return accept();
      return accept({ type: "ApiKeyRevoked", keyId: state.id, tenantId: state.tenantId, revokedAt: command.now, reason: command.reason });
    case "EndRotationGrace":
      if (state === undefined) return notFound();
      if (state.revokedAt !== undefined || state.graceEndsAt === undefined || state.graceEndsAt > command.now) return accept();
      return accept({
        type: "ApiKeyRevoked",
        keyId: state.id,
        tenantId: state.tenantId,
        revokedAt: state.graceEndsAt,
        reason: ROTATED_REASON,
      });
    case "ChangeApiKeyRole": {
      if (state === undefined) return notFound();
      if (state.kind !== "tenant" || state.role === undefined) {
        return reject("FAILED_PRECONDITION", "platform keys have no role", { key_id: state.id });
      }
      const status = keyStatus(state, command.now, command.inactivityMs);
      if (status === "revoked" || status === "expired") {
        return reject("FAILED_PRECONDITION", `the role of a ${status} key cannot change`, { key_id: state.id, status });
      }
      if (state.role === command.role) return accept();
      return accept({
        type: "ApiKeyRoleChanged",
        keyId: state.id,
        tenantId: state.tenantId,
        previousRole: state.role,
        role: command.role,
        at: command.now,
      });
    }
    case "ReactivateApiKey": {
      if (state === undefined) return notFound();
      const status = keyStatus(state, command.now, command.inactivityMs);
      if (status === "revoked" || status === "expired") {
        return reject("FAILED_PRECONDITION", `a ${status} key cannot be reactivated`, { key_id: state.id, status });
      }
      if (status !== "inactive") return accept();
      return accept({ type: "ApiKeyReactivated", keyId: state.id, tenantId: state.tenantId, at: command.now });
    }
    default: {
      const _exhaustive: never = command;
      return _exhaustive;
    }
  }
}
