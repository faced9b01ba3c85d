/**
 * People and bearer tokens end to end, on a real PostgreSQL database and a REAL OpenID provider:
 * the certified `oidc-provider` package (an OpenID Certified authorization server) runs on this
 * machine, publishes its discovery document and signing keys, and issues JWT access tokens;
 * nothing about it is simulated. Covered: users and memberships (a role per tenant), keys owned
 * by a user that die with the membership, platform operators, the tenant's identity provider
 * (discovery, sealed client secret, feature.identity.sso), and access tokens accepted beside API
 * keys on gRPC, Connect and gRPC-Web — with key rotation, expiry, wrong audience, wrong issuer,
 * forged signatures and unknown users refused with their reasons.
 */
import { randomBytes } from "node:crypto";
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-node";
import { generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Role } from "../gen/nexus/auth/v1/api_key_pb.js";
import { AuthService } from "../gen/nexus/auth/v1/auth_service_pb.js";
import { Plan } from "../gen/nexus/auth/v1/tenant_pb.js";
import { createRemoteAuthenticator } from "../services/kernel/authz/remote-authenticator.js";
import { type AuthHarness, failure, startAuthHarness } from "./support/auth-harness.js";
import { NEXUS_AUDIENCE, startOpenIdProvider, type TestOpenIdProvider } from "./support/oidc-provider.js";
import { describeWithPostgres } from "./support/services.js";

/** Ports from this suite's range (15600-15699). */
const PROVIDER_PORT = 15611;
const OTHER_PROVIDER_PORT = 15612;

const people = [
  { clientId: "alice-cli", email: "Alice@Example.com", groups: ["engineering"] },
  { clientId: "bob-cli", email: "bob@example.com", groups: ["sales", "emea"] },
  { clientId: "mallory-cli", email: "mallory@example.com", groups: [] },
];

