/**
 * The kernel's authentication and authorization, shared by every process: THE permission
 * table, the authentication gate with its per-process cache (invalidated by auth events),
 * the authorization interceptor, and the helpers handlers use (`requireFeature`,
 * `tenantScope`, `principalOf`, `tenantPrincipal`, `platformPrincipal`, `requireTenantPrincipal`,
 * `requirePlatformPrincipal`).
 */
export { PERMISSIONS, CLASS_MIN_ROLE, permissionOf, procedureOf, type Permission, type PermissionClass } from "./permissions.js";
export { authorize, type AuthorizationDecision, type AuthorizationInput, type ForbiddenReason } from "./authorize.js";
export { requireFeature, hasFeature } from "./require-feature.js";
export { authorizationRefusal } from "./refusal.js";
export { tenantScope, principalOf, tenantPrincipal, platformPrincipal, requireTenantPrincipal, requirePlatformPrincipal } from "./tenant-scope.js";
export { requestTenantId, hasTenantIdField, TENANT_ID_FIELD } from "./request-tenant.js";
export {
  createEventStoreAccessRecorder,
  accessStreamId,
  type AccessRecorder,
  type AccessDeniedRecord,
  type AccessFailureReason,
  type RbacForbiddenRecord,
} from "./access-recorder.js";
export { AuthenticationCache, invalidateInProcess, type AuthenticationCacheOptions, type InvalidationTarget } from "./authentication-cache.js";
export { AUTH_PEER_HEADER, AUTH_PROCEDURE_HEADER, credentialKey, type Authenticator, type AuthenticatorResult, type PresentationContext } from "./authenticator.js";
export { createRemoteAuthenticator, type RemoteAuthenticatorOptions } from "./remote-authenticator.js";
export { createAuthenticationGate, presentedKeyOf, peerAddressOf, type AuthenticationGateOptions } from "./authentication-gate.js";
export { createAuthorizationInterceptor, type AuthorizationInterceptorOptions } from "./authorization-interceptor.js";
export { startCacheInvalidation, invalidationOf, type CacheInvalidationOptions } from "./cache-invalidation.js";
export { startMeshAuthz, type MeshAuthz, type MeshAuthzOptions } from "./mesh-authz.js";
export { AUTH_EVENT_TOPICS, AUTH_EVENTS_FILTER } from "./auth-event-topics.js";
export { principalFromProto, principalToProto, planFromProto, planToProto, roleFromProto } from "./principal-proto.js";
