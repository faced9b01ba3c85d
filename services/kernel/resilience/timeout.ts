import { TimeoutStrategy, timeout } from "cockatiel";

/** Thrown by {@link withTimeout} when the call did not finish in time. */
export class TimeoutError extends Error {
  constructor(
    readonly timeoutMs: number,
    cause?: unknown,
  ) {
    super(`timed out after ${timeoutMs} ms`, { cause });
    this.name = "TimeoutError";
  }
}

/**
 * Runs `call` with a deadline, on cockatiel's cooperative timeout: `call` gets a signal that
 * aborts after `timeoutMs` (or when the caller's `signal` aborts) and must stop on it. A call
 * that fails because the deadline passed rejects with {@link TimeoutError}; a caller's abort
 * rejects with whatever `call` threw for it.
 */
export async function withTimeout<T>(timeoutMs: number, call: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
  let timedOut = false;
  const policy = timeout(timeoutMs, TimeoutStrategy.Cooperative);
  const listener = policy.onTimeout(() => {
    timedOut = !signal?.aborted;
  });
  try {
    return await policy.execute(({ signal: deadline }) => call(deadline), signal);
  } catch (err) {
    if (timedOut) throw new TimeoutError(timeoutMs, err);
    throw err;
  } finally {
    listener.dispose();
  }
}
