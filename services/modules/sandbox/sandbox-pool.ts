import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { EgressRefused, type SandboxCall, type SandboxOutcome } from "./quickjs-sandbox.js";
import type { FromWorker, ToWorker } from "./sandbox-worker.js";

/** Extra time past a call's own timeout before its worker is terminated (the in-sandbox limits normally end it first). */
const KILL_GRACE_MS = 500;

interface Busy {
  id: number;
  call: SandboxCall;
  abort: AbortController;
  timer: NodeJS.Timeout;
  resolve: (o: SandboxOutcome) => void;
}

interface Slot {
  worker: Worker;
  busy: Busy | undefined;
}

/**
 * Runs sandboxed calls on a small pool of worker threads (sandbox-worker.ts), one call per
 * worker at a time, the rest queued. Guest code never runs on the process's event loop, and a
 * call that outlives its timeout by {@link KILL_GRACE_MS} — a long native operation QuickJS's
 * interrupt handler cannot reach — has its worker terminated: MODULE_TIMEOUT, and a fresh
 * worker takes its place. The egress broker stays in this thread: the worker asks, the broker
 * fetches.
 */
export class SandboxPool {
  private readonly slots: Slot[] = [];
  private readonly queue: { call: SandboxCall; resolve: (o: SandboxOutcome) => void }[] = [];
  private nextId = 0;
  private closed = false;

  constructor(
    private readonly size: number,
    private readonly workerUrl: URL,
  ) {}

  /** The pool over the compiled worker beside this file, or undefined when it is not there (running from TypeScript sources). */
  static beside(size: number): SandboxPool | undefined {
    const url = new URL("./sandbox-worker.js", import.meta.url);
    return existsSync(fileURLToPath(url)) ? new SandboxPool(size, url) : undefined;
  }

  /** Runs one call (its `wasm` option is ignored: each worker has its own module). */
  run(call: SandboxCall): Promise<SandboxOutcome> {
    if (this.closed)
      return Promise.resolve({ kind: "failed", reason: "MODULE_ERROR", message: "the sandbox pool is shutting down", cpuMs: 0 });
    return new Promise((resolve) => {
      this.queue.push({ call, resolve });
      this.dispatch();
    });
  }

  /** Terminates the workers; queued calls fail. */
  async close(): Promise<void> {
    this.closed = true;
    for (const q of this.queue.splice(0))
      q.resolve({ kind: "failed", reason: "MODULE_ERROR", message: "the sandbox pool is shutting down", cpuMs: 0 });
    await Promise.all(this.slots.splice(0).map((s) => s.worker.terminate()));
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      let slot = this.slots.find((s) => s.busy === undefined);
      if (!slot && this.slots.length < this.size) slot = this.spawn();
      if (!slot) return;
      const next = this.queue.shift()!;
      this.start(slot, next.call, next.resolve);
    }
  }

  private spawn(): Slot {
    const worker = new Worker(this.workerUrl);
    const slot: Slot = { worker, busy: undefined };
    worker.on("message", (msg: FromWorker) => this.onMessage(slot, msg));
    const lost = (why: string) => {
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
      this.finish(slot, { kind: "failed", reason: "MODULE_ERROR", message: `the sandbox worker stopped: ${why}`, cpuMs: 0 });
      this.dispatch();
    };
    worker.on("error", (err) => lost(err.message));
    worker.on("exit", (code) => lost(`exit code ${code}`));
    worker.unref();
    this.slots.push(slot);
    return slot;
  }

  private start(slot: Slot, call: SandboxCall, resolve: (o: SandboxOutcome) => void): void {
    const id = this.nextId++;
    const timer = setTimeout(() => {
      // Past the call's own limits: the guest is stuck where the interrupt handler cannot reach.
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
      this.finish(slot, {
        kind: "failed",
        reason: "MODULE_TIMEOUT",
        message: `the call ran past its ${call.limits.timeoutMs} ms timeout and its sandbox was terminated`,
        cpuMs: call.limits.timeoutMs,
      });
      void slot.worker.terminate();
      this.dispatch();
    }, call.limits.timeoutMs + KILL_GRACE_MS);
    slot.busy = { id, call, abort: new AbortController(), timer, resolve };
    slot.worker.postMessage({
      kind: "call",
      id,
      code: call.code,
      tool: call.tool,
      input: call.input,
      limits: call.limits,
    } satisfies ToWorker);
  }

  private onMessage(slot: Slot, msg: FromWorker): void {
    const busy = slot.busy;
    if (!busy || busy.id !== msg.id) return;
    if (msg.kind === "done") {
      this.finish(slot, msg.outcome);
      this.dispatch();
      return;
    }
    busy.call.fetch(msg.url, msg.init, busy.abort.signal).then(
      (text) =>
        slot.busy?.id === msg.id && slot.worker.postMessage({ kind: "fetched", fetchId: msg.fetchId, ok: true, text } satisfies ToWorker),
      (err: unknown) =>
        slot.busy?.id === msg.id &&
        slot.worker.postMessage({
          kind: "fetched",
          fetchId: msg.fetchId,
          ok: false,
          egress: err instanceof EgressRefused,
          message: err instanceof Error ? err.message : String(err),
        } satisfies ToWorker),
    );
  }

  private finish(slot: Slot, outcome: SandboxOutcome): void {
    const busy = slot.busy;
    if (!busy) return;
    slot.busy = undefined;
    clearTimeout(busy.timer);
    busy.abort.abort();
    busy.resolve(outcome);
  }
}
