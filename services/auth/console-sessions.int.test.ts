import { pino } from "pino";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestDatabase, describeWithPostgres, type TestDatabase } from "../../tests/support/services.js";
import { csrfMatches, csrfTokenOf, presentedSessionOf, sessionIdOf } from "../kernel/authz/console-session.js";
import type { Principal } from "../kernel/context.js";
import { createPgDatabase } from "../kernel/db/pg-database.js";
import type { Database } from "../kernel/db/ports.js";
import { migratePlatform } from "../kernel/events/platform-migrations.js";
import { migrateService } from "../kernel/service/index.js";
import type { AuthApplication } from "./auth-application.js";
import { DEFAULT_AUTH_SETTINGS } from "./auth-settings.js";
import { createAuthApplication } from "./create-auth-application.js";
import { authService } from "./server.js";

const operator: Principal = { kind: "platform", keyId: "op_key", name: "ops" };
const context = { procedure: "/nexus.auth.v1.AuthService/WhoAmI" };
const HOUR = 3600_000;

describeWithPostgres("console sessions (auth service, PostgreSQL)", () => {
  let testDb: TestDatabase;
  let db: Database;
  let app: AuthApplication;
  let now = new Date("2026-06-01T10:00:00Z");

  beforeAll(async () => {
    testDb = await createTestDatabase();
    db = await createPgDatabase({ url: testDb.url, poolSize: 4 });
    await migratePlatform(db);
    await migrateService(authService, db);
    app = createAuthApplication({ db, logger: pino({ level: "silent" }), clock: () => now, settings: DEFAULT_AUTH_SETTINGS });
  });
  afterAll(async () => {
    await db?.close();
    await testDb?.drop();
  });

  async function memberKey(slug: string): Promise<string> {
    const tenant = await app.createTenant(operator, { slug, displayName: slug, plan: "pro" });
    const issued = await app.createApiKey(operator, {
      tenantId: tenant.id,
      name: `${slug} admin`,
      role: "admin",
      expiresAt: undefined,
      platformKey: false,
    });
    return issued.plaintext;
  }

  async function signIn(key: string, ttlMs = 8 * HOUR) {
    const r = await app.signInConsole(key, ttlMs, context);
    if (r.kind !== "signed-in") throw new Error(`sign-in refused: ${r.reason}`);
    return r;
  }

  it("a session stands for its key until it expires; only its hash is stored", async () => {
    const key = await memberKey("session-expiry");
    const session = await signIn(key, HOUR);
    expect(session.token).toMatch(/^nxcs_[A-Za-z0-9_-]{43}$/);
    const { rows } = await db.query<{ id: string }>("SELECT id FROM auth.console_sessions");
    expect(rows.map((r) => r.id)).toContain(sessionIdOf(session.token));
    expect(JSON.stringify(rows)).not.toContain(session.token);

    const ok = await app.authenticate(session.token, context);
    expect(ok.kind).toBe("authenticated");
    if (ok.kind === "authenticated") {
      expect(ok.principal).toMatchObject({ kind: "tenant", role: "admin", tenantSlug: "session-expiry" });
      // Caches never keep the answer past the session's end.
      expect(ok.validUntil?.getTime()).toBeLessThanOrEqual(session.expiresAt.getTime());
    }
    now = new Date(now.getTime() + HOUR + 1);
    const ended = await app.authenticate(session.token, context);
    expect(ended).toMatchObject({ kind: "refused", reason: "AUTH_UNAUTHORIZED" });
    expect(await app.sweepEndedConsoleSessions()).toBeGreaterThanOrEqual(1);
  });

  it("sign-out ends the session at once; other sessions of the key keep working", async () => {
    const key = await memberKey("session-signout");
    const a = await signIn(key);
    const b = await signIn(key);
    await app.signOutConsole(a.token);
    await app.signOutConsole(a.token); // idempotent
    expect(await app.authenticate(a.token, context)).toMatchObject({ kind: "refused", reason: "AUTH_UNAUTHORIZED" });
    expect((await app.authenticate(b.token, context)).kind).toBe("authenticated");
  });

  it("revoking the key ends its sessions with the key's own reason", async () => {
    const key = await memberKey("session-revoked");
    const session = await signIn(key);
    const keyId = session.principal.keyId;
    await app.revokeApiKey(operator, keyId, "leaked");
    expect(await app.authenticate(session.token, context)).toMatchObject({ kind: "refused", reason: "AUTH_REVOKED_KEY" });
    // A revoked key cannot open a new session either.
    expect(await app.signInConsole(key, HOUR, context)).toMatchObject({ kind: "refused", reason: "AUTH_REVOKED_KEY" });
  });

  it("a session token, a wrong key or garbage cannot open a session", async () => {
    const key = await memberKey("session-garbage");
    const session = await signIn(key);
    expect(await app.signInConsole(session.token, HOUR, context)).toMatchObject({ kind: "refused", reason: "AUTH_UNAUTHORIZED" });
    expect(await app.signInConsole(`${key.slice(0, -3)}AAA`, HOUR, context)).toMatchObject({
      kind: "refused",
      reason: "AUTH_UNAUTHORIZED",
    });
    expect(await app.signInConsole("hello", HOUR, context)).toMatchObject({ kind: "refused", reason: "AUTH_UNAUTHORIZED" });
    expect(await app.authenticate("nxcs_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", context)).toMatchObject({
      kind: "refused",
      reason: "AUTH_UNAUTHORIZED",
    });
  });

  it("the gate reads the session from the cookie and checks the CSRF token against it", async () => {
    const key = await memberKey("session-csrf");
    const { token } = await signIn(key);
    const csrf = csrfTokenOf(token);
    expect(csrfMatches(token, csrf)).toBe(true);
    const other = csrf.endsWith("A") ? "B" : "A";
    expect(csrfMatches(token, `${csrf.slice(0, -1)}${other}`)).toBe(false);
    expect(csrfMatches(token, "")).toBe(false);
    const withCsrf = new Headers({ cookie: `theme=dark; nexus_session=${token}`, "x-nexus-csrf": csrf });
    expect(presentedSessionOf(withCsrf)).toEqual({ token, csrf: true });
    const forged = new Headers({
      cookie: `nexus_session=${token}`,
      "x-nexus-csrf": csrfTokenOf(`${token.slice(0, -1)}${token.endsWith("A") ? "B" : "A"}`),
    });
    expect(presentedSessionOf(forged)).toEqual({ token, csrf: false });
    expect(presentedSessionOf(new Headers({ cookie: "nexus_session=nxs_not_a_session" }))).toBeUndefined();
  });
});
