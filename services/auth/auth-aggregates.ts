import { authorizationRefusal } from "../kernel/authz/refusal.js";
import { type Aggregate, executeInTransaction } from "../kernel/commands/index.js";
import type { Principal } from "../kernel/context.js";
import { domainError } from "../kernel/errors.js";
import { apiKeyEventToNew, tenantEventToNew } from "./auth-events.js";
import { type ApiKey, type ApiKeyCommand, type ApiKeyEvent, decideApiKey, evolveApiKey } from "./domain/api-key.js";
import type { Decision } from "./domain/decision.js";
import {
  decideIdentityProvider,
  evolveIdentityProvider,
  type IdentityProviderCommand,
  type IdentityProviderConfig,
  type IdentityProviderEvent,
} from "./domain/identity-provider.js";
import { mayManageKey } from "./domain/key-policy.js";
import { decideSession, evolveSession, type Session, type SessionCommand, type SessionEvent } from "./domain/session.js";
import { decideTenant, evolveTenant, type Tenant, type TenantCommand, type TenantEvent } from "./domain/tenant.js";
import { decideUser, evolveUser, type User, type UserCommand, type UserEvent } from "./domain/user.js";
import { identityProviderEventToNew, sessionEventToNew, userEventToNew } from "./identity-events.js";
import type { AuthTransaction, StateRepository } from "./ports.js";
import { tenantEventSourcing } from "./tenant-event-sourcing.js";

/**
 * Auth's two aggregates as the kernel command helper drives them (services/kernel/commands):
 * the pure decide/evolve of domain/tenant.ts and domain/api-key.ts, the state rows of the
 * store, and the event payloads of auth-events.ts. The helper saves the row and appends the
 * events at the loaded version in one transaction.
 */

/** Event stream of a tenant aggregate. */
export const tenantStreamId = (tenantId: string): string => `tenant-${tenantId}`;
/** Event stream of an API key aggregate. */
export const apiKeyStreamId = (keyId: string): string => `api_key-${keyId}`;

/** The tenant aggregate (key: tenant id). */
export type TenantAggregate = Aggregate<Tenant, TenantEvent, TenantCommand, string>;
/** The API key aggregate (key: key id). */
export type ApiKeyAggregate = Aggregate<ApiKey, ApiKeyEvent, ApiKeyCommand, string>;

/**
 * The events of an accepted decision; a rejection becomes its error. Role refusals decided
 * here are recorded (rbac.forbidden) by the authorization interceptor, once.
 */
export function decided<E>(decision: Decision<E>): E[] {
  if (decision.kind === "rejected") {
    if (decision.reason === "RBAC_FORBIDDEN") throw authorizationRefusal("RBAC_FORBIDDEN", decision.message, decision.metadata ?? {});
    throw domainError(decision.reason, decision.message, decision.metadata ?? {});
  }
  return decision.events;
}

/** An evolve result that must exist: deciders only emit events for an existing (or created) aggregate. */
function present<S>(state: S | undefined, what: string): S {
  if (state === undefined) throw new Error(`a ${what} event was applied to no ${what}: the decider emitted it for a missing aggregate`);
  return state;
}

/**
 * The tenant aggregate over `rows` (the store's tenant state rows). Event-sourced: commands
 * rebuild the tenant from `tenant-<id>` (snapshot + replay) and `rows` is its projection.
 */
export function tenantAggregate(rows: StateRepository<Tenant>): TenantAggregate {
  return {
    streamId: tenantStreamId,
    eventSourcing: tenantEventSourcing,
    load: (tx, tenantId) => rows.load(tx, tenantId),
    decide: (command, state) => decided(decideTenant(command, state)),
    evolve: (state, event) => present(evolveTenant(state, event), "tenant"),
    save: (tx, _tenantId, tenant, expectedVersion, version) => rows.save(tx, tenant, expectedVersion, version),
    // The actor comes with the command's metadata; each event names its tenant.
    toEvent: (event) => tenantEventToNew(event, {}),
  };
}

/** The API key aggregate over `rows` (the store's key state rows). */
export function apiKeyAggregate(rows: StateRepository<ApiKey>): ApiKeyAggregate {
  return {
    streamId: apiKeyStreamId,
    load: (tx, keyId) => rows.load(tx, keyId),
    decide: (command, state) => decided(decideApiKey(command, state)),
    evolve: (state, event) => present(evolveApiKey(state, event), "API key"),
    save: (tx, _keyId, key, expectedVersion, version) => rows.save(tx, key, expectedVersion, version),
    toEvent: (event) => apiKeyEventToNew(event, {}),
  };
}

