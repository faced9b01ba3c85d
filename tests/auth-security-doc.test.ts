import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { permissionTableMarkdown } from "../services/kernel/authz/permission-docs.js";
import { PERMISSIONS } from "../services/kernel/authz/permissions.js";

/** docs/security.md shows THE permission table exactly as the code enforces it. */
describe("docs/security.md", () => {
  it("contains the permission table generated from services/kernel/authz/permissions.ts", () => {
    const doc = readFileSync(new URL("../docs/security.md", import.meta.url), "utf8");
    const begin = doc.indexOf("-->", doc.indexOf("<!-- permission-table:begin")) + 3;
    const end = doc.indexOf("<!-- permission-table:end -->");
    expect(doc.slice(begin, end).trim()).toBe(permissionTableMarkdown());
  });
});

/** docs/metering-and-audit.md summarises the table for its RPCs: each row must say what the table enforces. */
describe("docs/metering-and-audit.md", () => {
  it("gives each metering and audit RPC the permission class of the permission table", () => {
    const doc = readFileSync(new URL("../docs/metering-and-audit.md", import.meta.url), "utf8");
    const section = doc.slice(doc.indexOf("## Who may call what"), doc.indexOf("## CLI"));
    const says = (cell: string): string => {
      if (/^platform only/.test(cell)) return "platform";
      if (/^read \(viewer\+\)/.test(cell)) return "read";
      if (/^admin\+/.test(cell)) return "admin";
      return cell;
    };
    const rows = [...section.matchAll(/^\| ([A-Za-z, ]+) \| ([^|]+) \|$/gm)].filter((m) => m[1] !== "RPC");
    expect(rows.length).toBeGreaterThanOrEqual(5);
    for (const [, rpcs, cell] of rows) {
      for (const rpc of rpcs!.split(",").map((r) => r.trim())) {
        const procedure = Object.keys(PERMISSIONS).find((p) => p.endsWith(`/${rpc}`) && /(Metering|Audit)Service/.test(p));
        expect(procedure, rpc).toBeDefined();
        expect(says(cell!.trim()), rpc).toBe(PERMISSIONS[procedure!]!.class);
      }
    }
  });
});
