/**
 * `nexus members …` and `nexus keys create --owner` as a user runs them, against `nexus dev`
 * (embedded PGlite and local bus, one process): a person joins the demo tenant, gets a key of
 * their own, changes role, and leaves — taking the key with them.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NexusProcess, runNexusCli as nexus, startNexus, tempDir } from "./support/nexus-process.js";

const KEY = /nxs_[0-9a-f]{24}_[A-Za-z0-9_-]{43}/g;

describe("members CLI against nexus dev", { timeout: 240_000 }, () => {
  const data = tempDir("nexus-identity-cli-");
  let dev: NexusProcess;
  let ownerKey: string;
  const as = (apiKey: string) => ({ NEXUS_URL: dev.url, NEXUS_API_KEY: apiKey });

  beforeAll(async () => {
    dev = await startNexus({
      args: ["dev", "--port", "0", "--host", "127.0.0.1", "--data-dir", `${data.dir}/db`],
      env: { OTEL_SDK_DISABLED: "true" },
    });
    for (let i = 0; i < 200 && (dev.output().match(KEY) ?? []).length < 2; i++) await new Promise((r) => setTimeout(r, 50));
    ownerKey = (dev.output().match(KEY) as [string, string])[1];
  }, 120_000);

  afterAll(async () => {
    await dev?.stop();
    data.remove();
  });

  it("adds a member, issues a key they own, changes their role and removes them with their key", async () => {
    const added = await nexus(
      ["members", "add", "--email", "Pat@Example.com", "--name", "Pat", "--role", "editor", "--json"],
      as(ownerKey),
    );
    expect(added.code, added.stderr).toBe(0);
    const { member, userCreated } = JSON.parse(added.stdout) as { member: { userId: string; email: string }; userCreated: boolean };
    expect(member.email).toBe("pat@example.com");
    expect(userCreated).toBe(true);
    const listed = await nexus(["members", "list"], as(ownerKey));
    expect(listed.stdout).toMatch(new RegExp(`${member.userId}\\s+pat@example.com\\s+Pat\\s+editor`));
    const key = await nexus(
      ["keys", "create", "--name", "pat laptop", "--role", "editor", "--owner", member.userId, "--json"],
      as(ownerKey),
    );
    expect(key.code, key.stderr).toBe(0);
    const { apiKey, plaintextKey } = JSON.parse(key.stdout) as { apiKey: { id: string; ownerUserId: string }; plaintextKey: string };
    expect(apiKey.ownerUserId).toBe(member.userId);
    expect((await nexus(["whoami"], as(plaintextKey))).code).toBe(0);
    const promoted = await nexus(["members", "set-role", member.userId, "--role", "admin"], as(ownerKey));
    expect(promoted.stdout).toMatch(/pat@example.com\s+Pat\s+admin/);
    const removed = await nexus(["members", "remove", member.userId], as(ownerKey));
    expect(removed.stdout).toContain(apiKey.id);
    const refused = await nexus(["whoami"], as(plaintextKey));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("unauthenticated AUTH_REVOKED_KEY");
    const bad = await nexus(["members", "add", "--email", "x@example.com", "--role", "emperor"], as(ownerKey));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--role must be");
  });

  it("issues, shows and revokes the tenant's SCIM token (`nexus scim token …`), which the SCIM endpoint then accepts or refuses", async () => {
    const platformKey = (dev.output().match(KEY) as [string, string])[0];
    const pro = await nexus(["scim", "token", "rotate"], as(ownerKey));
    expect(pro.code).toBe(1);
    expect(pro.stderr).toContain("FEATURE_NOT_ENABLED");
    expect((await nexus(["tenants", "set-plan", "demo", "enterprise"], as(platformKey))).code).toBe(0);
    const rotated = await nexus(["scim", "token", "rotate"], as(ownerKey));
    expect(rotated.code, rotated.stderr).toBe(0);
    const token = rotated.stdout.trim();
    expect(token).toMatch(/^nxscim_[0-9a-f]{24}_/);
    const shown = await nexus(["scim", "token", "show"], as(ownerKey));
    expect(shown.stdout).toContain(token.split("_")[1]);
    expect(shown.stdout).not.toContain(token);
    const users = await fetch(`${dev.url}/scim/v2/Users`, { headers: { authorization: `Bearer ${token}` } });
    expect(users.status).toBe(200);
    expect(await users.json()).toMatchObject({ totalResults: 0 });
    expect((await nexus(["scim", "token", "revoke"], as(ownerKey))).stdout).toContain("revoked");
    expect((await fetch(`${dev.url}/scim/v2/Users`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(401);
  });
});
