import { randomBytes, randomUUID } from "node:crypto";
import type { Logger } from "pino";
import { DirectoryGroupsChangedSchema } from "../../gen/nexus/events/v1/identity_events_pb.js";
import type { AccessFailureReason, AccessRecorder } from "../kernel/authz/access-recorder.js";
import { invalidateInProcess } from "../kernel/authz/authentication-cache.js";
import { sessionKey, userIdKey } from "../kernel/authz/cache-invalidation.js";
import { effectiveEntitlements, principalEntitlements } from "../kernel/authz/plans.js";
import { authorizationRefusal } from "../kernel/authz/refusal.js";
import { tenantScope } from "../kernel/authz/tenant-scope.js";
import { type Aggregate, executeInTransaction, recordFacts } from "../kernel/commands/index.js";
import type { Principal, TenantRole } from "../kernel/context.js";
import type { Queryable } from "../kernel/db/ports.js";
import { domainError } from "../kernel/errors.js";
import { eventOf } from "../kernel/events/protobuf-event.js";
import {
  ScimConflict,
  type ScimGroupName,
  type ScimGroupRecord,
  type ScimUserRecord,
  scimRows,
  scimTokenRows,
} from "./adapters/postgres-scim.js";
import { apiKeyAggregate, decided, endMemberCredentials, sessionAggregate, userAggregate } from "./auth-aggregates.js";
import { digestOf, verifyApiKey } from "./domain/api-key-secret.js";
import type { IdentityProviderConfig } from "./domain/identity-provider.js";
import {
  applyPatch,
  attr,
  indexedEquality,
  matches,
  paging,
  parseFilter,
  patchOperations,
  SCIM_ENTERPRISE_USER_SCHEMA,
  SCIM_GROUP_SCHEMA,
  SCIM_LIST_SCHEMA,
  SCIM_USER_SCHEMA,
  ScimError,
  type ScimResource,
  scimBoolean,
} from "./domain/scim.js";
import { decideScimToken, evolveScimToken, type ScimTokenCommand, type ScimTokenEvent, type ScimTokenState } from "./domain/scim-token.js";
import { membershipIn, normalizeEmail } from "./domain/user.js";
import { scimTokenEventToNew } from "./identity-events.js";
import type { AuthStore, AuthTransaction, TenantView } from "./ports.js";
import { mappedRole } from "./sign-in.js";

/** Prefix of SCIM tokens (`nxscim_<token id>_<secret>`). */
export const SCIM_TOKEN_PREFIX = "nxscim_";
const SCIM_TOKEN = /^nxscim_([0-9a-f]{24})_([A-Za-z0-9_-]{43})$/;
/** The plan flag SCIM provisioning is sold as. */
export const SCIM_FEATURE = "feature.identity.scim";
/** Largest page of a list (ServiceProviderConfig filter.maxResults). */
export const SCIM_MAX_RESULTS = 200;
/** Why keys and sessions end when the directory deactivates or deletes a person. */
const DEPROVISIONED = "deprovisioned by SCIM";

/** Attributes the store keeps in columns or computes; never kept in `attributes`. */
const COMPUTED = new Set(["schemas", "id", "meta", "groups", "username", "externalid", "active", "password", "members", "displayname"]);

/** The procedure SCIM refusals are recorded under. */
const SCIM_PROCEDURE = "/scim/v2";

/** Options of {@link ScimApplication}. */
export interface ScimApplicationOptions {
  /** Records SCIM requests refused at authentication (AccessDenied). */
  recorder?: AccessRecorder;
  store: AuthStore;
  /** Reads outside transactions (the SCIM rows). */
  db: Queryable;
  clock: () => Date;
  logger: Logger;
}

/** The tenant a SCIM request acts for, and the token it presented. */
export interface ScimCaller {
  tenant: TenantView;
  tokenId: string;
}

/** What a change did to access (for the response and the caches). */
interface Effects {
  keyIds: string[];
  sessionIds: string[];
  userIds: string[];
  /** People whose directory groups changed (DirectoryGroupsChanged at commit). */
  groupsChanged: string[];
}

