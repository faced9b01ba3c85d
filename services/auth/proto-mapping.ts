import type { JsonObject } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type ApiKey as ApiKeyMessage, ApiKeySchema, ApiKeyStatus, PrincipalKind } from "../../gen/nexus/auth/v1/api_key_pb.js";
import {
  type EntitlementOverrides as EntitlementOverridesMessage,
  EntitlementSource,
  type Entitlements as EntitlementsMessage,
  EntitlementsSchema,
  type Tenant as TenantMessage,
  TenantSchema,
  TenantStatus,
} from "../../gen/nexus/auth/v1/tenant_pb.js";
import { roleToProto } from "../kernel/authz/access-recorder.js";
import { type EffectiveEntitlements, type EntitlementOverrides, effectiveEntitlements } from "../kernel/authz/plans.js";
import { planToProto } from "../kernel/authz/principal-proto.js";
import { overridesToProto } from "./auth-events.js";
import type { ApiKey, KeyStatus } from "./domain/api-key.js";
import { displayPrefixOf } from "./domain/api-key-secret.js";
import type { Tenant } from "./domain/tenant.js";

/** Domain ↔ API message conversions of the auth service. */

const STATUS_TO_PROTO: Readonly<Record<KeyStatus, ApiKeyStatus>> = {
  active: ApiKeyStatus.ACTIVE,
  rotating: ApiKeyStatus.ROTATING,
  revoked: ApiKeyStatus.REVOKED,
  expired: ApiKeyStatus.EXPIRED,
  inactive: ApiKeyStatus.INACTIVE,
};

/** The key status of an ApiKeyStatus filter value. */
export function statusFromProto(s: ApiKeyStatus): KeyStatus | undefined {
  return (Object.entries(STATUS_TO_PROTO) as [KeyStatus, ApiKeyStatus][]).find(([, v]) => v === s)?.[0];
}

/** Effective entitlements as the API message (with provenance). */
export function entitlementsToMessage(e: EffectiveEntitlements): EntitlementsMessage {
  return create(EntitlementsSchema, {
    features: e.features.map((f) => ({
      key: f.key,
      enabled: f.enabled,
      source: f.source === "override" ? EntitlementSource.OVERRIDE : EntitlementSource.PLAN,
      ...(f.config ? { config: f.config as JsonObject } : {}),
    })),
    // Requests cannot carry more than 2^53−1 (kernel validation), but an allowance stored
    // before that rule (2^64−1 read back as 1.8e19) must still be readable: saturate, never throw.
    ...(e.monthlyRunAllowance !== undefined
      ? { monthlyRunAllowance: BigInt(Math.min(e.monthlyRunAllowance, Number.MAX_SAFE_INTEGER)) }
      : {}),
    ...(e.maxActiveApiKeys !== undefined ? { maxActiveApiKeys: e.maxActiveApiKeys } : {}),
  });
}

/** A tenant as the API shows it. */
export function tenantToMessage(t: Tenant & { version?: number }): TenantMessage {
  return create(TenantSchema, {
    id: t.id,
    slug: t.slug,
    displayName: t.displayName,
    plan: planToProto(t.plan),
    status: t.status === "active" ? TenantStatus.ACTIVE : TenantStatus.SUSPENDED,
    entitlements: entitlementsToMessage(effectiveEntitlements(t.plan, t.overrides)),
    entitlementOverrides: overridesToProto(t.overrides),
    suspensionReason: t.suspensionReason,
    createdAt: timestampFromDate(t.createdAt),
    updatedAt: timestampFromDate(t.updatedAt),
    ...(t.suspendedAt ? { suspendedAt: timestampFromDate(t.suspendedAt) } : {}),
    version: BigInt(t.version ?? 0),
  });
}

/** A key's metadata as the API shows it (never the secret or its digest). */
export function apiKeyToMessage(k: Omit<ApiKey, "digest">, status: KeyStatus): ApiKeyMessage {
  return create(ApiKeySchema, {
    id: k.id,
    kind: k.kind === "platform" ? PrincipalKind.PLATFORM : PrincipalKind.TENANT,
    tenantId: k.tenantId,
    name: k.name,
    role: roleToProto(k.role),
    status: STATUS_TO_PROTO[status],
    displayPrefix: displayPrefixOf(k.id),
    createdAt: timestampFromDate(k.createdAt),
    ...(k.expiresAt ? { expiresAt: timestampFromDate(k.expiresAt) } : {}),
    ...(k.lastUsedAt ? { lastUsedAt: timestampFromDate(k.lastUsedAt) } : {}),
    ...(k.revokedAt ? { revokedAt: timestampFromDate(k.revokedAt) } : {}),
    revocationReason: k.revocationReason,
    successorKeyId: k.successorKeyId,
    predecessorKeyId: k.predecessorKeyId,
    ...(k.graceEndsAt ? { graceEndsAt: timestampFromDate(k.graceEndsAt) } : {}),
    createdByKeyId: k.createdByKeyId,
    ownerUserId: k.ownerUserId,
  });
}

/** Overrides from the API message. */
export function overridesFromMessage(m: EntitlementOverridesMessage | undefined): EntitlementOverrides {
  if (m === undefined) return { features: [] };
  return {
    features: m.features.map((f) => ({
      featureKey: f.featureKey,
      enabled: f.enabled,
      ...(f.config && Object.keys(f.config).length > 0 ? { config: f.config as Record<string, unknown> } : {}),
    })),
    ...(m.monthlyRunAllowance !== undefined ? { monthlyRunAllowance: Number(m.monthlyRunAllowance) } : {}),
    ...(m.unlimitedRuns ? { unlimitedRuns: true } : {}),
    ...(m.maxActiveApiKeys !== undefined ? { maxActiveApiKeys: m.maxActiveApiKeys } : {}),
  };
}
