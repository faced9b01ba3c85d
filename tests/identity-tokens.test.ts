/**
 * Bearer tokens of the installation's own OpenID issuer (NEXUS_PLATFORM_OIDC_ISSUER) for
 * platform operators, signing-key rotation and refresh tokens seen from Nexus, against a REAL
 * OpenID provider:
 * the certified `oidc-provider` package (an OpenID Certified authorization server) runs on this
 * machine, publishes its discovery document and keys and issues RFC 9068 JWT access tokens.
 */
import { createHash, randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PrincipalKind, Role } from "../gen/nexus/auth/v1/api_key_pb.js";
import { Plan } from "../gen/nexus/auth/v1/tenant_pb.js";
import { type AuthHarness, failure, startAuthHarness } from "./support/auth-harness.js";
import { browserSignIn, NEXUS_AUDIENCE, startOpenIdProvider, type TestOpenIdProvider } from "./support/oidc-provider.js";
import { describeWithPostgres } from "./support/services.js";

/** Ports from this helper's range (19500-19599). */
const PROVIDER_PORT = 19531;
const PLATFORM_AUDIENCE = "https://platform.nexus.test";
/** Where the provider sends the code back to the client application this test plays (never fetched). */
const APP_CALLBACK = "http://127.0.0.1:19532/callback";
const WEB_SECRET = "web-secret-value";

const people = [
  { clientId: "ops-cli", email: "Ops@Example.com", groups: [] as string[] },
  { clientId: "dev-cli", email: "dev@example.com", groups: [] as string[] },
];

