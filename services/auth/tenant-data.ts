import { tenantRowsDeleter } from "../kernel/service/index.js";

/**
 * Auth's part of tenant offboarding: the tenant's API keys (and the console sessions signed in
 * with them), memberships, identity providers, user sessions, sign-in attempts and the SCIM directory
 * (provisioned users and groups, the SCIM token). It keeps
 * the `auth.tenants` row — suspended, with the offboarding reason — because it is the
 * projection of the tenant's event stream (a rebuild would bring it back) and the tombstone
 * that refuses the tenant's id from then on; and `auth.users`, which are people who may belong
 * to other tenants (their membership here is deleted).
 */
export const authTenantData = tenantRowsDeleter(
  "auth",
  [
    { table: "auth.console_sessions", where: "key_id IN (SELECT id FROM auth.api_keys WHERE tenant_id = $1)" },
    { table: "auth.api_keys" },
    { table: "auth.sessions" },
    { table: "auth.sign_in_attempts" },
    { table: "auth.memberships" },
    { table: "auth.identity_providers" },
    { table: "auth.scim_group_members" },
    { table: "auth.scim_users" },
    { table: "auth.scim_groups" },
    { table: "auth.scim_tokens" },
  ],
  "auth.tenants (the suspended tenant record: the projection of its stream and a tombstone for its id); auth.users (people may belong to other tenants)",
);
