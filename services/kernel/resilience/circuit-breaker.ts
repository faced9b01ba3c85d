import { domainError } from "../errors.js";

/** Where a breaker stands: calls flow (closed), fail fast (open), or one probe is let through (half_open). */
export type CircuitState = "closed" | "open" | "half_open";

/** Options of {@link CircuitBreaker}. */
export interface CircuitBreakerOptions {
  /** What the breaker protects, e.g. "retrieval", "model:openai", "embeddings"; shown in errors and metrics. */
  dependency: string;
  /** Consecutive failures that open the breaker. Default 5. */
  failureThreshold?: number;
  /**
   * The longest the breaker stays open before a probe may go through. Default 30 000 ms. The
   * first opening waits {@link CircuitBreakerOptions.minResetTimeoutMs}; each failed probe
   * doubles the wait up to this, and a success starts over — so a dependency that comes back
   * is used again within about a second of a short outage, and a long outage costs one probe
   * per `resetTimeoutMs`.
   */
  resetTimeoutMs?: number;
  /** The wait after the first opening. Default min(1 000 ms, resetTimeoutMs). */
  minResetTimeoutMs?: number;
  /**
   * Which failures say the dependency is unwell and count against it (see
   * {@link BreakerPermit.failed}). A refusal of the request itself (bad argument, not found,
   * permission) or the caller's own cancellation must not count. Default: every failure counts.
   */
  countsAsFailure?: (error: unknown) => boolean;
  /** Monotonic milliseconds; tests pass their own. Default `performance.now()`. */
  now?: () => number;
  /** Told about every state change (metrics, logs). */
  onStateChange?: (state: CircuitState, dependency: string) => void;
}

/**
 * One admitted call. The first settling call counts; later ones are ignored, so a
 * `finally { permit.release() }` after `succeed()` or `fail()` is harmless.
 */
export interface BreakerPermit {
  /** The dependency answered properly. */
  succeed(): void;
  /** The dependency failed (unavailable, timed out, answered garbage): counts, whatever the predicate says. */
  fail(): void;
  /** The call failed with `error`: counts when the breaker's `countsAsFailure` says so, else as {@link release}. */
  failed(error: unknown): void;
  /** The call ended for a reason that says nothing about the dependency (the caller cancelled, bad input). */
  release(): void;
}

/**
 * THE circuit breaker of Nexus, one per dependency (the retrieval service, a model server, an
 * embeddings server). Closed: calls flow and consecutive failures are counted; at the
 * threshold it opens. Open: every call fails at once with UNAVAILABLE reason
 * DEPENDENCY_UNAVAILABLE (metadata `dependency`, `circuit=open`) and a RetryInfo of the time
 * left. After the reset timeout it is half-open: exactly one probe call is admitted (the
 * others still fail fast); its success closes the breaker, its failure opens it again for
 * twice as long (up to `resetTimeoutMs`), and a neutral outcome leaves it half-open for the
 * next call to probe.
 *
 * Admission ({@link acquire}) and outcome (the permit) are separate because a streamed call
 * (a model's answer) settles only when its stream ends; {@link execute} joins them for plain
 * request/response calls. The breaker does not time calls out: callers bound each call (see
 * `withTimeout`) and report a timeout as a failure.
 *
 * Why not cockatiel's breaker (the retry and timeout policies are cockatiel's): its half-open
 * state queues concurrent callers behind the probe instead of failing them fast, it counts a
 * cancelled probe as a success, admits only through `execute(fn)`, and reads `Date.now()`.
 */
export class CircuitBreaker {
  readonly dependency: string;
  private readonly threshold: number;
  private readonly maxResetMs: number;
  private readonly minResetMs: number;
  /** The current open period: grows while probes fail. */
  private resetMs: number;
  private readonly countsAsFailure: (error: unknown) => boolean;
  private readonly now: () => number;
  private readonly onStateChange: ((state: CircuitState, dependency: string) => void) | undefined;
  private current: CircuitState = "closed";
  private failures = 0;
  private openedAt = 0;
  private probeInFlight = false;

