/**
 * The kernel's resilience pieces, written once: {@link backoffDelayMs} (the one exponential
 * backoff), {@link CircuitBreaker}, {@link retryPolicy} (cockatiel's retry with our backoff)
 * and {@link withTimeout} (cockatiel's cooperative timeout).
 */
export { type BackoffBounds, backoffDelayMs } from "./backoff.js";
export { type BreakerPermit, CircuitBreaker, type CircuitBreakerOptions, type CircuitState } from "./circuit-breaker.js";
export { type RetryOptions, type RetryPolicy, retryPolicy } from "./retry.js";
export { TimeoutError, withTimeout } from "./timeout.js";
