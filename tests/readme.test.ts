import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { renderReadme } from "../scripts/update-readme.js";
import { commands } from "../services/cli/commands/index.js";
import { CONFIG_VARIABLES } from "../services/kernel/config.js";

describe("README stays true to the code", () => {
  const readme = readFileSync("README.md", "utf8");

  it("documents every environment variable and every CLI command (run `npm run docs:readme` to fix)", () => {
    expect(renderReadme(readme)).toBe(readme);
    for (const v of CONFIG_VARIABLES) expect(readme).toContain(`| \`${v.name}\` |`);
    for (const c of commands) expect(readme).toContain(`nexus ${c.path.join(" ")}`);
  });

  it("links every file in docs/", () => {
    const files = readdirSync("docs", { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && /\.(md|json)$/.test(e.name))
      .map((e) => `${e.parentPath}/${e.name}`.replace(/\\/g, "/"));
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) expect(readme, `README should link ${f}`).toContain(`](${f})`);
  });

  it("gives the quickstart and the test command CI runs", () => {
    expect(readme).toContain("npm install\nnpm start");
    expect(readme).toContain("npm test");
    const ci = readFileSync(".ci/run", "utf8");
    expect(ci).toMatch(/^npm test$/m);
  });
});