type ScimTokenAggregate = Aggregate<ScimTokenState, ScimTokenEvent, ScimTokenCommand, string>;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function conflict(err: unknown, what: string): never {
  if (err instanceof ScimConflict) throw new ScimError(409, `${what} is already taken in this tenant`, "uniqueness");
  throw err;
}

function optionalString(body: Record<string, unknown>, name: string, max = 256): string | undefined {
  const v = attr(body, name);
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v !== "string" || v.length > max)
    throw new ScimError(400, `${name} must be a string of at most ${max} characters`, "invalidValue");
  return v;
}

/** A weak ETag of a resource version. */
export const etagOf = (version: number): string => `W/"${version}"`;

/**
 * SCIM 2.0 provisioning of a tenant's people and groups (docs/identity.md, "SCIM"): the
 * directory (Okta, Entra ID, …) authenticates with the tenant's SCIM token. A provisioned,
 * active user is a member of the tenant; their role comes from the groups they are in through
 * the identity provider's group → role mapping (else its default role). Deactivating
 * (`active: false`) or deleting a user ends the membership, revokes the API keys they own in the
 * tenant and ends their sessions in one transaction; the events end cached answers mesh-wide.
 */
export class ScimApplication {
  private readonly tokens: ScimTokenAggregate;
  private readonly users;
  private readonly apiKeys;
  private readonly sessions;

  constructor(private readonly options: ScimApplicationOptions) {
    this.tokens = {
      streamId: (tenantId) => `scim_token-${tenantId}`,
      load: (tx, tenantId) => scimTokenRows.load(tx, tenantId),
      decide: (command, state) => decided(decideScimToken(command, state)),
      evolve: (state, event) => {
        const next = evolveScimToken(state, event);
        if (next === undefined) throw new Error("a SCIM token event was applied to no token");
        return next;
      },
      save: (tx, _tenantId, state, expectedVersion, version) => scimTokenRows.save(tx, state, expectedVersion, version),
      toEvent: (event) => scimTokenEventToNew(event),
    };
    this.users = userAggregate(options.store.users);
    this.apiKeys = apiKeyAggregate(options.store.apiKeys);
    this.sessions = sessionAggregate(options.store.sessions);
  }

  // ---- the token (RPCs) ----

  /** Issues the tenant's SCIM token, replacing the previous one; the token is returned once. */
  async rotateToken(actor: Principal, tenantIdIn: string): Promise<{ token: string; state: ScimTokenState }> {
    const tenant = await this.scimTenant(actor, tenantIdIn);
    // The token can deprovision anyone, owners included: only owners (or operators) issue it.
    if (actor.kind === "tenant" && actor.role !== "owner") {
      throw authorizationRefusal("RBAC_FORBIDDEN", "only the tenant's owners issue its SCIM token (it can deprovision owners)", {
        required_role: "owner",
      });
    }
    const tokenId = randomBytes(12).toString("hex");
    const token = `${SCIM_TOKEN_PREFIX}${tokenId}_${randomBytes(32).toString("base64url")}`;
    const { state } = await this.options.store.transaction((tx) =>
      executeInTransaction(
        tx.tx,
        this.tokens,
        tenant.id,
        { type: "RotateScimToken", tenantId: tenant.id, tokenId, digest: digestOf(token), now: this.options.clock() },
        { metadata: { actor: actor.keyId, tenantId: tenant.id } },
      ),
    );
    if (state === undefined) throw new Error("the rotated SCIM token has no state");
    return { token, state };
  }

  /** The tenant's current token (never the secret), if any. */
  async getToken(actor: Principal, tenantIdIn: string): Promise<ScimTokenState | undefined> {
    const tenant = await this.scimTenant(actor, tenantIdIn);
    const state = await scimRows.token(this.db(), tenant.id);
    return state?.tokenId === undefined ? undefined : state;
  }

  /** Revokes the tenant's token; false when there was none. */
  async revokeToken(actor: Principal, tenantIdIn: string): Promise<boolean> {
    const tenant = await this.scimTenant(actor, tenantIdIn);
    const { events } = await this.options.store.transaction((tx) =>
      executeInTransaction(
        tx.tx,
        this.tokens,
        tenant.id,
        { type: "RevokeScimToken", now: this.options.clock() },
        { metadata: { actor: actor.keyId, tenantId: tenant.id } },
      ),
    );
    return events.length > 0;
  }

