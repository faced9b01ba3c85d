/** Installation-wide auth settings (from NexusConfig; tests pass their own). */
export interface AuthSettings {
  /** Grace of a rotated key when the request names none (NEXUS_API_KEY_ROTATION_GRACE_SECONDS). */
  rotationGraceMs: number;
  /** Keys unused this long are refused with AUTH_INACTIVE_KEY; 0 = never (NEXUS_API_KEY_INACTIVE_DAYS). */
  inactivityMs: number;
  /** Active keys a tenant may hold unless its overrides say otherwise (NEXUS_MAX_ACTIVE_API_KEYS). */
  maxActiveKeysPerTenant: number;
  /** last_used_at is written at most this often per key. */
  touchIntervalMs: number;
  /** Least time between two fetches of an issuer's signing keys (NEXUS_OIDC_JWKS_COOLDOWN_MS). */
  jwksCooldownMs: number;
  /** Deadline of calls to OpenID providers (NEXUS_OIDC_HTTP_TIMEOUT_MS). */
  oidcHttpTimeoutMs: number;
  /** Lifetime of a sign-in session (NEXUS_SSO_SESSION_TTL_SECONDS). */
  sessionTtlMs: number;
  /** Longest time between the redirect to the provider and its callback (NEXUS_SSO_STATE_TTL_SECONDS). */
  signInStateTtlMs: number;
  /** The installation's issuer whose tokens authenticate platform operators (NEXUS_PLATFORM_OIDC_*); none when unset. */
  platformIssuer?: PlatformIssuer;
}

/** The installation-level OpenID issuer of platform operators' access tokens. */
export interface PlatformIssuer {
  issuer: string;
  audience: string;
  userClaim: string;
}

/** Defaults: 24 h rotation grace, 90 days inactivity, 100 active keys per tenant, touch once a minute. */
export const DEFAULT_AUTH_SETTINGS: AuthSettings = Object.freeze({
  rotationGraceMs: 24 * 3600 * 1000,
  inactivityMs: 90 * 24 * 3600 * 1000,
  maxActiveKeysPerTenant: 100,
  touchIntervalMs: 60_000,
  jwksCooldownMs: 30_000,
  oidcHttpTimeoutMs: 5_000,
  sessionTtlMs: 8 * 3600 * 1000,
  signInStateTtlMs: 600_000,
});

/** Settings from the configuration's auth variables. */
export function authSettingsFromConfig(config: {
  apiKeyRotationGraceSeconds: number;
  apiKeyInactiveDays: number;
  maxActiveApiKeys: number;
  oidcJwksCooldownMs?: number;
  oidcHttpTimeoutMs?: number;
  ssoSessionTtlSeconds?: number;
  ssoStateTtlSeconds?: number;
  platformOidcIssuer?: string | undefined;
  platformOidcAudience?: string;
  platformOidcUserClaim?: string;
}): AuthSettings {
  return {
    ...(config.platformOidcIssuer
      ? {
          platformIssuer: {
            issuer: config.platformOidcIssuer,
            audience: config.platformOidcAudience ?? "nexus-platform",
            userClaim: config.platformOidcUserClaim ?? "email",
          },
        }
      : {}),
    rotationGraceMs: config.apiKeyRotationGraceSeconds * 1000,
    inactivityMs: config.apiKeyInactiveDays * 24 * 3600 * 1000,
    maxActiveKeysPerTenant: config.maxActiveApiKeys,
    touchIntervalMs: DEFAULT_AUTH_SETTINGS.touchIntervalMs,
    jwksCooldownMs: config.oidcJwksCooldownMs ?? DEFAULT_AUTH_SETTINGS.jwksCooldownMs,
    oidcHttpTimeoutMs: config.oidcHttpTimeoutMs ?? DEFAULT_AUTH_SETTINGS.oidcHttpTimeoutMs,
    sessionTtlMs: config.ssoSessionTtlSeconds !== undefined ? config.ssoSessionTtlSeconds * 1000 : DEFAULT_AUTH_SETTINGS.sessionTtlMs,
    signInStateTtlMs: config.ssoStateTtlSeconds !== undefined ? config.ssoStateTtlSeconds * 1000 : DEFAULT_AUTH_SETTINGS.signInStateTtlMs,
  };
}
