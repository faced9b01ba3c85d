/**
 * The kernel's resilience pieces, written once: {@link backoffDelayMs} (the one exponential
 * backoff), {@link CircuitBreaker}, {@link retryPolicy} (cockatiel's retry with our backoff)
 * and {@link withTimeout} (cockatiel's cooperative timeout).
 */
export { backoffDelayMs, type BackoffBounds } from "./backoff.js";
export { CircuitBreaker, type BreakerPermit, type CircuitBreakerOptions, type CircuitState } from "./circuit-breaker.js";
export { retryPolicy, type RetryOptions, type RetryPolicy } from "./retry.js";
export { TimeoutError, withTimeout } from "./timeout.js";
