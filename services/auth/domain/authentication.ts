import { effectiveEntitlements, principalEntitlements } from "../../kernel/authz/plans.js";
import type { Principal } from "../../kernel/context.js";
import { type ApiKey, inactivityAnchor, keyStatus } from "./api-key.js";
import { parseApiKey, verifyApiKey } from "./api-key-secret.js";
import type { Tenant } from "./tenant.js";

/** Why a presented key is refused (the ErrorInfo reasons of Authenticate). */
export type RefusalReason = "AUTH_UNAUTHORIZED" | "AUTH_REVOKED_KEY" | "AUTH_EXPIRED_KEY" | "AUTH_INACTIVE_KEY" | "TENANT_SUSPENDED";

/** The answer to "who holds this key?". */
export type AuthenticationOutcome =
  | {
      kind: "authenticated";
      principal: Principal;
      /**
       * When the answer stops being true without any event (expiry, end of a rotation grace,
       * inactivity limit); undefined when only an event can end it.
       */
      validUntil: Date | undefined;
      /** last_used_at is older than the touch interval: record this use. */
      touch: boolean;
    }
  | {
      kind: "refused";
      reason: RefusalReason;
      /** The key id: the claimed one when the secret is wrong, else the found key's (for the audit event). */
      keyId?: string;
      tenantId?: string;
    };

/** Inputs of {@link authenticateKey}. */
export interface AuthenticateKeyInput {
  /** The presented plaintext key. */
  presented: string;
  /**
   * The key was proven another way (a console session opened with it, whose stored digest was
   * matched): skip the secret check, keep every other one (revoked, expired, inactive, suspended).
   */
  provenBySession?: boolean;
  /** The stored key named by the presented key's id (undefined when no such key). */
  key: ApiKey | undefined;
  /** The key's tenant (tenant keys). */
  tenant: Tenant | undefined;
  now: Date;
  /** Inactivity limit in ms; 0 disables it. */
  inactivityMs: number;
  /** How stale last_used_at may be before a use is recorded again. */
  touchIntervalMs: number;
}

/**
 * Resolves a presented key. The secret is verified (constant time) before anything about the
 * key's state is revealed, so a caller who only knows a key id learns nothing. Refusal
 * precedence: unknown/wrong secret → AUTH_UNAUTHORIZED; revoked (or rotation grace over) →
 * AUTH_REVOKED_KEY; expired → AUTH_EXPIRED_KEY; inactive → AUTH_INACTIVE_KEY; tenant
 * suspended → TENANT_SUSPENDED.
 */
export function authenticateKey(input: AuthenticateKeyInput): AuthenticationOutcome {
  const { key, tenant, now } = input;
  if (key === undefined || (input.provenBySession !== true && !verifyApiKey(input.presented, key.digest))) {
    // A wrong secret for a real key id is an attempt against that key: name the key it
    // claimed, and its tenant when the key exists, so the tenant's own audit chain shows it.
    const claimed = parseApiKey(input.presented)?.keyId;
    return {
      kind: "refused",
      reason: "AUTH_UNAUTHORIZED",
      ...(claimed ? { keyId: claimed } : {}),
      ...(key?.id === claimed && key?.tenantId ? { tenantId: key.tenantId } : {}),
    };
  }
  const ids = { keyId: key.id, ...(key.tenantId ? { tenantId: key.tenantId } : {}) };
  const status = keyStatus(key, now, input.inactivityMs);
  if (status === "revoked") return { kind: "refused", reason: "AUTH_REVOKED_KEY", ...ids };
  if (status === "expired") return { kind: "refused", reason: "AUTH_EXPIRED_KEY", ...ids };
  if (status === "inactive") return { kind: "refused", reason: "AUTH_INACTIVE_KEY", ...ids };

  let principal: Principal;
  if (key.kind === "platform") {
    principal = { kind: "platform", keyId: key.id, name: key.name };
  } else {
    if (tenant === undefined || key.role === undefined) return { kind: "refused", reason: "AUTH_UNAUTHORIZED", ...ids };
    if (tenant.status === "suspended") return { kind: "refused", reason: "TENANT_SUSPENDED", ...ids };
    principal = {
      kind: "tenant",
      keyId: key.id,
      name: key.name,
      tenantId: tenant.id,
      tenantSlug: tenant.slug,
      role: key.role,
      plan: tenant.plan,
      entitlements: principalEntitlements(effectiveEntitlements(tenant.plan, tenant.overrides)),
      ...(key.ownerUserId ? { userId: key.ownerUserId } : {}),
    };
  }

  const touch = key.lastUsedAt === undefined || now.getTime() - key.lastUsedAt.getTime() >= input.touchIntervalMs;
  const deadlines: number[] = [];
  if (key.expiresAt) deadlines.push(key.expiresAt.getTime());
  if (key.graceEndsAt) deadlines.push(key.graceEndsAt.getTime());
  if (input.inactivityMs > 0) {
    const anchor = touch ? now.getTime() : inactivityAnchor(key).getTime();
    deadlines.push(anchor + input.inactivityMs);
  }
  const validUntil = deadlines.length > 0 ? new Date(Math.min(...deadlines)) : undefined;
  return { kind: "authenticated", principal, validUntil, touch };
}
