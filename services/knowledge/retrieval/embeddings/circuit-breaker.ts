/** Options of {@link CircuitBreaker}. */
export interface CircuitBreakerOptions {
  /** Consecutive failures that open the circuit. Default 5. */
  failureThreshold?: number;
  /** How long an open circuit refuses calls before letting one trial through. Default 30 000 ms. */
  cooldownMs?: number;
  /** Clock in milliseconds (tests pass their own). Default `Date.now`. */
  now?: () => number;
}

/** closed: calls flow; open: calls fail fast; half_open: one trial call decides. */
export type CircuitState = "closed" | "open" | "half_open";

/**
 * A consecutive-failure circuit breaker for one remote dependency. While open, callers fail
 * at once instead of piling timeouts onto a server that is down; after the cooldown one trial
 * call is let through (half-open) and its outcome closes or re-opens the circuit.
 */
export class CircuitBreaker {
  private failures = 0;
  private openedAt: number | undefined;
  private trialInFlight = false;
  private readonly threshold: number;
  private readonly cooldownMs: number;
  private readonly now: () => number;

  constructor(options: CircuitBreakerOptions = {}) {
    this.threshold = options.failureThreshold ?? 5;
    this.cooldownMs = options.cooldownMs ?? 30_000;
    this.now = options.now ?? Date.now;
  }

  /** The state right now. */
  get state(): CircuitState {
    if (this.openedAt === undefined) return "closed";
    return this.now() - this.openedAt >= this.cooldownMs ? "half_open" : "open";
  }

  /** Milliseconds until an open circuit lets a trial through (0 when not open). */
  retryInMs(): number {
    if (this.openedAt === undefined) return 0;
    return Math.max(0, this.cooldownMs - (this.now() - this.openedAt));
  }

  /**
   * Asks to make a call: true when it may go ahead. In half-open state only one trial at a
   * time is allowed; its {@link success} or {@link failure} must follow.
   */
  tryAcquire(): boolean {
    const state = this.state;
    if (state === "closed") return true;
    if (state === "open" || this.trialInFlight) return false;
    this.trialInFlight = true;
    return true;
  }

  /** Records a successful call: the circuit closes. */
  success(): void {
    this.failures = 0;
    this.openedAt = undefined;
    this.trialInFlight = false;
  }

  /** Records a failed call: a failed trial or the threshold-th failure in a row opens it. */
  failure(): void {
    this.failures += 1;
    if (this.trialInFlight || this.failures >= this.threshold) this.openedAt = this.now();
    this.trialInFlight = false;
  }
}
