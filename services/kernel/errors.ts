import { create } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";

/** `google.rpc.ErrorInfo.domain` of every Nexus error. */
export const ERROR_DOMAIN = "nexus.dev";

/**
 * Every machine-readable reason Nexus returns, with its gRPC code. Reasons keep the
 * machine codes earlier deployments returned, so clients can branch on them; the code is what generic gRPC
 * tooling sees. Add a reason here before using it — `domainError` accepts only these.
 */
export const REASONS = {
  // request shape
  INVALID_ARGUMENT: Code.InvalidArgument,
  VALIDATION_FAILED: Code.InvalidArgument,
  REQUEST_TOO_LARGE: Code.ResourceExhausted,
  UNSUPPORTED_MEDIA_TYPE: Code.InvalidArgument,
  DOCUMENT_UNREADABLE: Code.InvalidArgument,
  INVALID_CURSOR: Code.InvalidArgument,
  // a destructive request whose confirmation field does not repeat what it destroys
  CONFIRMATION_MISMATCH: Code.InvalidArgument,
  // authentication and authorization
  AUTH_UNAUTHORIZED: Code.Unauthenticated,
  AUTH_REVOKED_KEY: Code.Unauthenticated,
  AUTH_EXPIRED_KEY: Code.Unauthenticated,
  AUTH_INACTIVE_KEY: Code.Unauthenticated,
  // edge agents' tokens (docs/edge.md): checked by the integration service, not the gate
  EDGE_TOKEN_INVALID: Code.Unauthenticated,
  EDGE_TOKEN_REVOKED: Code.Unauthenticated,
  EDGE_APP_NOT_ASSIGNED: Code.PermissionDenied,
  CSRF_TOKEN_INVALID: Code.PermissionDenied,
  TENANT_SUSPENDED: Code.PermissionDenied,
  // bearer access tokens (JWTs) of a tenant's OpenID Connect issuer (docs/identity.md)
  AUTH_TOKEN_EXPIRED: Code.Unauthenticated,
  AUTH_TOKEN_AUDIENCE: Code.Unauthenticated,
  AUTH_TOKEN_ISSUER: Code.Unauthenticated,
  AUTH_TOKEN_INVALID: Code.Unauthenticated,
  AUTH_UNKNOWN_USER: Code.Unauthenticated,
  IDP_DISCOVERY_FAILED: Code.FailedPrecondition,
  RBAC_FORBIDDEN: Code.PermissionDenied,
  TENANT_MISMATCH: Code.PermissionDenied,
  FEATURE_NOT_ENABLED: Code.PermissionDenied,
  // resources and state
  NOT_FOUND: Code.NotFound,
  ALREADY_EXISTS: Code.AlreadyExists,
  FAILED_PRECONDITION: Code.FailedPrecondition,
  KEY_LIMIT_REACHED: Code.FailedPrecondition,
  DOCUMENT_BUSY: Code.FailedPrecondition,
  REINDEX_REQUIRED: Code.FailedPrecondition,
  // WatchRun (agent): the run ended and its events are no longer held; its answer is in the session
  RUN_ENDED: Code.FailedPrecondition,
  // governance (services/kernel/governance): a legal hold covers what the request would destroy
  LEGAL_HOLD_ACTIVE: Code.FailedPrecondition,
  // an integration object declared by a Kubernetes resource: change the resource, not the object
  MANAGED_BY_KUBERNETES: Code.FailedPrecondition,
  // an erase request needs a second admin: the requester cannot approve it
  SELF_APPROVAL_FORBIDDEN: Code.PermissionDenied,
  CONCURRENCY_CONFLICT: Code.Aborted,
  IDEMPOTENCY_KEY_CONFLICT: Code.AlreadyExists,
  IDEMPOTENCY_IN_PROGRESS: Code.Aborted,
  INVALID_IDEMPOTENCY_KEY: Code.InvalidArgument,
  IDEMPOTENCY_NOT_SUPPORTED: Code.InvalidArgument,
  // encryption at rest (services/kernel/keyring): stored data that does not decrypt is damaged
  // or was crypto-shredded (DATA_LOSS, never garbage); no master key is a set-up mistake.
  DECRYPTION_FAILED: Code.DataLoss,
  KEYRING_NOT_CONFIGURED: Code.FailedPrecondition,
  // limits and availability
  QUOTA_EXCEEDED: Code.ResourceExhausted,
  EDGE_QUEUE_FULL: Code.ResourceExhausted,
  INGRESS_QUEUE_FULL: Code.ResourceExhausted,
  RATE_LIMITED: Code.ResourceExhausted,
  // refused authentication attempts from one address or against one key id (docs/security.md)
  AUTH_RATE_LIMITED: Code.ResourceExhausted,
  RATE_LIMIT_UNAVAILABLE: Code.Unavailable,
  SERVICE_BUSY: Code.Unavailable,
  SERVICE_DRAINING: Code.Unavailable,
  // WatchRun reached an agent replica that does not serve the run (retry: the ingress routes by run)
  RUN_ON_OTHER_REPLICA: Code.Unavailable,
  WRITE_FROZEN: Code.Unavailable,
  DEPENDENCY_UNAVAILABLE: Code.Unavailable,
  DEADLINE_EXCEEDED: Code.DeadlineExceeded,
  CANCELLED: Code.Canceled,
  // agent tools (services/modules): a module's call stopped at its limits or refused
  MANIFEST_INVALID: Code.InvalidArgument,
  TOOL_INPUT_INVALID: Code.InvalidArgument,
  TOOL_OUTPUT_INVALID: Code.FailedPrecondition,
  MODULE_NOT_ACTIVE: Code.FailedPrecondition,
  MODULE_ERROR: Code.FailedPrecondition,
  MODULE_TIMEOUT: Code.DeadlineExceeded,
  MODULE_MEMORY_LIMIT: Code.ResourceExhausted,
  MODULE_EGRESS_DENIED: Code.PermissionDenied,
  CREDENTIAL_MISSING: Code.FailedPrecondition,
  // not ours to explain in detail (the cause is logged, never sent)
  INTERNAL: Code.Internal,
  UNIMPLEMENTED: Code.Unimplemented,
} as const satisfies Record<string, Code>;

