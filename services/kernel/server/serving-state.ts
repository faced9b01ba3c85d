import type { ReadinessCheck, ReadinessResult } from "./service-module.js";

/** Where a server is in its life: built, serving, draining (close() called), closed. */
export type Lifecycle = "idle" | "serving" | "draining" | "closed";

/** The outcome of one named readiness check. */
export interface CheckOutcome extends ReadinessResult {
  name: string;
}

/** A snapshot of serving state: lifecycle plus every check's outcome. */
export interface ServingSnapshot {
  lifecycle: Lifecycle;
  checks: CheckOutcome[];
  /** Serving, and every check passes: what the overall ("") health and /readyz report. */
  ready: boolean;
  /** Whether a known service is serving (undefined for an unknown service). */
  serving(service: string): boolean | undefined;
}

interface RegisteredCheck {
  name: string;
  check: ReadinessCheck;
  /** Services this check gates; undefined = every service (a shared dependency). */
  services?: readonly string[];
}

/**
 * The server's serving state, shared by health, /readyz and shutdown: lifecycle, the known
 * services, readiness checks (global ones gate every service, module ones gate their own),
 * and change notification for health Watch streams.
 */
export class ServingState {
  #lifecycle: Lifecycle = "idle";
  readonly #services = new Set<string>();
  readonly #checks: RegisteredCheck[] = [];
  readonly #listeners = new Set<() => void>();
  #evaluation: Promise<ServingSnapshot> | undefined;
  /** The last finished evaluation and when it started (performance.now()); see {@link recent}. */
  #last: { snapshot: ServingSnapshot; at: number } | undefined;
  /** Moves on every change (lifecycle, checks): an evaluation begun before it is not reused. */
  #generation = 0;

  /**
   * @param checkTimeoutMs how long one check may take before it counts as failed.
   * @param reuseMs how long a finished evaluation may answer Health/Check (see {@link recent});
   *   0 evaluates on every call.
   */
  constructor(
    readonly checkTimeoutMs = 2000,
    readonly reuseMs = 250,
  ) {}

  get lifecycle(): Lifecycle {
    return this.#lifecycle;
  }