  private async scimTenant(actor: Principal, tenantIdIn: string): Promise<TenantView> {
    const tenantId = tenantScope(actor, tenantIdIn);
    const tenant = await this.options.store.getTenant(tenantId);
    if (tenant === undefined) throw domainError("NOT_FOUND", "tenant not found");
    if (!hasScim(tenant)) {
      throw domainError("FEATURE_NOT_ENABLED", "the tenant's plan does not include SCIM provisioning", { feature_key: SCIM_FEATURE });
    }
    return tenant;
  }

  /**
   * The tenant a presented SCIM token acts for; 401/403 as SCIM errors. Every refusal is
   * recorded once as AccessDenied (procedure `/scim/v2`, key id `scim:<token id>` when the token
   * parses), like a refused RPC.
   */
  async authenticate(authorization: string | undefined, peerAddress?: string): Promise<ScimCaller> {
    const presented = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "")?.[1] ?? "";
    const tokenId = SCIM_TOKEN.exec(presented)?.[1];
    const state = tokenId ? await scimRows.tokenById(this.db(), tokenId) : undefined;
    const refuse = async (status: number, reason: AccessFailureReason, message: string): Promise<never> => {
      await this.options.recorder?.accessDenied({
        reason,
        procedure: SCIM_PROCEDURE,
        ...(tokenId ? { keyId: `scim:${tokenId}` } : {}),
        ...(state ? { tenantId: state.tenantId } : {}),
        ...(peerAddress ? { peerAddress } : {}),
      });
      throw new ScimError(status, message);
    };
    if (state === undefined || tokenId === undefined || !verifyApiKey(presented, state.digest)) {
      return refuse(401, "AUTH_UNAUTHORIZED", "a valid SCIM bearer token of the tenant is required");
    }
    const tenant = await this.options.store.getTenant(state.tenantId);
    if (tenant === undefined) return refuse(401, "AUTH_UNAUTHORIZED", "the token's tenant no longer exists");
    if (tenant.status === "suspended") return refuse(403, "TENANT_SUSPENDED", "the tenant is suspended");
    if (!hasScim(tenant)) throw new ScimError(403, `the tenant's plan does not include SCIM provisioning (${SCIM_FEATURE})`);
    return { tenant, tokenId };
  }

  // ---- users ----

  async createUser(caller: ScimCaller, body: unknown, base: string): Promise<ScimResource> {
    const input = userInput(body);
    const tenantId = caller.tenant.id;
    const userId = await this.write(caller, async (tx, effects) => {
      const existing = await tx.userIdByEmail(input.email);
      const userId = existing ?? randomUUID();
      if (existing !== undefined && (await scimRows.user(tx.tx, tenantId, existing)) !== undefined) {
        throw new ScimError(409, `a provisioned user with the e-mail ${input.email} exists in this tenant`, "uniqueness");
      }
      const now = this.options.clock();
      const record = {
        tenantId,
        userId,
        userName: input.userName,
        externalId: input.externalId,
        active: input.active,
        attributes: input.attributes,
      };
      // The user row must exist before the SCIM row refers to it.
      if (existing === undefined) {
        await this.addMember(tx, caller, userId, input.email, input.displayName, await this.roleFor(tenantId, []));
        if (!input.active) await this.deprovision(tx, caller, userId, effects);
      } else {
        await this.setActive(tx, caller, userId, input, effects);
      }
      await scimRows
        .insertUser(tx.tx, { ...record, createdAt: now, updatedAt: now })
        .catch((err) => conflict(err, `userName ${input.userName}`));
      effects.userIds.push(userId);
      // A person adopted by the directory now carries its groups instead of a sign-in claim's.
      effects.groupsChanged.push(userId);
      return userId;
    });
    return this.getUser(caller, userId, base);
  }

  async getUser(caller: ScimCaller, id: string, base: string): Promise<ScimResource> {
    const record = await scimRows.user(this.db(), caller.tenant.id, id);
    if (record === undefined) throw new ScimError(404, `no user ${id} in this tenant`);
    const groups = await scimRows.groupsOf(this.db(), caller.tenant.id, [id]);
    return userResource(record, groups.get(id) ?? [], base);
  }

  async listUsers(caller: ScimCaller, params: URLSearchParams, base: string): Promise<ScimResource> {
    const { startIndex, count } = paging(params, SCIM_MAX_RESULTS);
    const expression = params.get("filter");
    let total: number;
    let page: ScimUserRecord[];
    if (!expression) {
      const found = await scimRows.usersPage(this.db(), caller.tenant.id, startIndex - 1, count);
      total = found.total;
      page = found.items;
      const groups = await scimRows.groupsOf(
        this.db(),
        caller.tenant.id,
        page.map((u) => u.userId),
      );
      return listResponse(
        total,
        startIndex,
        page.map((u) => userResource(u, groups.get(u.userId) ?? [], base)),
      );
    }
    const filter = parseFilter(expression);
    const lookup = indexedEquality(filter, ["userName", "externalId", "id"]);
    const candidates = await scimRows.users(this.db(), caller.tenant.id, lookup);
    const groups = await scimRows.groupsOf(
      this.db(),
      caller.tenant.id,
      candidates.map((u) => u.userId),
    );
    const hits = candidates.map((u) => userResource(u, groups.get(u.userId) ?? [], base)).filter((r) => matches(filter, r));
    total = hits.length;
    return listResponse(total, startIndex, hits.slice(startIndex - 1, startIndex - 1 + count));
  }

  /** PUT: the body replaces the user's attributes. */
  async replaceUser(caller: ScimCaller, id: string, body: unknown, ifMatch: string | undefined, base: string): Promise<ScimResource> {
    const input = userInput(body);
    await this.updateUser(caller, id, ifMatch, () => input);
    return this.getUser(caller, id, base);
  }

  /** PATCH: the operations applied to the user as it is now. */
  async patchUser(caller: ScimCaller, id: string, body: unknown, ifMatch: string | undefined, base: string): Promise<ScimResource> {
    const operations = patchOperations(body);
    await this.updateUser(caller, id, ifMatch, (current) => {
      const doc: ScimResource = { ...current.attributes, userName: current.userName, active: current.active };
      if (current.externalId !== undefined) doc.externalId = current.externalId;
      return userInput(applyPatch(doc, operations));
    });
    return this.getUser(caller, id, base);
  }

  async deleteUser(caller: ScimCaller, id: string, ifMatch: string | undefined): Promise<void> {
    const tenantId = caller.tenant.id;
    await this.write(caller, async (tx, effects) => {
      const current = await scimRows.user(tx.tx, tenantId, id, true);
      if (current === undefined) throw new ScimError(404, `no user ${id} in this tenant`);
      checkIfMatch(ifMatch, current.version);
      await this.deprovision(tx, caller, id, effects);
      await scimRows.deleteUser(tx.tx, tenantId, id);
    });
  }

  private async updateUser(
    caller: ScimCaller,
    id: string,
    ifMatch: string | undefined,
    next: (current: ScimUserRecord) => UserInput,
  ): Promise<void> {
    const tenantId = caller.tenant.id;
    await this.write(caller, async (tx, effects) => {
      const current = await scimRows.user(tx.tx, tenantId, id, true);
      if (current === undefined) throw new ScimError(404, `no user ${id} in this tenant`);
      checkIfMatch(ifMatch, current.version);
      const input = next(current);
      await this.setActive(tx, caller, id, input, effects);
      await scimRows
        .updateUser(tx.tx, {
          ...current,
          userName: input.userName,
          externalId: input.externalId,
          active: input.active,
          attributes: input.attributes,
          updatedAt: this.options.clock(),
        })
        .catch((err) => conflict(err, `userName ${input.userName}`));
    });
  }

  /** Brings the membership in line with `active`: re-grants with the mapped role, or deprovisions. */
  private async setActive(tx: AuthTransaction, caller: ScimCaller, userId: string, input: UserInput, effects: Effects): Promise<void> {
    const tenantId = caller.tenant.id;
    const user = await this.options.store.users.load(tx.tx, userId);
    const member = membershipIn(user.state, tenantId);
    if (!input.active) {
      if (member !== undefined) await this.deprovision(tx, caller, userId, effects);
      return;
    }
    if (member === undefined) {
      const groups = (await scimRows.groupsOf(tx.tx, tenantId, [userId])).get(userId) ?? [];
      await this.addMember(tx, caller, userId, input.email, input.displayName, await this.roleFor(tenantId, groups));
      effects.userIds.push(userId);
    }
  }

  private async addMember(tx: AuthTransaction, caller: ScimCaller, userId: string, email: string, displayName: string, role: TenantRole) {
    await executeInTransaction(
      tx.tx,
      this.users,
      userId,
      { type: "AddMember", userId, email, displayName, tenantId: caller.tenant.id, role, now: this.options.clock() },
      { metadata: this.metadata(caller) },
    );
  }

  /** Ends the membership, revokes the user's keys in the tenant and ends their sessions. */
  private async deprovision(tx: AuthTransaction, caller: ScimCaller, userId: string, effects: Effects): Promise<void> {
    const tenantId = caller.tenant.id;
    const now = this.options.clock();
    const metadata = this.metadata(caller);
    effects.userIds.push(userId);
    const user = await this.options.store.users.load(tx.tx, userId);
    if (membershipIn(user.state, tenantId) !== undefined) {
      await executeInTransaction(tx.tx, this.users, userId, { type: "RevokeMembership", tenantId, now }, { metadata });
    }
    const ended = await endMemberCredentials(
      tx,
      { apiKeys: this.apiKeys, sessions: this.sessions },
      { userId, tenantId },
      DEPROVISIONED,
      now,
      metadata,
    );
    effects.keyIds.push(...ended.keyIds);
    effects.sessionIds.push(...ended.sessionIds);
  }

  // ---- groups ----

  async createGroup(caller: ScimCaller, body: unknown, base: string): Promise<ScimResource> {
    const input = groupInput(body);
    const tenantId = caller.tenant.id;
    const id = randomUUID();
    await this.write(caller, async (tx, effects) => {
      const now = this.options.clock();
      await scimRows
        .insertGroup(tx.tx, { tenantId, id, displayName: input.displayName, externalId: input.externalId, createdAt: now, updatedAt: now })
        .catch((err) => conflict(err, `displayName ${input.displayName}`));
      await this.setMembers(tx, caller, id, [], input.members ?? [], effects);
    });
    return this.getGroup(caller, id, base, new URLSearchParams());
  }

  async getGroup(caller: ScimCaller, id: string, base: string, params: URLSearchParams): Promise<ScimResource> {
    const record = await scimRows.group(this.db(), caller.tenant.id, id);
    if (record === undefined) throw new ScimError(404, `no group ${id} in this tenant`);
    return groupResource(record, base, excludesMembers(params));
  }

  async listGroups(caller: ScimCaller, params: URLSearchParams, base: string): Promise<ScimResource> {
    const { startIndex, count } = paging(params, SCIM_MAX_RESULTS);
    const expression = params.get("filter");
    const filter = expression ? parseFilter(expression) : undefined;
    const lookup = filter ? indexedEquality(filter, ["displayName", "externalId", "id"]) : undefined;
    const all = (await scimRows.groups(this.db(), caller.tenant.id, lookup)).map((g) => groupResource(g, base, false));
    const hits = filter ? all.filter((r) => matches(filter, r)) : all;
    const without = excludesMembers(params);
    const page = hits.slice(startIndex - 1, startIndex - 1 + count).map((r) => {
      if (!without) return r;
      const { members: _members, ...rest } = r;
      return rest;
    });
    return listResponse(hits.length, startIndex, page);
  }

  async replaceGroup(caller: ScimCaller, id: string, body: unknown, ifMatch: string | undefined, base: string): Promise<ScimResource> {
    const input = groupInput(body);
    await this.updateGroup(caller, id, ifMatch, () => input);
    return this.getGroup(caller, id, base, new URLSearchParams());
  }

  async patchGroup(caller: ScimCaller, id: string, body: unknown, ifMatch: string | undefined, base: string): Promise<ScimResource> {
    const operations = patchOperations(body);
    await this.updateGroup(caller, id, ifMatch, (current) => {
      const doc: ScimResource = { displayName: current.displayName, members: current.members.map((value) => ({ value })) };
      if (current.externalId !== undefined) doc.externalId = current.externalId;
      return groupInput(applyPatch(doc, operations));
    });
    return this.getGroup(caller, id, base, new URLSearchParams());
  }

  async deleteGroup(caller: ScimCaller, id: string, ifMatch: string | undefined): Promise<void> {
    await this.write(caller, async (tx, effects) => {
      const current = await scimRows.group(tx.tx, caller.tenant.id, id, true);
      if (current === undefined) throw new ScimError(404, `no group ${id} in this tenant`);
      checkIfMatch(ifMatch, current.version);
      await scimRows.deleteGroup(tx.tx, caller.tenant.id, id);
      await this.syncRoles(tx, caller, current.members, effects);
    });
  }

  private async updateGroup(
    caller: ScimCaller,
    id: string,
    ifMatch: string | undefined,
    next: (current: ScimGroupRecord) => GroupInput,
  ): Promise<void> {
    const tenantId = caller.tenant.id;
    await this.write(caller, async (tx, effects) => {
      const current = await scimRows.group(tx.tx, tenantId, id, true);
      if (current === undefined) throw new ScimError(404, `no group ${id} in this tenant`);
      checkIfMatch(ifMatch, current.version);
      const input = next(current);
      await scimRows
        .updateGroup(tx.tx, {
          tenantId,
          id,
          displayName: input.displayName,
          externalId: input.externalId,
          createdAt: current.createdAt,
          updatedAt: this.options.clock(),
        })
        .catch((err) => conflict(err, `displayName ${input.displayName}`));
      const renamed = input.displayName !== current.displayName || input.externalId !== current.externalId;
      await this.setMembers(tx, caller, id, current.members, input.members ?? current.members, effects, renamed);
    });
  }

  /** Sets the group's members and re-derives the roles of everyone whose groups changed. */
  private async setMembers(
    tx: AuthTransaction,
    caller: ScimCaller,
    groupId: string,
    before: readonly string[],
    after: readonly string[],
    effects: Effects,
    everyone = false,
  ): Promise<void> {
    const tenantId = caller.tenant.id;
    const wanted = [...new Set(after)];
    if (wanted.length > 0) {
      const known = new Set(await scimRows.existingUserIds(tx.tx, tenantId, wanted));
      const unknown = wanted.filter((u) => !known.has(u));
      if (unknown.length > 0)
        throw new ScimError(400, `members are not provisioned users of this tenant: ${unknown.slice(0, 5).join(", ")}`, "invalidValue");
    }
    const add = wanted.filter((u) => !before.includes(u));
    const remove = before.filter((u) => !wanted.includes(u));
    await scimRows.setMembers(tx.tx, tenantId, groupId, add, remove);
    await this.syncRoles(tx, caller, everyone ? [...new Set([...before, ...wanted])] : [...add, ...remove], effects);
  }

  /**
   * Each active member's role from their groups: the strongest role the identity provider maps
   * their groups (display name or external id) to, else the provider's default role. Owners keep
   * their role: a directory never demotes (or promotes to) an owner.
   */
  private async syncRoles(tx: AuthTransaction, caller: ScimCaller, userIds: readonly string[], effects: Effects): Promise<void> {
    const tenantId = caller.tenant.id;
    effects.groupsChanged.push(...userIds);
    const groups = await scimRows.groupsOf(tx.tx, tenantId, userIds);
    const provider = await this.options.store.getIdentityProvider(tenantId);
    for (const userId of userIds) {
      const loaded = await this.options.store.users.load(tx.tx, userId);
      const member = membershipIn(loaded.state, tenantId);
      if (member === undefined || member.role === "owner") continue;
      const role = roleFrom(provider, groups.get(userId) ?? []);
      if (role === member.role || role === "owner") continue;
      await executeInTransaction(
        tx.tx,
        this.users,
        userId,
        { type: "ChangeMembershipRole", tenantId, role, now: this.options.clock() },
        { metadata: this.metadata(caller) },
      );
      effects.userIds.push(userId);
    }
  }

  private async roleFor(tenantId: string, groups: readonly ScimGroupName[]): Promise<TenantRole> {
    return roleFrom(await this.options.store.getIdentityProvider(tenantId), groups);
  }

  // ---- plumbing ----

  private metadata(caller: ScimCaller): { actor: string; tenantId: string } {
    return { actor: `scim:${caller.tokenId}`, tenantId: caller.tenant.id };
  }

  private db(): Queryable {
    return this.options.db;
  }

  /** One transaction; this process's cached answers of everyone touched end right after commit. */
  private async write<R>(caller: ScimCaller, fn: (tx: AuthTransaction, effects: Effects) => Promise<R>): Promise<R> {
    const effects: Effects = { keyIds: [], sessionIds: [], userIds: [], groupsChanged: [] };
    const result = await this.options.store.transaction(async (tx) => {
      const out = await fn(tx, effects);
      // Principals carry the directory's groups: every process drops the tenant's cached answers.
      const userIds = [...new Set(effects.groupsChanged)].sort();
      if (userIds.length > 0) {
        await recordFacts(
          tx.tx,
          `directory_groups-${caller.tenant.id}`,
          [eventOf(DirectoryGroupsChangedSchema, { tenantId: caller.tenant.id, userIds })],
          {
            metadata: this.metadata(caller),
          },
        );
      }
      return out;
    });
    if (effects.userIds.length + effects.keyIds.length + effects.sessionIds.length + effects.groupsChanged.length > 0) {
      invalidateInProcess({
        keyIds: [...effects.keyIds, ...effects.sessionIds.map(sessionKey), ...effects.userIds.map(userIdKey)],
        tenantIds: [caller.tenant.id],
      });
    }
    return result;
  }
}

