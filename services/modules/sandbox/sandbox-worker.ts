import { parentPort } from "node:worker_threads";
import { EgressRefused, runInSandbox, type SandboxLimits } from "./quickjs-sandbox.js";

/**
 * The worker thread a {@link SandboxPool} runs calls in (one at a time): QuickJS runs here,
 * so guest code never blocks the process's event loop, and a call stuck in a long native
 * operation is ended by terminating this thread. `ctx.fetch` is passed to the parent, whose
 * egress broker performs it.
 */

/** parent → worker */
export type ToWorker =
  | { kind: "call"; id: number; code: string; tool: string; input: unknown; limits: SandboxLimits }
  | { kind: "fetched"; fetchId: number; ok: true; text: string }
  | { kind: "fetched"; fetchId: number; ok: false; egress: boolean; message: string };

/** worker → parent */
export type FromWorker =
  | { kind: "fetch"; id: number; fetchId: number; url: string; init: unknown }
  | { kind: "done"; id: number; outcome: Awaited<ReturnType<typeof runInSandbox>> };

const port = parentPort;
if (port) {
  let nextFetch = 0;
  const pending = new Map<number, { resolve: (text: string) => void; reject: (err: Error) => void }>();
  port.on("message", (msg: ToWorker) => {
    if (msg.kind === "fetched") {
      const p = pending.get(msg.fetchId);
      pending.delete(msg.fetchId);
      if (!p) return;
      if (msg.ok) p.resolve(msg.text);
      else p.reject(msg.egress ? new EgressRefused(msg.message) : new Error(msg.message));
      return;
    }
    const { id } = msg;
    void runInSandbox({
      code: msg.code,
      tool: msg.tool,
      input: msg.input,
      limits: msg.limits,
      fetch: (url, init) =>
        new Promise<string>((resolve, reject) => {
          const fetchId = nextFetch++;
          pending.set(fetchId, { resolve, reject });
          port.postMessage({ kind: "fetch", id, fetchId, url, init } satisfies FromWorker);
        }),
    }).then(
      (outcome) => port.postMessage({ kind: "done", id, outcome } satisfies FromWorker),
      (err: unknown) =>
        port.postMessage({
          kind: "done",
          id,
          outcome: {
            kind: "failed",
            reason: "MODULE_ERROR",
            message: `the sandbox failed: ${err instanceof Error ? err.message : String(err)}`,
            cpuMs: 0,
          },
        } satisfies FromWorker),
    );
  });
}
