import { createRemoteJWKSet, decodeJwt, errors, type JWTPayload, jwtVerify } from "jose";
import type { TokenFailureReason } from "../kernel/authz/access-recorder.js";
import { userIdKey } from "../kernel/authz/cache-invalidation.js";
import { effectiveEntitlements, principalEntitlements } from "../kernel/authz/plans.js";
import type { PlatformPrincipal, TenantPrincipal } from "../kernel/context.js";
import { domainError } from "../kernel/errors.js";
import type { PlatformIssuer } from "./auth-settings.js";
import type { IdentityProviderConfig } from "./domain/identity-provider.js";
import type { Tenant } from "./domain/tenant.js";
import { membershipIn, normalizeEmail } from "./domain/user.js";
import { discoverIssuer } from "./oidc-discovery.js";
import type { AuthStore } from "./ports.js";

/** Signature algorithms accepted on access tokens: asymmetric only (a shared secret would let any client mint tokens). */
const ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"];
/** Most groups a principal carries from a token. */
const MAX_GROUPS = 100;

/** What {@link TokenAuthenticator.authenticate} answers. */
export type TokenOutcome =
  | { kind: "authenticated"; principal: TenantPrincipal | PlatformPrincipal; validUntil: Date | undefined }
  | { kind: "refused"; reason: TokenFailureReason | "TENANT_SUSPENDED"; message: string; tenantId?: string; keyId?: string };

/** Options of {@link TokenAuthenticator}. */
export interface TokenAuthenticatorOptions {
  store: Pick<AuthStore, "identityProvidersByIssuer" | "getUserByEmail">;
  clock: () => Date;
  /** Least time between two fetches of one issuer's keys. */
  jwksCooldownMs: number;
  /** Deadline of each fetch of signing keys. */
  httpTimeoutMs: number;
  /** The installation's issuer of platform operators' tokens (NEXUS_PLATFORM_OIDC_ISSUER), if any. */
  platform?: PlatformIssuer;
}

/** Tolerance on exp/nbf of platform tokens. */
const PLATFORM_CLOCK_SKEW_SECONDS = 60;

/**
 * Bearer access tokens (JWTs) of the tenants' OpenID Connect issuers → principals, checked
 * locally: the token's issuer selects the tenants that trust it (enabled providers), the
 * signature is verified against the issuer's published keys (fetched once and cached by `jose`;
 * a token signed by a key not yet seen triggers one fetch, at most once per cooldown, so a
 * provider's key rotation needs no restart), then `exp`/`nbf` with the provider's clock skew,
 * the issuer and the audience. The user claim (default `email`) names a user who must be a
 * member of the tenant: the principal acts with the membership's role and carries the token's
 * groups. Refusals name their reason (AUTH_TOKEN_EXPIRED, AUTH_TOKEN_AUDIENCE,
 * AUTH_TOKEN_ISSUER, AUTH_TOKEN_INVALID, AUTH_UNKNOWN_USER); an unreachable provider is
 * UNAVAILABLE (fail closed).
 */
export class TokenAuthenticator {
  /** The issuers' signing keys, shared with sign-in (ID tokens). */
  readonly jwks: JwksCache;

  constructor(private readonly options: TokenAuthenticatorOptions) {
    this.jwks = new JwksCache(options.jwksCooldownMs, options.httpTimeoutMs);
  }

