import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

/** The built CLI (vitest's global setup runs `tsc` first). */
export const NEXUS_BIN = path.resolve("dist/services/cli/main.js");

/** A `nexus` process started by a test, as a user would start it. */
export interface NexusProcess {
  /** Base URL the process printed, e.g. http://127.0.0.1:41234. */
  url: string;
  port: number;
  child: ChildProcess;
  /** Everything printed so far (stdout + stderr). */
  output(): string;
  /** SIGTERM, wait for exit; returns the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Options of {@link startNexus}. */
export interface StartNexusOptions {
  /** CLI arguments, e.g. ["dev", "--port", "0"]. */
  args: string[];
  env?: Record<string, string | undefined>;
  /** How long to wait for the "listening on" line. Default 60 s. */
  timeoutMs?: number;
}

/**
 * Starts `node dist/services/cli/main.js <args>` and resolves once it prints the URL it
 * listens on ("listening on http://…").
 */
export function startNexus(options: StartNexusOptions): Promise<NexusProcess> {
  const child = spawn(process.execPath, [NEXUS_BIN, ...options.args], {
    env: { ...process.env, LOG_LEVEL: "warn", ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return new Promise<NexusProcess>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`nexus ${options.args.join(" ")} did not report its URL in time. Output:\n${out}`));
    }, options.timeoutMs ?? 60_000);
    const onData = (chunk: Buffer) => {
      out += chunk.toString("utf8");
      const m = /listening on (http:\/\/[^\s]+)/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        const url = m[1].replace(/\/$/, "");
        resolve({
          url,
          port: Number(new URL(url).port),
          child,
          output: () => out,
          async stop(signal: NodeJS.Signals = "SIGTERM") {
            if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
            child.kill(signal);
            return exited;
          },
        });
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`nexus ${options.args.join(" ")} exited with ${code} before listening. Output:\n${out}`));
    });
  });
}

/** A temporary directory removed by the returned function. */
export function tempDir(prefix = "nexus-test-"): { dir: string; remove: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Runs `nexus <args>` to completion as a user would (no inherited database, bus or key). */
export function runNexusCli(
  args: string[],
  env: Record<string, string | undefined> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [NEXUS_BIN, ...args], {
      env: { ...process.env, LOG_LEVEL: "warn", DATABASE_URL: undefined, NATS_URL: undefined, NEXUS_API_KEY: undefined, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}
