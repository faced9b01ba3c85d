import { parseArgs } from "node:util";
import {
  GetScimTokenResponseSchema,
  RevokeScimTokenResponseSchema,
  RotateScimTokenResponseSchema,
} from "../../../gen/nexus/identity/v1/identity_service_pb.js";
import type { Command } from "../command.js";
import { CLIENT_OPTIONS, clientFrom, printJson, when } from "./client-options.js";
import { resolveTenantId } from "./tenants.js";

const OPTIONS = { ...CLIENT_OPTIONS, tenant: { type: "string" } } as const;

/** `nexus scim token rotate`. */
export const scimTokenRotateCommand: Command = {
  path: ["scim", "token", "rotate"],
  summary: "Issue the tenant's SCIM bearer token (the previous one stops at once); shown once",
  usage: "nexus scim token rotate [--tenant ID|SLUG] [--json]",
  async run(args) {
    const { values } = parseArgs({ args, options: OPTIONS, strict: true });
    const client = clientFrom(values);
    const res = await client.identity.rotateScimToken({ tenantId: values.tenant ? await resolveTenantId(client, values.tenant) : "" });
    if (values.json) {
      printJson(RotateScimTokenResponseSchema, res);
      return 0;
    }
    console.log(res.token);
    console.error(
      `\nSCIM token ${res.scimToken?.tokenId ?? ""} issued. Give it to the directory (Okta, Entra ID) as the bearer token of <Nexus URL>/scim/v2; it is not shown again.`,
    );
    return 0;
  },
};

/** `nexus scim token show`. */
export const scimTokenShowCommand: Command = {
  path: ["scim", "token", "show"],
  summary: "Whether the tenant has a SCIM token, its id and when it was issued (never the token)",
  usage: "nexus scim token show [--tenant ID|SLUG] [--json]",
  async run(args) {
    const { values } = parseArgs({ args, options: OPTIONS, strict: true });
    const client = clientFrom(values);
    const res = await client.identity.getScimToken({ tenantId: values.tenant ? await resolveTenantId(client, values.tenant) : "" });
    if (values.json) {
      printJson(GetScimTokenResponseSchema, res);
      return 0;
    }
    console.log(res.scimToken ? `token ${res.scimToken.tokenId}, issued ${when(res.scimToken.createdAt)}` : "no SCIM token");
    return 0;
  },
};

/** `nexus scim token revoke`. */
export const scimTokenRevokeCommand: Command = {
  path: ["scim", "token", "revoke"],
  summary: "Revoke the tenant's SCIM token: provisioning stops until a new one is issued",
  usage: "nexus scim token revoke [--tenant ID|SLUG] [--json]",
  async run(args) {
    const { values } = parseArgs({ args, options: OPTIONS, strict: true });
    const client = clientFrom(values);
    const res = await client.identity.revokeScimToken({ tenantId: values.tenant ? await resolveTenantId(client, values.tenant) : "" });
    if (values.json) {
      printJson(RevokeScimTokenResponseSchema, res);
      return 0;
    }
    console.log(res.revoked ? "SCIM token revoked" : "no SCIM token to revoke");
    return 0;
  },
};

/** The `nexus scim …` commands. */
export const scimCommands: readonly Command[] = [scimTokenRotateCommand, scimTokenShowCommand, scimTokenRevokeCommand];
