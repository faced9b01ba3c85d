/**
 * Builds the web console (console/ → console/dist, docs/console.md) as part of `npm run build`,
 * unless the built files are newer than every source the bundle is made of (console/, gen/ and
 * the permission table), so a rebuild of the servers costs nothing extra.
 * `--force` builds regardless.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const built = join(root, "console", "dist", "index.html");

function newest(path: string): number {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let max = 0;
  for (const name of readdirSync(path)) {
    if (name === "dist" || name === "node_modules") continue;
    max = Math.max(max, newest(join(path, name)));
  }
  return max;
}

const sources = [join(root, "console"), join(root, "gen"), join(root, "services", "kernel", "authz"), join(root, "package-lock.json")];
const force = process.argv.includes("--force");
if (!force && existsSync(built) && statSync(built).mtimeMs >= Math.max(...sources.map(newest))) {
  console.log("console: up to date (console/dist)");
} else {
  const { build } = await import("vite");
  const started = performance.now();
  await build({ configFile: join(root, "console", "vite.config.ts") });
  console.log(`console: built console/dist in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}
