import { randomUUID, timingSafeEqual } from "node:crypto";
import type { Logger } from "pino";
import type { AccessFailureReason, AccessRecorder } from "../kernel/authz/access-recorder.js";
import { invalidateInProcess } from "../kernel/authz/authentication-cache.js";
import { isAccessToken } from "../kernel/authz/authentication-gate.js";
import type { AuthenticatorResult, PresentationContext } from "../kernel/authz/authenticator.js";
import { isSessionToken, newSessionToken, sessionIdOf } from "../kernel/authz/console-session.js";
import type { EntitlementOverrides } from "../kernel/authz/plans.js";
import { requirePlatformPrincipal, tenantScope } from "../kernel/authz/tenant-scope.js";
import { executeInTransaction } from "../kernel/commands/index.js";
import type { PlanName, Principal, TenantRole } from "../kernel/context.js";
import { domainError, isReason } from "../kernel/errors.js";
import type { EventMetadata } from "../kernel/events/ports.js";
import { keysetPosition, pageTokens } from "../kernel/paging/index.js";
import { type ApiKeyAggregate, apiKeyAggregate, decided, managedBy, type TenantAggregate, tenantAggregate } from "./auth-aggregates.js";
import type { AuthSettings } from "./auth-settings.js";
import { type ApiKey, type ApiKeyCommand, type KeyStatus, keyStatus } from "./domain/api-key.js";
import { type GeneratedKey, generateApiKey, parseApiKey } from "./domain/api-key-secret.js";
import { authenticateKey } from "./domain/authentication.js";
import { mayGrantRole, maySeeKey } from "./domain/key-policy.js";
import type { Tenant, TenantCommand } from "./domain/tenant.js";
import { IdentityApplication } from "./identity-application.js";
import type { AuthStore, AuthTransaction, ConsoleSession, TenantView } from "./ports.js";
import { SESSION_PREFIX, type SignIn } from "./sign-in.js";
import type { TokenAuthenticator, TokenOutcome } from "./token-authentication.js";

/** Page tokens of ListTenants and ListApiKeys: the last row's (created_at, id), bound to the filters. */
const listTokens = pageTokens(keysetPosition("createdAt", "id"));

/** Options of {@link AuthApplication}. */
export interface AuthApplicationOptions {
  store: AuthStore;
  settings: AuthSettings;
  /** Records refused authentications (one AccessDenied event per refused call). */
  recorder: AccessRecorder;
  clock: () => Date;
  logger: Logger;
  /** Checks bearer access tokens (JWTs) of the tenants' OpenID issuers; without one, tokens are refused. */
  tokens?: TokenAuthenticator;
  /** Checks sign-in session tokens (`nxss_…`); without it, sessions are refused. */
  sessions?: Pick<SignIn, "authenticate">;
}

/** A page of results and the token of the next one ("" on the last page). */
export interface Page<T> {
  items: T[];
  nextPageToken: string;
}

/** A key returned with its plaintext (creation and rotation only). */
export interface IssuedKey {
  key: ApiKey;
  plaintext: string;
}

/** Options of a tenant change. */
export interface TenantChangeOptions {
  /** The version the caller last read (Tenant.version): another version fails with ABORTED / CONCURRENCY_CONFLICT. */
  expectedVersion?: number;
}

/** Who performed a change, as event metadata. */
function actorMetadata(actor: Principal | "bootstrap" | "system"): EventMetadata {
  return { actor: typeof actor === "string" ? actor : actor.keyId };
}

const PAGE_DEFAULT = 50;

/**
 * The auth service's use cases. Every change is a command on the tenant or API key aggregate
 * (auth-aggregates.ts) run by the kernel command helper: load (locked), decide, evolve, save
 * the state row and append the events in one transaction. Authorization beyond the permission
 * table (tenant scoping, who may grant which role, who may touch owner keys) happens here,
 * with the principal passed in.
 * Changes that must end cached authentications invalidate this process's caches right after
 * commit; the events do the same for every other process.
 */