  constructor(options: CircuitBreakerOptions) {
    this.dependency = options.dependency;
    this.threshold = Math.max(1, options.failureThreshold ?? 5);
    this.maxResetMs = Math.max(0, options.resetTimeoutMs ?? 30_000);
    this.minResetMs = Math.min(this.maxResetMs, Math.max(0, options.minResetTimeoutMs ?? 1_000));
    this.resetMs = this.minResetMs;
    this.countsAsFailure = options.countsAsFailure ?? (() => true);
    this.now = options.now ?? (() => performance.now());
    this.onStateChange = options.onStateChange;
  }

  /** The state as of now (an open breaker whose timeout passed reads as half_open). */
  get state(): CircuitState {
    if (this.current === "open" && this.now() - this.openedAt >= this.resetMs) return "half_open";
    return this.current;
  }

  /** Consecutive failures counted while closed. */
  get consecutiveFailures(): number {
    return this.failures;
  }

  /** Milliseconds until an open breaker lets a probe through (0 when it is not open). */
  retryInMs(): number {
    return this.state === "open" ? Math.max(0, this.resetMs - (this.now() - this.openedAt)) : 0;
  }

  /**
   * Admits one call or throws UNAVAILABLE DEPENDENCY_UNAVAILABLE (metadata dependency,
   * circuit=open) with RetryInfo when the breaker is open or its probe is already out.
   */
  acquire(): BreakerPermit {
    const state = this.state;
    if (state === "open") throw this.openError(this.retryInMs());
    let probe = false;
    if (state === "half_open") {
      if (this.probeInFlight) throw this.openError(Math.min(this.resetMs, 1000));
      if (this.current !== "half_open") this.transition("half_open");
      this.probeInFlight = true;
      probe = true;
    }
    let settled = false;
    const settle = (outcome: "success" | "failure" | "neutral") => {
      if (settled) return;
      settled = true;
      if (probe) this.probeInFlight = false;
      if (outcome === "success") this.onSuccess();
      else if (outcome === "failure") this.onFailure();
      // A neutral probe leaves the breaker half-open: the next call probes again.
    };
    return {
      succeed: () => settle("success"),
      fail: () => settle("failure"),
      failed: (error) => settle(this.countsAsFailure(error) ? "failure" : "neutral"),
      release: () => settle("neutral"),
    };
  }

  /**
   * Runs one request/response call behind the breaker: admitted or refused as by
   * {@link acquire}; a result settles it as a success, an error as {@link BreakerPermit.failed}.
   */
  async execute<T>(call: () => Promise<T>): Promise<T> {
    const permit = this.acquire();
    try {
      const result = await call();
      permit.succeed();
      return result;
    } catch (err) {
      permit.failed(err);
      throw err;
    }
  }

  private onSuccess(): void {
    this.failures = 0;
    this.resetMs = this.minResetMs;
    if (this.current !== "closed") this.transition("closed");
  }

  private onFailure(): void {
    if (this.current === "half_open") {
      // The probe failed: the dependency is still away; wait longer before the next one.
      this.resetMs = Math.min(this.maxResetMs, Math.max(1, this.resetMs) * 2);
      this.open();
      return;
    }
    this.failures += 1;
    if (this.current === "closed" && this.failures >= this.threshold) this.open();
  }

  private open(): void {
    this.openedAt = this.now();
    this.failures = 0;
    this.transition("open");
  }

  private transition(state: CircuitState): void {
    this.current = state;
    this.onStateChange?.(state, this.dependency);
  }

  private openError(retryAfterMs: number) {
    return domainError(
      "DEPENDENCY_UNAVAILABLE",
      `${this.dependency} failed repeatedly; its circuit breaker is open, so the call was not attempted`,
      { dependency: this.dependency, circuit: "open" },
      { retryAfterMs: Math.max(0, Math.ceil(retryAfterMs)) },
    );
  }
}
