/**
 * Makes the `nexus` bin (package.json "bin": dist/services/cli/main.js) executable, as part of
 * `npm run build` and the tests' build. tsc writes it 0644. npm sets the mode only when it links
 * the bin, and npx links a local package once per path: after a checkout is deleted and cloned
 * again at the same path, `npx nexus` ran the rebuilt 0644 file and failed with "Permission
 * denied". Run directly (`node scripts/cli-executable.ts`) or call {@link makeCliExecutable}.
 */
import { chmodSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/** The bin's path. */
export const CLI_BIN = join(dirname(fileURLToPath(import.meta.url)), "..", "dist", "services", "cli", "main.js");

/** Adds the execute bits (for whoever may read it) to `file`. */
export function makeCliExecutable(file = CLI_BIN): void {
  const mode = statSync(file).mode;
  chmodSync(file, mode | ((mode & 0o444) >> 2));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) makeCliExecutable();
