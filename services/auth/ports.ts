import type { Versioned } from "../kernel/commands/index.js";
import type { PlanName } from "../kernel/context.js";
import type { Tx } from "../kernel/db/ports.js";
import type { ApiKey, KeyKind, KeyStatus } from "./domain/api-key.js";
import type { IdentityProviderConfig } from "./domain/identity-provider.js";
import type { Session } from "./domain/session.js";
import type { Tenant } from "./domain/tenant.js";
import type { User } from "./domain/user.js";

/**
 * The auth service's ports: what the application needs from storage. The adapter
 * (adapters/postgres.ts) keeps each aggregate's current state in its row; the kernel command
 * helper (auth-aggregates.ts) writes that row and appends the aggregate's events to the
 * event store in the same transaction (the outbox).
 */

/**
 * The state rows of one aggregate: `load` reads a row with its stream version (0 = none)
 * and locks it until the transaction ends; `save` inserts or updates it to `version`,
 * guarded by `expectedVersion` (the version `load` read).
 */
export interface StateRepository<S> {
  load(tx: Tx, id: string): Promise<Versioned<S>>;
  save(tx: Tx, state: S, expectedVersion: number, version: number): Promise<void>;
}

/** A tenant as read from its state table, with its stream's version (for optimistic concurrency). */
export type TenantView = Tenant & { version: number };

/** Filters and page of ListTenants. */
export interface TenantQuery {
  status?: Tenant["status"];
  plan?: PlanName;
  pageSize: number;
  /** Position after which the page starts (from the previous page's last row). */
  after?: { createdAt: Date; id: string };
}

/** Filters and page of ListApiKeys. Exactly one of tenantId and kind "platform". */
export interface ApiKeyQuery {
  kind: KeyKind;
  /** Required for tenant keys. */
  tenantId?: string;
  /** Only these statuses (computed at `now`); empty = all. */
  statuses: readonly KeyStatus[];
  now: Date;
  inactivityMs: number;
  pageSize: number;
  /** Position after which the page starts (newest first). */
  before?: { createdAt: Date; id: string };
}

/** A key and, for tenant keys, its tenant: what authentication reads. */
export interface Credentials {
  key: ApiKey | undefined;
  tenant: Tenant | undefined;
}

/** A signed-in console browser (`auth.console_sessions`). */
export interface ConsoleSession {
  /** Hex SHA-256 of the session token. */
  id: string;
  keyId: string;
  createdAt: Date;
  expiresAt: Date;
}

/** Work inside one transaction: the aggregates' commands run in `tx`; the rest are reads and facts. */
export interface AuthTransaction {
  /** The open transaction (the tenant and key aggregates load and save in it). */
  readonly tx: Tx;
  /** Keys of the tenant that count against its cap at `now`: not revoked, not expired, not rotating out. */
  countActiveKeys(tenantId: string, now: Date): Promise<number>;
  /** Records a one-time installation fact; false when it was already recorded. */
  markInstallationStep(name: string): Promise<boolean>;
  /** Whether a one-time installation fact was recorded. */
  installationStepDone(name: string): Promise<boolean>;
  /** Whether a platform key that still authenticates (not revoked, not expired) exists. */
  hasUsablePlatformKey(now: Date): Promise<boolean>;
  /** The id of the user with this (lower-cased) e-mail, if any. */
  userIdByEmail(email: string): Promise<string | undefined>;
  /** Ids of the keys `userId` owns in `tenantId` that are not revoked yet. */
  ownedUnrevokedKeyIds(userId: string, tenantId: string): Promise<string[]>;
  /** Ids of the sign-in sessions of `userId` in `tenantId` still live at `now`. */
  liveSessionIds(userId: string, tenantId: string, now: Date): Promise<string[]>;
}

/** A member as ListMembers pages them: the user with the membership's role. */
export interface MemberRow {
  user: User;
  tenantId: string;
}

/** Filters and page of ListMembers (by e-mail, then id). */
export interface MemberQuery {
  tenantId: string;
  pageSize: number;
  after?: { email: string; id: string };
}