export class AuthApplication {
  private readonly store: AuthStore;
  private readonly settings: AuthSettings;
  private readonly recorder: AccessRecorder;
  private readonly clock: () => Date;
  private readonly logger: Logger;
  private readonly tenants: TenantAggregate;
  private readonly apiKeys: ApiKeyAggregate;
  private readonly tokens: TokenAuthenticator | undefined;
  private readonly sessions: Pick<SignIn, "authenticate"> | undefined;

  constructor(options: AuthApplicationOptions) {
    this.store = options.store;
    this.tokens = options.tokens;
    this.sessions = options.sessions;
    this.tenants = tenantAggregate(options.store.tenants);
    this.apiKeys = apiKeyAggregate(options.store.apiKeys);
    this.settings = options.settings;
    this.recorder = options.recorder;
    this.clock = options.clock;
    this.logger = options.logger;
  }

  /** The settings in force (tests and handlers read the inactivity limit). */
  get authSettings(): AuthSettings {
    return this.settings;
  }

  /** A key's status right now. */
  statusOf(key: Omit<ApiKey, "digest">): KeyStatus {
    return keyStatus(key, this.clock(), this.settings.inactivityMs);
  }

  // ---- tenants ----

  /** Creates a tenant (platform principals). */
  async createTenant(actor: Principal | "bootstrap", input: { slug: string; displayName: string; plan: PlanName }): Promise<TenantView> {
    const tenantId = randomUUID();
    return this.store.transaction((tx) =>
      this.runTenant(tx, tenantId, actor, {
        type: "CreateTenant",
        tenantId,
        slug: input.slug,
        displayName: input.displayName,
        plan: input.plan,
        now: this.clock(),
      }),
    );
  }

  /** Reads a tenant by id or slug; a tenant principal sees only its own (others: NOT_FOUND). */
  async getTenant(actor: Principal, selector: { tenantId: string } | { slug: string }): Promise<TenantView> {
    const tenant =
      "tenantId" in selector
        ? await this.store.getTenant(tenantScope(actor, selector.tenantId))
        : await this.store.getTenantBySlug(selector.slug);
    if (tenant === undefined || (actor.kind === "tenant" && tenant.id !== actor.tenantId)) {
      throw domainError("NOT_FOUND", "tenant not found");
    }
    return tenant;
  }

  /** Lists tenants, oldest first (platform principals). */
  async listTenants(input: { status?: Tenant["status"]; plan?: PlanName; pageSize: number; pageToken: string }): Promise<Page<TenantView>> {
    const filters = { status: input.status ?? null, plan: input.plan ?? null };
    const after = listTokens.decode(input.pageToken, filters);
    const pageSize = input.pageSize || PAGE_DEFAULT;
    const rows = await this.store.listTenants({
      ...(input.status ? { status: input.status } : {}),
      ...(input.plan ? { plan: input.plan } : {}),
      pageSize: pageSize + 1,
      ...(after ? { after } : {}),
    });
    const items = rows.slice(0, pageSize);
    const last = items[items.length - 1];
    return {
      items,
      nextPageToken: rows.length > pageSize && last ? listTokens.encode({ createdAt: last.createdAt, id: last.id }, filters) : "",
    };
  }

  /** Suspends a tenant: its keys stop working at once across the mesh. Idempotent. */
  suspendTenant(actor: Principal, tenantId: string, reason: string, options: TenantChangeOptions = {}): Promise<TenantView> {
    return this.tenantCommand(actor, tenantId, { type: "SuspendTenant", reason, now: this.clock() }, options);
  }

  /** Resumes a suspended tenant. Idempotent. */
  resumeTenant(actor: Principal, tenantId: string, options: TenantChangeOptions = {}): Promise<TenantView> {
    return this.tenantCommand(actor, tenantId, { type: "ResumeTenant", now: this.clock() }, options);
  }

  /** Changes a tenant's plan (platform principals). */
  setPlan(actor: Principal, tenantId: string, plan: PlanName, options: TenantChangeOptions = {}): Promise<TenantView> {
    return this.tenantCommand(actor, tenantId, { type: "SetPlan", plan, now: this.clock() }, options);
  }

