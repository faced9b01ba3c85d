import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { chromium } from "playwright-core";
import { chromiumPath } from "../scripts/chromium-path.js";
import { devKeys, startDev } from "./rpc.js";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const DIST = path.join(ROOT, "console", "dist");

/** The web console's budgets (issue 15). */
export const CONSOLE_BUDGETS = { initialJsGzipKiB: 300, firstScreenMs: 1000 } as const;

/** What `npm run bench console` measures. */
export interface ConsoleBenchResult {
  /** JavaScript the first screen loads (the entry script and its modulepreloads), gzipped as served. */
  initialJsGzipKiB: number;
  /** Every JavaScript file of the build, gzipped (lazy screens included). */
  allJsGzipKiB: number;
  /** Cold browser, signed in: navigation start → the overview shows service health (median). */
  firstScreenMs: { median: number; samples: number[] };
  /** Baseline in the same run and browser: navigation to /readyz (one plain request), median. */
  plainPageMs: { median: number; samples: number[] };
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

function gzipKiB(file: string): number {
  return gzipSync(readFileSync(path.join(DIST, file)), { level: 9 }).length / 1024;
}

/** The JavaScript `index.html` loads before anything else: its module script and modulepreloads. */
function initialScripts(html: string): string[] {
  const refs = [...html.matchAll(/<(?:script[^>]*\ssrc|link[^>]*rel="modulepreload"[^>]*\shref)="\/console\/([^"]+\.js)"/g)].map(
    (m) => m[1]!,
  );
  return [...new Set(refs)];
}

/**
 * `npm run bench console`: the console's bundle against its budget (initial JS ≤ 300 KiB
 * gzipped) and the time to an interactive first screen in Debian's chromium against a fresh
 * `nexus dev` (≤ 1 s), with a plain page load in the same browser as the baseline.
 */
export async function benchConsole(log: (line: string) => void, rounds = 5): Promise<ConsoleBenchResult | string> {
  const executablePath = chromiumPath();
  if (executablePath === undefined) return "chromium is not installed (apt-get install -y chromium)";
  const built = spawnSync(process.execPath, [path.join(ROOT, "scripts", "build-console.ts")], { encoding: "utf8" });
  if (built.status !== 0) throw new Error(`building the console failed:\n${built.stdout}${built.stderr}`);
  const html = readFileSync(path.join(DIST, "index.html"), "utf8");
  const initial = initialScripts(html);
  const initialJsGzipKiB = initial.reduce((sum, f) => sum + gzipKiB(f), 0);
  const allJs = readdirSync(path.join(DIST, "assets")).filter((f) => f.endsWith(".js"));
  const allJsGzipKiB = allJs.reduce((sum, f) => sum + gzipKiB(`assets/${f}`), 0);
  log(
    `initial JS: ${initial.join(", ")} = ${initialJsGzipKiB.toFixed(1)} KiB gzipped (budget ${CONSOLE_BUDGETS.initialJsGzipKiB}); all JS ${allJsGzipKiB.toFixed(1)} KiB`,
  );

  const work = mkdtempSync(path.join(tmpdir(), "nexus-bench-console-"));
  const dev = await startDev(path.join(work, "data"));
  const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
  try {
    const { owner } = devKeys(await waitForKeys(dev.output));
    const first: number[] = [];
    const plain: number[] = [];
    for (let i = 0; i < rounds + 1; i++) {
      // A new context each round: empty cache, as a first visit.
      const context = await browser.newContext();
      const signedIn = await context.request.post(`${dev.url}/auth/session`, { data: { apiKey: owner } });
      if (!signedIn.ok()) throw new Error(`sign-in failed: ${signedIn.status()} ${await signedIn.text()}`);
      const page = await context.newPage();
      let t = performance.now();
      await page.goto(`${dev.url}/readyz`);
      const plainMs = performance.now() - t;
      t = performance.now();
      await page.goto(`${dev.url}/console/`);
      await page.getByText("nexus.auth.v1.AuthService: serving").waitFor({ timeout: 30_000 });
      const firstMs = performance.now() - t;
      await context.close();
      if (i === 0) continue; // warm-up: the server's first requests
      plain.push(plainMs);
      first.push(firstMs);
    }
    const result: ConsoleBenchResult = {
      initialJsGzipKiB,
      allJsGzipKiB,
      firstScreenMs: { median: median(first), samples: first },
      plainPageMs: { median: median(plain), samples: plain },
    };
    log(
      `first screen interactive (median of ${rounds}, cold cache): ${result.firstScreenMs.median.toFixed(0)} ms (budget ${CONSOLE_BUDGETS.firstScreenMs}); plain page ${result.plainPageMs.median.toFixed(0)} ms`,
    );
    return result;
  } finally {
    await browser.close();
    await dev.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

async function waitForKeys(output: () => string): Promise<string> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (/owner key[^\n]*\n\s+nxs_/.test(output())) return output();
    await new Promise((r) => setTimeout(r, 100));
  }
  return output();
}
