import { createHash, randomBytes, randomUUID } from "node:crypto";
import { jwtVerify } from "jose";
import { invalidateInProcess } from "../kernel/authz/authentication-cache.js";
import { sessionKey } from "../kernel/authz/cache-invalidation.js";
import { effectiveEntitlements, principalEntitlements } from "../kernel/authz/plans.js";
import { executeInTransaction } from "../kernel/commands/index.js";
import type { TenantPrincipal, TenantRole } from "../kernel/context.js";
import { domainError } from "../kernel/errors.js";
import { type SessionAggregate, sessionAggregate } from "./auth-aggregates.js";
import { digestOf, verifyApiKey } from "./domain/api-key-secret.js";
import type { IdentityProviderConfig } from "./domain/identity-provider.js";
import { ROLE_RANK } from "./domain/key-policy.js";
import { sessionLive } from "./domain/session.js";
import { membershipIn, normalizeEmail } from "./domain/user.js";
import type { IdentityApplication } from "./identity-application.js";
import type { AuthStore } from "./ports.js";
import type { JwksCache } from "./token-authentication.js";

/** Prefix of session tokens (`nxss_<session id>_<secret>`); API keys are `nxs_…`. */
export const SESSION_PREFIX = "nxss_";
const SESSION_TOKEN = /^nxss_([0-9a-f-]{36})_([A-Za-z0-9_-]{43})$/;

/** Settings of sign-in. */
export interface SignInSettings {
  /** How long a session lasts (NEXUS_SSO_SESSION_TTL_SECONDS). */
  sessionTtlMs: number;
  /** How long a sign-in may take between the redirect and the callback (NEXUS_SSO_STATE_TTL_SECONDS). */
  stateTtlMs: number;
  /** Deadline of the code exchange. */
  httpTimeoutMs: number;
}

/** Options of {@link SignIn}. */
export interface SignInOptions {
  store: AuthStore;
  identity: IdentityApplication;
  jwks: JwksCache;
  clock: () => Date;
  settings: SignInSettings;
}

/** A finished sign-in. */
export interface SignedIn {
  /** The session token, handed out once (cookie `nexus_session`, or `Authorization: Bearer`). */
  token: string;
  sessionId: string;
  userId: string;
  tenantId: string;
  role: TenantRole;
  expiresAt: Date;
  /** Where the browser goes now. */
  returnTo: string;
  /** Whether this sign-in created the member (JIT provisioning). */
  provisioned: boolean;
}

const b64url = (bytes: Buffer) => bytes.toString("base64url");

/**
 * OpenID Connect sign-in to a tenant (authorization code flow with PKCE): `start` sends the
 * browser to the tenant's provider with a fresh state, nonce and code challenge; `finish`
 * takes the state back exactly once, exchanges the code (with the client secret, opened from the
 * keyring, and the PKCE verifier), validates the ID token against the issuer's keys (issuer,
 * audience = client id, expiry with the provider's clock skew, nonce), maps the person to a
 * member — JIT-provisioning them when the provider allows it and the plan has
 * `feature.identity.jit`, applying the group → role mapping at every sign-in — and starts a
 * session with a TTL. Sessions authenticate like keys (`Bearer nxss_…`) until they expire or
 * are ended by sign-out.
 */
export class SignIn {
  private readonly sessions: SessionAggregate;

  constructor(private readonly options: SignInOptions) {
    this.sessions = sessionAggregate(options.store.sessions);
  }

  /**
   * The sign-in a tenant offers its people (the console's "Sign in with …" button): the
   * provider's host, or undefined when the tenant is unknown, has no enabled provider, or its
   * plan has no single sign-on — all answered alike, so the answer says nothing more.
   */
  async providerFor(tenantSlug: string): Promise<{ name: string } | undefined> {
    const tenant = await this.options.store.getTenantBySlug(tenantSlug);
    if (tenant === undefined) return undefined;
    const features = principalEntitlements(effectiveEntitlements(tenant.plan, tenant.overrides)).features;
    if (features["feature.identity.sso"] !== true) return undefined;
    const provider = await this.options.store.getIdentityProvider(tenant.id);
    if (provider === undefined || !provider.enabled || !provider.authorizationEndpoint) return undefined;
    try {
      return { name: new URL(provider.issuer).host };
    } catch {
      return { name: provider.issuer };
    }
  }

