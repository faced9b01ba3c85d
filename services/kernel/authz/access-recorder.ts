import type { Logger } from "pino";
import { Role } from "../../../gen/nexus/auth/v1/api_key_pb.js";
import { AccessDeniedSchema, RbacForbiddenSchema } from "../../../gen/nexus/events/v1/auth_events_pb.js";
import { recordFacts } from "../commands/index.js";
import type { Principal, TenantRole } from "../context.js";
import type { Database } from "../db/ports.js";
import { eventOf } from "../events/protobuf-event.js";
import "./auth-event-topics.js";
import type { ForbiddenReason } from "./authorize.js";

/** Reasons a call is refused at authentication (AccessDenied.reason). */
export type AccessFailureReason =
  | "AUTH_UNAUTHORIZED"
  | "AUTH_REVOKED_KEY"
  | "AUTH_EXPIRED_KEY"
  | "AUTH_INACTIVE_KEY"
  | "TENANT_SUSPENDED"
  | TokenFailureReason;

/** Reasons a bearer access token (JWT) is refused. */
export type TokenFailureReason =
  | "AUTH_TOKEN_EXPIRED"
  | "AUTH_TOKEN_AUDIENCE"
  | "AUTH_TOKEN_ISSUER"
  | "AUTH_TOKEN_INVALID"
  | "AUTH_UNKNOWN_USER";

/** One call refused at authentication (→ auth.access.failure in the audit trail). */
export interface AccessDeniedRecord {
  /**
   * Why. AUTH_RATE_LIMITED is not one call but the start of a throttled period of the
   * refused-authentication limiter: the calls it refuses after that are counted, not recorded.
   */
  reason: AccessFailureReason | "AUTH_RATE_LIMITED";
  /** e.g. "/nexus.retrieval.v1.RetrievalService/Search". */
  procedure: string;
  /** The key id the caller presented (claimed), when the key parses — even with a wrong secret. Never the secret. */
  keyId?: string;
  /** The tenant of the claimed key, when that key exists (so the tenant's chain shows attempts against its keys). */
  tenantId?: string;
  peerAddress?: string;
}

/** One call refused by the permission table or an entitlement (→ rbac.forbidden). */
export interface RbacForbiddenRecord {
  principal: Principal;
  procedure: string;
  reason: ForbiddenReason;
  requiredRole?: TenantRole | undefined;
  featureKey?: string | undefined;
}

/**
 * Records refusals as domain events, exactly once per refused call: whoever decides the
 * refusal records it (the gate for missing keys and permission-table refusals, the auth
 * service for key-level refusals). Recording never turns a refusal into an acceptance: a
 * failed write is logged and the call is still refused.
 */
export interface AccessRecorder {
  accessDenied(record: AccessDeniedRecord): Promise<void>;
  rbacForbidden(record: RbacForbiddenRecord): Promise<void>;
}

const ROLE: Readonly<Record<TenantRole, Role>> = {
  owner: Role.OWNER,
  admin: Role.ADMIN,
  editor: Role.EDITOR,
  viewer: Role.VIEWER,
};

/** The proto Role of a tenant role (ROLE_UNSPECIFIED for undefined). */
export function roleToProto(role: TenantRole | undefined): Role {
  return role === undefined ? Role.UNSPECIFIED : ROLE[role];
}

/** Stream of access events: one per tenant, one for refusals with no known tenant. */
export function accessStreamId(tenantId: string | undefined): string {
  return tenantId ? `auth-access-${tenantId}` : "auth-access";
}

/** Options of {@link createEventStoreAccessRecorder}. */
export interface EventStoreAccessRecorderOptions {
  /** Database holding `platform.events`. */
  db: Database;
  logger: Logger;
}

/**
 * Records AccessDenied (topic auth.access_denied) and RbacForbidden (auth.rbac_forbidden)
 * events as facts (`recordFacts`: no state decides on them, refusals from several processes
 * interleave); the relay publishes them like any other event.
 */
export function createEventStoreAccessRecorder(options: EventStoreAccessRecorderOptions): AccessRecorder {
  const { db, logger } = options;
  const append = async (tenantId: string | undefined, actor: string, event: ReturnType<typeof eventOf>): Promise<void> => {
    try {
      await db.transaction((tx) =>
        recordFacts(tx, accessStreamId(tenantId), [event], {
          metadata: { actor, ...(tenantId ? { tenantId } : {}) },
        }),
      );
    } catch (err) {
      logger.error({ err, event_type: event.type }, "could not record an access refusal");
    }
  };
  return {
    accessDenied(r) {
      return append(
        r.tenantId,
        r.keyId ?? "anonymous",
        eventOf(AccessDeniedSchema, {
          tenantId: r.tenantId ?? "",
          keyId: r.keyId ?? "",
          reason: r.reason,
          procedure: r.procedure,
          peerAddress: r.peerAddress ?? "",
        }),
      );
    },
    rbacForbidden(r) {
      const tenantId = r.principal.kind === "tenant" ? r.principal.tenantId : undefined;
      return append(
        tenantId,
        r.principal.keyId,
        eventOf(RbacForbiddenSchema, {
          tenantId: tenantId ?? "",
          keyId: r.principal.keyId,
          role: roleToProto(r.principal.kind === "tenant" ? r.principal.role : undefined),
          procedure: r.procedure,
          reason: r.reason,
          requiredRole: roleToProto(r.requiredRole),
          featureKey: r.featureKey ?? "",
        }),
      );
    },
  };
}
