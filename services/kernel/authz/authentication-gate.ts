import type { ConnectError, HandlerContext } from "@connectrpc/connect";
import { principalKey } from "../context.js";
import { domainError } from "../errors.js";
import type { AccessRecorder } from "./access-recorder.js";
import type { AuthAttemptLimiter, Throttled } from "./auth-attempt-limiter.js";
import type { AuthenticationCache } from "./authentication-cache.js";
import type { Authenticator } from "./authenticator.js";
import { credentialKey } from "./authenticator.js";
import { type ClientAddressResolver, clientAddressOfCall } from "./client-address.js";
import { CSRF_HEADER, presentedSessionOf } from "./console-session.js";
import { authCacheLookups, authRefusals, authThrottled } from "./metrics.js";
import { permissionOf, procedureOf, ruleOfMethod } from "./permissions.js";

/** Options of {@link createAuthenticationGate}. */
export interface AuthenticationGateOptions {
  authenticator: Authenticator;
  cache: AuthenticationCache;
  recorder: AccessRecorder;
  /**
   * Limits REFUSED attempts per client address and per claimed key id, checked before the
   * lookup (NEXUS_AUTH_ATTEMPT_*). Default: none.
   */
  limiter?: AuthAttemptLimiter;
  /** The client's address, for the limiter and the audit of a refusal (see createClientAddressResolver). */
  clientAddress: ClientAddressResolver;
}

/** Longest header value we look at; Nexus keys are far shorter (the API caps them at 256). */
const MAX_KEY_LENGTH = 256;
/** Longest access token we look at (AuthenticateRequest.access_token caps it too). */
const MAX_TOKEN_LENGTH = 16_384;
const BEARER = /^Bearer[ \t]+([^\s]+)[ \t]*$/i;
const KEY_SHAPE = /^nxss?_[A-Za-z0-9_-]+$/;
/** The key id an API key claims (`nxs_<key id>_<secret>`); session tokens (`nxss_`) claim none. */
const CLAIMED_KEY_ID = /^nxs_([A-Za-z0-9-]{1,64})_/;
/** A compact JWS: three base64url parts (the signature may not be empty: unsigned tokens never pass). */
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** Whether a presented credential is an access token (a JWT) rather than a Nexus API key. */
export function isAccessToken(presented: string): boolean {
  return !presented.startsWith("nxs") && presented.length <= MAX_TOKEN_LENGTH && JWT_SHAPE.test(presented);
}

/**
 * The presented credential of a request: `Authorization: Bearer nxs_…` (an API key),
 * `Bearer nxss_…` (a sign-in session) or `Bearer <JWT>` (an access token of a tenant's OpenID
 * Connect issuer).
 * Undefined when the header is missing or holds neither.
 */
export function presentedKeyOf(header: Headers): string | undefined {
  const value = header.get("authorization");
  if (value === null) return undefined;
  const key = BEARER.exec(value)?.[1];
  if (key === undefined) return undefined;
  if (key.length <= MAX_KEY_LENGTH && KEY_SHAPE.test(key)) return key;
  return isAccessToken(key) ? key : undefined;
}

/**
 * The authentication gate (the kernel server's `authenticate` slot, run in connect's
 * requestGate before the body is read): resolves `Authorization: Bearer nxs_…` to a principal
 * and attaches it under `principalKey`, or refuses with UNAUTHENTICATED (AUTH_UNAUTHORIZED,
 * AUTH_REVOKED_KEY, AUTH_EXPIRED_KEY, AUTH_INACTIVE_KEY) or PERMISSION_DENIED
 * (TENANT_SUSPENDED). Procedures the permission table marks public pass without a key.
 *
 * Answers come from the per-process cache when fresh, else from the authenticator. Before the
 * authenticator is asked, the refused-authentication limiter (when configured) may stop the
 * call with RESOURCE_EXHAUSTED AUTH_RATE_LIMITED: the address or the claimed key id used up its
 * refused attempts. A cache hit never reaches it. Each
 * refused call is recorded exactly once: here when no usable key was sent, by the
 * authenticator otherwise. Neither the key nor the header ever reaches a log, event or error.
 */