  /** Moves to a new lifecycle stage and wakes every watcher. */
  setLifecycle(next: Lifecycle): void {
    if (this.#lifecycle === next) return;
    this.#lifecycle = next;
    this.#notify();
  }

  /** Adds a service name health knows about. */
  addService(name: string): void {
    this.#services.add(name);
  }

  /** Every service health knows about, sorted. */
  get services(): string[] {
    return [...this.#services].sort();
  }

  /** True for a known service or "" (the server as a whole). */
  knows(service: string): boolean {
    return service === "" || this.#services.has(service);
  }

  /**
   * Registers a readiness check under a unique `name`. With `services`, it gates only those;
   * without, it gates all of them (e.g. the database every module uses).
   */
  addCheck(name: string, check: ReadinessCheck, services?: readonly string[]): void {
    if (this.#checks.some((c) => c.name === name)) throw new Error(`readiness check "${name}" is already registered`);
    this.#checks.push(services ? { name, check, services } : { name, check });
    this.#notify();
  }

  /** Runs every check (concurrent callers share one run) and returns the snapshot. */
  evaluate(): Promise<ServingSnapshot> {
    if (this.#evaluation === undefined) {
      const generation = this.#generation;
      const at = performance.now();
      this.#evaluation = this.#run().then(
        (snapshot) => {
          this.#evaluation = undefined;
          if (generation === this.#generation) this.#last = { snapshot, at };
          return snapshot;
        },
        (err: unknown) => {
          this.#evaluation = undefined;
          throw err;
        },
      );
    }
    return this.#evaluation;
  }

  /**
   * The last evaluation's snapshot if it began less than `reuseMs` ago and nothing changed
   * since (a lifecycle move or a new check drops it at once); otherwise undefined — call
   * {@link evaluate}. Health/Check answers from it, so a readiness check that starts or stops
   * failing shows there at most `reuseMs` (default 250 ms) late, while draining shows at once.
   */
  recent(): ServingSnapshot | undefined {
    const last = this.#last;
    if (last === undefined || performance.now() - last.at >= this.reuseMs) return undefined;
    return last.snapshot;
  }

  /** Resolves at the next state change, after `timeoutMs`, or when `signal` aborts. */
  waitForChange(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#listeners.delete(done);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.#listeners.add(done);
      signal?.addEventListener("abort", done, { once: true });
    });
  }

  #notify(): void {
    this.#generation += 1;
    this.#last = undefined;
    for (const l of [...this.#listeners]) l();
  }

  async #run(): Promise<ServingSnapshot> {
    const lifecycle = this.#lifecycle;
    const outcomes = await this.#runAll();
    const failing = (_c: RegisteredCheck, i: number) => !outcomes[i]!.ready;
    const ready = lifecycle === "serving" && outcomes.every((o) => o.ready);
    return {
      lifecycle,
      checks: outcomes,
      ready,
      serving: (service) => {
        if (service === "") return ready;
        if (!this.#services.has(service)) return undefined;
        if (lifecycle !== "serving") return false;
        return !this.#checks.some((c, i) => failing(c, i) && (!c.services || c.services.includes(service)));
      },
    };
  }

  /**
   * Every check at once, with one deadline for the whole evaluation (Health/Check evaluates on
   * every call: a timer per check per call was a measurable share of its cost, and so was a
   * timer per evaluation — see {@link ServingState.#deadline}). A check still running at the
   * deadline counts as timed out; the others keep their outcome.
   */
  async #runAll(): Promise<CheckOutcome[]> {
    const checks = this.#checks;
    const outcomes: (CheckOutcome | undefined)[] = new Array<CheckOutcome | undefined>(checks.length);
    if (checks.length > 0) {
      await new Promise<void>((resolve) => {
        let left = checks.length;
        const cancel = this.#deadline(resolve);
        checks.forEach((c, i) => {
          void this.#runOne(c).then((o) => {
            outcomes[i] = o;
            if (--left === 0) {
              cancel();
              resolve();
            }
          });
        });
      });
    }
    return checks.map((c, i) => outcomes[i] ?? { name: c.name, ready: false, reason: `check timed out after ${this.checkTimeoutMs} ms` });
  }

  /** Evaluations still running, by when they time out. */
  readonly #pending = new Set<{ at: number; expire: () => void }>();
  #timer: NodeJS.Timeout | undefined;

  /**
   * Calls `expire` `checkTimeoutMs` from now unless the returned cancel function runs first.
   * All evaluations share one timer, armed for the earliest deadline and left running (unref'd:
   * it never holds the process open) when an evaluation finishes in time, so evaluations one
   * after the other create a timer once per `checkTimeoutMs`, not one each.
   */
  #deadline(expire: () => void): () => void {
    const entry = { at: performance.now() + this.checkTimeoutMs, expire };
    this.#pending.add(entry);
    if (this.#timer === undefined) this.#arm(this.checkTimeoutMs);
    return () => this.#pending.delete(entry);
  }

  #arm(ms: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const now = performance.now();
      let next = Number.POSITIVE_INFINITY;
      for (const entry of this.#pending) {
        if (entry.at <= now) {
          this.#pending.delete(entry);
          entry.expire();
        } else next = Math.min(next, entry.at);
      }
      if (next !== Number.POSITIVE_INFINITY) this.#arm(Math.max(1, next - now));
    }, ms);
    this.#timer.unref();
  }

  async #runOne(c: RegisteredCheck): Promise<CheckOutcome> {
    try {
      const result = await c.check();
      return {
        name: c.name,
        ready: result.ready === true,
        ...(result.reason ? { reason: result.reason } : {}),
        ...(result.info ? { info: result.info } : {}),
      };
    } catch (err) {
      return { name: c.name, ready: false, reason: err instanceof Error ? err.message : String(err) };
    }
  }
}
