import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import AxeBuilder from "@axe-core/playwright";
import { type Browser, chromium, type Page } from "playwright-core";
import { chromiumPath } from "../../scripts/chromium-path.js";

/**
 * What the console's browser suites (tests/console-*.test.ts) share: Debian's chromium (skipped
 * with a line when absent, unless CI or NEXUS_REQUIRE_SERVICES=1 requires it), the console built
 * before the suite, axe-core's serious and critical findings, and screenshots on request.
 */
export const CHROMIUM = chromiumPath();
const required = process.env.CI !== undefined || process.env.NEXUS_REQUIRE_SERVICES === "1";
/** Whether the suite skips: no chromium and nothing requires it. */
export function skipWithoutChromium(suite: string): boolean {
  const skip = CHROMIUM === undefined && !required;
  if (skip) console.warn(`[${suite}] chromium is not installed (apt-get install -y chromium): the browser tests are skipped`);
  return skip;
}

/** Where NEXUS_CONSOLE_SCREENSHOTS=1 writes the screenshots (docs/console), else undefined. */
export const SCREENSHOTS = process.env.NEXUS_CONSOLE_SCREENSHOTS === "1" ? "docs/console" : undefined;

/**
 * Builds the console (scripts/build-console.ts) and makes the screenshot folder. `production`:
 * NODE_ENV=production, since vitest sets "test", with which Vite bundles React's development build.
 */
export function buildConsole(options: { production?: boolean } = {}): void {
  if (CHROMIUM === undefined) throw new Error("chromium is required here (CI): apt-get install -y chromium");
  const built = spawnSync(process.execPath, ["scripts/build-console.ts"], {
    encoding: "utf8",
    ...(options.production ? { env: { ...process.env, NODE_ENV: "production" } } : {}),
  });
  if (built.status !== 0) throw new Error(`building the console failed:\n${built.stdout}${built.stderr}`);
  if (SCREENSHOTS) mkdirSync(SCREENSHOTS, { recursive: true });
}

/** Launches Debian's chromium headless. */
export function launchChromium(): Promise<Browser> {
  if (CHROMIUM === undefined) throw new Error("chromium is required here (CI): apt-get install -y chromium");
  return chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
}

/** axe-core's serious and critical violations on the page, one line each (empty when none). */
export async function seriousAxeViolations(page: Page): Promise<string[]> {
  const result = await new AxeBuilder({ page }).analyze();
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`);
}

/** Writes `<name>.png` of the whole page when screenshots are asked for. */
export async function screenshot(page: Page, name: string): Promise<void> {
  if (SCREENSHOTS) await page.screenshot({ path: `${SCREENSHOTS}/${name}.png`, fullPage: true });
}
