/**
 * The auth CLI as a user runs it: `nexus dev` prints a platform key and the demo tenant's
 * owner key on its first start (and never again), `nexus whoami`, `nexus tenants …` and
 * `nexus keys …` work against it with NEXUS_URL and NEXUS_API_KEY, and `nexus admin
 * bootstrap` / `generate-key` give an installation its first platform key.
 */
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NexusProcess, runNexusCli as nexus, startNexus, tempDir } from "./support/nexus-process.js";

const KEY = /nxs_[0-9a-f]{24}_[A-Za-z0-9_-]{43}/g;

// Each step spawns the CLI like a user would; on a busy machine that takes seconds.
describe("auth CLI against nexus dev", { timeout: 240_000 }, () => {
  const data = tempDir("nexus-auth-cli-");
  let dev: NexusProcess;
  let platformKey: string;
  let ownerKey: string;
  const as = (apiKey: string) => ({ NEXUS_URL: dev.url, NEXUS_API_KEY: apiKey });

  beforeAll(async () => {
    dev = await startNexus({
      args: ["dev", "--port", "0", "--host", "127.0.0.1", "--data-dir", `${data.dir}/db`],
      env: { OTEL_SDK_DISABLED: "true" },
    });
    // The banner follows the "listening on" line; wait until both keys are printed.
    for (let i = 0; i < 200 && (dev.output().match(KEY) ?? []).length < 2; i++) await new Promise((r) => setTimeout(r, 50));
    [platformKey, ownerKey] = dev.output().match(KEY) as [string, string];
  }, 120_000);

  afterAll(async () => {
    await dev?.stop();
    data.remove();
  });

  it("prints a platform key and the demo tenant's owner key on the first start", async () => {
    expect(dev.output()).toContain("First start");
    expect(platformKey).toBeDefined();
    const me = await nexus(["whoami"], as(ownerKey));
    expect(me.stdout).toContain("tenant member of demo");
    expect(me.stdout).toMatch(/role:\s+owner/);
    expect(me.stdout).toMatch(/plan:\s+pro/);
    expect((await nexus(["whoami"], as(platformKey))).stdout).toContain("platform operator");
  });

  it("manages tenants with the platform key; a tenant owner is refused", async () => {
    const created = await nexus(["tenants", "create", "acme", "--name", "Acme Inc", "--plan", "free"], as(platformKey));
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toMatch(/acme\s+Acme Inc\s+free\s+active/);
    expect((await nexus(["tenants", "set-plan", "acme", "enterprise"], as(platformKey))).stdout).toMatch(/acme.*enterprise/);
    const renamed = await nexus(["tenants", "update", "acme", "--name", "Acme Research"], as(platformKey));
    expect(renamed.code, renamed.stderr).toBe(0);
    expect(renamed.stdout).toMatch(/acme\s+Acme Research\s+enterprise\s+active/);
    expect((await nexus(["tenants", "suspend", "acme", "--reason", "test"], as(platformKey))).stdout).toMatch(/acme.*suspended/);
    expect((await nexus(["tenants", "resume", "acme"], as(platformKey))).stdout).toMatch(/acme.*active/);
    const list = await nexus(["tenants", "list", "--json"], as(platformKey));
    expect(JSON.parse(list.stdout).tenants.map((t: { slug: string }) => t.slug)).toEqual(["demo", "acme"]);
    const refused = await nexus(["tenants", "set-plan", "demo", "enterprise"], as(ownerKey));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("permission_denied RBAC_FORBIDDEN");
    const renameRefused = await nexus(["tenants", "update", "demo", "--name", "Mine now"], as(ownerKey));
    expect(renameRefused.code).toBe(1);
    expect(renameRefused.stderr).toContain("permission_denied RBAC_FORBIDDEN");
  });

  it("creates, lists, rotates and revokes keys; the plaintext is printed once", async () => {
    const created = await nexus(["keys", "create", "--name", "ci-bot", "--role", "editor", "--json"], as(ownerKey));
    expect(created.code, created.stderr).toBe(0);
    const { apiKey, plaintextKey } = JSON.parse(created.stdout) as { apiKey: { id: string }; plaintextKey: string };
    expect(plaintextKey).toMatch(KEY);
    const listed = await nexus(["keys", "list"], as(ownerKey));
    expect(listed.stdout).toMatch(new RegExp(`${apiKey.id}\\s+ci-bot\\s+editor\\s+active`));
    expect(listed.stdout).not.toContain(plaintextKey);
    const rotated = await nexus(["keys", "rotate", apiKey.id, "--grace", "1h"], as(ownerKey));
    expect(rotated.stdout).toMatch(new RegExp(`${apiKey.id}\\s+ci-bot\\s+editor\\s+rotating`));
    const successor = rotated.stdout.match(KEY)?.[0];
    expect(successor).toBeDefined();
    expect((await nexus(["whoami"], as(successor!))).stdout).toMatch(/role:\s+editor/);
    expect((await nexus(["whoami"], as(plaintextKey))).code).toBe(0);
    const revoked = await nexus(["keys", "revoke", apiKey.id, "--reason", "done"], as(ownerKey));
    expect(revoked.stdout).toMatch(/revoked/);
    const refused = await nexus(["whoami"], as(plaintextKey));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("unauthenticated AUTH_REVOKED_KEY");
    expect(refused.stderr).not.toContain(plaintextKey);
  });

  it("says what is missing when NEXUS_API_KEY is not set", async () => {
    const r = await nexus(["whoami"], { NEXUS_URL: dev.url });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("NEXUS_API_KEY");
  });

  it("never prints keys again on later starts; the old keys keep working; admin bootstrap recovers", async () => {
    await dev.stop();
    const again = await startNexus({
      args: ["dev", "--port", "0", "--host", "127.0.0.1", "--data-dir", `${data.dir}/db`],
      env: { OTEL_SDK_DISABLED: "true" },
    });
    try {
      expect(again.output()).not.toMatch(KEY);
      expect(again.output()).toContain("nexus admin bootstrap --force");
      expect((await nexus(["whoami"], { NEXUS_URL: again.url, NEXUS_API_KEY: ownerKey })).code).toBe(0);
    } finally {
      await again.stop();
    }
    const refused = await nexus(["admin", "bootstrap", "--data-dir", `${data.dir}/db`]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("FAILED_PRECONDITION");
    const forced = await nexus(["admin", "bootstrap", "--force", "--data-dir", `${data.dir}/db`, "--json"]);
    expect(forced.code, forced.stderr).toBe(0);
    expect(JSON.parse(forced.stdout).plaintextKey).toMatch(KEY);
  });

  it("generate-key prints a key with the digest that installs it", async () => {
    const r = await nexus(["admin", "generate-key", "--json"]);
    const { keyId, sha256, plaintextKey } = JSON.parse(r.stdout) as { keyId: string; sha256: string; plaintextKey: string };
    expect(plaintextKey.startsWith(`nxs_${keyId}_`)).toBe(true);
    expect(sha256).toBe(createHash("sha256").update(plaintextKey).digest("hex"));
  });
});