  async authenticate(token: string): Promise<TokenOutcome> {
    let claims: JWTPayload;
    try {
      claims = decodeJwt(token);
    } catch {
      return refused("AUTH_TOKEN_INVALID", "the access token is not a readable JWT");
    }
    const issuer = typeof claims.iss === "string" ? claims.iss : "";
    const platform = this.options.platform;
    const audience = typeof claims.aud === "string" ? [claims.aud] : Array.isArray(claims.aud) ? claims.aud : [];
    if (platform !== undefined && issuer === platform.issuer && audience.includes(platform.audience))
      return this.verifyPlatform(token, platform);
    const candidates = issuer ? await this.options.store.identityProvidersByIssuer(issuer) : [];
    if (candidates.length === 0) {
      return refused("AUTH_TOKEN_ISSUER", "no tenant accepts access tokens of this issuer (configure it with SetIdentityProvider)");
    }
    const matching = candidates.filter((c) => audience.includes(c.provider.audience));
    if (matching.length === 0) {
      const first = candidates[0];
      return refused(
        "AUTH_TOKEN_AUDIENCE",
        "the access token was not issued for Nexus (its audience is not the configured one)",
        first?.tenant.id,
      );
    }
    let last: TokenOutcome | undefined;
    for (const { provider, tenant } of matching) {
      last = await this.verifyFor(token, provider, tenant);
      if (last.kind === "authenticated") return last;
    }
    return last as TokenOutcome;
  }

