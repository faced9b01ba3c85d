import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { cpuMs, devKeys, startDev, waitUntilIdle } from "./rpc.js";

/** One configuration of the refused-authentication flood. */
export interface AuthAttemptsRow {
  /** "limiter off" (NEXUS_AUTH_ATTEMPT_BURST=0, the baseline) or "limiter on" (defaults). */
  target: string;
  /** Refused calls answered per second (Connect JSON, one client address). */
  rps: number;
  /** `nexus dev`'s CPU time per refused call, in µs. */
  cpuUsPerCall: number;
  /** How the calls were answered, by HTTP status. */
  statuses: Record<string, number>;
}

/** The whole result: both rows, and on/off CPU per refused call. */
export interface AuthAttemptsResult {
  rows: AuthAttemptsRow[];
  /** CPU per refused call with the limiter / without it. */
  cpuRatio: number;
}

/**
 * `npm run bench auth-attempts`: one client floods `nexus dev` (PGlite) with a well-formed key
 * whose secret is wrong (a real key id: each looked-up refusal also writes an AccessDenied
 * row) over Connect JSON for `seconds` at `concurrency`, first with the refused-authentication
 * limiter off (the baseline), then on with its defaults; the server's CPU per refused call.
 */
export async function benchAuthAttempts(
  options: { seconds?: number; concurrency?: number; log?: (line: string) => void } = {},
): Promise<AuthAttemptsResult> {
  const seconds = options.seconds ?? 10;
  const concurrency = options.concurrency ?? 8;
  const log = options.log ?? (() => {});
  const rows: AuthAttemptsRow[] = [];
  for (const [target, env] of [
    ["limiter off", { NEXUS_AUTH_ATTEMPT_BURST: "0" }],
    ["limiter on", {}],
  ] as const) {
    const dir = mkdtempSync(path.join(os.tmpdir(), "nexus-bench-auth-"));
    const dev = await startDev(path.join(dir, "data"), env);
    try {
      await waitUntilIdle(dev.process.pid!);
      const { owner } = devKeys(dev.output());
      const keyId = /^nxs_([A-Za-z0-9-]+)_/.exec(owner)?.[1] ?? "";
      const wrong = `nxs_${keyId}_${"A".repeat(43)}`;
      const before = cpuMs(dev.process.pid!);
      const { calls, statuses } = await flood(dev.url, wrong, concurrency, seconds);
      const cpu = cpuMs(dev.process.pid!) - before;
      const row = { target, rps: calls / seconds, cpuUsPerCall: (cpu * 1000) / calls, statuses };
      rows.push(row);
      log(
        `  ${target}: ${row.rps.toFixed(0)} refused calls/s, ${row.cpuUsPerCall.toFixed(0)} µs CPU per call (${Object.entries(statuses)
          .map(([s, n]) => `${n}× ${s}`)
          .join(", ")})`,
      );
    } finally {
      await dev.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const cpuRatio = rows[1]!.cpuUsPerCall / rows[0]!.cpuUsPerCall;
  log(`  CPU per refused call, limiter on / off: ${(cpuRatio * 100).toFixed(1)} %`);
  return { rows, cpuRatio };
}

async function flood(
  baseUrl: string,
  key: string,
  concurrency: number,
  seconds: number,
): Promise<{ calls: number; statuses: Record<string, number> }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const url = new URL("/nexus.auth.v1.AuthService/WhoAmI", baseUrl);
  const statuses: Record<string, number> = {};
  const end = Date.now() + seconds * 1000;
  let calls = 0;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const req = http.request(
        url,
        { method: "POST", agent, headers: { "content-type": "application/json", authorization: `Bearer ${key}` } },
        (res) => {
          res.resume();
          res.once("end", () => {
            statuses[String(res.statusCode)] = (statuses[String(res.statusCode)] ?? 0) + 1;
            resolve();
          });
        },
      );
      req.once("error", reject);
      req.end("{}");
    });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) {
        await one();
        calls++;
      }
    }),
  );
  agent.destroy();
  return { calls, statuses };
}