  /** Replaces a tenant's entitlement overrides (platform principals). */
  setEntitlementOverrides(
    actor: Principal,
    tenantId: string,
    overrides: EntitlementOverrides,
    options: TenantChangeOptions = {},
  ): Promise<TenantView> {
    return this.tenantCommand(actor, tenantId, { type: "SetEntitlementOverrides", overrides, now: this.clock() }, options);
  }

  /**
   * Changes a tenant's display name (platform principals). Idempotent: the current name again
   * records nothing. Principals do not carry the display name, so no cached answer changes.
   */
  async setDisplayName(actor: Principal, tenantId: string, displayName: string, options: TenantChangeOptions = {}): Promise<TenantView> {
    const id = tenantScope(actor, tenantId);
    return this.store.transaction((tx) =>
      this.runTenant(tx, id, actor, { type: "SetDisplayName", displayName, now: this.clock() }, options),
    );
  }

  private async tenantCommand(
    actor: Principal,
    tenantId: string,
    command: TenantCommand,
    options: TenantChangeOptions = {},
  ): Promise<TenantView> {
    const id = tenantScope(actor, tenantId);
    const tenant = await this.store.transaction((tx) => this.runTenant(tx, id, actor, command, options));
    // Suspension, plan and entitlement changes alter what cached principals say.
    invalidateInProcess({ tenantIds: [id] });
    return tenant;
  }

  private async runTenant(
    tx: AuthTransaction,
    tenantId: string,
    actor: Principal | "bootstrap",
    command: TenantCommand,
    options: TenantChangeOptions = {},
  ): Promise<TenantView> {
    const { state, version } = await executeInTransaction(tx.tx, this.tenants, tenantId, command, {
      metadata: actorMetadata(actor),
      ...(options.expectedVersion === undefined ? {} : { expectedVersion: options.expectedVersion }),
    });
    if (state === undefined) throw domainError("NOT_FOUND", "tenant not found");
    return { ...state, version };
  }

  // ---- API keys ----

  /**
   * Creates a tenant key (tenant owners and admins for their tenant, up to their own role;
   * platform principals for any tenant) or a platform key (platform principals). Enforces
   * the tenant's cap on active keys (FAILED_PRECONDITION KEY_LIMIT_REACHED).
   */
  async createApiKey(
    actor: Principal,
    input: {
      tenantId: string;
      name: string;
      role: TenantRole | undefined;
      expiresAt: Date | undefined;
      platformKey: boolean;
      /** The user who owns the key (must be a member; the key dies with the membership). */
      ownerUserId?: string;
    },
  ): Promise<IssuedKey> {
    if (input.platformKey) {
      return this.issuePlatformKey(
        requirePlatformPrincipal(actor, "only platform operators can create platform keys"),
        input.name,
        input.expiresAt,
      );
    }
    if (input.role === undefined) throw domainError("INVALID_ARGUMENT", "tenant keys need a role", { field: "role" });
    const role = input.role;
    const tenantId = tenantScope(actor, input.tenantId);
    decided(mayGrantRole(actor, role));
    const generated = generateApiKey();
    const key = await this.store.transaction(async (tx) => {
      // The tenant row stays locked until commit: concurrent creations count one after the other.
      const { state: tenant } = await this.store.tenants.load(tx.tx, tenantId);
      if (tenant === undefined) throw domainError("NOT_FOUND", "tenant not found");
      if (input.ownerUserId) {
        // The owner's row stays locked until commit: a membership cannot end half-way through.
        const { state: owner } = await this.store.users.load(tx.tx, input.ownerUserId);
        IdentityApplication.requireOwnerMembership(owner, tenantId, role);
      }
      const now = this.clock();
      const limit = tenant.overrides.maxActiveApiKeys ?? this.settings.maxActiveKeysPerTenant;
      const active = await tx.countActiveKeys(tenantId, now);
      if (active >= limit) {
        throw domainError("KEY_LIMIT_REACHED", `the tenant already holds ${active} active API keys, its limit; revoke one first`, {
          limit,
          active,
          tenant_id: tenantId,
        });
      }
      return this.runApiKey(
        tx,
        generated.keyId,
        actor,
        issueCommand(generated, {
          kind: "tenant",
          tenantId,
          name: input.name,
          role,
          expiresAt: input.expiresAt,
          predecessorKeyId: "",
          createdByKeyId: actor.keyId,
          ownerUserId: input.ownerUserId ?? "",
          now,
        }),
      );
    });
    return { key, plaintext: generated.plaintext };
  }