describeWithPostgres("identity: people, memberships and bearer tokens", () => {
  let h: AuthHarness;
  let idp: TestOpenIdProvider;
  let other: TestOpenIdProvider;

  beforeAll(async () => {
    h = await startAuthHarness({
      services: ["auth"],
      env: {
        NEXUS_OIDC_JWKS_COOLDOWN_MS: "0",
        NEXUS_AUTH_CACHE_TTL_MS: "600000",
        NEXUS_MASTER_KEYS: `1:${randomBytes(32).toString("base64")}`,
      },
    });
    idp = await startOpenIdProvider(PROVIDER_PORT, people);
    other = await startOpenIdProvider(OTHER_PROVIDER_PORT, people);
  });
  afterAll(async () => {
    await idp?.close();
    await other?.close();
    await h?.close();
  });

  describe("users and memberships", () => {
    it("adds a person to two tenants with a role in each; the user is one, keyed by e-mail case-insensitively", async () => {
      const a = await h.tenant(Plan.PRO);
      const b = await h.tenant(Plan.PRO);
      const first = await h.client(a.ownerKey).identity.addMember({ email: "Carol@Example.com", displayName: "Carol", role: Role.EDITOR });
      expect(first.userCreated).toBe(true);
      expect(first.member).toMatchObject({ email: "carol@example.com", displayName: "Carol", role: Role.EDITOR, tenantId: a.tenant.id });
      const again = await h.client(a.ownerKey).identity.addMember({ email: "carol@example.com", role: Role.EDITOR });
      expect(again.userCreated).toBe(false);
      expect(again.member?.userId).toBe(first.member?.userId);
      expect(await failure(() => h.client(a.ownerKey).identity.addMember({ email: "carol@example.com", role: Role.VIEWER }))).toMatchObject(
        {
          code: "AlreadyExists",
        },
      );
      const inB = await h.client(b.ownerKey).identity.addMember({ email: "CAROL@example.com", role: Role.VIEWER });
      expect(inB).toMatchObject({ userCreated: false, member: { userId: first.member?.userId, role: Role.VIEWER } });
      // Each tenant sees its own membership; the other tenant's view is NOT_FOUND for strangers.
      const userId = first.member!.userId;
      expect((await h.client(a.ownerKey).identity.getMember({ userId })).member?.role).toBe(Role.EDITOR);
      expect((await h.client(b.ownerKey).identity.getMember({ userId })).member?.role).toBe(Role.VIEWER);
      const c = await h.tenant(Plan.PRO);
      expect(await failure(() => h.client(c.ownerKey).identity.getMember({ userId }))).toMatchObject({ code: "NotFound" });
      expect(await failure(() => h.client(c.ownerKey).identity.getMember({ tenantId: a.tenant.id, userId }))).toMatchObject({
        code: "PermissionDenied",
        reason: "TENANT_MISMATCH",
      });
      const members = await h.client(a.ownerKey).identity.listMembers({});
      expect(members.members.map((m) => m.email)).toEqual(["carol@example.com"]);
    });

    it("admins grant at most their own role, and only owners change an owner", async () => {
      const t = await h.tenant(Plan.PRO);
      const admin = await h.key(t.tenant.id, Role.ADMIN, "admin");
      const asAdmin = h.client(admin.plaintext);
      expect(await failure(() => asAdmin.identity.addMember({ email: "boss@example.com", role: Role.OWNER }))).toMatchObject({
        code: "PermissionDenied",
        reason: "RBAC_FORBIDDEN",
      });
      const boss = await h.client(t.ownerKey).identity.addMember({ email: "boss@example.com", role: Role.OWNER });
      expect(await failure(() => asAdmin.identity.setMemberRole({ userId: boss.member!.userId, role: Role.VIEWER }))).toMatchObject({
        code: "PermissionDenied",
        reason: "RBAC_FORBIDDEN",
      });
      expect(await failure(() => asAdmin.identity.removeMember({ userId: boss.member!.userId }))).toMatchObject({
        code: "PermissionDenied",
      });
      const viewer = await h.key(t.tenant.id, Role.VIEWER, "viewer");
      expect(await failure(() => h.client(viewer.plaintext).identity.listMembers({}))).toMatchObject({ reason: "RBAC_FORBIDDEN" });
      const changed = await h.client(t.ownerKey).identity.setMemberRole({ userId: boss.member!.userId, role: Role.ADMIN });
      expect(changed.member?.role).toBe(Role.ADMIN);
    });

    it("a key owned by a user carries the user, may not exceed the member's role, and dies with the membership", async () => {
      const t = await h.tenant(Plan.PRO);
      const owner = h.client(t.ownerKey);
      const dave = (await owner.identity.addMember({ email: "dave@example.com", role: Role.EDITOR })).member!;
      expect(
        await failure(() => owner.auth.createApiKey({ name: "too strong", role: Role.ADMIN, ownerUserId: dave.userId })),
      ).toMatchObject({ code: "FailedPrecondition" });
      const stranger = (
        await h.client((await h.tenant(Plan.PRO)).ownerKey).identity.addMember({ email: "erin@example.com", role: Role.VIEWER })
      ).member!;
      expect(
        await failure(() => owner.auth.createApiKey({ name: "not a member", role: Role.VIEWER, ownerUserId: stranger.userId })),
      ).toMatchObject({
        code: "NotFound",
      });
      const created = await owner.auth.createApiKey({ name: "dave laptop", role: Role.EDITOR, ownerUserId: dave.userId });
      expect(created.apiKey?.ownerUserId).toBe(dave.userId);
      const machine = await owner.auth.createApiKey({ name: "ci", role: Role.EDITOR });
      const asDave = h.client(created.plaintextKey);
      // A first call caches the answer: removal must end it anyway.
      expect((await asDave.auth.whoAmI({})).principal?.userId).toBe(dave.userId);
      const removed = await owner.identity.removeMember({ userId: dave.userId });
      expect(removed.revokedKeyIds).toEqual([created.apiKey!.id]);
      expect(await failure(() => asDave.auth.whoAmI({}))).toMatchObject({ code: "Unauthenticated", reason: "AUTH_REVOKED_KEY" });
      // The machine key of the tenant is untouched.
      expect((await h.client(machine.plaintextKey).auth.whoAmI({})).principal?.userId).toBe("");
      const revoked = (await h.events("ApiKeyRevoked")).find((e) => (e.payload as { keyId?: string }).keyId === created.apiKey!.id);
      expect(revoked?.payload).toMatchObject({ reason: "membership ended" });
      expect((await h.events("MembershipRevoked")).map((e) => (e.payload as { userId?: string }).userId)).toContain(dave.userId);
      expect(await failure(() => owner.identity.getMember({ userId: dave.userId }))).toMatchObject({ code: "NotFound" });
    });

    it("platform operators are people too: only a platform principal names them", async () => {
      const t = await h.tenant(Plan.PRO);
      const user = (await h.client(t.ownerKey).identity.addMember({ email: "ops-person@example.com", role: Role.VIEWER })).member!;
      expect(
        await failure(() => h.client(t.ownerKey).identity.setPlatformOperator({ userId: user.userId, platformOperator: true })),
      ).toMatchObject({
        reason: "RBAC_FORBIDDEN",
      });
      const set = await h.client(h.platformKey).identity.setPlatformOperator({ userId: user.userId, platformOperator: true });
      expect(set.platformOperator).toBe(true);
      expect((await h.client(t.ownerKey).identity.getMember({ userId: user.userId })).member?.platformOperator).toBe(true);
    });
  });

  describe("bearer access tokens of a real OpenID provider", () => {
    let tenant: Awaited<ReturnType<AuthHarness["tenant"]>>;

    beforeAll(async () => {
      tenant = await h.tenant(Plan.PRO);
      const owner = h.client(tenant.ownerKey);
      await owner.identity.addMember({ email: "alice@example.com", role: Role.EDITOR });
      await owner.identity.addMember({ email: "bob@example.com", role: Role.VIEWER });
      const saved = await owner.identity.setIdentityProvider({
        issuer: idp.issuer,
        audience: NEXUS_AUDIENCE,
        clientId: "nexus-console",
        clientSecret: "console-secret-value",
        allowedRedirectHosts: ["console.example.com"],
        enabled: true,
      });
      expect(saved.identityProvider).toMatchObject({
        issuer: idp.issuer,
        clientSecretSet: true,
        jwksUri: `${idp.issuer}/jwks`,
        userClaim: "email",
        groupsClaim: "groups",
        clockSkewSeconds: 60,
        scopes: ["openid", "profile", "email"],
      });
      // The secret is sealed at rest, never stored or returned in clear.
      const { rows } = await h.nexus.db.query<{ s: string }>(
        "SELECT client_secret_sealed AS s FROM auth.identity_providers WHERE tenant_id = $1",
        [tenant.tenant.id],
      );
      expect(rows[0]?.s).toMatch(/^nxk1\./);
      const read = await owner.identity.getIdentityProvider({});
      expect(JSON.stringify(read, (_k, v) => (typeof v === "bigint" ? String(v) : v))).not.toContain("console-secret-value");
    });

    it("maps a token to the member on gRPC, Connect and gRPC-Web, with the membership's role and the token's groups", async () => {
      const token = await idp.token("alice-cli");
      const viaGrpc = await h.client(token).auth.whoAmI({});
      expect(viaGrpc.principal).toMatchObject({
        tenantId: tenant.tenant.id,
        role: Role.EDITOR,
        name: "alice@example.com",
        groups: ["engineering"],
      });
      expect(viaGrpc.principal?.userId).not.toBe("");
      const { createNexusClient } = await import("../services/client/create-nexus-client.js");
      const viaConnect = await createNexusClient({ baseUrl: h.url, protocol: "connect", apiKey: token }).auth.whoAmI({});
      expect(viaConnect.principal?.userId).toBe(viaGrpc.principal?.userId);
      const grpcWeb = createClient(AuthService, createGrpcWebTransport({ baseUrl: h.url, httpVersion: "1.1" }));
      const viaWeb = await grpcWeb.whoAmI({}, { headers: { authorization: `Bearer ${token}` } });
      expect(viaWeb.principal?.role).toBe(Role.EDITOR);
      // The role is the membership's: a viewer's token cannot do an editor's work.
      const bob = h.client(await idp.token("bob-cli"));
      expect((await bob.auth.whoAmI({})).principal?.role).toBe(Role.VIEWER);
    });

    it("processes that do not host auth resolve tokens through AuthService.Authenticate (access_token), with the person and groups", async () => {
      const remote = createRemoteAuthenticator({ baseUrl: h.url });
      const token = await idp.token("alice-cli");
      const result = await remote.authenticate(token, { procedure: "/nexus.retrieval.v1.RetrievalService/Search" });
      expect(result).toMatchObject({ kind: "authenticated", principal: { kind: "tenant", role: "editor", groups: ["engineering"] } });
      expect(result.kind === "authenticated" && result.principal.kind === "tenant" && result.principal.userId).toBeTruthy();
      const refused = await remote.authenticate(await idp.token("alice-cli", "https://other-api.example"), { procedure: "/x.Y/Z" });
      expect(refused).toMatchObject({ kind: "refused", reason: "AUTH_TOKEN_AUDIENCE" });
    });

    it("refuses expired, wrong-audience, wrong-issuer, forged and unknown-user tokens with their reasons", async () => {
      const call = (token: string) => failure(() => h.client(token).auth.whoAmI({}));
      expect(await call(await idp.token("alice-cli", "https://other-api.example"))).toMatchObject({
        code: "Unauthenticated",
        reason: "AUTH_TOKEN_AUDIENCE",
      });
      expect(await call(await other.token("alice-cli"))).toMatchObject({ code: "Unauthenticated", reason: "AUTH_TOKEN_ISSUER" });
      expect(await call(await idp.token("mallory-cli"))).toMatchObject({ code: "Unauthenticated", reason: "AUTH_UNKNOWN_USER" });
      // Signed by a key the issuer never published, with the right issuer and audience.
      const { privateKey } = await generateKeyPair("RS256");
      const forged = await new SignJWT({ email: "alice@example.com" })
        .setProtectedHeader({ alg: "RS256", kid: "k1" })
        .setIssuer(idp.issuer)
        .setAudience(NEXUS_AUDIENCE)
        .setIssuedAt()
        .setExpirationTime("5m")
        .sign(privateKey);
      expect(await call(forged)).toMatchObject({ code: "Unauthenticated", reason: "AUTH_TOKEN_INVALID" });
      // Expired: the provider's tokens live 300 s, the tolerated skew is 60 s.
      const token = await idp.token("alice-cli");
      h.clock.advance(400_000);
      try {
        expect(await call(token)).toMatchObject({ code: "Unauthenticated", reason: "AUTH_TOKEN_EXPIRED" });
      } finally {
        h.clock.advance(-400_000);
      }
      const denied = (await h.events("AccessDenied")).map((e) => (e.payload as { reason?: string }).reason);
      for (const reason of ["AUTH_TOKEN_AUDIENCE", "AUTH_TOKEN_ISSUER", "AUTH_UNKNOWN_USER", "AUTH_TOKEN_INVALID", "AUTH_TOKEN_EXPIRED"]) {
        expect(denied).toContain(reason);
      }
    });

    it("follows the provider's key rotation without a restart", async () => {
      expect((await h.client(await idp.token("alice-cli")).auth.whoAmI({})).principal?.role).toBe(Role.EDITOR);
      await idp.rotateKeys(true);
      const afterRotation = await idp.token("alice-cli");
      expect(JSON.parse(Buffer.from(afterRotation.split(".")[0]!, "base64url").toString()).kid).toBe(idp.publishedKids()[0]);
      expect((await h.client(afterRotation).auth.whoAmI({})).principal?.role).toBe(Role.EDITOR);
      // The old key is withdrawn: tokens it signed stop verifying once the keys are fetched again.
      const oldKid = idp.publishedKids()[1]!;
      await idp.rotateKeys(false);
      expect(idp.publishedKids()).not.toContain(oldKid);
      expect((await h.client(await idp.token("alice-cli")).auth.whoAmI({})).principal?.role).toBe(Role.EDITOR);
    });

    it("a role change or removal reaches cached token answers at once, and the plan flag controls tokens", async () => {
      const owner = h.client(tenant.ownerKey);
      const bobToken = await idp.token("bob-cli");
      const bob = h.client(bobToken);
      const bobId = (await bob.auth.whoAmI({})).principal!.userId;
      await owner.identity.setMemberRole({ userId: bobId, role: Role.ADMIN });
      expect((await bob.auth.whoAmI({})).principal?.role).toBe(Role.ADMIN);
      await owner.identity.removeMember({ userId: bobId });
      expect(await failure(() => bob.auth.whoAmI({}))).toMatchObject({ code: "Unauthenticated", reason: "AUTH_UNKNOWN_USER" });
      // Without feature.identity.sso the tenant's tokens are refused and the configuration is closed.
      const alice = h.client(await idp.token("alice-cli"));
      await h.client(h.platformKey).auth.setEntitlementOverrides({
        tenantId: tenant.tenant.id,
        overrides: { features: [{ featureKey: "feature.identity.sso", enabled: false }] },
      });
      try {
        expect(await failure(() => alice.auth.whoAmI({}))).toMatchObject({ code: "Unauthenticated", reason: "AUTH_TOKEN_ISSUER" });
        expect(await failure(() => owner.identity.getIdentityProvider({}))).toMatchObject({ reason: "FEATURE_NOT_ENABLED" });
      } finally {
        await h.client(h.platformKey).auth.setEntitlementOverrides({ tenantId: tenant.tenant.id, overrides: { features: [] } });
      }
      expect((await alice.auth.whoAmI({})).principal?.role).toBe(Role.EDITOR);
    });

    it("refuses a provider whose discovery cannot be read, and http issuers off this machine", async () => {
      const owner = h.client(tenant.ownerKey);
      expect(
        await failure(() =>
          owner.identity.setIdentityProvider({ issuer: "http://127.0.0.1:15699", audience: "x", clientId: "c", enabled: true }),
        ),
      ).toMatchObject({ code: "FailedPrecondition", reason: "IDP_DISCOVERY_FAILED" });
      expect(
        await failure(() =>
          owner.identity.setIdentityProvider({ issuer: "http://idp.example.com", audience: "x", clientId: "c", enabled: true }),
        ),
      ).toMatchObject({ code: "InvalidArgument" });
      const free = await h.tenant(Plan.FREE);
      expect(
        await failure(() =>
          h.client(free.ownerKey).identity.setIdentityProvider({ issuer: idp.issuer, audience: "x", clientId: "c", enabled: true }),
        ),
      ).toMatchObject({ code: "PermissionDenied", reason: "FEATURE_NOT_ENABLED" });
    });
  });
});
