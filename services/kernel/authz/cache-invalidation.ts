import type { Logger } from "pino";
import type { EventBus, Observation, ObservedEvent } from "../events/ports.js";
import { AUTH_EVENTS_FILTER } from "./auth-event-topics.js";
import type { AuthenticationCache, InvalidationTarget } from "./authentication-cache.js";

/** The principal key id of a person authenticated by an access token (what caches index). */
export function userIdKey(userId: string): string {
  return `user:${userId}`;
}

/** The principal key id of a person authenticated by a sign-in session. */
export function sessionKey(sessionId: string): string {
  return `session:${sessionId}`;
}

/**
 * What an auth event ends in the authentication caches, or undefined when it ends nothing.
 * Key-level events end that key's answers; tenant-level events end every answer of the
 * tenant (its principals carry status, plan and entitlements). Reactivation, issue and
 * creation never make a cached answer wrong (refusals are not cached).
 */
export function invalidationOf(event: Pick<ObservedEvent, "type" | "payload">): InvalidationTarget | undefined {
  const payload = (event.payload ?? {}) as { keyId?: unknown; tenantId?: unknown };
  const keyId = typeof payload.keyId === "string" ? payload.keyId : undefined;
  const tenantId = typeof payload.tenantId === "string" ? payload.tenantId : undefined;
  switch (event.type) {
    case "nexus.events.v1.ApiKeyRevoked":
    case "nexus.events.v1.ApiKeyRotated":
    case "nexus.events.v1.ApiKeyRoleChanged":
      return keyId ? { keyIds: [keyId] } : { all: true };
    // People: a user's access tokens are cached under `user:<id>`, sessions under
    // `session:<id>`; a membership change ends both (sessions through their tenant).
    case "nexus.events.v1.MembershipRoleChanged":
    case "nexus.events.v1.MembershipRevoked":
    case "nexus.events.v1.PlatformOperatorChanged": {
      const userId = (event.payload as { userId?: unknown } | undefined)?.userId;
      if (typeof userId !== "string" || !userId) return { all: true };
      return { keyIds: [userIdKey(userId)], ...(tenantId ? { tenantIds: [tenantId] } : {}) };
    }
    case "nexus.events.v1.SessionEnded": {
      const sessionId = (event.payload as { sessionId?: unknown } | undefined)?.sessionId;
      return typeof sessionId === "string" && sessionId ? { keyIds: [sessionKey(sessionId)] } : { all: true };
    }
    // A person's directory groups are carried by the principals of their tokens, sessions and
    // owned keys: the tenant's answers end.
    case "nexus.events.v1.DirectoryGroupsChanged":
    case "nexus.events.v1.IdentityProviderConfigured":
      return tenantId ? { tenantIds: [tenantId] } : { all: true };
    case "nexus.events.v1.TenantSuspended":
    case "nexus.events.v1.TenantResumed":
    case "nexus.events.v1.PlanChanged":
    case "nexus.events.v1.EntitlementOverridesChanged":
      return tenantId ? { tenantIds: [tenantId] } : { all: true };
    default:
      return undefined;
  }
}

/** Options of {@link startCacheInvalidation}. */
export interface CacheInvalidationOptions {
  bus: EventBus;
  cache: AuthenticationCache;
  logger: Logger;
}

/**
 * Keeps this process's authentication cache honest: observes every auth event on the bus
 * (a per-process, non-durable fan-out — every process sees every event, unlike durable
 * consumers, which share work) and drops the answers each one ends. While the feed is down
 * (NATS disconnected, event table unreadable) an event could be missed, so the cache is
 * emptied and bypassed until the feed is back.
 */
export async function startCacheInvalidation(options: CacheInvalidationOptions): Promise<Observation> {
  const { cache, logger } = options;
  cache.setEnabled(false);
  const observation = await options.bus.observe({
    subject: AUTH_EVENTS_FILTER,
    handler(event) {
      const target = invalidationOf(event);
      if (target) cache.invalidate(target);
    },
    onStateChange(live) {
      if (!live) logger.warn("auth event feed lost: API key answers are not cached until it is back");
      else logger.info("auth event feed live: API key answers are cached again");
      cache.setEnabled(live);
    },
  });
  cache.setEnabled(observation.live);
  return observation;
}