  /**
   * Issues a platform key. `actor` "bootstrap" is `nexus admin bootstrap`/`nexus dev`;
   * `keyId`/`digest` come from NEXUS_BOOTSTRAP_KEY_* (no plaintext is then known here).
   */
  async issuePlatformKey(actor: Principal | "bootstrap", name: string, expiresAt: Date | undefined): Promise<IssuedKey> {
    const generated = generateApiKey();
    const key = await this.store.transaction((tx) =>
      this.runApiKey(
        tx,
        generated.keyId,
        actor,
        issueCommand(generated, {
          kind: "platform",
          tenantId: "",
          name,
          role: undefined,
          expiresAt,
          predecessorKeyId: "",
          createdByKeyId: typeof actor === "string" ? "" : actor.keyId,
          now: this.clock(),
        }),
      ),
    );
    return { key, plaintext: generated.plaintext };
  }

  /** Lists keys (metadata only), newest first. */
  async listApiKeys(
    actor: Principal,
    input: { tenantId: string; platformKeys: boolean; statuses: KeyStatus[]; pageSize: number; pageToken: string },
  ): Promise<Page<ApiKey>> {
    let tenantId: string | undefined;
    if (input.platformKeys) {
      requirePlatformPrincipal(actor, "only platform operators can list platform keys");
    } else {
      tenantId = tenantScope(actor, input.tenantId);
    }
    const statuses = [...new Set(input.statuses)].sort();
    const filters = { tenantId: tenantId ?? null, platform: input.platformKeys, statuses };
    const before = listTokens.decode(input.pageToken, filters);
    const pageSize = input.pageSize || PAGE_DEFAULT;
    const rows = await this.store.listApiKeys({
      kind: input.platformKeys ? "platform" : "tenant",
      ...(tenantId ? { tenantId } : {}),
      statuses,
      now: this.clock(),
      inactivityMs: this.settings.inactivityMs,
      pageSize: pageSize + 1,
      ...(before ? { before } : {}),
    });
    const items = rows.slice(0, pageSize);
    const last = items[items.length - 1];
    return {
      items,
      nextPageToken: rows.length > pageSize && last ? listTokens.encode({ createdAt: last.createdAt, id: last.id }, filters) : "",
    };
  }

  /** Reads one key; another tenant's key (or a platform key, for tenant principals) is NOT_FOUND. */
  async getApiKey(actor: Principal, keyId: string): Promise<ApiKey> {
    const key = await this.store.getApiKey(keyId);
    if (key === undefined || !maySeeKey(actor, key)) throw domainError("NOT_FOUND", "API key not found", { key_id: keyId });
    return key;
  }

  /** Revokes a key. Idempotent: the first revoked_at stays. */
  revokeApiKey(actor: Principal, keyId: string, reason: string): Promise<ApiKey> {
    return this.manageKey(actor, keyId, () => ({ type: "RevokeApiKey", reason, now: this.clock() }));
  }

  /** Reactivates an inactive key. */
  reactivateApiKey(actor: Principal, keyId: string): Promise<ApiKey> {
    return this.manageKey(actor, keyId, () => ({ type: "ReactivateApiKey", inactivityMs: this.settings.inactivityMs, now: this.clock() }));
  }

  /** Changes a tenant key's role (at most the caller's own role). */
  async setApiKeyRole(actor: Principal, keyId: string, role: TenantRole): Promise<ApiKey> {
    decided(mayGrantRole(actor, role));
    return this.manageKey(actor, keyId, () => ({
      type: "ChangeApiKeyRole",
      role,
      inactivityMs: this.settings.inactivityMs,
      now: this.clock(),
    }));
  }

