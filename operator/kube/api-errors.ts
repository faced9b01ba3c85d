import { ConnectError } from "@connectrpc/connect";

/**
 * Reading errors of the Kubernetes API as @kubernetes/client-node raises them: `ApiException`
 * (generated clients: `code` + parsed `body` Status) or a plain Error with `statusCode`
 * (watches).
 */

interface StatusBody {
  reason?: string;
  message?: string;
}

/** The HTTP status of a Kubernetes API error, or undefined for network and other errors. */
export function httpStatus(err: unknown): number | undefined {
  // ConnectError.code is a gRPC code (1-16), not an HTTP status.
  if (!err || typeof err !== "object" || err instanceof ConnectError) return undefined;
  const e = err as { code?: unknown; statusCode?: unknown };
  if (typeof e.code === "number") return e.code;
  if (typeof e.statusCode === "number") return e.statusCode;
  return undefined;
}

function statusBody(err: unknown): StatusBody | undefined {
  const body = (err as { body?: unknown } | undefined)?.body;
  if (typeof body === "string") {
    try {
      return JSON.parse(body) as StatusBody;
    } catch {
      return { message: body };
    }
  }
  return body && typeof body === "object" ? (body as StatusBody) : undefined;
}

/** 409 Conflict: someone else wrote the object since we read it (stale resourceVersion). */
export function isConflict(err: unknown): boolean {
  return httpStatus(err) === 409 && statusBody(err)?.reason !== "AlreadyExists";
}

/** 409 AlreadyExists on create. */
export function isAlreadyExists(err: unknown): boolean {
  return httpStatus(err) === 409 && statusBody(err)?.reason === "AlreadyExists";
}

/** 404 Not Found. */
export function isNotFound(err: unknown): boolean {
  return httpStatus(err) === 404;
}

/** A one-line description for logs, conditions and events (the API's Status message when there is one). */
export function describeKubeError(err: unknown): string {
  const status = httpStatus(err);
  const body = statusBody(err);
  if (status !== undefined) return `Kubernetes API ${status}${body?.reason ? ` ${body.reason}` : ""}: ${body?.message ?? "no message"}`;
  return err instanceof Error ? err.message : String(err);
}
