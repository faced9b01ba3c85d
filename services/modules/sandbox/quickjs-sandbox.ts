import { getQuickJS, type QuickJSDeferredPromise, type QuickJSHandle, type QuickJSWASMModule } from "quickjs-emscripten";

/**
 * The code-module sandbox: JavaScript run by QuickJS compiled to WebAssembly
 * ([quickjs-emscripten](https://github.com/justjake/quickjs-emscripten)). Each call gets a
 * fresh QuickJS runtime and context inside the shared WebAssembly module, so calls share no
 * JavaScript state. The guest has only the ECMAScript built-ins: no `process`, `require`,
 * `import`, file system, timers or network. Its only way out is `ctx.fetch`, a host function
 * that hands each request to the egress broker (egress-broker.ts) chosen by the caller.
 *
 * Limits: the runtime's memory limit (an allocation past it fails with "out of memory" inside
 * the guest), a small interpreter stack, CPU time inside the interpreter (QuickJS's interrupt
 * handler, polled while guest code runs), and a hard wall-clock timeout covering network
 * waits (pending broker requests are aborted).
 */

/** Limits of one sandboxed call. */
export interface SandboxLimits {
  /** Hard wall-clock timeout, network waits included. */
  timeoutMs: number;
  /** CPU time spent interpreting guest code. */
  cpuMs: number;
  /** Memory of the guest runtime. */
  memoryBytes: number;
}

/** One call of a tool function of a code module. */
export interface SandboxCall {
  /** The module's source: a script whose top-level `function <tool>(input, ctx)` declarations are its tools. */
  code: string;
  /** The function to call. */
  tool: string;
  /** The input, passed as JSON. */
  input: unknown;
  limits: SandboxLimits;
  /**
   * The egress broker: performs `ctx.fetch(url, init)` for the guest. `init` is the guest's
   * JSON; the result is the response as JSON text (`{status, headers, body}`). A refusal is an
   * {@link EgressRefused}. The signal aborts when the call ends or times out.
   */
  fetch(url: string, init: unknown, signal: AbortSignal): Promise<string>;
  /** The WebAssembly module to run in; default the process's shared one (benchmarks pass a fresh one for cold starts). */
  wasm?: QuickJSWASMModule;
}

/** Why a sandboxed call failed (the error reasons CallTool returns). */
export type SandboxFailureReason = "MODULE_TIMEOUT" | "MODULE_MEMORY_LIMIT" | "MODULE_EGRESS_DENIED" | "MODULE_ERROR";

/** What a sandboxed call did. */
export type SandboxOutcome =
  | { kind: "ok"; output: unknown; cpuMs: number }
  | { kind: "failed"; reason: SandboxFailureReason; message: string; cpuMs: number };

/** A broker refusal; the guest sees an `EgressDenied` error, and an uncaught one fails the call with MODULE_EGRESS_DENIED. */
export class EgressRefused extends Error {
  override readonly name = "EgressDenied";
}

/** Largest output (JSON) a tool may return. */
export const MAX_OUTPUT_BYTES = 1 << 20;
/** The guest's interpreter stack; deep recursion fails with "stack overflow" well before the host's stack. */
const MAX_STACK_BYTES = 128 * 1024;

let wasm: Promise<QuickJSWASMModule> | undefined;

/** The shared WebAssembly module (loaded once per process, on first use). */
export function quickjs(): Promise<QuickJSWASMModule> {
  wasm ??= getQuickJS();
  return wasm;
}

