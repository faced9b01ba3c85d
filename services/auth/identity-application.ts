import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import { invalidateInProcess } from "../kernel/authz/authentication-cache.js";
import { sessionKey, userIdKey } from "../kernel/authz/cache-invalidation.js";
import { requirePlatformPrincipal, tenantScope } from "../kernel/authz/tenant-scope.js";
import { executeInTransaction } from "../kernel/commands/index.js";
import type { Principal, TenantRole } from "../kernel/context.js";
import { domainError } from "../kernel/errors.js";
import type { Keyring } from "../kernel/keyring/index.js";
import { type PagePosition, pageTokens } from "../kernel/paging/index.js";
import {
  type ApiKeyAggregate,
  apiKeyAggregate,
  decided,
  endMemberCredentials,
  type IdentityProviderAggregate,
  identityProviderAggregate,
  type SessionAggregate,
  sessionAggregate,
  type UserAggregate,
  userAggregate,
} from "./auth-aggregates.js";
import type { AuthSettings } from "./auth-settings.js";
import type { IdentityProviderConfig } from "./domain/identity-provider.js";
import { mayGrantRole } from "./domain/key-policy.js";
import { type Membership, membershipIn, normalizeEmail, type User } from "./domain/user.js";
import { type Discovery, DiscoveryFailed, discoverIssuer } from "./oidc-discovery.js";
import type { AuthStore } from "./ports.js";

/** Keyring purpose of identity provider client secrets. */
export const IDP_SECRET_PURPOSE = "identity.idp-secret";
/** Revocation reason of keys that die with their owner's membership. */
export const MEMBERSHIP_ENDED_REASON = "membership ended";

const PAGE_DEFAULT = 50;

/** A user seen through one tenant: the user and the membership there. */
export interface Member {
  user: User;
  membership: Membership;
}

/** Input of {@link IdentityApplication.setIdentityProvider}. */
export interface IdentityProviderInput {
  tenantId: string;
  issuer: string;
  audience: string;
  clientId: string;
  /** Empty keeps the stored secret. */
  clientSecret: string;
  scopes: readonly string[];
  allowedRedirectHosts: readonly string[];
  clockSkewSeconds: number;
  userClaim: string;
  groupsClaim: string;
  jitEnabled: boolean;
  defaultRole: TenantRole | undefined;
  groupRoles: Readonly<Record<string, TenantRole>>;
  enabled: boolean;
}

/** Options of {@link IdentityApplication}. */
export interface IdentityApplicationOptions {
  store: AuthStore;
  settings: AuthSettings;
  clock: () => Date;
  logger: Logger;
  /** Seals identity provider client secrets; without one, a secret cannot be stored (KEYRING_NOT_CONFIGURED). */
  keyring?: Keyring;
}

/** ListMembers pages by (e-mail, user id). */
const memberPosition: PagePosition<{ email: string; id: string }> = {
  write: (p) => [p.email, p.id],
  read: (json) => {
    if (!Array.isArray(json) || json.length !== 2) return undefined;
    const [email, id] = json as unknown[];
    return typeof email === "string" && typeof id === "string" ? { email, id } : undefined;
  },
};
const memberTokens = pageTokens(memberPosition);

/**
 * People and identity providers, a capability of the auth service (docs/identity.md): users,
 * their memberships (a role per tenant), platform operators, and each tenant's OpenID Connect
 * provider. Every change is a command on the user or identity provider aggregate through the
 * kernel command helper. A membership that ends revokes the API keys the user owns in that
 * tenant in the same transaction; the ApiKeyRevoked and Membership* events end cached answers
 * in every process, and this process's caches are cleared right after commit.
 */
export class IdentityApplication {
  private readonly users: UserAggregate;
  private readonly apiKeys: ApiKeyAggregate;
  private readonly providers: IdentityProviderAggregate;
  private readonly sessions: SessionAggregate;