describeWithPostgres("identity: the platform issuer, signing-key rotation and refresh tokens", () => {
  let h: AuthHarness;
  let idp: TestOpenIdProvider;

  beforeAll(async () => {
    idp = await startOpenIdProvider(PROVIDER_PORT, people, { clientId: "nexus-web", clientSecret: WEB_SECRET, redirectUri: APP_CALLBACK });
    h = await startAuthHarness({
      services: ["auth"],
      env: {
        NEXUS_PLATFORM_OIDC_ISSUER: idp.issuer,
        NEXUS_PLATFORM_OIDC_AUDIENCE: PLATFORM_AUDIENCE,
        NEXUS_OIDC_JWKS_COOLDOWN_MS: "0",
        NEXUS_AUTH_CACHE_TTL_MS: "600000",
        NEXUS_MASTER_KEYS: `1:${randomBytes(32).toString("base64")}`,
      },
    });
  });
  afterAll(async () => {
    await h?.close();
    await idp?.close();
  });

  describe("platform operators' tokens", () => {
    it("authenticate operators only, as platform principals; withdrawing the flag ends cached answers at once", async () => {
      const ops = h.client(h.platformKey);
      const token = await idp.token("ops-cli", PLATFORM_AUDIENCE);
      // Not a user yet.
      expect(await failure(() => h.client(token).auth.whoAmI({}))).toMatchObject({ code: "Unauthenticated", reason: "AUTH_UNKNOWN_USER" });
      // A person (a member of some tenant) but not an operator.
      const t = await h.tenant(Plan.PRO);
      const { member } = await h.client(t.ownerKey).identity.addMember({ email: "ops@example.com", role: Role.VIEWER });
      const fresh = await idp.token("ops-cli", PLATFORM_AUDIENCE);
      expect(await failure(() => h.client(fresh).auth.whoAmI({}))).toMatchObject({ reason: "AUTH_UNKNOWN_USER" });
      // Named operator: the installation's token now acts as a platform principal.
      await ops.identity.setPlatformOperator({ userId: member!.userId, platformOperator: true });
      const operator = h.client(await idp.token("ops-cli", PLATFORM_AUDIENCE));
      const me = await operator.auth.whoAmI({});
      expect(me.principal).toMatchObject({ kind: PrincipalKind.PLATFORM, keyId: `user:${member!.userId}`, name: "ops@example.com" });
      expect((await operator.auth.listTenants({})).tenants.length).toBeGreaterThan(0);
      // Withdrawn: the cached answer (10 min TTL) ends now.
      await ops.identity.setPlatformOperator({ userId: member!.userId, platformOperator: false });
      expect(await failure(() => operator.auth.whoAmI({}))).toMatchObject({ code: "Unauthenticated", reason: "AUTH_UNKNOWN_USER" });
    });

    it("refuses the issuer's tokens for another audience, and keeps tenant tokens of the same issuer on the tenant path", async () => {
      const wrong = await idp.token("ops-cli", "https://elsewhere.test");
      expect(await failure(() => h.client(wrong).auth.whoAmI({}))).toMatchObject({ code: "Unauthenticated", reason: "AUTH_TOKEN_ISSUER" });
      // The same issuer configured as a tenant's provider: NEXUS_AUDIENCE tokens are tenant tokens.
      const t = await h.tenant(Plan.PRO);
      const owner = h.client(t.ownerKey);
      await owner.identity.addMember({ email: "dev@example.com", role: Role.EDITOR });
      await owner.identity.setIdentityProvider({ issuer: idp.issuer, audience: NEXUS_AUDIENCE, clientId: "nexus", enabled: true });
      const me = await h.client(await idp.token("dev-cli")).auth.whoAmI({});
      expect(me.principal).toMatchObject({ kind: PrincipalKind.TENANT, tenantId: t.tenant.id, role: Role.EDITOR });
      // dev is no operator: the platform audience does not make them one.
      const devPlatform = await idp.token("dev-cli", PLATFORM_AUDIENCE);
      expect(await failure(() => h.client(devPlatform).auth.whoAmI({}))).toMatchObject({
        reason: "AUTH_UNKNOWN_USER",
      });
    });
  });

  describe("signing-key rotation", () => {
    it("accepts a token of a new key after fetching the keys again, and refuses one of a withdrawn key", async () => {
      const t = await h.tenant(Plan.PRO);
      const owner = h.client(t.ownerKey);
      await owner.identity.addMember({ email: "dev@example.com", role: Role.VIEWER });
      await owner.identity.setIdentityProvider({
        issuer: idp.issuer,
        audience: "https://rotation.nexus.test",
        clientId: "nexus",
        enabled: true,
      });
      const call = (token: string) => h.client(token).auth.whoAmI({});
      expect((await call(await idp.token("dev-cli", "https://rotation.nexus.test"))).principal?.tenantId).toBe(t.tenant.id);
      // Signed by the current key, not presented yet.
      const signedByOldKey = await idp.token("dev-cli", "https://rotation.nexus.test");
      const oldKid = idp.publishedKids()[0]!;
      // A graceful rotation: the new key signs, the old one is still published.
      await idp.rotateKeys(true);
      const signedByNewKey = await idp.token("dev-cli", "https://rotation.nexus.test");
      expect(JSON.parse(Buffer.from(signedByNewKey.split(".")[0]!, "base64url").toString()).kid).not.toBe(oldKid);
      expect((await call(signedByNewKey)).principal?.tenantId).toBe(t.tenant.id);
      // The old key is withdrawn: once Nexus fetched the keys again (a token of the newest key
      // makes it), a token the old key signed no longer verifies.
      await idp.rotateKeys(false);
      expect(idp.publishedKids()).not.toContain(oldKid);
      expect((await call(await idp.token("dev-cli", "https://rotation.nexus.test"))).principal?.tenantId).toBe(t.tenant.id);
      expect(await failure(() => call(signedByOldKey))).toMatchObject({ code: "Unauthenticated", reason: "AUTH_TOKEN_INVALID" });
    });
  });

  describe("refresh tokens", () => {
    /** The provider's token endpoint, as the client application calls it. */
    async function tokenRequest(params: Record<string, string>): Promise<{ access_token: string; refresh_token?: string }> {
      const res = await fetch(`${idp.issuer}/token`, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          authorization: `Basic ${Buffer.from(`nexus-web:${WEB_SECRET}`).toString("base64")}`,
        },
        body: new URLSearchParams(params).toString(),
      });
      const body = (await res.json()) as { access_token?: string; refresh_token?: string; error?: string; error_description?: string };
      if (!res.ok || !body.access_token) throw new Error(`token request failed: ${res.status} ${body.error} ${body.error_description}`);
      return { access_token: body.access_token, ...(body.refresh_token ? { refresh_token: body.refresh_token } : {}) };
    }

    it("accepts an access token the client refreshed at the provider, and refuses it once the person left the tenant", async () => {
      const audience = "https://refresh.nexus.test";
      const t = await h.tenant(Plan.PRO);
      const owner = h.client(t.ownerKey);
      const { member } = await owner.identity.addMember({ email: "dev@example.com", role: Role.VIEWER });
      await owner.identity.setIdentityProvider({ issuer: idp.issuer, audience, clientId: "nexus-web", enabled: true });

      // The person signs in to a client application (code + PKCE, offline_access for a refresh token).
      idp.signInAs("dev-cli");
      const verifier = randomBytes(32).toString("base64url");
      const authorize = new URL(`${idp.issuer}/auth`);
      authorize.search = new URLSearchParams({
        client_id: "nexus-web",
        response_type: "code",
        redirect_uri: APP_CALLBACK,
        scope: "openid email offline_access",
        prompt: "consent",
        resource: audience,
        state: randomBytes(16).toString("base64url"),
        code_challenge: createHash("sha256").update(verifier).digest("base64url"),
        code_challenge_method: "S256",
      }).toString();
      const redirected = await browserSignIn(authorize.toString(), APP_CALLBACK, true);
      expect(redirected.callbackUrl, redirected.body).toContain(APP_CALLBACK);
      const code = new URL(redirected.callbackUrl).searchParams.get("code");
      expect(code, redirected.body).toBeTruthy();
      const first = await tokenRequest({
        grant_type: "authorization_code",
        code: code!,
        redirect_uri: APP_CALLBACK,
        code_verifier: verifier,
        resource: audience,
      });
      expect(first.refresh_token).toBeTruthy();
      expect((await h.client(first.access_token).auth.whoAmI({})).principal).toMatchObject({
        tenantId: t.tenant.id,
        userId: member!.userId,
      });

      // Refreshed at the provider: a new access token, accepted on its own.
      const refreshed = await tokenRequest({ grant_type: "refresh_token", refresh_token: first.refresh_token!, resource: audience });
      expect(refreshed.access_token).not.toBe(first.access_token);
      expect((await h.client(refreshed.access_token).auth.whoAmI({})).principal).toMatchObject({
        tenantId: t.tenant.id,
        role: Role.VIEWER,
      });

      // The person leaves the tenant: refreshing still works at the provider, Nexus refuses the result.
      await owner.identity.removeMember({ userId: member!.userId });
      expect(await failure(() => h.client(refreshed.access_token).auth.whoAmI({}))).toMatchObject({ reason: "AUTH_UNKNOWN_USER" });
      const again = await tokenRequest({
        grant_type: "refresh_token",
        refresh_token: refreshed.refresh_token ?? first.refresh_token!,
        resource: audience,
      });
      expect(await failure(() => h.client(again.access_token).auth.whoAmI({}))).toMatchObject({
        code: "Unauthenticated",
        reason: "AUTH_UNKNOWN_USER",
      });
    });
  });
});