/** Invokes the tool in a new QuickJS runtime and returns its JSON output or why it failed. */
export async function runInSandbox(call: SandboxCall): Promise<SandboxOutcome> {
  const module = call.wasm ?? (await quickjs());
  const started = performance.now();
  const hardDeadline = started + call.limits.timeoutMs;
  const abort = new AbortController();
  const runtime = module.newRuntime();
  runtime.setMemoryLimit(call.limits.memoryBytes);
  runtime.setMaxStackSize(MAX_STACK_BYTES);
  let cpuMs = 0;
  let enteredAt = 0;
  let killed: "MODULE_TIMEOUT" | undefined;
  let killMessage = "";
  runtime.setInterruptHandler(() => {
    const now = performance.now();
    if (cpuMs + (now - enteredAt) > call.limits.cpuMs) {
      killed = "MODULE_TIMEOUT";
      killMessage = `the module used more than its ${call.limits.cpuMs} ms of CPU time and was stopped`;
      return true;
    }
    if (now > hardDeadline) {
      killed = "MODULE_TIMEOUT";
      killMessage = `the call ran past its ${call.limits.timeoutMs} ms timeout and was stopped`;
      return true;
    }
    return false;
  });
  const vm = runtime.newContext();
  const deferreds = new Set<QuickJSDeferredPromise>();
  const inFlight = new Set<Promise<void>>();
  const enter = <T>(fn: () => T): T => {
    enteredAt = performance.now();
    try {
      return fn();
    } finally {
      cpuMs += performance.now() - enteredAt;
    }
  };
  const failed = (reason: SandboxFailureReason, message: string): SandboxOutcome => ({ kind: "failed", reason, message, cpuMs });
  const fromGuestError = (errorHandle: QuickJSHandle): SandboxOutcome => {
    const dumped = vm.dump(errorHandle) as { name?: unknown; message?: unknown } | unknown;
    errorHandle.dispose();
    if (killed) return failed(killed, killMessage);
    const name = typeof dumped === "object" && dumped !== null && "name" in dumped ? String(dumped.name) : "Error";
    const message = typeof dumped === "object" && dumped !== null && "message" in dumped ? String(dumped.message) : String(dumped);
    if (message === "out of memory" || message === "string too long")
      return failed("MODULE_MEMORY_LIMIT", `the module went past its ${call.limits.memoryBytes} bytes of memory and was stopped`);
    if (name === "EgressDenied") return failed("MODULE_EGRESS_DENIED", message);
    return failed("MODULE_ERROR", `${name}: ${message}`.slice(0, 2000));
  };
  try {
    const hostFetch = vm.newFunction("__nexusFetch", (urlHandle, initHandle) => {
      const url = vm.getString(urlHandle);
      const initText = vm.typeof(initHandle) === "string" ? vm.getString(initHandle) : "{}";
      const deferred = vm.newPromise();
      deferreds.add(deferred);
      let init: unknown;
      try {
        init = JSON.parse(initText);
      } catch {
        init = {};
      }
      const done = call.fetch(url, init, abort.signal).then(
        (text) => {
          if (!vm.alive || !deferred.alive) return;
          const h = vm.newString(text);
          deferred.resolve(h);
          h.dispose();
        },
        (error: unknown) => {
          if (!vm.alive || !deferred.alive) return;
          const e = vm.newError({
            name: error instanceof EgressRefused ? "EgressDenied" : "FetchError",
            message: error instanceof Error ? error.message : String(error),
          });
          deferred.reject(e);
          e.dispose();
        },
      );
      const tracked = done.finally(() => inFlight.delete(tracked));
      inFlight.add(tracked);
      return deferred.handle;
    });
    vm.setProp(vm.global, "__nexusFetch", hostFetch);
    hostFetch.dispose();
    const input = vm.newString(JSON.stringify(call.input ?? {}));
    vm.setProp(vm.global, "__nexusInput", input);
    input.dispose();

    // The glue runs first and takes the host function and the input off the global object,
    // so module code never sees them: its one way out is the frozen ctx it is handed.
    const glue = enter(() => vm.evalCode(GLUE, "nexus-glue.js"));
    if (glue.error) return fromGuestError(glue.error);
    const invoke = glue.value;
    let boot: ReturnType<typeof vm.callFunction>;
    try {
      const loaded = enter(() => vm.evalCode(call.code, "module.js"));
      if (loaded.error) return fromGuestError(loaded.error);
      loaded.value.dispose();
      const toolName = vm.newString(call.tool);
      boot = enter(() => vm.callFunction(invoke, vm.undefined, toolName));
      toolName.dispose();
    } finally {
      invoke.dispose();
    }
    if (boot.error) return fromGuestError(boot.error);
    const promise = boot.value;
    try {
      for (;;) {
        const jobs = enter(() => runtime.executePendingJobs());
        if (jobs.error) return fromGuestError(jobs.error);
        const state = vm.getPromiseState(promise);
        if (state.type === "fulfilled") {
          const text = vm.typeof(state.value) === "string" ? vm.getString(state.value) : "null";
          state.value.dispose();
          if (killed) return failed(killed, killMessage);
          if (Buffer.byteLength(text) > MAX_OUTPUT_BYTES)
            return failed("MODULE_ERROR", `the output is larger than ${MAX_OUTPUT_BYTES} bytes`);
          return { kind: "ok", output: JSON.parse(text) as unknown, cpuMs };
        }
        if (state.type === "rejected") return fromGuestError(state.error);
        if (killed) return failed(killed, killMessage);
        if (inFlight.size === 0)
          return failed("MODULE_ERROR", "the tool's promise never settles (it awaits something that does not exist in the sandbox)");
        const remaining = hardDeadline - performance.now();
        if (remaining <= 0) return failed("MODULE_TIMEOUT", `the call ran past its ${call.limits.timeoutMs} ms timeout and was stopped`);
        let timer: NodeJS.Timeout | undefined;
        const timedOut = await Promise.race([
          Promise.race([...inFlight]).then(() => false),
          new Promise<boolean>((resolve) => {
            timer = setTimeout(() => resolve(true), remaining);
          }),
        ]);
        clearTimeout(timer);
        if (timedOut) return failed("MODULE_TIMEOUT", `the call ran past its ${call.limits.timeoutMs} ms timeout and was stopped`);
      }
    } finally {
      if (promise.alive) promise.dispose();
    }
  } finally {
    abort.abort();
    for (const d of deferreds) if (d.alive) d.dispose();
    disposeQuietly(vm, runtime);
  }
}

function disposeQuietly(vm: { dispose(): void }, runtime: { dispose(): void }): void {
  try {
    vm.dispose();
    runtime.dispose();
  } catch {
    // A runtime QuickJS cannot free cleanly (a guest stopped mid-allocation) may leave the
    // WebAssembly module in doubt: the next call loads a fresh one.
    wasm = undefined;
  }
}

/**
 * The guest-side glue, evaluated before the module: it keeps the host's fetch and the input
 * in a closure, deletes both globals, and returns `invoke(tool)` — the tool called with the
 * parsed input and a frozen `ctx`, its result as JSON text.
 */
const GLUE = `(() => {
  const hostFetch = globalThis.__nexusFetch;
  const inputText = globalThis.__nexusInput;
  delete globalThis.__nexusFetch;
  delete globalThis.__nexusInput;
  const ctx = Object.freeze({
    fetch: async (url, init) => {
      const r = JSON.parse(await hostFetch(String(url), JSON.stringify(init === undefined ? {} : init)));
      return Object.freeze({ status: r.status, ok: r.status >= 200 && r.status < 300, headers: r.headers,
        text: async () => r.body, json: async () => JSON.parse(r.body) });
    },
    credential: (name) => "{{credential:" + String(name) + "}}",
  });
  return async (tool) => {
    const fn = globalThis[tool];
    if (typeof fn !== "function") throw new Error("the module defines no function " + tool);
    const out = await fn(JSON.parse(inputText), ctx);
    return JSON.stringify(out === undefined ? null : out);
  };
})()`;
