import { domainError } from "../../kernel/errors.js";

/** Where a breaker stands: calls flow (closed), fail fast (open), or one probe is let through (half_open). */
export type CircuitState = "closed" | "open" | "half_open";

/** Options of {@link CircuitBreaker}. */
export interface CircuitBreakerOptions {
  /** What the breaker protects, e.g. "retrieval" or "model:openai"; shown in errors and metrics. */
  dependency: string;
  /** Consecutive failures that open the breaker (NEXUS_AGENT_BREAKER_FAILURES). Default 5. */
  failureThreshold?: number;
  /** How long the breaker stays open before a probe may go through (NEXUS_AGENT_BREAKER_RESET_MS). Default 30 000. */
  resetTimeoutMs?: number;
  /** Monotonic milliseconds; tests pass their own. Default `performance.now()`. */
  now?: () => number;
  /** Told about every state change (metrics, logs). */
  onStateChange?: (state: CircuitState, dependency: string) => void;
}

/**
 * One admitted call. Exactly one of the three settles it; later calls are ignored, so a
 * `finally { permit.release() }` after `succeed()` or `fail()` is harmless.
 */
export interface BreakerPermit {
  /** The dependency answered properly. */
  succeed(): void;
  /** The dependency failed (unavailable, timed out, answered garbage). */
  fail(): void;
  /** The call ended for a reason that says nothing about the dependency (the caller cancelled, bad input). */
  release(): void;
}

/**
 * A circuit breaker for one dependency of the agent (the retrieval service, a model server).
 * Closed: calls flow and consecutive failures are counted; at the threshold it opens. Open:
 * every call fails at once with UNAVAILABLE reason DEPENDENCY_UNAVAILABLE and a RetryInfo of
 * the time left. After the reset timeout it is half-open: exactly one probe call is admitted
 * (the others still fail fast); its success closes the breaker, its failure opens it again.
 *
 * The breaker does not time calls out itself: callers bound each call (retrieval timeout,
 * model first-chunk and idle timeouts) and report a timeout as a failure. Streaming calls
 * settle their permit when the stream ends, which is why admission and outcome are separate.
 */
export class CircuitBreaker {
  readonly dependency: string;
  private readonly threshold: number;
  private readonly resetMs: number;
  private readonly now: () => number;
  private readonly onStateChange: ((state: CircuitState, dependency: string) => void) | undefined;
  private current: CircuitState = "closed";
  private failures = 0;
  private openedAt = 0;
  private probeInFlight = false;

  constructor(options: CircuitBreakerOptions) {
    this.dependency = options.dependency;
    this.threshold = Math.max(1, options.failureThreshold ?? 5);
    this.resetMs = Math.max(0, options.resetTimeoutMs ?? 30_000);
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

  /**
   * Admits one call or throws UNAVAILABLE DEPENDENCY_UNAVAILABLE (metadata dependency,
   * circuit=open) with RetryInfo when the breaker is open or its probe is already out.
   */
  acquire(): BreakerPermit {
    const state = this.state;
    if (state === "open") {
      const left = this.resetMs - (this.now() - this.openedAt);
      throw this.openError(left);
    }
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
      release: () => settle("neutral"),
    };
  }

  private onSuccess(): void {
    this.failures = 0;
    if (this.current !== "closed") this.transition("closed");
  }

  private onFailure(): void {
    if (this.current === "half_open") {
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
