import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { PrincipalKind } from "../../gen/nexus/auth/v1/api_key_pb.js";
import { type EntitlementOverrides as EntitlementOverridesMessage, EntitlementOverridesSchema } from "../../gen/nexus/auth/v1/tenant_pb.js";
import {
  ApiKeyIssuedSchema,
  ApiKeyReactivatedSchema,
  ApiKeyRevokedSchema,
  ApiKeyRoleChangedSchema,
  ApiKeyRotatedSchema,
  EntitlementOverridesChangedSchema,
  PlanChangedSchema,
  TenantCreatedSchema,
  TenantDisplayNameChangedSchema,
  TenantResumedSchema,
  TenantSuspendedSchema,
} from "../../gen/nexus/events/v1/auth_events_pb.js";
import { roleToProto } from "../kernel/authz/access-recorder.js";
import "../kernel/authz/auth-event-topics.js";
import type { EntitlementOverrides } from "../kernel/authz/plans.js";
import { planToProto } from "../kernel/authz/principal-proto.js";
import type { EventMetadata, NewEvent } from "../kernel/events/ports.js";
import { eventOf } from "../kernel/events/protobuf-event.js";
import type { ApiKeyEvent } from "./domain/api-key.js";
import type { TenantEvent } from "./domain/tenant.js";

/**
 * Domain events → the published protobuf payloads (proto/nexus/events/v1/auth_events.proto).
 * This is where secrets stop: the issued key's digest stays in the domain event (the store
 * needs it) and is never part of a payload.
 */

/** Overrides as the protobuf message (events and the Tenant resource). */
export function overridesToProto(o: EntitlementOverrides): EntitlementOverridesMessage {
  return create(EntitlementOverridesSchema, {
    features: o.features.map((f) => ({
      featureKey: f.featureKey,
      enabled: f.enabled,
      ...(f.config ? { config: f.config as JsonObject } : {}),
    })),
    ...(o.monthlyRunAllowance !== undefined ? { monthlyRunAllowance: BigInt(o.monthlyRunAllowance) } : {}),
    unlimitedRuns: o.unlimitedRuns === true,
    ...(o.maxActiveApiKeys !== undefined ? { maxActiveApiKeys: o.maxActiveApiKeys } : {}),
  });
}

/**
 * The event store form of a tenant event; `metadata` names the actor. The event's time is its
 * `occurredAt`, so replaying the stream (tenant-event-sourcing.ts) rebuilds the same timestamps.
 */
export function tenantEventToNew(e: TenantEvent, metadata: EventMetadata): NewEvent {
  return { ...tenantEventPayload(e, metadata), occurredAt: e.at };
}

function tenantEventPayload(e: TenantEvent, metadata: EventMetadata): NewEvent {
  const meta = { metadata: { ...metadata, tenantId: e.tenantId } };
  switch (e.type) {
    case "TenantCreated":
      return eventOf(
        TenantCreatedSchema,
        { tenantId: e.tenantId, slug: e.slug, displayName: e.displayName, plan: planToProto(e.plan) },
        meta,
      );
    case "TenantSuspended":
      return eventOf(TenantSuspendedSchema, { tenantId: e.tenantId, reason: e.reason, suspendedAt: timestampFromDate(e.at) }, meta);
    case "TenantResumed":
      return eventOf(TenantResumedSchema, { tenantId: e.tenantId }, meta);
    case "PlanChanged":
      return eventOf(
        PlanChangedSchema,
        { tenantId: e.tenantId, previousPlan: planToProto(e.previousPlan), plan: planToProto(e.plan) },
        meta,
      );
    case "EntitlementOverridesChanged":
      return eventOf(
        EntitlementOverridesChangedSchema,
        { tenantId: e.tenantId, previousOverrides: overridesToProto(e.previous), overrides: overridesToProto(e.overrides) },
        meta,
      );
    case "TenantDisplayNameChanged":
      return eventOf(
        TenantDisplayNameChangedSchema,
        { tenantId: e.tenantId, previousDisplayName: e.previousDisplayName, displayName: e.displayName },
        meta,
      );
    default: {
      const _exhaustive: never = e;
      return _exhaustive;
    }
  }
}

/** The event store form of an API key event; `metadata` names the actor. */
export function apiKeyEventToNew(e: ApiKeyEvent, metadata: EventMetadata): NewEvent {
  const meta = { metadata: { ...metadata, ...(e.tenantId ? { tenantId: e.tenantId } : {}) } };
  switch (e.type) {
    case "ApiKeyIssued":
      return eventOf(
        ApiKeyIssuedSchema,
        {
          tenantId: e.tenantId,
          keyId: e.keyId,
          kind: e.kind === "platform" ? PrincipalKind.PLATFORM : PrincipalKind.TENANT,
          name: e.name,
          role: roleToProto(e.role),
          ...(e.expiresAt ? { expiresAt: timestampFromDate(e.expiresAt) } : {}),
          predecessorKeyId: e.predecessorKeyId,
        },
        meta,
      );
    case "ApiKeyRotated":
      return eventOf(
        ApiKeyRotatedSchema,
        { tenantId: e.tenantId, keyId: e.keyId, successorKeyId: e.successorKeyId, graceEndsAt: timestampFromDate(e.graceEndsAt) },
        meta,
      );
    case "ApiKeyRevoked":
      return eventOf(
        ApiKeyRevokedSchema,
        { tenantId: e.tenantId, keyId: e.keyId, revokedAt: timestampFromDate(e.revokedAt), reason: e.reason },
        meta,
      );
    case "ApiKeyRoleChanged":
      return eventOf(
        ApiKeyRoleChangedSchema,
        { tenantId: e.tenantId, keyId: e.keyId, previousRole: roleToProto(e.previousRole), role: roleToProto(e.role) },
        meta,
      );
    case "ApiKeyReactivated":
      return eventOf(ApiKeyReactivatedSchema, { tenantId: e.tenantId, keyId: e.keyId }, meta);
    default: {
      const _exhaustive: never = e;
      return _exhaustive;
    }
  }
}
