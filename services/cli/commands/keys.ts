import { parseArgs } from "node:util";
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type ApiKey, ApiKeyStatus, Role } from "../../../gen/nexus/auth/v1/api_key_pb.js";
import {
  CreateApiKeyResponseSchema,
  ListApiKeysResponseSchema,
  ReactivateApiKeyResponseSchema,
  RevokeApiKeyResponseSchema,
  RotateApiKeyResponseSchema,
  SetApiKeyRoleResponseSchema,
} from "../../../gen/nexus/auth/v1/auth_service_pb.js";
import type { Command } from "../command.js";
import { UsageError } from "../command.js";
import { printTable } from "../output.js";
import { CLIENT_OPTIONS, clientFrom, parseDuration, parseInstant, parseNameList, printJson, when } from "./client-options.js";
import { resolveTenantId } from "./tenants.js";

const ROLES: Record<string, Role> = { owner: Role.OWNER, admin: Role.ADMIN, editor: Role.EDITOR, viewer: Role.VIEWER };
const STATUSES: Record<string, ApiKeyStatus> = {
  active: ApiKeyStatus.ACTIVE,
  rotating: ApiKeyStatus.ROTATING,
  revoked: ApiKeyStatus.REVOKED,
  expired: ApiKeyStatus.EXPIRED,
  inactive: ApiKeyStatus.INACTIVE,
};

function roleOf(name: string | undefined, option = "--role"): Role {
  const role = ROLES[(name ?? "").toLowerCase()];
  if (role === undefined) throw new UsageError(`${option} must be owner, admin, editor or viewer`);
  return role;
}

const roleName = (r: Role): string => (r === Role.UNSPECIFIED ? "-" : (Role[r]?.toLowerCase() ?? "?"));
const statusName = (s: ApiKeyStatus): string => ApiKeyStatus[s]?.toLowerCase() ?? "?";

function printKeys(keys: ApiKey[]): void {
  printTable(
    ["ID", "NAME", "ROLE", "STATUS", "TENANT", "CREATED", "EXPIRES", "LAST USED"],
    keys.map((k) => [
      k.id,
      k.name,
      roleName(k.role),
      statusName(k.status),
      k.tenantId || "(platform)",
      when(k.createdAt),
      when(k.expiresAt),
      when(k.lastUsedAt),
    ]),
  );
}

function printSecret(plaintext: string): void {
  console.log(`\nAPI key (shown once; store it now, it cannot be retrieved again):\n\n  ${plaintext}\n`);
}

/** `nexus keys create`. */
export const keysCreateCommand: Command = {
  path: ["keys", "create"],
  summary: "Create an API key and print it once (admins: their tenant, up to their role; platform: any tenant or --platform)",
  usage:
    "nexus keys create --name NAME (--role owner|admin|editor|viewer [--tenant ID|SLUG] [--owner USER_ID] | --platform) [--expires-in 30d | --expires ISO] [--json]",
  async run(args) {
    const { values } = parseArgs({
      args,
      options: {
        ...CLIENT_OPTIONS,
        name: { type: "string" },
        role: { type: "string" },
        tenant: { type: "string" },
        platform: { type: "boolean" },
        owner: { type: "string" },
        "expires-in": { type: "string" },
        expires: { type: "string" },
      },
      strict: true,
    });
    if (!values.name) throw new UsageError("--name is required");
    if (values.platform && values.owner) throw new UsageError("--platform keys have no --owner");
    if (values.platform && (values.role || values.tenant)) throw new UsageError("--platform takes neither --role nor --tenant");
    const expiresAt = values.expires
      ? parseInstant(values.expires, "--expires")
      : values["expires-in"]
        ? new Date(Date.now() + parseDuration(values["expires-in"], "--expires-in"))
        : undefined;
    const client = clientFrom(values);
    const res = await client.auth.createApiKey({
      name: values.name,
      platformKey: values.platform === true,
      role: values.platform ? Role.UNSPECIFIED : roleOf(values.role),
      tenantId: values.tenant ? await resolveTenantId(client, values.tenant) : "",
      ...(values.owner ? { ownerUserId: values.owner } : {}),
      ...(expiresAt ? { expiresAt: timestampFromDate(expiresAt) } : {}),
    });
    if (values.json) {
      printJson(CreateApiKeyResponseSchema, res);
      return 0;
    }
    printKeys(res.apiKey ? [res.apiKey] : []);
    printSecret(res.plaintextKey);
    return 0;
  },
};

