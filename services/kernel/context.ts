import { AsyncLocalStorage } from "node:async_hooks";
import { createContextKey } from "@connectrpc/connect";

/**
 * Identifiers that follow one request through logs, events and outgoing calls.
 * `requestId` is unique per inbound RPC; `correlationId` is kept across hops (taken from the
 * caller's `x-correlation-id`, or the request id when the caller sent none).
 */
export interface RequestMeta {
  requestId: string;
  correlationId: string;
}

/** Header carrying the request id in and out (echoed on every response). */
export const REQUEST_ID_HEADER = "x-request-id";
/** Header carrying the correlation id across services and into events. */
export const CORRELATION_ID_HEADER = "x-correlation-id";

/**
 * Who is calling. Filled by the authentication gate (services/kernel/authz); `undefined` for
 * calls that need no principal (health, reflection, AuthService.Authenticate). Platform
 * operators run the installation and are never feature-gated; tenant members act inside one
 * tenant with a role, and carry the tenant's effective entitlements so any service can check
 * a feature (`requireFeature`) without another call.
 */
export type Principal = PlatformPrincipal | TenantPrincipal;

/** A platform operator: belongs to no tenant, has no role. */
export interface PlatformPrincipal {
  kind: "platform";
  /** Id of the API key that authenticated the call. */
  keyId: string;
  /** Name of that key. */
  name: string;
}

/** A member of one tenant, acting with a role inside that tenant only. */
export interface TenantPrincipal {
  kind: "tenant";
  /** Id of the API key that authenticated the call (`user:<user id>` for an access token). */
  keyId: string;
  /** Name of that key. */
  name: string;
  tenantId: string;
  tenantSlug: string;
  role: TenantRole;
  plan: PlanName;
  /** The tenant's effective entitlements (plan defaults with per-tenant overrides applied). */
  entitlements: PrincipalEntitlements;
  /** The person acting: the owner of the API key, or the user an access token names; absent for machine keys. */
  userId?: string;
  /** The person's groups as the identity provider's access token stated them (tokens only). */
  groups?: readonly string[];
}

/** Tenant roles, strongest first. */
export type TenantRole = "owner" | "admin" | "editor" | "viewer";

/** Commercial plans. */
export type PlanName = "free" | "pro" | "enterprise";

/** What a tenant may use right now (see services/kernel/authz/plans.ts for the catalog). */
export interface PrincipalEntitlements {
  /** Feature key → enabled, for every feature the installation knows (e.g. "feature.tts"). */
  features: Readonly<Record<string, boolean>>;
  /** Feature-specific settings from overrides, by feature key (e.g. {"voices": ["nova"]}). */
  featureConfig: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  /** Runs included per UTC calendar month; `undefined` means unlimited. */
  monthlyRunAllowance: number | undefined;
  /** Most API keys the tenant may hold active at once; `undefined` means the installation default. */
  maxActiveApiKeys: number | undefined;
}

/** Connect context value: the request's ids (set by the request-id interceptor). */
export const requestMetaKey = createContextKey<RequestMeta | undefined>(undefined, {
  description: "nexus request meta",
});

/**
 * Connect context value: the call's own response headers and trailers (set by the server's
 * request gate), for an interceptor that answers without calling the handler (an idempotent
 * replay) and must keep what the protocol already put there (content type, grpc-status).
 */
export const responseMetadataKey = createContextKey<{ header: Headers; trailer: Headers } | undefined>(undefined, {
  description: "nexus response metadata",
});

/** Connect context value: the authenticated principal (set by the authentication gate). */
export const principalKey = createContextKey<Principal | undefined>(undefined, {
  description: "nexus principal",
});

/**
 * Async-local request scope so code far from the handler (event append, logging, outgoing
 * clients) sees the current request's ids without threading them through every call.
 */
export const requestScope = new AsyncLocalStorage<RequestMeta>();

/** The ids of the request being served on this async path, if any. */
export function currentRequestMeta(): RequestMeta | undefined {
  return requestScope.getStore();
}
