import type { ConnectError } from "@connectrpc/connect";
import { domainError } from "../errors.js";
import type { ForbiddenReason } from "./authorize.js";

/**
 * Refusals raised by code in this process (handlers, `requireFeature`, `tenantScope`) that no
 * rbac.forbidden event records yet. The authorization interceptor records each one once when
 * it passes by. An error that came back from another service is a different object (decoded
 * from the wire), so the service that refused records it and callers passing it on do not.
 */
const unrecorded = new WeakSet<object>();

/**
 * A PERMISSION_DENIED refusal (RBAC_FORBIDDEN, TENANT_MISMATCH or FEATURE_NOT_ENABLED) decided
 * inside a handler — e.g. an admin granting the owner role. Throw it; the interceptor records
 * one rbac.forbidden event for it. Metadata `required_role` and `feature_key` go into the event.
 */
export function authorizationRefusal(reason: ForbiddenReason, message: string, metadata: Record<string, string> = {}): ConnectError {
  const err = domainError(reason, message, metadata);
  unrecorded.add(err);
  return err;
}

/** True (once) when `err` is a local refusal not yet recorded. */
export function takeUnrecordedRefusal(err: unknown): boolean {
  if (typeof err !== "object" || err === null || !unrecorded.has(err)) return false;
  unrecorded.delete(err);
  return true;
}
