import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";

/**
 * The system Chromium for browser tests (Debian's `chromium` package; `.ci/run` installs it):
 * NEXUS_CHROMIUM when set, else the first of the usual paths. Undefined when none is installed.
 * Playwright drives it through `executablePath` — browser downloads are not used.
 */
export function chromiumPath(): string | undefined {
  const candidates = [process.env.NEXUS_CHROMIUM, "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];
  for (const c of candidates) if (c && existsSync(c)) return c;
  try {
    const found = execFileSync("which", ["chromium"], { encoding: "utf8" }).trim();
    return found || undefined;
  } catch {
    return undefined;
  }
}
