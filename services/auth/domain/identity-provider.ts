import type { TenantRole } from "../../kernel/context.js";
import { accept, type Decision } from "./decision.js";

/**
 * The identity provider aggregate: a tenant's OpenID Connect issuer (one per tenant, stream
 * `identity_provider-<tenant id>`). Access tokens of an enabled issuer are accepted beside API
 * keys; its client settings are what sign-in uses. The client secret enters this module only
 * sealed by the keyring (`nxk1.…`), and no published event carries it.
 */

/** A tenant's OpenID Connect provider configuration. */
export interface IdentityProviderConfig {
  tenantId: string;
  issuer: string;
  audience: string;
  clientId: string;
  /** The client secret sealed by the keyring; "" when none is stored. */
  clientSecretSealed: string;
  scopes: readonly string[];
  allowedRedirectHosts: readonly string[];
  clockSkewSeconds: number;
  /** Claim matched to the user's e-mail. */
  userClaim: string;
  /** Claim listing the user's groups. */
  groupsClaim: string;
  jitEnabled: boolean;
  defaultRole: TenantRole;
  /** Group → role, applied at sign-in. */
  groupRoles: Readonly<Record<string, TenantRole>>;
  enabled: boolean;
  /** From the issuer's discovery document. */
  jwksUri: string;
  authorizationEndpoint: string;
  tokenEndpoint: string;
  updatedAt: Date;
}

// ---- Events ----

/** The provider was configured (created or replaced). */
export interface IdentityProviderConfigured {
  type: "IdentityProviderConfigured";
  config: IdentityProviderConfig;
}

/** Every identity provider event. */
export type IdentityProviderEvent = IdentityProviderConfigured;

/** The state of a provider stream. */
export type IdentityProviderState = IdentityProviderConfig | undefined;

// ---- evolve ----

/** Applies one event to the state. */
export function evolveIdentityProvider(_state: IdentityProviderState, event: IdentityProviderEvent): IdentityProviderState {
  return event.config;
}

// ---- Commands ----

/** Configure the provider. `clientSecretSealed` undefined keeps the stored secret. */
export interface ConfigureIdentityProvider {
  type: "ConfigureIdentityProvider";
  config: Omit<IdentityProviderConfig, "clientSecretSealed" | "updatedAt">;
  clientSecretSealed: string | undefined;
  now: Date;
}

/** Every identity provider command. */
export type IdentityProviderCommand = ConfigureIdentityProvider;

// ---- decide ----

/** Decides which events a command produces: nothing when the configuration is unchanged. */
export function decideIdentityProvider(command: IdentityProviderCommand, state: IdentityProviderState): Decision<IdentityProviderEvent> {
  const config: IdentityProviderConfig = {
    ...command.config,
    clientSecretSealed: command.clientSecretSealed ?? state?.clientSecretSealed ?? "",
    updatedAt: command.now,
  };
  if (state !== undefined && sameConfig(state, config)) return accept();
  return accept({ type: "IdentityProviderConfigured", config });
}

function sameConfig(a: IdentityProviderConfig, b: IdentityProviderConfig): boolean {
  const { updatedAt: _a, ...ra } = a;
  const { updatedAt: _b, ...rb } = b;
  return JSON.stringify(canonical(ra)) === JSON.stringify(canonical(rb));
}

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}
