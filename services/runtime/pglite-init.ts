import { spawn } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Creates a new PGlite data directory (PostgreSQL's initdb) in a short-lived child process,
 * so the process that then serves never carries initdb's memory. PGlite initialises a new
 * directory with a second, in-memory PGlite instance plus the initdb module and a tarball of
 * the result: about 1.1 GB at its peak, of which most stays resident afterwards (WASM memory
 * never shrinks) — twice the `nexus dev` budget. Opened after the child exits, the directory
 * costs what a restart costs (~350 MB).
 *
 * Does nothing when the directory already holds a database (PG_VERSION) or is not a plain
 * path (memory:// and other PGlite URIs).
 */
export async function initPgliteDataDir(dataDir: string): Promise<void> {
  if (dataDir.includes("://") || existsSync(path.join(dataDir, "PG_VERSION"))) return;
  mkdirSync(dataDir, { recursive: true });
  const here = path.dirname(fileURLToPath(import.meta.url));
  // dist/ holds the compiled .js; tests run the .ts source (Node strips its types).
  const script = [path.join(here, "pglite-init-child.js"), path.join(here, "pglite-init-child.ts")].find((p) => existsSync(p));
  if (script === undefined) throw new Error(`pglite-init-child not found next to ${here}`);
  // Liftoff only (V8's baseline WASM compiler): initdb runs once, and TurboFan's compilation of
  // the hot PostgreSQL functions costs ~400 MB more at the peak than it saves in time.
  const child = spawn(process.execPath, ["--liftoff-only", script, dataDir], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", resolve);
  });
  if (code !== 0) throw new Error(`creating the PGlite data directory ${dataDir} failed (exit ${code}): ${stderr.trim()}`);
}