  /**
   * Rotates a key: issues a successor (same tenant, name and role) and keeps the old key valid
   * for the grace period (default NEXUS_API_KEY_ROTATION_GRACE_SECONDS; 0 revokes it at once).
   */
  async rotateApiKey(
    actor: Principal,
    keyId: string,
    input: { graceMs: number | undefined; expiresAt: Date | undefined },
  ): Promise<{ successor: IssuedKey; previous: ApiKey }> {
    const generated = generateApiKey();
    const result = await this.store.transaction(async (tx) => {
      const now = this.clock();
      const command: ApiKeyCommand = {
        type: "RotateApiKey",
        successorKeyId: generated.keyId,
        graceMs: input.graceMs ?? this.settings.rotationGraceMs,
        inactivityMs: this.settings.inactivityMs,
        now,
      };
      const rotated = await executeInTransaction(tx.tx, managedBy(this.apiKeys, actor, keyId), keyId, command, {
        metadata: actorMetadata(actor),
      });
      // managedBy refused a missing key, so there is a state.
      const previous = rotated.state as ApiKey;
      const keepsExpiry = previous.expiresAt !== undefined && previous.expiresAt > now ? previous.expiresAt : undefined;
      const successor = await this.runApiKey(
        tx,
        generated.keyId,
        actor,
        issueCommand(generated, {
          kind: previous.kind,
          tenantId: previous.tenantId,
          name: previous.name,
          role: previous.role,
          expiresAt: input.expiresAt ?? keepsExpiry,
          predecessorKeyId: previous.id,
          createdByKeyId: actor.keyId,
          ownerUserId: previous.ownerUserId,
          now,
        }),
      );
      return { successor: { key: successor, plaintext: generated.plaintext }, previous };
    });
    invalidateInProcess({ keyIds: [keyId] });
    return result;
  }

  /**
   * Marks rotated keys whose grace ended as revoked (ApiKeyRevoked, reason "rotated"). They
   * are refused from the end of the grace either way; this records the fact and tells every
   * cache. Safe to run on several replicas (rows are locked; a second run finds nothing).
   */
  async sweepEndedRotations(limit = 100): Promise<number> {
    const now = this.clock();
    const due = await this.store.rotationsDue(now, limit);
    let revoked = 0;
    for (const keyId of due) {
      try {
        const changed = await this.store.transaction(async (tx) => {
          const { events } = await executeInTransaction(
            tx.tx,
            this.apiKeys,
            keyId,
            { type: "EndRotationGrace", now },
            {
              metadata: actorMetadata("system"),
            },
          );
          return events.length > 0;
        });
        if (changed) {
          revoked += 1;
          invalidateInProcess({ keyIds: [keyId] });
        }
      } catch (err) {
        this.logger.warn({ err, key_id: keyId }, "could not close an ended rotation; will retry");
      }
    }
    return revoked;
  }

  private async manageKey(actor: Principal, keyId: string, command: () => ApiKeyCommand): Promise<ApiKey> {
    const key = await this.store.transaction(async (tx) => {
      const { state } = await executeInTransaction(tx.tx, managedBy(this.apiKeys, actor, keyId), keyId, command(), {
        metadata: actorMetadata(actor),
      });
      // managedBy refused a missing key, so there is a state.
      return state as ApiKey;
    });
    invalidateInProcess({ keyIds: [keyId] });
    return key;
  }

  private async runApiKey(tx: AuthTransaction, keyId: string, actor: Principal | "bootstrap", command: ApiKeyCommand): Promise<ApiKey> {
    const { state } = await executeInTransaction(tx.tx, this.apiKeys, keyId, command, { metadata: actorMetadata(actor) });
    if (state === undefined) throw domainError("NOT_FOUND", "API key not found", { key_id: keyId });
    return state;
  }

  // ---- authentication ----

  /**
   * Resolves a presented key (the gate's authenticator in processes that host auth, and the
   * Authenticate RPC for the others). Every refusal is recorded here, once, as AccessDenied
   * with the procedure the caller wanted. Records a use at most once a minute per key.
   */
  async authenticate(presented: string, context: PresentationContext): Promise<AuthenticatorResult> {
    return this.withDirectoryGroups(await this.authenticatePresented(presented, context));
  }

