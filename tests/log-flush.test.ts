import { spawn } from "node:child_process";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";

/**
 * The process logger's stdout (services/kernel/logger.ts; a batched asynchronous writer once
 * reordered lines under load): these check, on a real process, that no line is lost or
 * reordered when the process ends (normally, by process.exit or an uncaught exception) and
 * that a lone line does not wait for more lines.
 */
const LOGGER = pathToFileURL(path.resolve("dist/services/kernel/logger.js")).href;

interface Run {
  stdout: string;
  code: number | null;
}

/** Runs an ES module with `createLogger` in scope; resolves when it exits, or on `until` matching stdout (then kills it). */
function run(body: string, until?: RegExp, timeoutMs = 60_000): Promise<Run> {
  const script = `import { createLogger } from ${JSON.stringify(LOGGER)};\nconst logger = createLogger({ name: "flush-test", level: "info" });\n${body}`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`no result in ${timeoutMs} ms; stdout so far:\n${stdout.slice(-2000)}`));
    }, timeoutMs);
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
      if (until?.test(stdout)) {
        clearTimeout(timer);
        child.kill("SIGKILL");
        resolve({ stdout, code: null });
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ stdout, code });
    });
  });
}

const lines = (stdout: string) => stdout.split("\n").filter((l) => l.includes('"msg":"line"'));

describe("process logger: batched stdout", () => {
  it("writes every line when the process ends by itself, by process.exit() and by an uncaught exception", async () => {
    const log = "for (let i = 0; i < 2000; i++) logger.info({ i }, 'line');";
    const [natural, exited, crashed] = await Promise.all([
      run(log),
      run(`${log}\nprocess.exit(3);`),
      run(`${log}\nsetImmediate(() => { throw new Error("boom"); });`),
    ]);
    expect(natural.code).toBe(0);
    expect(exited.code).toBe(3);
    expect(crashed.code).toBe(1);
    for (const r of [natural, exited, crashed]) {
      const got = lines(r.stdout).map((l) => (JSON.parse(l) as { i: number }).i);
      expect(got).toEqual(Array.from({ length: 2000 }, (_, i) => i));
    }
  });

  it("keeps the order of lines from two loggers of one process logged in the same turn", async () => {
    const r = await run(
      "const other = createLogger({ name: 'flush-test-2', level: 'info' });\nfor (let i = 0; i < 200; i++) (i % 2 === 0 ? logger : other).info({ i }, 'line');",
    );
    expect(r.code).toBe(0);
    expect(lines(r.stdout).map((l) => (JSON.parse(l) as { i: number }).i)).toEqual(Array.from({ length: 200 }, (_, i) => i));
  });

  it("writes a lone line while the process keeps running (it does not wait for a full batch)", async () => {
    const r = await run("logger.info('just one');\nsetInterval(() => {}, 1000);", /just one/);
    expect(r.stdout).toContain('"msg":"just one"');
  });
});