  constructor(private readonly options: IdentityApplicationOptions) {
    this.users = userAggregate(options.store.users);
    this.apiKeys = apiKeyAggregate(options.store.apiKeys);
    this.providers = identityProviderAggregate(options.store.identityProviders);
    this.sessions = sessionAggregate(options.store.sessions);
  }

  /** Makes `email` a member of the tenant with `role`, creating the user when needed. */
  async addMember(
    actor: Principal,
    input: { tenantId: string; email: string; displayName: string; role: TenantRole },
  ): Promise<{ member: Member; userCreated: boolean }> {
    const tenantId = await this.existingTenant(actor, input.tenantId);
    decided(mayGrantRole(actor, input.role));
    const email = normalizeEmail(input.email);
    return this.options.store.transaction(async (tx) => {
      const existing = await tx.userIdByEmail(email);
      const userId = existing ?? randomUUID();
      const { state } = await executeInTransaction(
        tx.tx,
        this.users,
        userId,
        { type: "AddMember", userId, email, displayName: input.displayName, tenantId, role: input.role, now: this.options.clock() },
        { metadata: { actor: actor.keyId, tenantId } },
      );
      return { member: memberOf(state, tenantId), userCreated: existing === undefined };
    });
  }

  /** One member of the tenant; a non-member is NOT_FOUND. */
  async getMember(actor: Principal, tenantIdIn: string, userId: string): Promise<Member> {
    const tenantId = tenantScope(actor, tenantIdIn);
    return memberOf(await this.options.store.getUser(userId), tenantId);
  }

  /** The tenant's members by e-mail. */
  async listMembers(
    actor: Principal,
    input: { tenantId: string; pageSize: number; pageToken: string },
  ): Promise<{ items: Member[]; nextPageToken: string }> {
    const tenantId = tenantScope(actor, input.tenantId);
    const filters = { tenantId };
    const after = memberTokens.decode(input.pageToken, filters);
    const pageSize = input.pageSize || PAGE_DEFAULT;
    const rows = await this.options.store.listMembers({ tenantId, pageSize: pageSize + 1, ...(after ? { after } : {}) });
    const items = rows.slice(0, pageSize).map((u) => memberOf(u, tenantId));
    const last = items[items.length - 1];
    return {
      items,
      nextPageToken: rows.length > pageSize && last ? memberTokens.encode({ email: last.user.email, id: last.user.id }, filters) : "",
    };
  }

  /** Changes a member's role (owners' roles only by owners; at most the actor's own role). */
  async setMemberRole(actor: Principal, tenantIdIn: string, userId: string, role: TenantRole): Promise<Member> {
    const tenantId = tenantScope(actor, tenantIdIn);
    decided(mayGrantRole(actor, role));
    const member = await this.options.store.transaction(async (tx) => {
      const { state } = await executeInTransaction(
        tx.tx,
        this.guarded(actor, tenantId),
        userId,
        { type: "ChangeMembershipRole", tenantId, role, now: this.options.clock() },
        { metadata: { actor: actor.keyId, tenantId } },
      );
      return memberOf(state, tenantId);
    });
    invalidateInProcess({ keyIds: [userIdKey(userId)], tenantIds: [tenantId] });
    return member;
  }

  /** Ends a membership and revokes the keys the user owns in the tenant, in one transaction. */
  async removeMember(actor: Principal, tenantIdIn: string, userId: string): Promise<string[]> {
    const tenantId = tenantScope(actor, tenantIdIn);
    const revoked = await this.options.store.transaction(async (tx) => {
      const now = this.options.clock();
      const metadata = { actor: actor.keyId, tenantId };
      await executeInTransaction(tx.tx, this.guarded(actor, tenantId), userId, { type: "RevokeMembership", tenantId, now }, { metadata });
      // Owned keys are revoked and sign-in sessions end (SessionEnded), as SCIM deprovisioning does.
      return endMemberCredentials(
        tx,
        { apiKeys: this.apiKeys, sessions: this.sessions },
        { userId, tenantId },
        MEMBERSHIP_ENDED_REASON,
        now,
        metadata,
      );
    });
    invalidateInProcess({
      keyIds: [...revoked.keyIds, ...revoked.sessionIds.map(sessionKey), userIdKey(userId)],
      tenantIds: [tenantId],
    });
    return revoked.keyIds;
  }

