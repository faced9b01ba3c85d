import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";

/** How the SDK retries calls the server refused before doing any work. */
export interface RetryPolicy {
  /** Attempts in all, the first included. Default 4; 1 turns retries off. */
  maxAttempts?: number;
  /** Longest single wait, whatever RetryInfo asks. Default 10 000 ms. */
  maxDelayMs?: number;
  /** Wait when the error carries no RetryInfo (doubles per attempt). Default 200 ms. */
  initialDelayMs?: number;
}

/**
 * Refusals that guarantee the call did nothing, so any call may be retried after them: rate
 * limits, a full replica, a failover's write freeze, an idempotent duplicate still running, the
 * rate limiter unreachable (closed mode).
 */
const REFUSED_BEFORE_WORK = new Set([
  "RATE_LIMITED",
  "SERVICE_BUSY",
  "WRITE_FROZEN",
  "IDEMPOTENCY_IN_PROGRESS",
  "RATE_LIMIT_UNAVAILABLE",
  "SERVICE_DRAINING",
]);

/** The server's ErrorInfo reason of an error, if any. */
function reasonOf(err: ConnectError): string | undefined {
  return err.findDetails(ErrorInfoSchema)[0]?.reason;
}

/**
 * Why Nexus refused a call: the `ErrorInfo.reason` it attached (e.g. `INVALID_ARGUMENT`,
 * `RATE_LIMITED`; docs/architecture.md), or undefined for errors without one (network, CORS).
 */
export function errorReason(err: unknown): string | undefined {
  return err instanceof ConnectError ? reasonOf(err) : undefined;
}

/** RetryInfo's delay in milliseconds, if the error carries one. */
export function retryDelayOf(err: unknown): number | undefined {
  if (!(err instanceof ConnectError)) return undefined;
  const d = err.findDetails(RetryInfoSchema)[0]?.retryDelay;
  if (!d) return undefined;
  return Number(d.seconds) * 1000 + Math.round(d.nanos / 1e6);
}

/**
 * Whether a failed call may be sent again: refusals that did no work always; UNAVAILABLE
 * otherwise only when the call is safe to repeat (a read, or a write carrying an
 * idempotency-key header, which the server answers once).
 */
export function isRetryable(err: unknown, safeToRepeat: boolean): boolean {
  if (!(err instanceof ConnectError)) return false;
  const reason = reasonOf(err);
  if (reason !== undefined && REFUSED_BEFORE_WORK.has(reason)) return true;
  return safeToRepeat && err.code === Code.Unavailable;
}

const READ_PREFIX = /^(Get|List|Watch|Search|Export|Verify)([A-Z]|$)|^(WhoAmI|Authenticate)$/;

/**
 * Runs `call` and, when it fails with a retryable error ({@link isRetryable}), waits as the
 * server's RetryInfo asks (else a doubling delay, with jitter) and runs it again, up to
 * `maxAttempts`. For calls the interceptor cannot repeat itself, such as a client stream that
 * must be re-created (UploadDocument).
 */
export async function withRetry<T>(call: () => Promise<T>, policy: RetryPolicy = {}, safeToRepeat = false): Promise<T> {
  const maxAttempts = policy.maxAttempts ?? 4;
  const maxDelay = policy.maxDelayMs ?? 10_000;
  let delay = policy.initialDelayMs ?? 200;
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      if (attempt >= maxAttempts || !isRetryable(err, safeToRepeat)) throw err;
      const wait = Math.min(maxDelay, retryDelayOf(err) ?? delay * (0.5 + Math.random() / 2));
      delay *= 2;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

/**
 * The SDK's retry interceptor for unary calls: see {@link withRetry}. Reads and calls carrying
 * an `idempotency-key` header are also retried after UNAVAILABLE.
 */
export function retryInterceptor(policy: RetryPolicy = {}): Interceptor {
  return (next) => async (req) => {
    if (req.stream || (policy.maxAttempts ?? 4) <= 1) return next(req);
    const safe = READ_PREFIX.test(req.method.name) || req.header.has("idempotency-key");
    return withRetry(() => next(req), policy, safe);
  };
}

/**
 * Call options that send an idempotency key: the server runs the call once and answers repeats
 * (same key, same request, within 24 h) with the stored answer and `idempotency-replayed: true`.
 *
 * ```ts
 * await nexus.auth.createApiKey(req, withIdempotencyKey(crypto.randomUUID()));
 * ```
 */
export function withIdempotencyKey(key: string): { headers: Record<string, string> } {
  return { headers: { "idempotency-key": key } };
}