/**
 * The API key aggregate for a command `actor` sends about an existing key: no key (or one the
 * actor may not see) is NOT_FOUND, then the key policy (domain/key-policy.ts) decides whether
 * the actor may manage it, then the key's own decider.
 */
export function managedBy(keys: ApiKeyAggregate, actor: Principal, keyId: string): ApiKeyAggregate {
  return {
    ...keys,
    decide(command, state, key) {
      if (state === undefined) throw domainError("NOT_FOUND", "API key not found", { key_id: keyId });
      decided(mayManageKey(actor, state));
      return keys.decide(command, state, key);
    },
  };
}

/** Event stream of a user aggregate. */
export const userStreamId = (userId: string): string => `user-${userId}`;
/** Event stream of a tenant's identity provider aggregate. */
export const identityProviderStreamId = (tenantId: string): string => `identity_provider-${tenantId}`;

/** The user aggregate (key: user id). */
export type UserAggregate = Aggregate<User, UserEvent, UserCommand, string>;
/** The identity provider aggregate (key: tenant id). */
export type IdentityProviderAggregate = Aggregate<IdentityProviderConfig, IdentityProviderEvent, IdentityProviderCommand, string>;

/** The user aggregate over `rows` (users with their memberships). */
export function userAggregate(rows: StateRepository<User>): UserAggregate {
  return {
    streamId: userStreamId,
    load: (tx, userId) => rows.load(tx, userId),
    decide: (command, state) => decided(decideUser(command, state)),
    evolve: (state, event) => present(evolveUser(state, event), "user"),
    save: (tx, _userId, user, expectedVersion, version) => rows.save(tx, user, expectedVersion, version),
    toEvent: (event) => userEventToNew(event),
  };
}

/** The identity provider aggregate over `rows`. */
export function identityProviderAggregate(rows: StateRepository<IdentityProviderConfig>): IdentityProviderAggregate {
  return {
    streamId: identityProviderStreamId,
    load: (tx, tenantId) => rows.load(tx, tenantId),
    decide: (command, state) => decided(decideIdentityProvider(command, state)),
    evolve: (state, event) => present(evolveIdentityProvider(state, event), "identity provider"),
    save: (tx, _tenantId, provider, expectedVersion, version) => rows.save(tx, provider, expectedVersion, version),
    toEvent: (event) => identityProviderEventToNew(event),
  };
}

/** Event stream of a sign-in session. */
export const sessionStreamId = (sessionId: string): string => `session-${sessionId}`;

/** The session aggregate (key: session id). */
export type SessionAggregate = Aggregate<Session, SessionEvent, SessionCommand, string>;

/** The session aggregate over `rows`. */
export function sessionAggregate(rows: StateRepository<Session>): SessionAggregate {
  return {
    streamId: sessionStreamId,
    load: (tx, sessionId) => rows.load(tx, sessionId),
    decide: (command, state) => decided(decideSession(command, state)),
    evolve: (state, event) => present(evolveSession(state, event), "session"),
    save: (tx, _sessionId, session, expectedVersion, version) => rows.save(tx, session, expectedVersion, version),
    toEvent: (event) => sessionEventToNew(event),
  };
}

/**
 * Ends what a person holds in a tenant whose membership ends (RemoveMember, SCIM
 * deprovisioning): revokes every unrevoked key they own there and ends their live sign-in
 * sessions, in the caller's transaction. Answers the ids, for the caller's cache invalidation.
 */
export async function endMemberCredentials(
  tx: AuthTransaction,
  aggregates: { apiKeys: ApiKeyAggregate; sessions: SessionAggregate },
  person: { userId: string; tenantId: string },
  reason: string,
  now: Date,
  metadata: { actor: string; tenantId: string },
): Promise<{ keyIds: string[]; sessionIds: string[] }> {
  const keyIds = await tx.ownedUnrevokedKeyIds(person.userId, person.tenantId);
  for (const keyId of keyIds) {
    await executeInTransaction(tx.tx, aggregates.apiKeys, keyId, { type: "RevokeApiKey", reason, now }, { metadata });
  }
  const sessionIds = await tx.liveSessionIds(person.userId, person.tenantId, now);
  for (const sessionId of sessionIds) {
    await executeInTransaction(tx.tx, aggregates.sessions, sessionId, { type: "EndSession", reason, now }, { metadata });
  }
  return { keyIds, sessionIds };
}