  /** JIT provisioning at sign-in: makes `email` a member with `role` (actor "sign-in"). */
  async provisionAtSignIn(tenantId: string, email: string, displayName: string, role: TenantRole): Promise<User> {
    return this.options.store.transaction(async (tx) => {
      const userId = (await tx.userIdByEmail(email)) ?? randomUUID();
      const { state } = await executeInTransaction(
        tx.tx,
        this.users,
        userId,
        { type: "AddMember", userId, email, displayName, tenantId, role, now: this.options.clock() },
        { metadata: { actor: "sign-in", tenantId } },
      );
      return state as User;
    });
  }

  /** The group → role mapping applied at sign-in (actor "sign-in"). */
  async applyRoleAtSignIn(tenantId: string, userId: string, role: TenantRole): Promise<User> {
    const user = await this.options.store.transaction(async (tx) => {
      const { state } = await executeInTransaction(
        tx.tx,
        this.users,
        userId,
        { type: "ChangeMembershipRole", tenantId, role, now: this.options.clock() },
        { metadata: { actor: "sign-in", tenantId } },
      );
      return state as User;
    });
    invalidateInProcess({ keyIds: [userIdKey(userId)], tenantIds: [tenantId] });
    return user;
  }

  /** Grants or withdraws the platform operator flag (platform principals only). */
  async setPlatformOperator(actor: Principal, userId: string, platformOperator: boolean): Promise<User> {
    requirePlatformPrincipal(actor, "only platform operators can name platform operators");
    const user = await this.options.store.transaction(async (tx) => {
      const { state } = await executeInTransaction(
        tx.tx,
        this.users,
        userId,
        { type: "SetPlatformOperator", platformOperator, now: this.options.clock() },
        { metadata: { actor: actor.keyId } },
      );
      if (state === undefined) throw domainError("NOT_FOUND", "user not found");
      return state;
    });
    invalidateInProcess({ keyIds: [userIdKey(userId)] });
    return user;
  }

  /**
   * The membership a key owner must hold when a key is created for them: NOT_FOUND when the
   * user is not a member, FAILED_PRECONDITION when the key's role exceeds the member's.
   */
  static requireOwnerMembership(user: User | undefined, tenantId: string, keyRole: TenantRole): Membership {
    const membership = membershipIn(user, tenantId);
    if (user === undefined || membership === undefined)
      throw domainError("NOT_FOUND", "the key's owner is not a member of the tenant", { field: "owner_user_id" });
    if (RANK[keyRole] > RANK[membership.role]) {
      throw domainError(
        "FAILED_PRECONDITION",
        `the key's role (${keyRole}) may not exceed its owner's role in the tenant (${membership.role})`,
        {
          field: "role",
        },
      );
    }
    return membership;
  }

  // ---- identity providers ----

  /** Configures the tenant's OpenID Connect provider (discovery now; the secret sealed). */
  async setIdentityProvider(actor: Principal, input: IdentityProviderInput): Promise<IdentityProviderConfig> {
    const tenantId = await this.existingTenant(actor, input.tenantId);
    const issuer = checkedIssuer(input.issuer);
    const discovery = await this.discover(issuer);
    const clientSecretSealed = input.clientSecret
      ? await this.requireKeyring().sealText({ tenantId, purpose: IDP_SECRET_PURPOSE }, input.clientSecret)
      : undefined;
    const config = await this.options.store.transaction(async (tx) => {
      const { state } = await executeInTransaction(
        tx.tx,
        this.providers,
        tenantId,
        {
          type: "ConfigureIdentityProvider",
          config: {
            tenantId,
            issuer,
            audience: input.audience,
            clientId: input.clientId,
            scopes: input.scopes.length > 0 ? [...input.scopes] : ["openid", "profile", "email"],
            allowedRedirectHosts: [...input.allowedRedirectHosts],
            clockSkewSeconds: input.clockSkewSeconds || 60,
            userClaim: input.userClaim || "email",
            groupsClaim: input.groupsClaim || "groups",
            jitEnabled: input.jitEnabled,
            defaultRole: input.defaultRole ?? "viewer",
            groupRoles: { ...input.groupRoles },
            enabled: input.enabled,
            ...discovery,
          },
          clientSecretSealed,
          now: this.options.clock(),
        },
        { metadata: { actor: actor.keyId, tenantId } },
      );
      return state as IdentityProviderConfig;
    });
    invalidateInProcess({ tenantIds: [tenantId] });
    return config;
  }

