import type { TenantRole } from "../../kernel/context.js";
import { accept, type Decision, reject } from "./decision.js";

/**
 * The user aggregate: one person, installation-wide (keyed by a lower-cased e-mail), with a
 * membership — a role — in each tenant they belong to, and whether they run the installation
 * (platform operator). API keys a user owns die with the user's membership in the key's
 * tenant (the application revokes them in the same transaction as MembershipRevoked).
 */

// ---- Events ----

/** A user was created (always together with a first membership or an operator grant). */
export interface UserCreated {
  type: "UserCreated";
  userId: string;
  email: string;
  displayName: string;
  /** The tenant whose admin created the user (event metadata); empty for platform actions. */
  tenantId: string;
  at: Date;
}

/** The user joined a tenant with a role. */
export interface MembershipGranted {
  type: "MembershipGranted";
  userId: string;
  tenantId: string;
  role: TenantRole;
  at: Date;
}

/** The user's role in a tenant changed. */
export interface MembershipRoleChanged {
  type: "MembershipRoleChanged";
  userId: string;
  tenantId: string;
  previousRole: TenantRole;
  role: TenantRole;
  at: Date;
}

/** The user left a tenant (or was removed). */
export interface MembershipRevoked {
  type: "MembershipRevoked";
  userId: string;
  tenantId: string;
  at: Date;
}

/** The user became, or stopped being, a platform operator. */
export interface PlatformOperatorChanged {
  type: "PlatformOperatorChanged";
  userId: string;
  platformOperator: boolean;
  at: Date;
}

/** Every user event. */
export type UserEvent = UserCreated | MembershipGranted | MembershipRoleChanged | MembershipRevoked | PlatformOperatorChanged;

// ---- State ----

/** One tenant membership. */
export interface Membership {
  tenantId: string;
  role: TenantRole;
  joinedAt: Date;
}

/** A user as the decider sees it. */
export interface User {
  id: string;
  /** Lower-cased. */
  email: string;
  displayName: string;
  platformOperator: boolean;
  createdAt: Date;
  /** Current memberships, one per tenant. */
  memberships: readonly Membership[];
}

/** The state of a user stream. */
export type UserState = User | undefined;

/** The membership of `user` in `tenantId`, if any. */
export function membershipIn(user: User | undefined, tenantId: string): Membership | undefined {
  return user?.memberships.find((m) => m.tenantId === tenantId);
}

/** E-mail addresses compare case-insensitively: the stored form. */
export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

// ---- evolve ----

/** Applies one event to the state. */
export function evolveUser(state: UserState, event: UserEvent): UserState {
  switch (event.type) {
    case "UserCreated":
      return {
        id: event.userId,
        email: event.email,
        displayName: event.displayName,
        platformOperator: false,
        createdAt: event.at,
        memberships: [],
      };
    case "MembershipGranted":
      return (
        state && {
          ...state,
          memberships: [
            ...state.memberships.filter((m) => m.tenantId !== event.tenantId),
            { tenantId: event.tenantId, role: event.role, joinedAt: event.at },
          ],
        }
      );
    case "MembershipRoleChanged":
      return (
        state && { ...state, memberships: state.memberships.map((m) => (m.tenantId === event.tenantId ? { ...m, role: event.role } : m)) }
      );
    case "MembershipRevoked":
      return state && { ...state, memberships: state.memberships.filter((m) => m.tenantId !== event.tenantId) };
    case "PlatformOperatorChanged":
      return state && { ...state, platformOperator: event.platformOperator };
    default: {
      const _exhaustive: never = event;
      return _exhaustive;
    }
  }
}

// ---- Commands ----

/** Make a person a member of a tenant, creating the user when `state` has none. */
export interface AddMember {
  type: "AddMember";
  userId: string;
  email: string;
  displayName: string;
  tenantId: string;
  role: TenantRole;
  now: Date;
}

/** Change a member's role. */
export interface ChangeMembershipRole {
  type: "ChangeMembershipRole";
  tenantId: string;
  role: TenantRole;
  now: Date;
}

/** End a membership. */
export interface RevokeMembership {
  type: "RevokeMembership";
  tenantId: string;
  now: Date;
}

/** Grant or withdraw the platform operator flag. */
export interface SetPlatformOperator {
  type: "SetPlatformOperator";
  platformOperator: boolean;
  now: Date;
}

/** Every user command. */
export type UserCommand = AddMember | ChangeMembershipRole | RevokeMembership | SetPlatformOperator;

// ---- decide ----

const notMember = <E>(tenantId: string): Decision<E> => reject("NOT_FOUND", "no such member in this tenant", { tenant_id: tenantId });

/** Decides which events a command produces against the current state. */
export function decideUser(command: UserCommand, state: UserState): Decision<UserEvent> {
  switch (command.type) {
    case "AddMember": {
      const granted: MembershipGranted = {
        type: "MembershipGranted",
        userId: command.userId,
        tenantId: command.tenantId,
        role: command.role,
        at: command.now,
      };
      if (state === undefined) {
        const email = normalizeEmail(command.email);
        const displayName = command.displayName || email;
        return accept<UserEvent>(
          { type: "UserCreated", userId: command.userId, email, displayName, tenantId: command.tenantId, at: command.now },
          granted,
        );
      }
      const current = membershipIn(state, command.tenantId);
      if (current === undefined) return accept<UserEvent>({ ...granted, userId: state.id });
      if (current.role === command.role) return accept();
      return reject("ALREADY_EXISTS", `the user is already a member with the ${current.role} role; use SetMemberRole to change it`, {
        user_id: state.id,
        role: current.role,
      });
    }
    case "ChangeMembershipRole": {
      const current = membershipIn(state, command.tenantId);
      if (state === undefined || current === undefined) return notMember(command.tenantId);
      if (current.role === command.role) return accept();
      return accept({
        type: "MembershipRoleChanged",
        userId: state.id,
        tenantId: command.tenantId,
        previousRole: current.role,
        role: command.role,
        at: command.now,
      });
    }
    case "RevokeMembership":
      if (state === undefined || membershipIn(state, command.tenantId) === undefined) return notMember(command.tenantId);
      return accept({ type: "MembershipRevoked", userId: state.id, tenantId: command.tenantId, at: command.now });
    case "SetPlatformOperator":
      if (state === undefined) return reject("NOT_FOUND", "user not found");
      if (state.platformOperator === command.platformOperator) return accept();
      return accept({ type: "PlatformOperatorChanged", userId: state.id, platformOperator: command.platformOperator, at: command.now });
    default: {
      const _exhaustive: never = command;
      return _exhaustive;
    }
  }
}