  /** The provider URL to send the browser to. */
  async start(input: { tenantSlug: string; returnTo: string; origin: string }): Promise<string> {
    const tenant = await this.options.store.getTenantBySlug(input.tenantSlug);
    if (tenant === undefined) throw domainError("NOT_FOUND", "tenant not found");
    const features = principalEntitlements(effectiveEntitlements(tenant.plan, tenant.overrides)).features;
    if (features["feature.identity.sso"] !== true) {
      throw domainError("FEATURE_NOT_ENABLED", "the tenant's plan does not include single sign-on", {
        feature_key: "feature.identity.sso",
      });
    }
    const provider = await this.options.store.getIdentityProvider(tenant.id);
    if (provider === undefined || !provider.enabled || !provider.authorizationEndpoint) {
      throw domainError("FAILED_PRECONDITION", "the tenant has no enabled identity provider with an authorization endpoint");
    }
    const returnTo = allowedUrl(input.returnTo, provider, "redirect_uri");
    const callbackUri = `${allowedUrl(input.origin, provider, "the Nexus host").origin}/auth/oidc/callback`;
    const state = b64url(randomBytes(32));
    const nonce = b64url(randomBytes(32));
    const codeVerifier = b64url(randomBytes(32));
    await this.options.store.saveSignInAttempt({
      state,
      tenantId: tenant.id,
      nonce,
      codeVerifier,
      callbackUri,
      returnTo: returnTo.toString(),
      expiresAt: new Date(this.options.clock().getTime() + this.options.settings.stateTtlMs),
    });
    const url = new URL(provider.authorizationEndpoint);
    url.search = new URLSearchParams({
      response_type: "code",
      client_id: provider.clientId,
      redirect_uri: callbackUri,
      scope: provider.scopes.join(" "),
      state,
      nonce,
      code_challenge: b64url(createHash("sha256").update(codeVerifier).digest()),
      code_challenge_method: "S256",
    }).toString();
    return url.toString();
  }