/** `nexus keys list`. */
export const keysListCommand: Command = {
  path: ["keys", "list"],
  summary: "List API keys, newest first (metadata only, never secrets)",
  usage: "nexus keys list [--tenant ID|SLUG | --platform] [--status active,rotating,revoked,expired,inactive] [--json]",
  async run(args) {
    const { values } = parseArgs({
      args,
      options: { ...CLIENT_OPTIONS, tenant: { type: "string" }, platform: { type: "boolean" }, status: { type: "string" } },
      strict: true,
    });
    const statuses = parseNameList(
      values.status,
      STATUSES,
      "--status takes active, rotating, revoked, expired or inactive (comma-separated)",
    );
    const client = clientFrom(values);
    const tenantId = values.tenant ? await resolveTenantId(client, values.tenant) : "";
    const keys: ApiKey[] = [];
    let pageToken = "";
    do {
      const res = await client.auth.listApiKeys({ tenantId, platformKeys: values.platform === true, statuses, pageSize: 200, pageToken });
      keys.push(...res.apiKeys);
      pageToken = res.nextPageToken;
    } while (pageToken);
    if (values.json) {
      printJson(ListApiKeysResponseSchema, create(ListApiKeysResponseSchema, { apiKeys: keys }));
      return 0;
    }
    if (keys.length === 0) console.log("no API keys");
    else printKeys(keys);
    return 0;
  },
};

/** `nexus keys revoke`. */
export const keysRevokeCommand: Command = {
  path: ["keys", "revoke"],
  summary: "Revoke an API key everywhere within a second (idempotent)",
  usage: "nexus keys revoke <key id> [--reason TEXT] [--json]",
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      options: { ...CLIENT_OPTIONS, reason: { type: "string" } },
      allowPositionals: true,
      strict: true,
    });
    if (positionals.length !== 1 || !positionals[0]) throw new UsageError("give the key id (see nexus keys list)");
    const res = await clientFrom(values).auth.revokeApiKey({ keyId: positionals[0], reason: values.reason ?? "" });
    if (values.json) {
      printJson(RevokeApiKeyResponseSchema, res);
      return 0;
    }
    printKeys(res.apiKey ? [res.apiKey] : []);
    return 0;
  },
};

/** `nexus keys rotate`. */
export const keysRotateCommand: Command = {
  path: ["keys", "rotate"],
  summary: "Issue a successor key and keep the old one working for a grace period; prints the new key once",
  usage: "nexus keys rotate <key id> [--grace 24h] [--expires-in 90d | --expires ISO] [--json]",
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      options: { ...CLIENT_OPTIONS, grace: { type: "string" }, "expires-in": { type: "string" }, expires: { type: "string" } },
      allowPositionals: true,
      strict: true,
    });
    if (positionals.length !== 1 || !positionals[0]) throw new UsageError("give the key id (see nexus keys list)");
    const expiresAt = values.expires
      ? parseInstant(values.expires, "--expires")
      : values["expires-in"]
        ? new Date(Date.now() + parseDuration(values["expires-in"], "--expires-in"))
        : undefined;
    const res = await clientFrom(values).auth.rotateApiKey({
      keyId: positionals[0],
      ...(values.grace !== undefined ? { gracePeriod: durationFromMs(parseDuration(values.grace, "--grace")) } : {}),
      ...(expiresAt ? { expiresAt: timestampFromDate(expiresAt) } : {}),
    });
    if (values.json) {
      printJson(RotateApiKeyResponseSchema, res);
      return 0;
    }
    printKeys([res.apiKey, res.previousApiKey].filter((k): k is ApiKey => k !== undefined));
    console.log(`\nthe old key ${res.previousApiKey?.id ?? ""} keeps working until ${when(res.previousApiKey?.graceEndsAt)}`);
    printSecret(res.plaintextKey);
    return 0;
  },
};

/** `nexus keys reactivate`. */
export const keysReactivateCommand: Command = {
  path: ["keys", "reactivate"],
  summary: "Make an inactive API key (AUTH_INACTIVE_KEY) usable again",
  usage: "nexus keys reactivate <key id> [--json]",
  async run(args) {
    const { values, positionals } = parseArgs({ args, options: { ...CLIENT_OPTIONS }, allowPositionals: true, strict: true });
    if (positionals.length !== 1 || !positionals[0]) throw new UsageError("give the key id (see nexus keys list)");
    const res = await clientFrom(values).auth.reactivateApiKey({ keyId: positionals[0] });
    if (values.json) {
      printJson(ReactivateApiKeyResponseSchema, res);
      return 0;
    }
    printKeys(res.apiKey ? [res.apiKey] : []);
    return 0;
  },
};

/** `nexus keys set-role`. */
export const keysSetRoleCommand: Command = {
  path: ["keys", "set-role"],
  summary: "Change a tenant key's role (at most your own role)",
  usage: "nexus keys set-role <key id> <owner|admin|editor|viewer> [--json]",
  async run(args) {
    const { values, positionals } = parseArgs({ args, options: { ...CLIENT_OPTIONS }, allowPositionals: true, strict: true });
    if (positionals.length !== 2 || !positionals[0]) throw new UsageError("give the key id and the new role");
    const res = await clientFrom(values).auth.setApiKeyRole({ keyId: positionals[0], role: roleOf(positionals[1], "the role") });
    if (values.json) {
      printJson(SetApiKeyRoleResponseSchema, res);
      return 0;
    }
    printKeys(res.apiKey ? [res.apiKey] : []);
    return 0;
  },
};

/** Every `nexus keys …` command. */
export const keysCommands: readonly Command[] = [
  keysCreateCommand,
  keysListCommand,
  keysRevokeCommand,
  keysRotateCommand,
  keysReactivateCommand,
  keysSetRoleCommand,
];
