import { describe, expect, it } from "vitest";
import { decideUser, evolveUser, type UserCommand, type UserEvent, type UserState } from "./user.js";

const T0 = new Date("2026-01-01T00:00:00Z");

/** Given the events, when the command is decided, then these events (or this refusal reason). */
function given(events: UserEvent[]) {
  const state = events.reduce<UserState>((s, e) => evolveUser(s, e), undefined);
  return {
    state,
    when(command: UserCommand) {
      const decision = decideUser(command, state);
      return decision.kind === "accepted" ? decision.events.map((e) => e.type) : decision.reason;
    },
  };
}

const created: UserEvent = { type: "UserCreated", userId: "u1", email: "ann@example.com", displayName: "Ann", tenantId: "t1", at: T0 };
const joinedT1: UserEvent = { type: "MembershipGranted", userId: "u1", tenantId: "t1", role: "editor", at: T0 };
const add = (tenantId: string, role: "owner" | "admin" | "editor" | "viewer"): UserCommand => ({
  type: "AddMember",
  userId: "u1",
  email: " Ann@Example.COM ",
  displayName: "",
  tenantId,
  role,
  now: T0,
});

describe("user aggregate", () => {
  it.each([
    {
      name: "a new person is created with the membership",
      events: [],
      command: add("t1", "editor"),
      expected: ["UserCreated", "MembershipGranted"],
    },
    { name: "the same role again changes nothing", events: [created, joinedT1], command: add("t1", "editor"), expected: [] },
    { name: "another role is not a silent change", events: [created, joinedT1], command: add("t1", "viewer"), expected: "ALREADY_EXISTS" },
    {
      name: "a second tenant is a second membership",
      events: [created, joinedT1],
      command: add("t2", "viewer"),
      expected: ["MembershipGranted"],
    },
    {
      name: "a role change of a member",
      events: [created, joinedT1],
      command: { type: "ChangeMembershipRole", tenantId: "t1", role: "admin", now: T0 } as UserCommand,
      expected: ["MembershipRoleChanged"],
    },
    {
      name: "a role change of a non-member is NOT_FOUND",
      events: [created, joinedT1],
      command: { type: "ChangeMembershipRole", tenantId: "t2", role: "admin", now: T0 } as UserCommand,
      expected: "NOT_FOUND",
    },
    {
      name: "removal of a member",
      events: [created, joinedT1],
      command: { type: "RevokeMembership", tenantId: "t1", now: T0 } as UserCommand,
      expected: ["MembershipRevoked"],
    },
    {
      name: "removal twice is NOT_FOUND (the membership is gone)",
      events: [created, joinedT1, { type: "MembershipRevoked", userId: "u1", tenantId: "t1", at: T0 } as UserEvent],
      command: { type: "RevokeMembership", tenantId: "t1", now: T0 } as UserCommand,
      expected: "NOT_FOUND",
    },
    {
      name: "operator flag set once",
      events: [created],
      command: { type: "SetPlatformOperator", platformOperator: true, now: T0 } as UserCommand,
      expected: ["PlatformOperatorChanged"],
    },
    {
      name: "operator flag of nobody",
      events: [],
      command: { type: "SetPlatformOperator", platformOperator: true, now: T0 } as UserCommand,
      expected: "NOT_FOUND",
    },
  ] as { name: string; events: UserEvent[]; command: UserCommand; expected: string[] | string }[])(
    "$name",
    ({ events, command, expected }) => {
      expect(given(events).when(command)).toEqual(expected);
    },
  );

  it("stores e-mails lower-cased and falls back to the e-mail as display name", () => {
    const decision = decideUser(add("t1", "viewer"), undefined);
    expect(decision.kind === "accepted" && decision.events[0]).toMatchObject({ email: "ann@example.com", displayName: "ann@example.com" });
  });

  it("keeps one membership per tenant through grants, role changes and removals", () => {
    const { state } = given([
      created,
      joinedT1,
      { type: "MembershipGranted", userId: "u1", tenantId: "t2", role: "viewer", at: T0 },
      { type: "MembershipRoleChanged", userId: "u1", tenantId: "t2", previousRole: "viewer", role: "admin", at: T0 },
      { type: "MembershipRevoked", userId: "u1", tenantId: "t1", at: T0 },
    ]);
    expect(state?.memberships.map((m) => [m.tenantId, m.role])).toEqual([["t2", "admin"]]);
  });
});
