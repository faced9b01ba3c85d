/**
 * OpenID Connect sign-in end to end against a REAL OpenID provider: the certified
 * `oidc-provider` package (an OpenID Certified authorization server) runs on this machine; a
 * scripted browser follows Nexus's redirect to it, the provider's login and consent (completed
 * for the chosen person, as if they typed their password), and the redirect back. Covered: the
 * authorization code flow with PKCE, state used once, nonce and PKCE verifier checked, sessions
 * (cookie and Bearer) with a TTL and sign-out, JIT provisioning under feature.identity.jit, and
 * the groups → role mapping applied at every sign-in.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Role } from "../gen/nexus/auth/v1/api_key_pb.js";
import { Plan } from "../gen/nexus/auth/v1/tenant_pb.js";
import { type AuthHarness, failure } from "./support/auth-harness.js";
import { browserSignIn, NEXUS_AUDIENCE, startSignInHarness, type TestOpenIdProvider, WEB_CLIENT_SECRET } from "./support/oidc-provider.js";
import { describeWithPostgres } from "./support/services.js";

const PROVIDER_PORT = 15621;
const CONSOLE = "http://console.example.com/after-sign-in";

const people = [
  { clientId: "alice", email: "alice@example.com", groups: ["engineering"] },
  { clientId: "bob", email: "bob@example.com", groups: ["sales"] },
  { clientId: "carol", email: "carol@example.com", groups: [] as string[] },
  { clientId: "dave", email: "dave@example.com", groups: ["sales"] },
];

describeWithPostgres("identity: OpenID Connect sign-in", () => {
  let h: AuthHarness;
  let idp: TestOpenIdProvider;
  let tenant: Awaited<ReturnType<AuthHarness["tenant"]>>;
  const callback = () => `${h.url}/auth/oidc/callback`;
  const login = (slug = tenant.tenant.slug, redirect = CONSOLE) =>
    `${h.url}/auth/oidc/login?tenant=${encodeURIComponent(slug)}&redirect_uri=${encodeURIComponent(redirect)}`;
  const signIn = (clientId: string) => {
    idp.signInAs(clientId);
    return browserSignIn(login(), callback());
  };

  beforeAll(async () => {
    ({ h, idp } = await startSignInHarness(PROVIDER_PORT, people));
    tenant = await h.tenant(Plan.PRO);
    const owner = h.client(tenant.ownerKey);
    await owner.identity.addMember({ email: "alice@example.com", role: Role.VIEWER });
    await owner.identity.addMember({ email: "bob@example.com", role: Role.VIEWER });
    await owner.identity.setIdentityProvider({
      issuer: idp.issuer,
      audience: NEXUS_AUDIENCE,
      clientId: "nexus-web",
      clientSecret: WEB_CLIENT_SECRET,
      scopes: ["openid", "email", "profile", "groups"],
      allowedRedirectHosts: ["console.example.com", new URL(h.url).host],
      groupRoles: { engineering: Role.EDITOR, sales: Role.VIEWER },
      enabled: true,
    });
  });
  afterAll(async () => {
    await idp?.close();
    await h?.close();
  });

  it("signs a member in with code + PKCE, maps groups to the role, and hands out a session", async () => {
    const start = await fetch(login(), { redirect: "manual" });
    expect(start.status).toBe(302);
    const authorize = new URL(start.headers.get("location")!);
    expect(authorize.origin).toBe(idp.issuer);
    expect(authorize.searchParams.get("code_challenge_method")).toBe("S256");
    for (const p of ["state", "nonce", "code_challenge"]) expect(authorize.searchParams.get(p)?.length).toBeGreaterThanOrEqual(43);
    expect(authorize.searchParams.get("redirect_uri")).toBe(callback());

    const done = await signIn("alice");
    expect(done.status, done.body).toBe(303);
    expect(done.location).toBe(CONSOLE);
    expect(done.session).toMatch(/^nxss_/);
    const me = await h.client(done.session).auth.whoAmI({});
    // alice was a viewer; her "engineering" group maps to editor at sign-in.
    expect(me.principal).toMatchObject({
      tenantId: tenant.tenant.id,
      role: Role.EDITOR,
      name: "alice@example.com",
      groups: ["engineering"],
    });
    expect(me.apiKey).toBeUndefined();
    expect((await h.events("SessionStarted")).length).toBeGreaterThanOrEqual(1);
  });

  it("uses a state once and refuses a forged one", async () => {
    idp.signInAs("alice");
    const first = await browserSignIn(login(), callback());
    expect(first.status).toBe(303);
    const replay = await fetch(first.callbackUrl, { redirect: "manual" });
    expect(replay.status).toBe(400);
    expect(await replay.json()).toMatchObject({ code: "InvalidArgument", message: expect.stringContaining("state") });
    const forged = await fetch(`${callback()}?code=abc&state=not-a-state`, { redirect: "manual" });
    expect(forged.status).toBe(400);
  });

  it("checks the nonce and the PKCE verifier of the attempt", async () => {
    idp.signInAs("alice");
    const atNonce = await browserSignIn(login(), callback(), true);
    const state = new URL(atNonce.callbackUrl).searchParams.get("state");
    await h.nexus.db.query("UPDATE auth.sign_in_attempts SET nonce = 'another-nonce' WHERE state = $1", [state]);
    const badNonce = await fetch(atNonce.callbackUrl, { redirect: "manual" });
    expect(badNonce.status).toBe(401);
    expect(await badNonce.json()).toMatchObject({ reason: "AUTH_TOKEN_INVALID", message: expect.stringContaining("nonce") });

    const atVerifier = await browserSignIn(login(), callback(), true);
    const state2 = new URL(atVerifier.callbackUrl).searchParams.get("state");
    await h.nexus.db.query("UPDATE auth.sign_in_attempts SET code_verifier = $2 WHERE state = $1", [
      state2,
      randomBytes(32).toString("base64url"),
    ]);
    const badVerifier = await fetch(atVerifier.callbackUrl, { redirect: "manual" });
    expect(badVerifier.status).toBe(401);
    expect(await badVerifier.json()).toMatchObject({ reason: "AUTH_UNAUTHORIZED" });
  });

  it("signs out: the session stops working at once, cached or not", async () => {
    const done = await signIn("bob");
    const bob = h.client(done.session);
    expect((await bob.auth.whoAmI({})).principal?.role).toBe(Role.VIEWER);
    const out = await fetch(`${h.url}/auth/oidc/logout`, { method: "POST", headers: { authorization: `Bearer ${done.session}` } });
    expect(await out.json()).toEqual({ ended: true });
    expect(out.headers.getSetCookie()[0]).toContain("Max-Age=0");
    expect(await failure(() => bob.auth.whoAmI({}))).toMatchObject({ code: "Unauthenticated", reason: "AUTH_REVOKED_KEY" });
    expect((await h.events("SessionEnded")).length).toBe(1);
  });

  it("RemoveMember ends the member's sessions by event, as a SCIM deprovisioning does", async () => {
    const owner = h.client(tenant.ownerKey);
    const { member } = await owner.identity.addMember({ email: "dave@example.com", role: Role.VIEWER });
    const first = await signIn("dave");
    const second = await signIn("dave");
    const dave = h.client(first.session);
    expect((await dave.auth.whoAmI({})).principal?.name).toBe("dave@example.com");
    const endedBefore = (await h.events("SessionEnded")).length;
    await owner.identity.removeMember({ userId: member!.userId });
    const ended = (await h.events("SessionEnded")).slice(endedBefore);
    expect(ended.map((e) => (e.payload as { sessionId?: string }).sessionId).sort()).toEqual(
      [first.session, second.session].map((s) => s?.split("_")[1]).sort(),
    );
    // Ended, not merely orphaned: the refusal says the session is over.
    expect(await failure(() => dave.auth.whoAmI({}))).toMatchObject({ code: "Unauthenticated", reason: "AUTH_REVOKED_KEY" });
    expect(await failure(() => h.client(second.session).auth.whoAmI({}))).toMatchObject({ reason: "AUTH_REVOKED_KEY" });
  });

  it("expires sessions after their TTL (8 h by default)", async () => {
    const done = await signIn("bob");
    const bob = h.client(done.session);
    expect((await bob.auth.whoAmI({})).principal?.userId).not.toBe("");
    h.clock.advance(8 * 3600_000 + 1_000);
    try {
      expect(await failure(() => bob.auth.whoAmI({}))).toMatchObject({ code: "Unauthenticated", reason: "AUTH_EXPIRED_KEY" });
    } finally {
      h.clock.advance(-(8 * 3600_000 + 1_000));
    }
  });

  it("applies a change of groups at the next sign-in", async () => {
    const before = await signIn("bob");
    expect((await h.client(before.session).auth.whoAmI({})).principal?.role).toBe(Role.VIEWER);
    people[1]!.groups = ["engineering"];
    try {
      const after = await signIn("bob");
      expect((await h.client(after.session).auth.whoAmI({})).principal).toMatchObject({ role: Role.EDITOR, groups: ["engineering"] });
      // The membership itself changed, so the earlier session acts with the new role too.
      expect((await h.client(before.session).auth.whoAmI({})).principal?.role).toBe(Role.EDITOR);
    } finally {
      people[1]!.groups = ["sales"];
    }
  });

  it("provisions unknown people only when the provider allows it and the plan has feature.identity.jit", async () => {
    const refused = await signIn("carol");
    expect(refused.status).toBe(401);
    expect(JSON.parse(refused.body)).toMatchObject({ reason: "AUTH_UNKNOWN_USER" });
    const owner = h.client(tenant.ownerKey);
    const current = (await owner.identity.getIdentityProvider({})).identityProvider!;
    await owner.identity.setIdentityProvider({
      issuer: current.issuer,
      audience: current.audience,
      clientId: current.clientId,
      scopes: current.scopes,
      allowedRedirectHosts: current.allowedRedirectHosts,
      groupRoles: current.groupRoles,
      enabled: true,
      jitEnabled: true,
      defaultRole: Role.VIEWER,
    });
    // The pro plan does not include JIT provisioning.
    expect((await signIn("carol")).status).toBe(401);
    await h.client(h.platformKey).auth.setEntitlementOverrides({
      tenantId: tenant.tenant.id,
      overrides: { features: [{ featureKey: "feature.identity.jit", enabled: true }] },
    });
    const provisioned = await signIn("carol");
    expect(provisioned.status, provisioned.body).toBe(303);
    expect((await h.client(provisioned.session).auth.whoAmI({})).principal?.role).toBe(Role.VIEWER);
    const members = await owner.identity.listMembers({});
    expect(members.members.map((m) => m.email)).toContain("carol@example.com");
  });

  it("refuses redirects to hosts not allowed, unknown tenants and tenants without single sign-on", async () => {
    const badRedirect = await fetch(login(tenant.tenant.slug, "https://evil.example.net/steal"), { redirect: "manual" });
    expect(badRedirect.status).toBe(400);
    expect((await badRedirect.json()) as object).toMatchObject({ code: "InvalidArgument" });
    expect((await fetch(login("no-such-tenant"), { redirect: "manual" })).status).toBe(404);
    const free = await h.tenant(Plan.FREE);
    const noSso = await fetch(login(free.tenant.slug), { redirect: "manual" });
    expect(noSso.status).toBe(403);
    expect(await noSso.json()).toMatchObject({ reason: "FEATURE_NOT_ENABLED" });
  });
});