export function createAuthenticationGate(options: AuthenticationGateOptions): (ctx: HandlerContext) => Promise<void> {
  const { authenticator, cache, recorder } = options;
  const limiter = options.limiter?.enabled ? options.limiter : undefined;
  const fromCache = createCachedAuthentication(cache);
  return async (ctx) => {
    if (fromCache(ctx)) return;
    const procedure = procedureOf(ctx.service.typeName, ctx.method.name);
    if (permissionOf(procedure)?.class === "public") return;
    // The client's address: the connection's peer, or X-Forwarded-For only from a trusted proxy
    // (NEXUS_TRUSTED_PROXIES) — for the limiter and for the audit of a refusal alike.
    const clientAddress = clientAddressOfCall(options.clientAddress, ctx);
    let presented = presentedKeyOf(ctx.requestHeader);
    const claimedKeyId = limiter ? claimedKeyIdOf(presented) : undefined;
    if (presented === undefined && !ctx.requestHeader.has("authorization")) {
      // A console session (docs/console.md): the cookie, and the session's CSRF token in a
      // header, which another site can neither read nor forge.
      const session = presentedSessionOf(ctx.requestHeader);
      if (session !== undefined && !session.csrf) {
        authRefusals.inc({ reason: "CSRF_TOKEN_INVALID" });
        throw domainError(
          "CSRF_TOKEN_INVALID",
          `a call made with the console session cookie must carry the session's CSRF token in the ${CSRF_HEADER} header; reload the console`,
        );
      }
      presented = session?.token;
    }
    const throttled = limiter && (await admitAttempt(limiter, recorder, { clientAddress, keyId: claimedKeyId, presented, procedure }));
    if (throttled) throw throttled;
    if (presented === undefined) {
      limiter?.refused(clientAddress, undefined);
      authRefusals.inc({ reason: "AUTH_UNAUTHORIZED" });
      await recorder.accessDenied({ reason: "AUTH_UNAUTHORIZED", procedure, ...(clientAddress ? { peerAddress: clientAddress } : {}) });
      const message = ctx.requestHeader.has("authorization")
        ? "the Authorization header holds neither a Nexus API key nor an access token (expected: Bearer nxs_<key id>_<secret>, or Bearer <JWT>)"
        : "this call needs an API key: send Authorization: Bearer nxs_<key id>_<secret>";
      throw domainError("AUTH_UNAUTHORIZED", message);
    }
    authCacheLookups.inc({ outcome: "miss" });
    const epoch = cache.epoch();
    const result = await authenticator.authenticate(presented, {
      procedure,
      signal: ctx.signal,
      ...(clientAddress ? { peerAddress: clientAddress } : {}),
    });
    if (result.kind === "refused") {
      limiter?.refused(clientAddress, claimedKeyId);
      authRefusals.inc({ reason: result.reason });
      throw domainError(result.reason, result.message);
    }
    limiter?.succeeded(presented);
    const principal = deepFreeze(result.principal);
    const credential = result.credential ? deepFreeze(result.credential) : undefined;
    cache.set(presented, principal, result.validUntil, epoch, credential);
    ctx.values.set(principalKey, principal);
    if (credential) ctx.values.set(credentialKey, credential);
  };
}

/**
 * The part of the gate that needs no I/O, run synchronously: true when the call is accepted
 * right away — a procedure the permission table marks public, or a key whose answer is in the
 * cache (the principal and credential are attached, as the gate does). False: the gate must
 * run (no key, a refused key, or a cache miss). The server runs this first, so an accepted
 * call from the cache costs no async frame, trace-context extraction or request scope.
 */
export function createCachedAuthentication(cache: AuthenticationCache): (ctx: HandlerContext) => boolean {
  const hit = authCacheLookups.labels({ outcome: "hit" });
  return (ctx) => {
    if (ruleOfMethod(ctx.method).permission?.class === "public") return true;
    const presented = presentedKeyOf(ctx.requestHeader);
    if (presented === undefined) return false;
    const cached = cache.lookup(presented);
    if (cached === undefined) return false;
    hit.inc();
    ctx.values.set(principalKey, cached.principal);
    if (cached.credential) ctx.values.set(credentialKey, cached.credential);
    return true;
  };
}

/** The key id a presented credential claims: `<key id>` of `nxs_<key id>_<secret>`; none for sessions, tokens or nothing. */
export function claimedKeyIdOf(presented: string | undefined): string | undefined {
  return presented === undefined ? undefined : CLAIMED_KEY_ID.exec(presented)?.[1];
}

/** An authentication attempt about to be looked up, as the refused-authentication limiter sees it. */
export interface AuthAttempt {
  /** The client's address (see createClientAddressResolver); the audit record names it. */
  clientAddress: string | undefined;
  keyId: string | undefined;
  presented: string | undefined;
  /** What the audit record names. */
  procedure: string;
}

/**
 * Whether an attempt may go on to its lookup: undefined, or the RESOURCE_EXHAUSTED
 * AUTH_RATE_LIMITED refusal to answer (one of its buckets is dry) — recording one AccessDenied
 * (reason AUTH_RATE_LIMITED) at the start of the bucket's throttled period, none for the calls
 * after it. Used by the gate, AuthService.Authenticate (direct callers) and the console sign-in.
 */
export async function admitAttempt(
  limiter: AuthAttemptLimiter,
  recorder: AccessRecorder,
  attempt: AuthAttempt,
): Promise<ConnectError | undefined> {
  const throttled = limiter.admit(attempt.clientAddress, attempt.keyId, attempt.presented);
  if (throttled === undefined) return undefined;
  if (throttled.startsPeriod) {
    await recorder.accessDenied({
      reason: "AUTH_RATE_LIMITED",
      procedure: attempt.procedure,
      ...(attempt.keyId ? { keyId: attempt.keyId } : {}),
      ...(attempt.clientAddress ? { peerAddress: attempt.clientAddress } : {}),
    });
  }
  return throttledRefusal(throttled);
}

/**
 * RESOURCE_EXHAUSTED AUTH_RATE_LIMITED for an attempt stopped by the refused-authentication
 * limiter, counted: ErrorInfo metadata `scope` (client_address or key_id) and `retry_after_ms`,
 * RetryInfo, and the `retry-after` (seconds), `x-ratelimit-scope` and
 * `x-ratelimit-retry-after-ms` headers (HTTP 429 for Connect JSON).
 */
function throttledRefusal(throttled: Throttled): ConnectError {
  const { scope, retryAfterMs } = throttled;
  authThrottled.inc({ scope });
  authRefusals.inc({ reason: "AUTH_RATE_LIMITED" });
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  const whose = scope === "client_address" ? "from this address" : "with this key id";
  return domainError(
    "AUTH_RATE_LIMITED",
    `too many refused authentication attempts ${whose}; check the API key and retry in ${seconds} s`,
    { scope, retry_after_ms: retryAfterMs },
    {
      retryAfterMs,
      headers: { "retry-after": String(seconds), "x-ratelimit-scope": scope, "x-ratelimit-retry-after-ms": String(retryAfterMs) },
    },
  );
}

/** Cached principals are shared by concurrent calls: nobody may change one. */
function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
