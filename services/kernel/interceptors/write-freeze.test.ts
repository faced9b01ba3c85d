import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { afterAll, describe, expect, it } from "vitest";
import { AuthService } from "../../../gen/nexus/auth/v1/auth_service_pb.js";
import { errorReason } from "../errors.js";
import { createWriteFreeze, isReadOnlyMethod } from "./write-freeze.js";

const dir = mkdtempSync(join(tmpdir(), "nexus-freeze-"));
const flag = join(dir, "writeFrozen");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("write freeze", () => {
  it("classifies reads by the API's naming", () => {
    for (const m of [
      "GetTenant",
      "ListApiKeys",
      "WatchDocument",
      "Search",
      "ExportAuditEvents",
      "VerifyAuditChain",
      "WhoAmI",
      "Authenticate",
    ])
      expect(isReadOnlyMethod(m), m).toBe(true);
    for (const m of ["CreateTenant", "RevokeApiKey", "CheckQuota", "SetQuota", "Run", "IngestText", "Getaway"])
      expect(isReadOnlyMethod(m), m).toBe(false);
  });

  it("refuses mutating RPCs with UNAVAILABLE WRITE_FROZEN while the flag file says true, and lets reads through", async () => {
    writeFileSync(flag, "false");
    const freeze = createWriteFreeze({ flagFile: flag, pollMs: 10_000 });
    try {
      const transport = createRouterTransport(({ service }) => service(AuthService, { whoAmI: () => ({}), createTenant: () => ({}) }), {
        router: { interceptors: [freeze.interceptor] },
      });
      const client = createClient(AuthService, transport);
      await freeze.refresh();
      await expect(client.createTenant({ slug: "a", displayName: "A", plan: 1 })).resolves.toBeDefined();

      writeFileSync(flag, "true\n");
      expect(await freeze.refresh()).toBe(true);
      const err = await client.createTenant({ slug: "a", displayName: "A", plan: 1 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.Unavailable);
      expect(errorReason(err)).toBe("WRITE_FROZEN");
      await expect(client.whoAmI({})).resolves.toBeDefined();

      rmSync(flag);
      expect(await freeze.refresh()).toBe(false);
      await expect(client.createTenant({ slug: "a", displayName: "A", plan: 1 })).resolves.toBeDefined();
    } finally {
      freeze.close();
    }
  });
});