/** A reason Nexus may return. */
export type Reason = keyof typeof REASONS;

/** Options of {@link domainError}. */
export interface DomainErrorOptions {
  /** Adds google.rpc.RetryInfo: clients should wait this long before retrying. */
  retryAfterMs?: number;
  /** The underlying error; logged by the server, never sent to the client. */
  cause?: unknown;
  /** Response headers (trailers in gRPC) sent with the error, e.g. `retry-after`. */
  headers?: Record<string, string>;
}

/**
 * Builds the ConnectError for a domain reason: the reason's code, a message a person can act
 * on, and a google.rpc.ErrorInfo detail (reason, domain "nexus.dev", string metadata).
 */
export function domainError(
  reason: Reason,
  message: string,
  metadata: Record<string, string | number | boolean> = {},
  options: DomainErrorOptions = {},
): ConnectError {
  const meta: Record<string, string> = {};
  for (const [k, v] of Object.entries(metadata)) meta[k] = String(v);
  const details: ConstructorParameters<typeof ConnectError>[3] = [
    { desc: ErrorInfoSchema, value: { reason, domain: ERROR_DOMAIN, metadata: meta } },
  ];
  if (options.retryAfterMs !== undefined) {
    const ms = Math.max(0, Math.round(options.retryAfterMs));
    details.push({
      desc: RetryInfoSchema,
      value: {
        retryDelay: create(DurationSchema, {
          seconds: BigInt(Math.floor(ms / 1000)),
          nanos: (ms % 1000) * 1_000_000,
        }),
      },
    });
  }
  const headers = options.headers ? new Headers(options.headers) : undefined;
  return new ConnectError(message, REASONS[reason], headers, details, options.cause);
}

/** The ErrorInfo reason carried by an error (ours or a peer's), if any. */
export function errorReason(err: unknown): string | undefined {
  if (!(err instanceof ConnectError)) return undefined;
  return err.findDetails(ErrorInfoSchema)[0]?.reason;
}

/** The ErrorInfo metadata carried by an error, or an empty object. */
export function errorMetadata(err: unknown): Record<string, string> {
  if (!(err instanceof ConnectError)) return {};
  return { ...(err.findDetails(ErrorInfoSchema)[0]?.metadata ?? {}) };
}

/** True when `err` is a Nexus domain error with this reason. */
export function isReason(err: unknown, reason: Reason): boolean {
  return errorReason(err) === reason;
}