  /**
   * A person's groups (document ACL GROUP grants, Cedar `principal in Group`): for a person the
   * tenant's directory provisions (SCIM), the directory's groups — display names and external
   * ids — replace the token's or session's groups claim; the directory is live (a removal
   * arrives by SCIM and ends cached answers mesh-wide through DirectoryGroupsChanged), while a
   * claim is a snapshot of the last sign-in. Anyone else (JIT, AddMember, keys they own) keeps
   * the groups claim (none for a key).
   */
  private async withDirectoryGroups(result: AuthenticatorResult): Promise<AuthenticatorResult> {
    if (result.kind !== "authenticated" || result.principal.kind !== "tenant" || !result.principal.userId) return result;
    const directory = await this.store.directoryGroupsOf(result.principal.tenantId, result.principal.userId);
    if (directory === undefined) return result;
    return { ...result, principal: { ...result.principal, groups: directory } };
  }

  private async authenticatePresented(presented: string, context: PresentationContext): Promise<AuthenticatorResult> {
    if (isAccessToken(presented)) return this.authenticateToken(presented, context);
    if (presented.startsWith(SESSION_PREFIX)) return this.authenticateSession(presented, context);
    const now = this.clock();
    let session: ConsoleSession | undefined;
    let keyId = parseApiKey(presented)?.keyId;
    if (isSessionToken(presented)) {
      // A console session stands for the key it was opened with: every check of that key
      // (revoked, expired, inactive, tenant suspended) still applies, and the answer ends with the session.
      session = await this.store.consoleSession(sessionIdOf(presented), now);
      if (session === undefined) {
        await this.recorder.accessDenied({
          reason: "AUTH_UNAUTHORIZED",
          procedure: context.procedure,
          ...(context.peerAddress ? { peerAddress: context.peerAddress } : {}),
        });
        return { kind: "refused", reason: "AUTH_UNAUTHORIZED", message: SESSION_ENDED_MESSAGE };
      }
      keyId = session.keyId;
    }
    const { key, tenant } = keyId ? await this.store.credentials(keyId) : { key: undefined, tenant: undefined };
    const outcome = authenticateKey({
      presented,
      provenBySession: session !== undefined,
      key,
      tenant,
      now,
      inactivityMs: this.settings.inactivityMs,
      touchIntervalMs: this.settings.touchIntervalMs,
    });
    if (outcome.kind === "authenticated" && session !== undefined) {
      const ends = session.expiresAt;
      outcome.validUntil = outcome.validUntil && outcome.validUntil < ends ? outcome.validUntil : ends;
    }
    if (outcome.kind === "refused") {
      await this.recorder.accessDenied({
        reason: outcome.reason,
        procedure: context.procedure,
        ...(outcome.keyId ? { keyId: outcome.keyId } : {}),
        ...(outcome.tenantId ? { tenantId: outcome.tenantId } : {}),
        ...(context.peerAddress ? { peerAddress: context.peerAddress } : {}),
      });
      return { kind: "refused", reason: outcome.reason, message: REFUSAL_MESSAGES[outcome.reason] };
    }
    let lastUsedAt = key?.lastUsedAt;
    if (outcome.touch && key) {
      await this.store.touchLastUsed(key.id, now, this.settings.touchIntervalMs).then(
        () => (lastUsedAt = now),
        (err: unknown) => {
          this.logger.warn({ err, key_id: key.id }, "could not record API key use");
        },
      );
    }
    // The key as stored now (the digest stays here): WhoAmI answers from it while the cached
    // answer lives — every change of the key (revocation, rotation, role) or its tenant ends
    // both at once. Only last_used_at may be older, by at most the cache TTL; it is coarse by
    // design (one write a minute).
    const credential: OwnKey | undefined = key ? { ...withoutDigest(key), lastUsedAt } : undefined;
    return { kind: "authenticated", principal: outcome.principal, validUntil: outcome.validUntil, ...(credential ? { credential } : {}) };
  }