  private async verifyFor(token: string, provider: IdentityProviderConfig, tenant: Tenant): Promise<TokenOutcome> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.jwks.keySet(provider.jwksUri), {
        issuer: provider.issuer,
        audience: provider.audience,
        clockTolerance: provider.clockSkewSeconds,
        currentDate: this.options.clock(),
        algorithms: ALGORITHMS,
        requiredClaims: ["exp"],
      }));
    } catch (err) {
      return this.refusalOf(err, tenant.id);
    }
    const entitlements = principalEntitlements(effectiveEntitlements(tenant.plan, tenant.overrides));
    if (entitlements.features["feature.identity.sso"] !== true) {
      return refused("AUTH_TOKEN_ISSUER", "the tenant's plan does not include single sign-on (feature.identity.sso)", tenant.id);
    }
    if (tenant.status === "suspended")
      return { kind: "refused", reason: "TENANT_SUSPENDED", message: "the tenant is suspended", tenantId: tenant.id };
    const claimed = payload[provider.userClaim];
    const user = typeof claimed === "string" && claimed ? await this.options.store.getUserByEmail(normalizeEmail(claimed)) : undefined;
    const membership = membershipIn(user, tenant.id);
    if (user === undefined || membership === undefined) {
      return refused("AUTH_UNKNOWN_USER", `the token's ${provider.userClaim} claim names no member of the tenant`, tenant.id);
    }
    const groupsClaim = payload[provider.groupsClaim];
    const groups = Array.isArray(groupsClaim) ? groupsClaim.filter((g): g is string => typeof g === "string").slice(0, MAX_GROUPS) : [];
    return {
      kind: "authenticated",
      principal: {
        kind: "tenant",
        keyId: userIdKey(user.id),
        name: user.email,
        tenantId: tenant.id,
        tenantSlug: tenant.slug,
        role: membership.role,
        plan: tenant.plan,
        entitlements,
        userId: user.id,
        groups,
      },
      validUntil: typeof payload.exp === "number" ? new Date((payload.exp + provider.clockSkewSeconds) * 1000) : undefined,
    };
  }

  /**
   * A token of the installation's own issuer: verified against that issuer's keys (its
   * discovery document read once), its user claim must name a platform operator; the principal
   * is a platform principal (`key_id` `user:<id>`). A withdrawn operator flag ends cached answers
   * at once (PlatformOperatorChanged).
   */
  private async verifyPlatform(token: string, platform: PlatformIssuer): Promise<TokenOutcome> {
    let payload: JWTPayload;
    try {
      const jwksUri = await this.platformJwksUri(platform.issuer);
      ({ payload } = await jwtVerify(token, this.jwks.keySet(jwksUri), {
        issuer: platform.issuer,
        audience: platform.audience,
        clockTolerance: PLATFORM_CLOCK_SKEW_SECONDS,
        currentDate: this.options.clock(),
        algorithms: ALGORITHMS,
        requiredClaims: ["exp"],
      }));
    } catch (err) {
      return this.refusalOf(err, "");
    }
    const claimed = payload[platform.userClaim];
    const user = typeof claimed === "string" && claimed ? await this.options.store.getUserByEmail(normalizeEmail(claimed)) : undefined;
    if (user === undefined || !user.platformOperator) {
      return refused("AUTH_UNKNOWN_USER", `the platform token's ${platform.userClaim} claim names no platform operator`);
    }
    return {
      kind: "authenticated",
      principal: { kind: "platform", keyId: userIdKey(user.id), name: user.email },
      validUntil: typeof payload.exp === "number" ? new Date((payload.exp + PLATFORM_CLOCK_SKEW_SECONDS) * 1000) : undefined,
    };
  }

  private platformJwks: Promise<string> | undefined;

  /** The platform issuer's `jwks_uri`, from its discovery document (read once; a failure is retried on the next token). */
  private platformJwksUri(issuer: string): Promise<string> {
    this.platformJwks ??= discoverIssuer(issuer, this.options.httpTimeoutMs).then(
      (discovery) => discovery.jwksUri,
      (err: unknown) => {
        throw domainError(
          "DEPENDENCY_UNAVAILABLE",
          `the platform issuer's discovery document could not be used; retry shortly (${(err as Error).message})`,
          { dependency: "identity_provider" },
          { cause: err },
        );
      },
    );
    const pending = this.platformJwks;
    pending.catch(() => {
      if (this.platformJwks === pending) this.platformJwks = undefined;
    });
    return pending;
  }

  private refusalOf(err: unknown, tenantId: string): TokenOutcome {
    if (err instanceof errors.JWTExpired)
      return refused("AUTH_TOKEN_EXPIRED", "the access token has expired; get a new one from the identity provider", tenantId);
    if (err instanceof errors.JWTClaimValidationFailed) {
      if (err.claim === "aud")
        return refused("AUTH_TOKEN_AUDIENCE", "the access token was not issued for Nexus (wrong audience)", tenantId);
      if (err.claim === "iss") return refused("AUTH_TOKEN_ISSUER", "the access token's issuer is not the configured one", tenantId);
      return refused("AUTH_TOKEN_INVALID", `the access token's ${err.claim} claim is not acceptable (${err.reason})`, tenantId);
    }
    if (err instanceof errors.JWKSTimeout || (err instanceof Error && /fetch failed|ECONNREFUSED|Expected 200 OK/i.test(err.message))) {
      throw domainError(
        "DEPENDENCY_UNAVAILABLE",
        "the identity provider's signing keys could not be fetched; retry shortly",
        { dependency: "identity_provider" },
        { cause: err },
      );
    }
    if (err instanceof errors.JOSEError)
      return refused("AUTH_TOKEN_INVALID", "the access token's signature does not verify against the issuer's keys", tenantId);
    throw err;
  }
}

/**
 * The published signing keys of each issuer (by `jwks_uri`), fetched by `jose` on first use and
 * cached (10 min); a key id not yet seen triggers a fetch, at most once per cooldown.
 */
export class JwksCache {
  private readonly keySets = new Map<string, ReturnType<typeof createRemoteJWKSet>>();

  constructor(
    private readonly cooldownMs: number,
    private readonly timeoutMs: number,
  ) {}

  keySet(jwksUri: string): ReturnType<typeof createRemoteJWKSet> {
    let set = this.keySets.get(jwksUri);
    if (set === undefined) {
      set = createRemoteJWKSet(new URL(jwksUri), {
        cooldownDuration: this.cooldownMs,
        cacheMaxAge: 10 * 60_000,
        timeoutDuration: this.timeoutMs,
      });
      this.keySets.set(jwksUri, set);
    }
    return set;
  }
}

function refused(reason: TokenFailureReason, message: string, tenantId?: string): TokenOutcome {
  return { kind: "refused", reason, message, ...(tenantId ? { tenantId } : {}) };
}
