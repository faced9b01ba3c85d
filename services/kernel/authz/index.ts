/**
 * The kernel's authentication and authorization, shared by every process: THE permission
 * table, the authentication gate with its per-process cache (invalidated by auth events),
 * the authorization interceptor, and the helpers handlers use (`requireFeature`,
 * `tenantScope`, `principalOf`, `tenantPrincipal`, `platformPrincipal`, `requireTenantPrincipal`,
 * `requirePlatformPrincipal`).
 */

export {
  type AccessDeniedRecord,
  type AccessFailureReason,
  type AccessRecorder,
  accessStreamId,
  createEventStoreAccessRecorder,
  type RbacForbiddenRecord,
} from "./access-recorder.js";
export { AUTH_EVENT_TOPICS, AUTH_EVENTS_FILTER } from "./auth-event-topics.js";
export {
  AuthenticationCache,
  type AuthenticationCacheOptions,
  type InvalidationTarget,
  invalidateInProcess,
} from "./authentication-cache.js";
export {
  type AuthenticationGateOptions,
  createAuthenticationGate,
  isAccessToken,
  presentedKeyOf,
} from "./authentication-gate.js";
export {
  AUTH_PEER_HEADER,
  AUTH_PROCEDURE_HEADER,
  type Authenticator,
  type AuthenticatorResult,
  credentialKey,
  type PresentationContext,
} from "./authenticator.js";
export { type AuthorizationInterceptorOptions, createAuthorizationInterceptor } from "./authorization-interceptor.js";
export { type AuthorizationDecision, type AuthorizationInput, authorize, type ForbiddenReason } from "./authorize.js";
export { type CacheInvalidationOptions, invalidationOf, sessionKey, startCacheInvalidation, userIdKey } from "./cache-invalidation.js";
export { type MeshAuthz, type MeshAuthzOptions, startMeshAuthz } from "./mesh-authz.js";
export { CLASS_MIN_ROLE, PERMISSIONS, type Permission, type PermissionClass, permissionOf, procedureOf } from "./permissions.js";
export { planFromProto, planToProto, principalFromProto, principalToProto, roleFromProto } from "./principal-proto.js";
export { authorizationRefusal } from "./refusal.js";
export { createRemoteAuthenticator, type RemoteAuthenticatorOptions } from "./remote-authenticator.js";
export { hasTenantIdField, requestTenantId, TENANT_ID_FIELD } from "./request-tenant.js";
export { hasFeature, requireFeature } from "./require-feature.js";
export {
  platformPrincipal,
  principalOf,
  requirePlatformPrincipal,
  requireTenantPrincipal,
  tenantPrincipal,
  tenantScope,
} from "./tenant-scope.js";