  /** The tenant's provider; NOT_FOUND when none is configured. */
  async getIdentityProvider(actor: Principal, tenantIdIn: string): Promise<IdentityProviderConfig> {
    const tenantId = tenantScope(actor, tenantIdIn);
    const provider = await this.options.store.getIdentityProvider(tenantId);
    if (provider === undefined) throw domainError("NOT_FOUND", "no identity provider is configured for this tenant");
    return provider;
  }

  /** The stored client secret of a tenant's provider, opened (sign-in needs it). */
  async clientSecretOf(provider: IdentityProviderConfig): Promise<string> {
    if (provider.clientSecretSealed === "") return "";
    return this.requireKeyring().openText({ tenantId: provider.tenantId, purpose: IDP_SECRET_PURPOSE }, provider.clientSecretSealed);
  }

  private requireKeyring(): Keyring {
    if (this.options.keyring === undefined) throw domainError("KEYRING_NOT_CONFIGURED", "no keyring: client secrets cannot be stored here");
    return this.options.keyring;
  }

  private async discover(issuer: string): Promise<Discovery> {
    try {
      return await discoverIssuer(issuer, this.options.settings.oidcHttpTimeoutMs);
    } catch (err) {
      if (err instanceof DiscoveryFailed) throw domainError("IDP_DISCOVERY_FAILED", err.message, { issuer }, { cause: err });
      throw err;
    }
  }

  /** The user aggregate for a change to a member of `tenantId`: only owners (and platform) touch owners. */
  private guarded(actor: Principal, tenantId: string): UserAggregate {
    return {
      ...this.users,
      decide: (command, state, key) => {
        const membership = membershipIn(state, tenantId);
        if (membership?.role === "owner" && actor.kind === "tenant" && actor.role !== "owner") {
          decided(mayGrantRole(actor, "owner"));
        }
        return this.users.decide(command, state, key);
      },
    };
  }

  private async existingTenant(actor: Principal, requested: string): Promise<string> {
    const tenantId = tenantScope(actor, requested);
    if ((await this.options.store.getTenant(tenantId)) === undefined) throw domainError("NOT_FOUND", "tenant not found");
    return tenantId;
  }
}

const RANK: Readonly<Record<TenantRole, number>> = { owner: 4, admin: 3, editor: 2, viewer: 1 };

/** The member view of `user` in `tenantId`; NOT_FOUND when the user is not a member. */
function memberOf(user: User | undefined, tenantId: string): Member {
  const membership = membershipIn(user, tenantId);
  if (user === undefined || membership === undefined) throw domainError("NOT_FOUND", "no such member in this tenant");
  return { user, membership };
}

/** An issuer URL: https, or http only for a provider on this machine (development and tests). */
function checkedIssuer(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw domainError("INVALID_ARGUMENT", "issuer must be a URL", { field: "issuer" });
  }
  const local = url.hostname === "localhost" || url.hostname === "127.0.0.1" || url.hostname === "[::1]";
  if (url.protocol !== "https:" && !(url.protocol === "http:" && local)) {
    throw domainError("INVALID_ARGUMENT", "issuer must use https (http only for localhost)", { field: "issuer" });
  }
  if (url.search || url.hash || url.username || url.password) {
    throw domainError("INVALID_ARGUMENT", "issuer may not carry a query, fragment or credentials", { field: "issuer" });
  }
  return raw;
}
