/**
 * SCIM 2.0 provisioning end to end on a real PostgreSQL database: the request sequences the
 * provisioning clients of Okta and Entra ID send (their bodies, their PATCH shapes — Okta's
 * path-less `{"op":"replace","value":{"active":false}}`, Entra ID's capitalised ops, `path`
 * forms and "False" strings — their filters and paging), against the tenant's SCIM token.
 * People signed in through a REAL OpenID provider (the certified `oidc-provider` package, run on
 * this machine) and keys they own show what a directory change does to access: group changes
 * move the member's role, deactivation or deletion ends sessions and keys at once.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Role } from "../gen/nexus/auth/v1/api_key_pb.js";
import { Plan } from "../gen/nexus/auth/v1/tenant_pb.js";
import { type AuthHarness, failure } from "./support/auth-harness.js";
import { browserSignIn, NEXUS_AUDIENCE, startSignInHarness, type TestOpenIdProvider, WEB_CLIENT_SECRET } from "./support/oidc-provider.js";
import { describeWithPostgres } from "./support/services.js";

/** Ports from this suite's range (19500-19599). */
const PROVIDER_PORT = 19511;
const ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error";
const PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

const people = [
  { clientId: "ada", email: "ada@example.com", groups: [] as string[] },
  { clientId: "grace", email: "grace@example.com", groups: [] as string[] },
];