/**
 * The role a provisioned member's groups give: the strongest role the provider's `group_roles`
 * maps their groups' display names or external ids to, else its default role (viewer without a
 * provider).
 */
function roleFrom(provider: IdentityProviderConfig | undefined, groups: readonly ScimGroupName[]): TenantRole {
  if (provider === undefined) return "viewer";
  const names = groups.flatMap((g) => (g.externalId ? [g.displayName, g.externalId] : [g.displayName]));
  return mappedRole(provider, names) ?? provider.defaultRole;
}

function hasScim(tenant: TenantView): boolean {
  return principalEntitlements(effectiveEntitlements(tenant.plan, tenant.overrides)).features[SCIM_FEATURE] === true;
}

function checkIfMatch(ifMatch: string | undefined, version: number): void {
  if (ifMatch === undefined || ifMatch.trim() === "*") return;
  const wanted = ifMatch.split(",").map((t) => t.trim().replace(/^W\//, ""));
  if (!wanted.includes(`"${version}"`)) throw new ScimError(412, "the resource changed since the ETag given in If-Match");
}

function excludesMembers(params: URLSearchParams): boolean {
  return (params.get("excludedAttributes") ?? "").split(",").some((a) => a.trim().toLowerCase() === "members");
}

/** A user as a request states it. */
interface UserInput {
  userName: string;
  externalId: string | undefined;
  active: boolean;
  email: string;
  displayName: string;
  attributes: Record<string, unknown>;
}

/** The e-mail that names the Nexus user: the primary (else first) e-mail, else an e-mail-shaped userName. */
function emailOf(body: Record<string, unknown>, userName: string): string {
  const emails = attr(body, "emails");
  if (Array.isArray(emails)) {
    const valid = emails.filter((e) => isObject(e) && typeof attr(e, "value") === "string") as Record<string, unknown>[];
    const chosen = valid.find((e) => attr(e, "primary") === true || attr(e, "primary") === "True") ?? valid[0];
    if (chosen) return String(attr(chosen, "value"));
  }
  return userName;
}

function userInput(body: unknown): UserInput {
  if (!isObject(body)) throw new ScimError(400, "the request body must be a JSON object", "invalidSyntax");
  const userName = optionalString(body, "userName");
  if (userName === undefined) throw new ScimError(400, "userName is required", "invalidValue");
  const activeRaw = attr(body, "active");
  const active = activeRaw === undefined || activeRaw === null ? true : scimBoolean(activeRaw, "active");
  const email = normalizeEmail(emailOf(body, userName));
  if (!/^[^@\s]+@[^@\s]+$/.test(email) || email.length > 254) {
    throw new ScimError(
      400,
      "the user needs an e-mail address (emails, or an e-mail-shaped userName): Nexus names people by e-mail",
      "invalidValue",
    );
  }
  const attributes: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) if (!COMPUTED.has(k.toLowerCase())) attributes[k] = v;
  const displayName = optionalString(body, "displayName", 200);
  if (displayName !== undefined) attributes.displayName = displayName;
  if (JSON.stringify(attributes).length > 16_384) throw new ScimError(400, "the user's attributes exceed 16 KiB", "invalidValue");
  const name = attr(body, "name");
  const formatted = isObject(name)
    ? (attr(name, "formatted") ?? [attr(name, "givenName"), attr(name, "familyName")].filter(Boolean).join(" "))
    : "";
  return {
    userName,
    externalId: optionalString(body, "externalId"),
    active,
    email,
    displayName: (displayName ?? (typeof formatted === "string" ? formatted : "")).slice(0, 200),
    attributes,
  };
}

/** A group as a request states it (members: user ids; undefined = unchanged). */
interface GroupInput {
  displayName: string;
  externalId: string | undefined;
  members: string[] | undefined;
}

function groupInput(body: unknown): GroupInput {
  if (!isObject(body)) throw new ScimError(400, "the request body must be a JSON object", "invalidSyntax");
  const displayName = optionalString(body, "displayName");
  if (displayName === undefined) throw new ScimError(400, "displayName is required", "invalidValue");
  const raw = attr(body, "members");
  let members: string[] | undefined;
  if (raw !== undefined && raw !== null) {
    if (!Array.isArray(raw)) throw new ScimError(400, "members must be an array", "invalidValue");
    members = raw.map((m) => {
      const value = isObject(m) ? attr(m, "value") : undefined;
      if (typeof value !== "string" || value === "") throw new ScimError(400, "each member needs a value (the user's id)", "invalidValue");
      return value;
    });
  }
  return { displayName, externalId: optionalString(body, "externalId"), members };
}

function meta(resourceType: string, location: string, created: Date, updated: Date, version: number): Record<string, unknown> {
  return { resourceType, created: created.toISOString(), lastModified: updated.toISOString(), location, version: etagOf(version) };
}

function userResource(r: ScimUserRecord, groups: readonly ScimGroupName[], base: string): ScimResource {
  const hasEnterprise = Object.keys(r.attributes).some((k) => k.toLowerCase() === SCIM_ENTERPRISE_USER_SCHEMA.toLowerCase());
  return {
    schemas: hasEnterprise ? [SCIM_USER_SCHEMA, SCIM_ENTERPRISE_USER_SCHEMA] : [SCIM_USER_SCHEMA],
    id: r.userId,
    ...(r.externalId !== undefined ? { externalId: r.externalId } : {}),
    userName: r.userName,
    ...r.attributes,
    active: r.active,
    groups: groups.map((g) => ({ value: g.id, display: g.displayName, $ref: `${base}/Groups/${g.id}` })),
    meta: meta("User", `${base}/Users/${r.userId}`, r.createdAt, r.updatedAt, r.version),
  };
}

function groupResource(g: ScimGroupRecord, base: string, withoutMembers: boolean): ScimResource {
  return {
    schemas: [SCIM_GROUP_SCHEMA],
    id: g.id,
    ...(g.externalId !== undefined ? { externalId: g.externalId } : {}),
    displayName: g.displayName,
    ...(withoutMembers ? {} : { members: g.members.map((value) => ({ value, $ref: `${base}/Users/${value}` })) }),
    meta: meta("Group", `${base}/Groups/${g.id}`, g.createdAt, g.updatedAt, g.version),
  };
}

function listResponse(total: number, startIndex: number, resources: ScimResource[]): ScimResource {
  return { schemas: [SCIM_LIST_SCHEMA], totalResults: total, startIndex, itemsPerPage: resources.length, Resources: resources };
}