/** The auth service's storage. */
export interface AuthStore {
  /** Runs `fn` in one transaction (commit on success, rollback on throw). */
  transaction<R>(fn: (tx: AuthTransaction) => Promise<R>): Promise<R>;
  /** Tenant rows (`auth.tenants`). Saving a taken slug fails with ALREADY_EXISTS. */
  readonly tenants: StateRepository<Tenant>;
  /** API key rows (`auth.api_keys`). */
  readonly apiKeys: StateRepository<ApiKey>;
  getTenant(tenantId: string): Promise<TenantView | undefined>;
  getTenantBySlug(slug: string): Promise<TenantView | undefined>;
  listTenants(query: TenantQuery): Promise<TenantView[]>;
  getApiKey(keyId: string): Promise<ApiKey | undefined>;
  listApiKeys(query: ApiKeyQuery): Promise<ApiKey[]>;
  /** One read: the key with its tenant. */
  credentials(keyId: string): Promise<Credentials>;
  /**
   * Sets last_used_at = `at` unless it is already within `minIntervalMs` of `at`
   * (so a busy key costs one write a minute, not one per call).
   */
  touchLastUsed(keyId: string, at: Date, minIntervalMs: number): Promise<void>;
  /** Stores a console session (its hashed id). */
  createConsoleSession(session: ConsoleSession): Promise<void>;
  /** The console session with this hashed id, unless it ended by `now`. */
  consoleSession(id: string, now: Date): Promise<ConsoleSession | undefined>;
  /** Deletes a console session (sign-out); true when it existed. */
  deleteConsoleSession(id: string): Promise<ConsoleSession | undefined>;
  /** Deletes sessions that ended by `now`; returns how many. */
  deleteEndedConsoleSessions(now: Date): Promise<number>;
  /** Ids of rotated keys whose grace ended by `now` and that are not yet marked revoked. */
  rotationsDue(now: Date, limit: number): Promise<string[]>;
  /** User rows (`auth.users`, memberships in `auth.memberships`). A taken e-mail fails with ALREADY_EXISTS. */
  readonly users: StateRepository<User>;
  /** Identity provider rows (`auth.identity_providers`), one per tenant (id = tenant id). */
  readonly identityProviders: StateRepository<IdentityProviderConfig>;
  getUser(userId: string): Promise<User | undefined>;
  getUserByEmail(email: string): Promise<User | undefined>;
  /**
   * The groups the tenant's directory (SCIM) puts `userId` in — each group's display name and,
   * when set, its external id — or undefined when the directory does not provision the user.
   */
  directoryGroupsOf(tenantId: string, userId: string): Promise<string[] | undefined>;
  listMembers(query: MemberQuery): Promise<User[]>;
  getIdentityProvider(tenantId: string): Promise<IdentityProviderConfig | undefined>;
  /** Enabled providers whose issuer is exactly `issuer`, with their tenants. */
  identityProvidersByIssuer(issuer: string): Promise<{ provider: IdentityProviderConfig; tenant: Tenant }[]>;
  /** Session rows (`auth.sessions`). */
  readonly sessions: StateRepository<Session>;
  getSession(sessionId: string): Promise<Session | undefined>;
  /** Records a sign-in in flight (state, nonce, PKCE verifier) until `expiresAt`. */
  saveSignInAttempt(attempt: SignInAttempt): Promise<void>;
  /** Takes a sign-in attempt by state: it is deleted, so a state works once; undefined when unknown or expired at `now`. */
  takeSignInAttempt(state: string, now: Date): Promise<SignInAttempt | undefined>;
}

/** A sign-in in flight: what the callback checks. */
export interface SignInAttempt {
  state: string;
  tenantId: string;
  nonce: string;
  codeVerifier: string;
  /** Our callback URL as sent to the provider (sent again with the code). */
  callbackUri: string;
  /** Where the browser goes after sign-in. */
  returnTo: string;
  expiresAt: Date;
}
