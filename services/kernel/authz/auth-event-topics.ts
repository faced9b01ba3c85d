import { registerEventTopics } from "../events/topics.js";

/**
 * Topics (`<domain>.<event>`, subjects `nexus.auth.*`) of the auth domain's events, as the
 * contracts in proto/nexus/events/v1/auth_events.proto name them. Registered with the event
 * store on import so `eventOf` needs no explicit topic.
 */
export const AUTH_EVENT_TOPICS = Object.freeze({
  "nexus.events.v1.TenantCreated": "auth.tenant_created",
  "nexus.events.v1.TenantSuspended": "auth.tenant_suspended",
  "nexus.events.v1.TenantResumed": "auth.tenant_resumed",
  "nexus.events.v1.PlanChanged": "auth.plan_changed",
  "nexus.events.v1.EntitlementOverridesChanged": "auth.entitlement_overrides_changed",
  "nexus.events.v1.TenantDisplayNameChanged": "auth.tenant_display_name_changed",
  "nexus.events.v1.ApiKeyIssued": "auth.api_key_issued",
  "nexus.events.v1.ApiKeyRotated": "auth.api_key_rotated",
  "nexus.events.v1.ApiKeyRevoked": "auth.api_key_revoked",
  "nexus.events.v1.ApiKeyRoleChanged": "auth.api_key_role_changed",
  "nexus.events.v1.ApiKeyReactivated": "auth.api_key_reactivated",
  "nexus.events.v1.AccessDenied": "auth.access_denied",
  "nexus.events.v1.RbacForbidden": "auth.rbac_forbidden",
  // people and identity providers (proto/nexus/events/v1/identity_events.proto)
  "nexus.events.v1.UserCreated": "auth.user_created",
  "nexus.events.v1.MembershipGranted": "auth.membership_granted",
  "nexus.events.v1.MembershipRoleChanged": "auth.membership_role_changed",
  "nexus.events.v1.MembershipRevoked": "auth.membership_revoked",
  "nexus.events.v1.PlatformOperatorChanged": "auth.platform_operator_changed",
  "nexus.events.v1.IdentityProviderConfigured": "auth.identity_provider_configured",
  "nexus.events.v1.SessionStarted": "auth.session_started",
  "nexus.events.v1.SessionEnded": "auth.session_ended",
  "nexus.events.v1.ScimTokenRotated": "auth.scim_token_rotated",
  "nexus.events.v1.ScimTokenRevoked": "auth.scim_token_revoked",
  "nexus.events.v1.DirectoryGroupsChanged": "auth.directory_groups_changed",
} as const);

registerEventTopics(AUTH_EVENT_TOPICS);

/** Subject filter (relative to the prefix) of every auth event. */
export const AUTH_EVENTS_FILTER = "auth.>";
