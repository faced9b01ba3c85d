import { parseArgs } from "node:util";
import { create } from "@bufbuild/protobuf";
import { Role } from "../../../gen/nexus/auth/v1/api_key_pb.js";
import {
  AddMemberResponseSchema,
  ListMembersResponseSchema,
  type Member,
  RemoveMemberResponseSchema,
  SetMemberRoleResponseSchema,
} from "../../../gen/nexus/identity/v1/identity_service_pb.js";
import type { Command } from "../command.js";
import { UsageError } from "../command.js";
import { printTable } from "../output.js";
import { CLIENT_OPTIONS, clientFrom, printJson, when } from "./client-options.js";
import { resolveTenantId } from "./tenants.js";

const ROLES: Record<string, Role> = { owner: Role.OWNER, admin: Role.ADMIN, editor: Role.EDITOR, viewer: Role.VIEWER };

function roleOf(name: string | undefined): Role {
  const role = ROLES[(name ?? "").toLowerCase()];
  if (role === undefined) throw new UsageError("--role must be owner, admin, editor or viewer");
  return role;
}

function printMembers(members: Member[]): void {
  printTable(
    ["USER ID", "E-MAIL", "NAME", "ROLE", "OPERATOR", "JOINED"],
    members.map((m) => [
      m.userId,
      m.email,
      m.displayName,
      Role[m.role]?.toLowerCase() ?? "?",
      m.platformOperator ? "yes" : "",
      when(m.joinedAt),
    ]),
  );
}

function oneUserId(positionals: string[]): string {
  if (positionals.length !== 1 || !positionals[0]) throw new UsageError("give the user id (see nexus members list)");
  return positionals[0];
}

/** `nexus members add`. */
export const membersAddCommand: Command = {
  path: ["members", "add"],
  summary: "Make a person (by e-mail) a member of a tenant with a role; creates the user when new",
  usage: "nexus members add --email ADDRESS --role owner|admin|editor|viewer [--name NAME] [--tenant ID|SLUG] [--json]",
  async run(args) {
    const { values } = parseArgs({
      args,
      options: {
        ...CLIENT_OPTIONS,
        email: { type: "string" },
        role: { type: "string" },
        name: { type: "string" },
        tenant: { type: "string" },
      },
      strict: true,
    });
    if (!values.email) throw new UsageError("--email is required");
    const client = clientFrom(values);
    const res = await client.identity.addMember({
      email: values.email,
      role: roleOf(values.role),
      displayName: values.name ?? "",
      tenantId: values.tenant ? await resolveTenantId(client, values.tenant) : "",
    });
    if (values.json) {
      printJson(AddMemberResponseSchema, res);
      return 0;
    }
    printMembers(res.member ? [res.member] : []);
    if (res.userCreated) console.log("\n(a new user was created)");
    return 0;
  },
};

/** `nexus members list`. */
export const membersListCommand: Command = {
  path: ["members", "list"],
  summary: "List a tenant's members by e-mail",
  usage: "nexus members list [--tenant ID|SLUG] [--json]",
  async run(args) {
    const { values } = parseArgs({ args, options: { ...CLIENT_OPTIONS, tenant: { type: "string" } }, strict: true });
    const client = clientFrom(values);
    const tenantId = values.tenant ? await resolveTenantId(client, values.tenant) : "";
    const members: Member[] = [];
    let pageToken = "";
    do {
      const res = await client.identity.listMembers({ tenantId, pageSize: 200, pageToken });
      members.push(...res.members);
      pageToken = res.nextPageToken;
    } while (pageToken);
    if (values.json) {
      printJson(ListMembersResponseSchema, create(ListMembersResponseSchema, { members }));
      return 0;
    }
    if (members.length === 0) console.log("no members");
    else printMembers(members);
    return 0;
  },
};

/** `nexus members set-role`. */
export const membersSetRoleCommand: Command = {
  path: ["members", "set-role"],
  summary: "Change a member's role in a tenant (mesh-wide within a second)",
  usage: "nexus members set-role <user id> --role owner|admin|editor|viewer [--tenant ID|SLUG] [--json]",
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      options: { ...CLIENT_OPTIONS, role: { type: "string" }, tenant: { type: "string" } },
      allowPositionals: true,
      strict: true,
    });
    const userId = oneUserId(positionals);
    const client = clientFrom(values);
    const res = await client.identity.setMemberRole({
      userId,
      role: roleOf(values.role),
      tenantId: values.tenant ? await resolveTenantId(client, values.tenant) : "",
    });
    if (values.json) {
      printJson(SetMemberRoleResponseSchema, res);
      return 0;
    }
    printMembers(res.member ? [res.member] : []);
    return 0;
  },
};

/** `nexus members remove`. */
export const membersRemoveCommand: Command = {
  path: ["members", "remove"],
  summary: "End a membership; the API keys the user owns in the tenant are revoked with it",
  usage: "nexus members remove <user id> [--tenant ID|SLUG] [--json]",
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      options: { ...CLIENT_OPTIONS, tenant: { type: "string" } },
      allowPositionals: true,
      strict: true,
    });
    const userId = oneUserId(positionals);
    const client = clientFrom(values);
    const res = await client.identity.removeMember({ userId, tenantId: values.tenant ? await resolveTenantId(client, values.tenant) : "" });
    if (values.json) {
      printJson(RemoveMemberResponseSchema, res);
      return 0;
    }
    console.log(`removed; revoked keys: ${res.revokedKeyIds.length === 0 ? "none" : res.revokedKeyIds.join(", ")}`);
    return 0;
  },
};

/** The `nexus members` commands. */
export const membersCommands: readonly Command[] = [membersAddCommand, membersListCommand, membersSetRoleCommand, membersRemoveCommand];