  /** {@link authenticate} for a sign-in session token (`nxss_…`). */
  private async authenticateSession(token: string, context: PresentationContext): Promise<AuthenticatorResult> {
    const outcome = this.sessions
      ? await this.sessions.authenticate(token)
      : ({ kind: "refused", reason: "AUTH_UNAUTHORIZED", message: "sessions are not accepted here" } as const);
    if (outcome.kind === "refused") {
      await this.recorder.accessDenied({
        reason: outcome.reason,
        procedure: context.procedure,
        ...(outcome.kind === "refused" && "tenantId" in outcome && outcome.tenantId ? { tenantId: outcome.tenantId } : {}),
        ...(context.peerAddress ? { peerAddress: context.peerAddress } : {}),
      });
      return { kind: "refused", reason: outcome.reason, message: outcome.message };
    }
    return { kind: "authenticated", principal: outcome.principal, validUntil: outcome.validUntil };
  }

  /** {@link authenticate} for a bearer access token (a JWT of a tenant's OpenID issuer). */
  private async authenticateToken(token: string, context: PresentationContext): Promise<AuthenticatorResult> {
    const outcome: TokenOutcome = this.tokens
      ? await this.tokens.authenticate(token)
      : { kind: "refused", reason: "AUTH_TOKEN_ISSUER", message: "access tokens are not accepted here" };
    if (outcome.kind === "refused") {
      await this.recorder.accessDenied({
        reason: outcome.reason,
        procedure: context.procedure,
        ...(outcome.tenantId ? { tenantId: outcome.tenantId } : {}),
        ...(context.peerAddress ? { peerAddress: context.peerAddress } : {}),
      });
      return { kind: "refused", reason: outcome.reason, message: outcome.message };
    }
    return { kind: "authenticated", principal: outcome.principal, validUntil: outcome.validUntil };
  }

  /**
   * Signs a browser in to the console with an API key (docs/console.md): the key is
   * authenticated like on any call (refusals recorded), then a session is stored (hashed) that
   * ends after `ttlMs`, on sign-out, or as soon as the key stops working. Returns the session
   * token for the httpOnly cookie; it is never stored.
   */
  async signInConsole(
    presented: string,
    ttlMs: number,
    context: PresentationContext,
  ): Promise<
    | { kind: "signed-in"; token: string; expiresAt: Date; principal: Principal }
    | { kind: "refused"; reason: AccessFailureReason; message: string }
  > {
    if (isSessionToken(presented) || parseApiKey(presented) === undefined) {
      await this.recorder.accessDenied({
        reason: "AUTH_UNAUTHORIZED",
        procedure: context.procedure,
        ...(context.peerAddress ? { peerAddress: context.peerAddress } : {}),
      });
      return { kind: "refused", reason: "AUTH_UNAUTHORIZED", message: "that is not a Nexus API key (it starts with nxs_)" };
    }
    const result = await this.authenticate(presented, context);
    if (result.kind === "refused") return result;
    const token = newSessionToken();
    const now = this.clock();
    const expiresAt = new Date(now.getTime() + ttlMs);
    await this.store.createConsoleSession({ id: sessionIdOf(token), keyId: result.principal.keyId, createdAt: now, expiresAt });
    return { kind: "signed-in", token, expiresAt, principal: result.principal };
  }

  /** Ends a console session (sign-out): later calls with its cookie are refused. Idempotent. */
  async signOutConsole(token: string): Promise<void> {
    if (!isSessionToken(token)) return;
    const ended = await this.store.deleteConsoleSession(sessionIdOf(token));
    // This process's cached answer for the session goes now; other processes drop theirs
    // within NEXUS_AUTH_CACHE_TTL_MS.
    if (ended) invalidateInProcess({ keyIds: [ended.keyId] });
  }

  /** Deletes console sessions that ended (the service's periodic task). */
  sweepEndedConsoleSessions(): Promise<number> {
    return this.store.deleteEndedConsoleSessions(this.clock());
  }

  /**
   * The caller's own key (WhoAmI): the record the authentication gate holds for this call when
   * it has one (`credential`, from {@link AuthApplication.authenticate}), else read.
   */
  async ownKey(actor: Principal, credential?: object): Promise<OwnKey> {
    if (isOwnKey(credential, actor.keyId)) return credential;
    const key = await this.store.getApiKey(actor.keyId);
    if (key === undefined) throw domainError("NOT_FOUND", "API key not found");
    return key;
  }