interface ScimAnswer {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

describeWithPostgres("identity: SCIM 2.0 provisioning (Okta and Entra ID sequences)", () => {
  let h: AuthHarness;
  let idp: TestOpenIdProvider;
  let tenant: Awaited<ReturnType<AuthHarness["tenant"]>>;
  let token: string;

  const scim = async (
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
    bearer = token,
  ): Promise<ScimAnswer> => {
    const res = await fetch(`${h.url}/scim/v2${path}`, {
      method,
      headers: { authorization: `Bearer ${bearer}`, "content-type": "application/scim+json", ...headers },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {}, headers: res.headers };
  };
  const patch = (path: string, ...Operations: unknown[]) => scim("PATCH", path, { schemas: [PATCH_SCHEMA], Operations });
  const callback = () => `${h.url}/auth/oidc/callback`;
  const signIn = async (clientId: string) => {
    idp.signInAs(clientId);
    const done = await browserSignIn(
      `${h.url}/auth/oidc/login?tenant=${encodeURIComponent(tenant.tenant.slug)}&redirect_uri=${encodeURIComponent("http://console.example.com/")}`,
      callback(),
    );
    expect(done.status, done.body).toBe(303);
    return done.session!;
  };
  const roleOf = async (session: string) => (await h.client(session).auth.whoAmI({})).principal?.role;

  beforeAll(async () => {
    ({ h, idp } = await startSignInHarness(PROVIDER_PORT, people));
    tenant = await h.tenant(Plan.ENTERPRISE);
    const owner = h.client(tenant.ownerKey);
    await owner.identity.setIdentityProvider({
      issuer: idp.issuer,
      audience: NEXUS_AUDIENCE,
      clientId: "nexus-web",
      clientSecret: WEB_CLIENT_SECRET,
      scopes: ["openid", "email", "profile"],
      allowedRedirectHosts: ["console.example.com", new URL(h.url).host],
      groupRoles: { "Nexus Admins": Role.ADMIN, Engineering: Role.EDITOR, "entra-object-id-eng": Role.EDITOR },
      defaultRole: Role.VIEWER,
      enabled: true,
    });
    token = (await owner.identity.rotateScimToken({})).token;
  });
  afterAll(async () => {
    await idp?.close();
    await h?.close();
  });

  describe("the SCIM token", () => {
    it("is shown once, rotates (the old one stops at once), is revocable, audited, and needs feature.identity.scim", async () => {
      const t = await h.tenant(Plan.ENTERPRISE);
      const owner = h.client(t.ownerKey);
      expect((await owner.identity.getScimToken({})).scimToken).toBeUndefined();
      const first = await owner.identity.rotateScimToken({});
      expect(first.token).toMatch(/^nxscim_[0-9a-f]{24}_/);
      expect(first.token).toContain(first.scimToken!.tokenId);
      expect((await owner.identity.getScimToken({})).scimToken?.tokenId).toBe(first.scimToken?.tokenId);
      expect((await scim("GET", "/Users", undefined, {}, first.token)).status).toBe(200);
      const second = await owner.identity.rotateScimToken({});
      const refused = await scim("GET", "/Users", undefined, {}, first.token);
      expect(refused.status).toBe(401);
      expect(refused.body).toMatchObject({ schemas: [ERROR_SCHEMA], status: "401" });
      expect((await scim("GET", "/Users", undefined, {}, second.token)).status).toBe(200);
      expect((await owner.identity.revokeScimToken({})).revoked).toBe(true);
      expect((await scim("GET", "/Users", undefined, {}, second.token)).status).toBe(401);
      expect((await owner.identity.revokeScimToken({})).revoked).toBe(false);
      // Neither the token nor its hash is in the events.
      const rotated = (await h.events("ScimTokenRotated")).filter((e) => (e.payload as { tenantId?: string }).tenantId === t.tenant.id);
      expect(rotated).toHaveLength(2);
      expect(JSON.stringify(rotated.map((e) => e.payload))).not.toContain(second.token.slice(-20));
      expect((await h.events("ScimTokenRevoked")).length).toBeGreaterThanOrEqual(1);
      // Viewers may not manage it; a plan without SCIM may not have one.
      const viewer = await h.key(t.tenant.id, Role.VIEWER);
      expect(await failure(() => h.client(viewer.plaintext).identity.rotateScimToken({}))).toMatchObject({ code: "PermissionDenied" });
      // Admins read and revoke it, but only owners issue it: it can deprovision owners.
      const admin = await h.key(t.tenant.id, Role.ADMIN);
      expect(await failure(() => h.client(admin.plaintext).identity.rotateScimToken({}))).toMatchObject({
        code: "PermissionDenied",
        reason: "RBAC_FORBIDDEN",
      });
      expect((await h.client(admin.plaintext).identity.getScimToken({})).scimToken).toBeUndefined();
      const pro = await h.tenant(Plan.PRO);
      expect(await failure(() => h.client(pro.ownerKey).identity.rotateScimToken({}))).toMatchObject({ reason: "FEATURE_NOT_ENABLED" });
    });

    it("answers without a token with a SCIM error; discovery documents need none", async () => {
      const none = await scim("GET", "/Users", undefined, {}, "nxscim_not-a-token");
      expect(none).toMatchObject({ status: 401, body: { schemas: [ERROR_SCHEMA], status: "401" } });
      // A token with a wrong secret is refused and recorded against its tenant, like a refused RPC.
      const forged = `${token.slice(0, -4)}AAAA` === token ? `${token.slice(0, -4)}BBBB` : `${token.slice(0, -4)}AAAA`;
      // The address the client wrote is not what is audited (no trusted proxy: the connection's).
      expect((await scim("GET", "/Users", undefined, { "x-forwarded-for": "203.0.113.9" }, forged)).status).toBe(401);
      const denied = (await h.events("AccessDenied")).map(
        (e) => e.payload as { procedure?: string; keyId?: string; tenantId?: string; peerAddress?: string },
      );
      expect(denied).toContainEqual(
        expect.objectContaining({
          procedure: "/scim/v2",
          keyId: `scim:${token.split("_")[1]}`,
          tenantId: tenant.tenant.id,
          peerAddress: "127.0.0.1",
        }),
      );
      const spc = await scim("GET", "/ServiceProviderConfig", undefined, {}, "");
      expect(spc.status).toBe(200);
      expect(spc.body).toMatchObject({
        patch: { supported: true },
        filter: { supported: true, maxResults: 200 },
        etag: { supported: true },
      });
      const types = await scim("GET", "/ResourceTypes");
      expect((types.body.Resources as { id: string }[]).map((r) => r.id)).toEqual(["User", "Group"]);
      const schemas = await scim("GET", "/Schemas");
      expect((schemas.body.Resources as { id: string }[]).map((r) => r.id)).toContain(USER_SCHEMA);
      expect((await scim("GET", `/Schemas/${GROUP_SCHEMA}`)).body).toMatchObject({ name: "Group" });
      expect((await scim("GET", "/Nope")).status).toBe(404);
    });
  });

  describe("Okta", () => {
    it("provisions, maps groups to roles, deactivates (sessions and keys end at once), reactivates", async () => {
      // Okta looks the person up first.
      const lookup = await scim("GET", `/Users?filter=${encodeURIComponent('userName eq "ada@example.com"')}&startIndex=1&count=100`);
      expect(lookup.body).toMatchObject({ totalResults: 0, Resources: [] });

      const created = await scim("POST", "/Users", {
        schemas: [USER_SCHEMA],
        userName: "ada@example.com",
        name: { givenName: "Ada", familyName: "Lovelace" },
        emails: [{ primary: true, value: "ada@example.com", type: "work" }],
        displayName: "Ada Lovelace",
        locale: "en-US",
        externalId: "00u1okta",
        groups: [],
        password: "never-stored-Pa55",
        active: true,
      });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      const adaId = created.body.id as string;
      expect(created.headers.get("location")).toBe(`${h.url}/scim/v2/Users/${adaId}`);
      expect(created.headers.get("etag")).toBe('W/"1"');
      expect(created.body).toMatchObject({ userName: "ada@example.com", active: true, externalId: "00u1okta", name: { givenName: "Ada" } });
      expect(JSON.stringify(created.body)).not.toContain("never-stored");
      // A member now, with the provider's default role.
      const owner = h.client(tenant.ownerKey);
      expect((await owner.identity.getMember({ userId: adaId })).member?.role).toBe(Role.VIEWER);

      // The same userName again: 409 uniqueness.
      const again = await scim("POST", "/Users", { schemas: [USER_SCHEMA], userName: "ADA@example.com", active: true });
      expect(again.status).toBe(409);
      expect(again.body).toMatchObject({ schemas: [ERROR_SCHEMA], status: "409", scimType: "uniqueness" });

      // Lookups by filter, any attribute-name case.
      const found = await scim("GET", `/Users?filter=${encodeURIComponent('USERNAME eq "Ada@Example.com"')}`);
      expect(found.body).toMatchObject({ totalResults: 1, Resources: [{ id: adaId }] });
      const byExternal = await scim("GET", `/Users?filter=${encodeURIComponent('externalId eq "00u1okta" and active eq true')}`);
      expect(byExternal.body).toMatchObject({ totalResults: 1 });
      const bad = await scim("GET", `/Users?filter=${encodeURIComponent('userName eq "x" and')}`);
      expect(bad.body).toMatchObject({ status: "400", scimType: "invalidFilter" });

      // Ada signs in (SSO) and has a key of her own.
      const session = await signIn("ada");
      const key = await owner.auth.createApiKey({ name: "ada laptop", role: Role.VIEWER, ownerUserId: adaId });
      expect(await roleOf(session)).toBe(Role.VIEWER);
      expect((await h.client(key.plaintextKey).auth.whoAmI({})).principal?.userId).toBe(adaId);

      // PUT: Okta sends the whole user.
      const put = await scim("PUT", `/Users/${adaId}`, {
        schemas: [USER_SCHEMA],
        id: adaId,
        userName: "ada@example.com",
        name: { givenName: "Augusta Ada", familyName: "King" },
        emails: [{ primary: true, value: "ada@example.com", type: "work" }],
        active: true,
        externalId: "00u1okta",
      });
      expect(put.status).toBe(200);
      expect(put.body).toMatchObject({ name: { givenName: "Augusta Ada", familyName: "King" } });
      expect(put.body.displayName).toBeUndefined();

      // Push group "Engineering" with Ada: her role follows the mapping (editor), sessions too.
      const group = await scim("POST", "/Groups", {
        schemas: [GROUP_SCHEMA],
        displayName: "Engineering",
        members: [{ value: adaId, display: "ada" }],
      });
      expect(group.status).toBe(201);
      const groupId = group.body.id as string;
      expect(await roleOf(session)).toBe(Role.EDITOR);
      expect((await scim("GET", `/Users/${adaId}`)).body.groups).toEqual([
        { value: groupId, display: "Engineering", $ref: `${h.url}/scim/v2/Groups/${groupId}` },
      ]);
      // Okta renames with a path-less replace carrying the id; removes members by a filter path.
      const renamed = await patch(`/Groups/${groupId}`, { op: "replace", value: { id: groupId, displayName: "Nexus Admins" } });
      expect(renamed.body).toMatchObject({ displayName: "Nexus Admins", members: [{ value: adaId }] });
      expect(await roleOf(session)).toBe(Role.ADMIN);
      await patch(`/Groups/${groupId}`, { op: "remove", path: `members[value eq "${adaId}"]` });
      expect(await roleOf(session)).toBe(Role.VIEWER);
      await patch(`/Groups/${groupId}`, { op: "add", path: "members", value: [{ value: adaId, display: "ada" }] });
      expect(await roleOf(session)).toBe(Role.ADMIN);

      // Deactivation: Okta's path-less PATCH. Session and owned key end at once (answers were cached for 10 min).
      const deactivated = await patch(`/Users/${adaId}`, { op: "replace", value: { active: false } });
      expect(deactivated.status).toBe(200);
      expect(deactivated.body.active).toBe(false);
      expect(await failure(() => h.client(session).auth.whoAmI({}))).toMatchObject({ code: "Unauthenticated", reason: "AUTH_REVOKED_KEY" });
      expect(await failure(() => h.client(key.plaintextKey).auth.whoAmI({}))).toMatchObject({
        code: "Unauthenticated",
        reason: "AUTH_REVOKED_KEY",
      });
      expect(await failure(() => owner.identity.getMember({ userId: adaId }))).toMatchObject({ code: "NotFound" });
      const ended = (await h.events("SessionEnded")).map((e) => e.payload as { userId?: string; reason?: string });
      expect(ended).toContainEqual(expect.objectContaining({ userId: adaId, reason: "deprovisioned by SCIM" }));
      const revokedKeys = (await h.events("ApiKeyRevoked")).map((e) => e.payload as { keyId?: string });
      expect(revokedKeys).toContainEqual(expect.objectContaining({ keyId: key.apiKey?.id }));
      // Still provisioned (inactive): Okta finds her by filter.
      const inactive = await scim("GET", `/Users?filter=${encodeURIComponent('userName eq "ada@example.com"')}`);
      expect(inactive.body).toMatchObject({ totalResults: 1, Resources: [{ id: adaId, active: false }] });

      // Reactivation: a member again, with the role her groups map to.
      await patch(`/Users/${adaId}`, { op: "replace", value: { active: true } });
      expect((await owner.identity.getMember({ userId: adaId })).member?.role).toBe(Role.ADMIN);
    });

    it("pages lists with startIndex, count and totalResults", async () => {
      const t = await h.tenant(Plan.ENTERPRISE);
      const pageToken = (await h.client(t.ownerKey).identity.rotateScimToken({})).token;
      for (let i = 0; i < 5; i++) {
        const r = await scim("POST", "/Users", { schemas: [USER_SCHEMA], userName: `pager${i}@example.com`, active: true }, {}, pageToken);
        expect(r.status).toBe(201);
      }
      const first = await scim("GET", "/Users?startIndex=1&count=2", undefined, {}, pageToken);
      expect(first.body).toMatchObject({ totalResults: 5, startIndex: 1, itemsPerPage: 2 });
      const last = await scim("GET", "/Users?startIndex=5&count=2", undefined, {}, pageToken);
      expect(last.body).toMatchObject({ totalResults: 5, startIndex: 5, itemsPerPage: 1 });
      const names = [first, await scim("GET", "/Users?startIndex=3&count=2", undefined, {}, pageToken), last].flatMap((p) =>
        (p.body.Resources as { userName: string }[]).map((u) => u.userName),
      );
      expect(new Set(names).size).toBe(5);
      const filtered = await scim(
        "GET",
        `/Users?filter=${encodeURIComponent('userName sw "pager"')}&startIndex=2&count=2`,
        undefined,
        {},
        pageToken,
      );
      expect(filtered.body).toMatchObject({ totalResults: 5, startIndex: 2, itemsPerPage: 2 });
      const countOnly = await scim("GET", "/Users?count=0", undefined, {}, pageToken);
      expect(countOnly.body).toMatchObject({ totalResults: 5, itemsPerPage: 0 });
      // Another tenant's directory sees none of them.
      expect((await scim("GET", "/Users?count=0")).body.totalResults).not.toBe(5);
    });
  });

  describe("Entra ID", () => {
    it("provisions with its shapes, maps groups by external id, deprovisions and deletes", async () => {
      // Entra ID's connection test looks up a random userName.
      const probe = await scim("GET", `/Users?filter=${encodeURIComponent('userName eq "8c5f41e4-0d79-4a8e-9cc6-2f6a2b8e2b11"')}`);
      expect(probe.body).toMatchObject({ totalResults: 0 });

      const created = await scim("POST", "/Users", {
        schemas: [USER_SCHEMA, ENTERPRISE],
        externalId: "grace",
        userName: "Grace@example.com",
        active: true,
        displayName: "Grace Hopper",
        emails: [{ primary: true, type: "work", value: "grace@example.com" }],
        meta: { resourceType: "User" },
        name: { formatted: "Grace Hopper", familyName: "Hopper", givenName: "Grace" },
        roles: [],
        [ENTERPRISE]: { department: "Navy" },
      });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      const graceId = created.body.id as string;
      expect(created.body.schemas).toEqual([USER_SCHEMA, ENTERPRISE]);

      const updated = await patch(
        `/Users/${graceId}`,
        { op: "Replace", path: "displayName", value: "Rear Admiral Hopper" },
        { op: "Add", path: 'emails[type eq "work"].value', value: "grace@example.com" },
        { op: "Replace", path: "name.givenName", value: "Grace Brewster" },
        { op: "Replace", path: `${ENTERPRISE}:department`, value: "Computing" },
      );
      expect(updated.status, JSON.stringify(updated.body)).toBe(200);
      expect(updated.body).toMatchObject({
        displayName: "Rear Admiral Hopper",
        name: { givenName: "Grace Brewster", familyName: "Hopper" },
        emails: [{ type: "work", value: "grace@example.com", primary: true }],
        [ENTERPRISE]: { department: "Computing" },
      });

      // ETags: a stale If-Match is refused, the current one passes; If-None-Match answers 304.
      const etag = updated.headers.get("etag")!;
      expect(
        (
          await scim(
            "PATCH",
            `/Users/${graceId}`,
            { schemas: [PATCH_SCHEMA], Operations: [{ op: "Replace", path: "title", value: "x" }] },
            { "if-match": 'W/"1"' },
          )
        ).status,
      ).toBe(412);
      expect((await scim("GET", `/Users/${graceId}`, undefined, { "if-none-match": etag })).status).toBe(304);

      const session = await signIn("grace");
      const owner = h.client(tenant.ownerKey);
      const key = await owner.auth.createApiKey({ name: "grace ci", role: Role.VIEWER, ownerUserId: graceId });

      // Group with an Entra object id as externalId: the mapping matches it.
      const group = await scim("POST", "/Groups", {
        schemas: [GROUP_SCHEMA],
        externalId: "entra-object-id-eng",
        displayName: "Eng (Entra)",
        members: [],
      });
      const groupId = group.body.id as string;
      const lookup = await scim("GET", `/Groups?filter=${encodeURIComponent('displayName eq "Eng (Entra)"')}&excludedAttributes=members`);
      expect(lookup.body).toMatchObject({ totalResults: 1, Resources: [{ id: groupId }] });
      expect((lookup.body.Resources as Record<string, unknown>[])[0]).not.toHaveProperty("members");
      await patch(`/Groups/${groupId}`, { op: "Add", path: "members", value: [{ value: graceId }] });
      expect(await roleOf(session)).toBe(Role.EDITOR);
      const members = await scim("GET", `/Groups?filter=${encodeURIComponent(`id eq "${groupId}" and members[value eq "${graceId}"]`)}`);
      expect(members.body).toMatchObject({ totalResults: 1 });
      await patch(`/Groups/${groupId}`, { op: "Remove", path: "members", value: [{ value: graceId }] });
      expect(await roleOf(session)).toBe(Role.VIEWER);
      expect(await patch(`/Groups/${groupId}`, { op: "Add", path: "members", value: [{ value: "no-such-user" }] })).toMatchObject({
        status: 400,
        body: { scimType: "invalidValue" },
      });

      // Deprovision: Entra ID sends "False" as a string.
      const off = await patch(`/Users/${graceId}`, { op: "Replace", path: "active", value: "False" });
      expect(off.body.active).toBe(false);
      expect(await failure(() => h.client(session).auth.whoAmI({}))).toMatchObject({ reason: "AUTH_REVOKED_KEY" });
      expect(await failure(() => h.client(key.plaintextKey).auth.whoAmI({}))).toMatchObject({ reason: "AUTH_REVOKED_KEY" });

      // Delete: 204, then 404; the group no longer lists her.
      await patch(`/Users/${graceId}`, { op: "Replace", path: "active", value: "True" });
      await patch(`/Groups/${groupId}`, { op: "Add", path: "members", value: [{ value: graceId }] });
      const del = await fetch(`${h.url}/scim/v2/Users/${graceId}`, { method: "DELETE", headers: { authorization: `Bearer ${token}` } });
      expect(del.status).toBe(204);
      expect((await scim("GET", `/Users/${graceId}`)).body).toMatchObject({ schemas: [ERROR_SCHEMA], status: "404" });
      expect((await scim("GET", `/Groups/${groupId}`)).body.members).toEqual([]);
      expect(await failure(() => owner.identity.getMember({ userId: graceId }))).toMatchObject({ code: "NotFound" });
      // Deleting the group: 204.
      expect(
        (await fetch(`${h.url}/scim/v2/Groups/${groupId}`, { method: "DELETE", headers: { authorization: `Bearer ${token}` } })).status,
      ).toBe(204);
    });

    it("refuses a malformed PATCH and an unknown resource with SCIM error bodies", async () => {
      expect(
        await scim("PATCH", "/Users/nope", { schemas: [PATCH_SCHEMA], Operations: [{ op: "Replace", path: "active", value: false }] }),
      ).toMatchObject({
        status: 404,
        body: { schemas: [ERROR_SCHEMA], status: "404" },
      });
      const created = await scim("POST", "/Users", { schemas: [USER_SCHEMA], userName: "malformed@example.com" });
      const id = created.body.id as string;
      expect(await scim("PATCH", `/Users/${id}`, { schemas: [PATCH_SCHEMA], Operations: [{ op: "move", path: "x" }] })).toMatchObject({
        status: 400,
        body: { scimType: "invalidSyntax" },
      });
      expect(
        await scim("PATCH", `/Users/${id}`, { schemas: [PATCH_SCHEMA], Operations: [{ op: "replace", path: "active", value: "maybe" }] }),
      ).toMatchObject({
        status: 400,
        body: { scimType: "invalidValue" },
      });
      expect(await scim("POST", "/Users", { schemas: [USER_SCHEMA], userName: "not-an-email" })).toMatchObject({
        status: 400,
        body: { scimType: "invalidValue" },
      });
      const raw = await fetch(`${h.url}/scim/v2/Users`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}` },
        body: "{not json",
      });
      expect(raw.status).toBe(400);
    });
  });

  it("stops a tenant's directory when its plan loses feature.identity.scim", async () => {
    const t = await h.tenant(Plan.ENTERPRISE);
    const own = (await h.client(t.ownerKey).identity.rotateScimToken({})).token;
    expect((await scim("GET", "/Users", undefined, {}, own)).status).toBe(200);
    await h.client(h.platformKey).auth.setPlan({ tenantId: t.tenant.id, plan: Plan.PRO });
    const refused = await scim("GET", "/Users", undefined, {}, own);
    expect(refused).toMatchObject({ status: 403, body: { schemas: [ERROR_SCHEMA], status: "403" } });
  });
});
