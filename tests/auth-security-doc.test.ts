import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { permissionTableMarkdown } from "../services/kernel/authz/permission-docs.js";

/** docs/security.md shows THE permission table exactly as the code enforces it. */
describe("docs/security.md", () => {
  it("contains the permission table generated from services/kernel/authz/permissions.ts", () => {
    const doc = readFileSync(new URL("../docs/security.md", import.meta.url), "utf8");
    const begin = doc.indexOf("-->", doc.indexOf("<!-- permission-table:begin")) + 3;
    const end = doc.indexOf("<!-- permission-table:end -->");
    expect(doc.slice(begin, end).trim()).toBe(permissionTableMarkdown());
  });
});
