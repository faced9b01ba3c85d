import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { RetryInfoSchema } from "../../../gen/google/rpc/error_details_pb.js";
import { type RunError, RunErrorSchema } from "../../../gen/nexus/agent/v1/agent_service_pb.js";
import { isDatabaseUnavailableError } from "../../kernel/db/pg-error.js";
import { domainError, errorMetadata, errorReason } from "../../kernel/errors.js";
import { databaseUnavailableError } from "../../kernel/interceptors/error-normalizing.js";

const GRPC_CODE_NAMES: Readonly<Record<Code, string>> = {
  [Code.Canceled]: "CANCELLED",
  [Code.Unknown]: "UNKNOWN",
  [Code.InvalidArgument]: "INVALID_ARGUMENT",
  [Code.DeadlineExceeded]: "DEADLINE_EXCEEDED",
  [Code.NotFound]: "NOT_FOUND",
  [Code.AlreadyExists]: "ALREADY_EXISTS",
  [Code.PermissionDenied]: "PERMISSION_DENIED",
  [Code.ResourceExhausted]: "RESOURCE_EXHAUSTED",
  [Code.FailedPrecondition]: "FAILED_PRECONDITION",
  [Code.Aborted]: "ABORTED",
  [Code.OutOfRange]: "OUT_OF_RANGE",
  [Code.Unimplemented]: "UNIMPLEMENTED",
  [Code.Internal]: "INTERNAL",
  [Code.Unavailable]: "UNAVAILABLE",
  [Code.DataLoss]: "DATA_LOSS",
  [Code.Unauthenticated]: "UNAUTHENTICATED",
};

/** The gRPC status code name of a code, e.g. "UNAVAILABLE" (what RunError.code and RunFailed.code carry). */
export function grpcCodeName(code: Code): string {
  return GRPC_CODE_NAMES[code] ?? "UNKNOWN";
}

/**
 * What a failure of an accepted run looks like to the client: a ConnectError as is (its
 * code, reason, message, metadata and retry delay), a database outage as UNAVAILABLE with
 * RetryInfo (as the kernel's error normalisation answers RPCs), anything else as INTERNAL with
 * a generic message naming the request id (the cause is logged, never sent).
 */
export function publicError(err: unknown, requestId: string): ConnectError {
  const cause = !(err instanceof ConnectError) ? err : err.code === Code.Internal || err.code === Code.Unknown ? err.cause : undefined;
  if (cause !== undefined && isDatabaseUnavailableError(cause)) return databaseUnavailableError(cause, requestId);
  if (err instanceof ConnectError) {
    if (err.code === Code.Internal || err.code === Code.Unknown || err.code === Code.DataLoss) {
      return domainError("INTERNAL", `internal error (request id ${requestId})`, {}, { cause: err });
    }
    return err;
  }
  return domainError("INTERNAL", `internal error (request id ${requestId})`, {}, { cause: err });
}

/** The `error` event for a failure (see {@link publicError}). */
export function runErrorEvent(err: ConnectError): RunError {
  const retry = err.findDetails(RetryInfoSchema)[0]?.retryDelay;
  return create(RunErrorSchema, {
    code: grpcCodeName(err.code),
    reason: errorReason(err) ?? grpcCodeName(err.code),
    message: err.rawMessage,
    metadata: errorMetadata(err),
    ...(retry ? { retryAfter: retry } : {}),
  });
}

/**
 * True when a failure may mean the dependency could not serve the call — unavailable, timed
 * out, failing internally, or its connection reset (CANCELLED or a bare ABORTED from the
 * transport; callers check their own cancellation first) — so the run falls back (corpus
 * settings), fails open (quota) or retries later (settling the quota). Refusals of the
 * request itself (not found, bad argument, permission) are final. Circuit breakers count a
 * narrower set: {@link countsAgainstBreaker}.
 */
export function isDependencyFailure(err: unknown): boolean {
  if (!(err instanceof ConnectError)) return true;
  return (
    err.code === Code.Unavailable ||
    err.code === Code.Canceled ||
    err.code === Code.DeadlineExceeded ||
    err.code === Code.Internal ||
    err.code === Code.Unknown ||
    err.code === Code.DataLoss ||
    err.code === Code.Unimplemented ||
    // connect-node reports a reset or destroyed stream as ABORTED with no reason.
    (err.code === Code.Aborted && errorReason(err) === undefined)
  );
}

/**
 * The predicate a circuit breaker is called with: true when a failed call says the dependency
 * itself is unwell — unreachable, timed out, its connection reset (CANCELLED or a bare ABORTED
 * from the transport; callers check their own cancellation first), or an answer it could not
 * make sense of (UNKNOWN, DATA_LOSS, UNIMPLEMENTED). False for everything the request itself
 * may have caused, which says nothing about the dependency's health: INVALID_ARGUMENT,
 * NOT_FOUND, PERMISSION_DENIED, UNAUTHENTICATED, FAILED_PRECONDITION, OUT_OF_RANGE,
 * ALREADY_EXISTS, RESOURCE_EXHAUSTED (a tenant's quota or rate limit), a meant ABORTED, and
 * INTERNAL: a dependency that fails on one request's input (a NUL in a query) answers
 * INTERNAL, while one that is down answers UNAVAILABLE. Breakers are shared by every tenant
 * of the replica, so one tenant's bad requests must never open them for the others.
 */
export function countsAgainstBreaker(err: unknown): boolean {
  if (!(err instanceof ConnectError)) return true;
  switch (err.code) {
    case Code.Unavailable:
    case Code.DeadlineExceeded:
    case Code.Canceled:
    case Code.Unknown:
    case Code.DataLoss:
    case Code.Unimplemented:
      return true;
    case Code.Aborted:
      // connect-node reports a reset or destroyed stream as ABORTED with no reason.
      return errorReason(err) === undefined;
    default:
      return false;
  }
}
