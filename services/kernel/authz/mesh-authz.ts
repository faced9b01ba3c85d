import type { HandlerContext, Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { Database } from "../db/ports.js";
import type { EventBus } from "../events/ports.js";
import { type AccessRecorder, createEventStoreAccessRecorder } from "./access-recorder.js";
import { type AuthAttemptLimiter, createLoggedAuthAttemptLimiter } from "./auth-attempt-limiter.js";
import { AuthenticationCache } from "./authentication-cache.js";
import { createAuthenticationGate, createCachedAuthentication } from "./authentication-gate.js";
import type { Authenticator } from "./authenticator.js";
import { createAuthorizationInterceptor } from "./authorization-interceptor.js";
import { startCacheInvalidation } from "./cache-invalidation.js";
import { createClientAddressResolver } from "./client-address.js";

/** Options of {@link startMeshAuthz}. */
export interface MeshAuthzOptions {
  /** Resolves keys: the auth domain in its own process, AuthService.Authenticate elsewhere. */
  authenticator: Authenticator;
  /** The process's event bus (its per-process observe feed invalidates the cache). */
  bus: EventBus;
  /** Database holding platform.events (refusals are recorded there). */
  db: Database;
  logger: Logger;
  /** Clock of cache expiry. Default the wall clock. */
  clock?: () => Date;
  /** NEXUS_AUTH_CACHE_TTL_MS. Default 30 000. */
  cacheTtlMs?: number;
  /** NEXUS_AUTH_CACHE_MAX_ENTRIES. Default 10 000. */
  cacheMaxEntries?: number;
  /** Default: events in `db`. */
  recorder?: AccessRecorder;
  /** NEXUS_AUTH_ATTEMPT_BURST, _RATE_PER_SECOND, _MAX_ENTRIES (refused-authentication limiter). Default 20, 1, 10 000. */
  authAttempts?: { burst?: number; ratePerSecond?: number; maxEntries?: number };
  /** NEXUS_TRUSTED_PROXIES: proxies whose X-Forwarded-For names the client. Default none. */
  trustedProxies?: readonly string[];
}

/** The security of one process, ready to hand to `createServer`. */
export interface MeshAuthz {
  /** The server's `authenticate` slot. */
  authenticate: (ctx: HandlerContext) => Promise<void>;
  /** The server's `authenticateFromCache` slot: the gate's synchronous part (public procedures, cache hits). */
  authenticateFromCache: (ctx: HandlerContext) => boolean;
  /** The server's extra interceptors (the permission table). */
  interceptors: Interceptor[];
  cache: AuthenticationCache;
  recorder: AccessRecorder;
  /** The refused-authentication limiter of the gate. */
  attempts: AuthAttemptLimiter;
  /** Stops the invalidation feed and detaches the cache. */
  close(): Promise<void>;
}

/**
 * Assembles a process's authentication and authorization: the gate (with its per-process
 * cache, kept honest by the auth event feed) and the permission-table interceptor. Every
 * Nexus process runs exactly this, whatever services it hosts.
 */
export async function startMeshAuthz(options: MeshAuthzOptions): Promise<MeshAuthz> {
  const recorder = options.recorder ?? createEventStoreAccessRecorder({ db: options.db, logger: options.logger });
  const cache = new AuthenticationCache({
    ...(options.cacheTtlMs !== undefined ? { ttlMs: options.cacheTtlMs } : {}),
    ...(options.cacheMaxEntries !== undefined ? { maxEntries: options.cacheMaxEntries } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
  });
  const log = options.logger.child({ component: "authz" });
  const attempts = createLoggedAuthAttemptLimiter(options.authAttempts ?? {}, log);
  const feed = await startCacheInvalidation({ bus: options.bus, cache, logger: log });
  return {
    authenticate: createAuthenticationGate({
      authenticator: options.authenticator,
      cache,
      recorder,
      limiter: attempts,
      clientAddress: createClientAddressResolver(options.trustedProxies),
    }),
    authenticateFromCache: createCachedAuthentication(cache),
    interceptors: [createAuthorizationInterceptor({ recorder })],
    cache,
    recorder,
    attempts,
    async close() {
      await feed.stop();
      cache.close();
      attempts.clear();
    },
  };
}