  /** Completes a sign-in from the provider's redirect (`code` and `state`, or `error`). */
  async finish(input: { state: string; code: string; error: string }): Promise<SignedIn> {
    const now = this.options.clock();
    const attempt = input.state ? await this.options.store.takeSignInAttempt(input.state, now) : undefined;
    if (attempt === undefined)
      throw domainError("INVALID_ARGUMENT", "unknown, used or expired sign-in state: start the sign-in again", { field: "state" });
    if (input.error) throw domainError("AUTH_UNAUTHORIZED", `the identity provider refused the sign-in (${input.error.slice(0, 100)})`);
    if (!input.code) throw domainError("INVALID_ARGUMENT", "the provider's redirect carries no code", { field: "code" });
    const provider = await this.options.store.getIdentityProvider(attempt.tenantId);
    const tenant = await this.options.store.getTenant(attempt.tenantId);
    if (provider === undefined || !provider.enabled || tenant === undefined) {
      throw domainError("FAILED_PRECONDITION", "the tenant's identity provider was removed or disabled during sign-in");
    }
    const idToken = await this.exchange(provider, input.code, attempt.callbackUri, attempt.codeVerifier);
    let claims: Record<string, unknown>;
    try {
      ({ payload: claims } = await jwtVerify(idToken, this.options.jwks.keySet(provider.jwksUri), {
        issuer: provider.issuer,
        audience: provider.clientId,
        clockTolerance: provider.clockSkewSeconds,
        currentDate: now,
        requiredClaims: ["exp", "iat", "sub"],
      }));
    } catch (err) {
      throw domainError("AUTH_TOKEN_INVALID", `the ID token is not valid: ${(err as Error).message}`, {}, { cause: err });
    }
    if (claims.nonce !== attempt.nonce) throw domainError("AUTH_TOKEN_INVALID", "the ID token's nonce is not the one this sign-in sent");
    const claimed = claims[provider.userClaim];
    if (typeof claimed !== "string" || !claimed) throw domainError("AUTH_UNKNOWN_USER", `the ID token has no ${provider.userClaim} claim`);
    const email = normalizeEmail(claimed);
    const groupsClaim = claims[provider.groupsClaim];
    const groups = Array.isArray(groupsClaim) ? groupsClaim.filter((g): g is string => typeof g === "string").slice(0, 100) : [];
    const mapped = mappedRole(provider, groups);
    const features = principalEntitlements(effectiveEntitlements(tenant.plan, tenant.overrides)).features;
    if (tenant.status === "suspended") throw domainError("TENANT_SUSPENDED", "the tenant is suspended");

    let user = await this.options.store.getUserByEmail(email);
    let provisioned = false;
    let membership = membershipIn(user, tenant.id);
    if (membership === undefined) {
      if (!provider.jitEnabled || features["feature.identity.jit"] !== true) {
        throw domainError("AUTH_UNKNOWN_USER", "you are not a member of this tenant; ask an admin to add you");
      }
      const displayName = typeof claims.name === "string" ? claims.name.slice(0, 200) : "";
      user = await this.options.identity.provisionAtSignIn(tenant.id, email, displayName, mapped ?? provider.defaultRole);
      membership = membershipIn(user, tenant.id);
      provisioned = true;
    } else if (mapped !== undefined && mapped !== membership.role && user !== undefined) {
      // Groups decide the role at every sign-in: a change at the provider takes effect now.
      user = await this.options.identity.applyRoleAtSignIn(tenant.id, user.id, mapped);
      membership = membershipIn(user, tenant.id);
    }
    if (user === undefined || membership === undefined) throw domainError("AUTH_UNKNOWN_USER", "you are not a member of this tenant");

    const sessionId = randomUUID();
    const token = `${SESSION_PREFIX}${sessionId}_${b64url(randomBytes(32))}`;
    const { state } = await this.options.store.transaction((tx) =>
      executeInTransaction(
        tx.tx,
        this.sessions,
        sessionId,
        {
          type: "StartSession",
          sessionId,
          tenantId: tenant.id,
          userId: user.id,
          groups,
          digest: digestOf(token),
          ttlMs: this.options.settings.sessionTtlMs,
          now,
        },
        { metadata: { actor: `user:${user.id}`, tenantId: tenant.id } },
      ),
    );
    return {
      token,
      sessionId,
      userId: user.id,
      tenantId: tenant.id,
      role: membership.role,
      expiresAt: state?.expiresAt ?? now,
      returnTo: attempt.returnTo,
      provisioned,
    };
  }

  /** Ends the session the token names (sign-out). False when the token names no live session. */
  async signOut(token: string): Promise<{ ended: boolean; sessionId?: string }> {
    const sessionId = SESSION_TOKEN.exec(token)?.[1];
    if (sessionId === undefined) return { ended: false };
    const session = await this.options.store.getSession(sessionId);
    if (session === undefined || !verifyApiKey(token, session.digest)) return { ended: false };
    const { events } = await this.options.store.transaction((tx) =>
      executeInTransaction(
        tx.tx,
        this.sessions,
        sessionId,
        { type: "EndSession", reason: "signed out", now: this.options.clock() },
        {
          metadata: { actor: `user:${session.userId}`, tenantId: session.tenantId },
        },
      ),
    );
    // This process drops the session's cached answers now; the SessionEnded event does it elsewhere.
    invalidateInProcess({ keyIds: [sessionKey(sessionId)] });
    return { ended: events.length > 0, sessionId };
  }

