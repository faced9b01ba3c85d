import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  IdentityProviderConfiguredSchema,
  MembershipGrantedSchema,
  MembershipRevokedSchema,
  MembershipRoleChangedSchema,
  PlatformOperatorChangedSchema,
  ScimTokenRevokedSchema,
  ScimTokenRotatedSchema,
  SessionEndedSchema,
  SessionStartedSchema,
  UserCreatedSchema,
} from "../../gen/nexus/events/v1/identity_events_pb.js";
import { roleToProto } from "../kernel/authz/access-recorder.js";
import "../kernel/authz/auth-event-topics.js";
import type { NewEvent } from "../kernel/events/ports.js";
import { eventOf } from "../kernel/events/protobuf-event.js";
import type { IdentityProviderEvent } from "./domain/identity-provider.js";
import type { ScimTokenEvent } from "./domain/scim-token.js";
import type { SessionEvent } from "./domain/session.js";
import type { UserEvent } from "./domain/user.js";

/**
 * People and identity provider events → the published protobuf payloads
 * (proto/nexus/events/v1/identity_events.proto). The sealed client secret stays in the domain
 * event (the store needs it); payloads say only whether one is set.
 */

/** The event store form of a user event (metadata names the tenant concerned, when one is). */
export function userEventToNew(e: UserEvent): NewEvent {
  switch (e.type) {
    case "UserCreated":
      return eventOf(
        UserCreatedSchema,
        { userId: e.userId, email: e.email, displayName: e.displayName },
        e.tenantId ? { metadata: { tenantId: e.tenantId } } : {},
      );
    case "MembershipGranted":
      return eventOf(
        MembershipGrantedSchema,
        { tenantId: e.tenantId, userId: e.userId, role: roleToProto(e.role) },
        { metadata: { tenantId: e.tenantId } },
      );
    case "MembershipRoleChanged":
      return eventOf(
        MembershipRoleChangedSchema,
        { tenantId: e.tenantId, userId: e.userId, previousRole: roleToProto(e.previousRole), role: roleToProto(e.role) },
        { metadata: { tenantId: e.tenantId } },
      );
    case "MembershipRevoked":
      return eventOf(MembershipRevokedSchema, { tenantId: e.tenantId, userId: e.userId }, { metadata: { tenantId: e.tenantId } });
    case "PlatformOperatorChanged":
      return eventOf(PlatformOperatorChangedSchema, { userId: e.userId, platformOperator: e.platformOperator });
    default: {
      const _exhaustive: never = e;
      return _exhaustive;
    }
  }
}

/** The event store form of an identity provider event. */
export function identityProviderEventToNew(e: IdentityProviderEvent): NewEvent {
  const c = e.config;
  return eventOf(
    IdentityProviderConfiguredSchema,
    {
      tenantId: c.tenantId,
      issuer: c.issuer,
      audience: c.audience,
      clientId: c.clientId,
      enabled: c.enabled,
      clientSecretSet: c.clientSecretSealed !== "",
    },
    { metadata: { tenantId: c.tenantId } },
  );
}

/** The event store form of a session event (never the token or its digest). */
export function sessionEventToNew(e: SessionEvent): NewEvent {
  const meta = { metadata: { tenantId: e.tenantId } };
  switch (e.type) {
    case "SessionStarted":
      return eventOf(
        SessionStartedSchema,
        { tenantId: e.tenantId, sessionId: e.sessionId, userId: e.userId, expiresAt: timestampFromDate(e.expiresAt) },
        meta,
      );
    case "SessionEnded":
      return eventOf(SessionEndedSchema, { tenantId: e.tenantId, sessionId: e.sessionId, userId: e.userId, reason: e.reason }, meta);
    default: {
      const _exhaustive: never = e;
      return _exhaustive;
    }
  }
}

/** The event store form of a SCIM token event (never the token or its digest). */
export function scimTokenEventToNew(e: ScimTokenEvent): NewEvent {
  const meta = { metadata: { tenantId: e.tenantId } };
  switch (e.type) {
    case "ScimTokenRotated":
      return eventOf(ScimTokenRotatedSchema, { tenantId: e.tenantId, tokenId: e.tokenId, previousTokenId: e.previousTokenId }, meta);
    case "ScimTokenRevoked":
      return eventOf(ScimTokenRevokedSchema, { tenantId: e.tenantId, tokenId: e.tokenId }, meta);
    default: {
      const _exhaustive: never = e;
      return _exhaustive;
    }
  }
}
