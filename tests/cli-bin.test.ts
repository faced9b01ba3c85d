import { spawnSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { NEXUS_BIN } from "./support/nexus-process.js";

// The `nexus` bin as npx and a global install run it: executed directly (its shebang picks
// the node on PATH), not through `node dist/...`. The build sets its execute bits
// (scripts/cli-executable.ts); without them a re-cloned checkout's `npx nexus` failed with
// "Permission denied".
describe("the nexus bin", () => {
  it("is executable after the build and runs directly", () => {
    expect(statSync(NEXUS_BIN).mode & 0o111).not.toBe(0);
    const r = spawnSync(NEXUS_BIN, ["--version"], { encoding: "utf8" });
    expect(r.error).toBeUndefined();
    expect(r.status).toBe(0);
    const pkg = JSON.parse(readFileSync(path.resolve("package.json"), "utf8")) as { version: string; bin: { nexus: string } };
    expect(r.stdout.trim()).toBe(pkg.version);
    expect(path.resolve(pkg.bin.nexus)).toBe(NEXUS_BIN);
  });
});