  /**
   * Makes sure the platform key configured by digest (NEXUS_BOOTSTRAP_KEY_ID and
   * NEXUS_BOOTSTRAP_KEY_SHA256, for installs where no one can read a printed key) exists.
   * Absent: it is issued with that digest. Present with the same digest: nothing changes (a
   * revoked one stays revoked). Present with another digest: an error, since the
   * configuration names a different key than the one stored.
   */
  async ensureConfiguredPlatformKey(keyId: string, digest: Uint8Array): Promise<"created" | "present"> {
    try {
      return await this.installPlatformKeyDigest(keyId, digest);
    } catch (err) {
      // Several auth replicas starting at once: one installs the key, the others see it.
      if (!isReason(err, "CONCURRENCY_CONFLICT")) throw err;
      return this.installPlatformKeyDigest(keyId, digest);
    }
  }

  private installPlatformKeyDigest(keyId: string, digest: Uint8Array): Promise<"created" | "present"> {
    return this.store.transaction(async (tx) => {
      const { state } = await this.store.apiKeys.load(tx.tx, keyId);
      if (state !== undefined) {
        if (state.kind !== "platform" || !timingSafeEqualBytes(state.digest, digest)) {
          throw new Error(`NEXUS_BOOTSTRAP_KEY_ID names key ${keyId}, which exists with another secret or is not a platform key`);
        }
        return "present";
      }
      await this.runApiKey(tx, keyId, "bootstrap", {
        type: "IssueApiKey",
        keyId,
        digest,
        kind: "platform",
        tenantId: "",
        name: "bootstrap (configured)",
        role: undefined,
        expiresAt: undefined,
        predecessorKeyId: "",
        createdByKeyId: "",
        now: this.clock(),
      });
      return "created";
    });
  }

  /** Records a one-time installation step; false when it was done before. */
  markInstallationStep(name: string): Promise<boolean> {
    return this.store.transaction((tx) => tx.markInstallationStep(name));
  }

  /** Whether a one-time installation step was recorded. */
  installationStepDone(name: string): Promise<boolean> {
    return this.store.transaction((tx) => tx.installationStepDone(name));
  }

  /** Whether a platform key that still authenticates exists. */
  hasUsablePlatformKey(): Promise<boolean> {
    return this.store.transaction((tx) => tx.hasUsablePlatformKey(this.clock()));
  }
}

function timingSafeEqualBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Why a console session cookie no longer works. */
export const SESSION_ENDED_MESSAGE = "your console session has ended (signed out or expired); sign in again";

/** What a refused caller is told (never whether the key id exists). */
export const REFUSAL_MESSAGES: Readonly<Record<AccessFailureReason, string>> = {
  AUTH_UNAUTHORIZED: "the API key is not valid",
  AUTH_REVOKED_KEY: "the API key was revoked",
  AUTH_EXPIRED_KEY: "the API key has expired",
  AUTH_INACTIVE_KEY: "the API key was unused for too long and is inactive; an admin can reactivate it (ReactivateApiKey)",
  TENANT_SUSPENDED: "the tenant is suspended",
  AUTH_TOKEN_EXPIRED: "the access token has expired",
  AUTH_TOKEN_AUDIENCE: "the access token was not issued for Nexus (wrong audience)",
  AUTH_TOKEN_ISSUER: "no tenant accepts access tokens of this issuer",
  AUTH_TOKEN_INVALID: "the access token is not valid",
  AUTH_UNKNOWN_USER: "the access token names no member of the tenant",
};

function issueCommand(
  generated: GeneratedKey,
  fields: Omit<Extract<ApiKeyCommand, { type: "IssueApiKey" }>, "type" | "keyId" | "digest">,
): ApiKeyCommand {
  return { type: "IssueApiKey", keyId: generated.keyId, digest: generated.digest, ...fields };
}

/** An API key record without its digest: what the authentication gate may cache and WhoAmI shows. */
export type OwnKey = Omit<ApiKey, "digest">;

function withoutDigest(key: ApiKey): OwnKey {
  const { digest: _digest, ...rest } = key;
  return rest;
}

function isOwnKey(value: object | undefined, keyId: string): value is OwnKey {
  return value !== undefined && (value as Partial<OwnKey>).id === keyId && (value as Partial<OwnKey>).createdAt instanceof Date;
}
