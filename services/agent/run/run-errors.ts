import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { RetryInfoSchema } from "../../../gen/google/rpc/error_details_pb.js";
import { RunErrorSchema, type RunError } from "../../../gen/nexus/agent/v1/agent_service_pb.js";
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
 * True when a failure says the dependency is unwell (counts against its circuit breaker):
 * unavailable, timed out, failing internally, or its connection reset (CANCELLED or a bare
 * ABORTED from the transport — callers check their own cancellation first). Refusals of the request itself
 * (not found, bad argument, permission) say nothing about its health.
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