  /** The principal of a presented session token, or why it is refused. */
  async authenticate(token: string): Promise<
    | { kind: "authenticated"; principal: TenantPrincipal; validUntil: Date }
    | {
        kind: "refused";
        reason: "AUTH_UNAUTHORIZED" | "AUTH_REVOKED_KEY" | "AUTH_EXPIRED_KEY" | "AUTH_UNKNOWN_USER" | "TENANT_SUSPENDED";
        message: string;
        tenantId?: string;
      }
  > {
    const sessionId = SESSION_TOKEN.exec(token)?.[1];
    const session = sessionId ? await this.options.store.getSession(sessionId) : undefined;
    if (!verifyApiKey(token, session?.digest) || session === undefined)
      return { kind: "refused", reason: "AUTH_UNAUTHORIZED", message: "the session token is not valid" };
    const now = this.options.clock();
    const ids = { tenantId: session.tenantId };
    if (session.endedAt !== undefined)
      return { kind: "refused", reason: "AUTH_REVOKED_KEY", message: "the session ended (signed out): sign in again", ...ids };
    if (!sessionLive(session, now))
      return { kind: "refused", reason: "AUTH_EXPIRED_KEY", message: "the session expired: sign in again", ...ids };
    const [user, tenant] = await Promise.all([this.options.store.getUser(session.userId), this.options.store.getTenant(session.tenantId)]);
    const membership = membershipIn(user, session.tenantId);
    if (user === undefined || membership === undefined || tenant === undefined) {
      return { kind: "refused", reason: "AUTH_UNKNOWN_USER", message: "the session's user is no longer a member of the tenant", ...ids };
    }
    if (tenant.status === "suspended") return { kind: "refused", reason: "TENANT_SUSPENDED", message: "the tenant is suspended", ...ids };
    return {
      kind: "authenticated",
      principal: {
        kind: "tenant",
        keyId: sessionKey(session.id),
        name: user.email,
        tenantId: tenant.id,
        tenantSlug: tenant.slug,
        role: membership.role,
        plan: tenant.plan,
        entitlements: principalEntitlements(effectiveEntitlements(tenant.plan, tenant.overrides)),
        userId: user.id,
        groups: session.groups,
      },
      validUntil: session.expiresAt,
    };
  }

  private async exchange(provider: IdentityProviderConfig, code: string, redirectUri: string, codeVerifier: string): Promise<string> {
    const secret = await this.options.identity.clientSecretOf(provider);
    const basic = Buffer.from(`${encodeURIComponent(provider.clientId)}:${encodeURIComponent(secret)}`).toString("base64");
    let res: Response;
    try {
      res = await fetch(provider.tokenEndpoint, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", authorization: `Basic ${basic}`, accept: "application/json" },
        body: new URLSearchParams({
          grant_type: "authorization_code",
          code,
          redirect_uri: redirectUri,
          code_verifier: codeVerifier,
        }).toString(),
        signal: AbortSignal.timeout(this.options.settings.httpTimeoutMs),
        redirect: "error",
      });
    } catch (err) {
      throw domainError(
        "DEPENDENCY_UNAVAILABLE",
        "the identity provider's token endpoint could not be reached",
        { dependency: "identity_provider" },
        { cause: err },
      );
    }
    const body = (await res.json().catch(() => ({}))) as { id_token?: unknown; error?: unknown; error_description?: unknown };
    if (!res.ok || typeof body.id_token !== "string") {
      throw domainError("AUTH_UNAUTHORIZED", `the identity provider did not accept the sign-in code (${String(body.error ?? res.status)})`);
    }
    return body.id_token;
  }
}

/** The strongest role the person's groups map to, if any. */
export function mappedRole(provider: Pick<IdentityProviderConfig, "groupRoles">, groups: readonly string[]): TenantRole | undefined {
  let best: TenantRole | undefined;
  for (const g of groups) {
    const role = provider.groupRoles[g];
    if (role !== undefined && (best === undefined || ROLE_RANK[role] > ROLE_RANK[best])) best = role;
  }
  return best;
}

/** A URL whose host is one of the provider's allowed redirect hosts. */
function allowedUrl(raw: string, provider: IdentityProviderConfig, what: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw domainError("INVALID_ARGUMENT", `${what} must be an absolute URL`, { field: "redirect_uri" });
  }
  if ((url.protocol !== "https:" && url.protocol !== "http:") || !provider.allowedRedirectHosts.includes(url.host)) {
    throw domainError("INVALID_ARGUMENT", `${what} (${url.host}) is not among the identity provider's allowed redirect hosts`, {
      field: "redirect_uri",
    });
  }
  return url;
}
