import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { AgentService } from "../../gen/nexus/agent/v1/agent_service_pb.js";
import { AuditService } from "../../gen/nexus/audit/v1/audit_service_pb.js";
import { AuthService } from "../../gen/nexus/auth/v1/auth_service_pb.js";
import { IngestionService } from "../../gen/nexus/ingestion/v1/ingestion_service_pb.js";
import { MeteringService } from "../../gen/nexus/metering/v1/metering_service_pb.js";
import { RetrievalService } from "../../gen/nexus/retrieval/v1/retrieval_service_pb.js";

/** The console's CSRF cookie and header (services/kernel/authz/console-session.ts). */
const CSRF_COOKIE = "nexus_csrf";
const CSRF_HEADER = "x-nexus-csrf";

/** The session's CSRF token, from the readable cookie the sign-in set (never stored elsewhere). */
export function csrfToken(): string {
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === CSRF_COOKIE) return rest.join("=");
  }
  return "";
}

/** Every call carries the CSRF token; the session cookie travels by itself (same origin). */
const csrf: Interceptor = (next) => (req) => {
  req.header.set(CSRF_HEADER, csrfToken());
  return next(req);
};

/** Connect over HTTP/1.1 or 2 to the origin that served the page: no CORS, no second API. */
export const transport = createConnectTransport({
  baseUrl: window.location.origin,
  interceptors: [csrf],
  fetch: (input, init) => globalThis.fetch(input, { ...init, credentials: "same-origin" }),
});

export const auth = createClient(AuthService, transport);
export const agent = createClient(AgentService, transport);
export const ingestion = createClient(IngestionService, transport);
export const retrieval = createClient(RetrievalService, transport);
export const metering = createClient(MeteringService, transport);
export const audit = createClient(AuditService, transport);

/** Signs in with an API key: the server sets the session cookies (docs/console.md). */
export async function signIn(apiKey: string): Promise<void> {
  const res = await fetch("/auth/session", {
    method: "POST",
    credentials: "same-origin",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ apiKey }),
  });
  if (!res.ok) {
    const body = (await res.json().catch(() => ({}))) as { reason?: string; message?: string };
    throw new Refusal(body.reason ?? "AUTH_UNAUTHORIZED", body.message ?? "the key was refused");
  }
}

/** The OpenID provider a tenant signs its people in with (its host), or undefined. */
export async function singleSignOnOf(tenantSlug: string): Promise<string | undefined> {
  const res = await fetch(`/auth/oidc/provider?tenant=${encodeURIComponent(tenantSlug)}`, { credentials: "same-origin" }).catch(
    () => undefined,
  );
  if (!res?.ok) return undefined;
  const body = (await res.json().catch(() => ({}))) as { name?: string };
  return body.name;
}

/** Ends the session on the server and clears its cookies (an API-key or a single sign-on session alike). */
export async function signOut(): Promise<void> {
  await fetch("/auth/session", { method: "DELETE", credentials: "same-origin", headers: { [CSRF_HEADER]: csrfToken() } });
}

/** A refusal as a person needs it. */
export class Refusal extends Error {
  constructor(
    readonly reason: string,
    readonly detail: string,
  ) {
    super(detail);
  }
}

/** What to do about each reason the API gives (ErrorInfo.reason), in the person's words. */
const ADVICE: Readonly<Record<string, { title: string; action: string }>> = {
  AUTH_UNAUTHORIZED: { title: "Not signed in", action: "Sign in again with a valid API key." },
  AUTH_REVOKED_KEY: { title: "This key was revoked", action: "Ask an admin for a new key, then sign in with it." },
  AUTH_EXPIRED_KEY: { title: "This key has expired", action: "Ask an admin for a new key, then sign in with it." },
  AUTH_INACTIVE_KEY: { title: "This key is inactive", action: "An admin can reactivate it on the Keys screen." },
  TENANT_SUSPENDED: { title: "Your tenant is suspended", action: "Contact your platform operator." },
  CSRF_TOKEN_INVALID: { title: "The page is out of date", action: "Reload the page; if it persists, sign in again." },
  RBAC_FORBIDDEN: { title: "Your role cannot do this", action: "Ask a tenant admin for a key with a stronger role." },
  TENANT_MISMATCH: { title: "That belongs to another tenant", action: "Use a key of that tenant." },
  FEATURE_NOT_ENABLED: { title: "Not part of your plan", action: "Ask your platform operator to enable the feature." },
  NOT_FOUND: { title: "Not found", action: "It may have been deleted; refresh the list." },
  ALREADY_EXISTS: { title: "Already exists", action: "Choose another name or id." },
  KEY_LIMIT_REACHED: { title: "Key limit reached", action: "Revoke a key you no longer need, then try again." },
  QUOTA_EXCEEDED: { title: "Quota used up", action: "Wait until the quota window resets (Usage screen) or ask for a bigger plan." },
  RATE_LIMITED: { title: "Too many requests", action: "Wait a moment and try again." },
  DOCUMENT_BUSY: { title: "The document is being processed", action: "Wait until it finishes, then try again." },
  REINDEX_REQUIRED: { title: "Reindex needed", action: "Reindex the corpus's documents, then try again." },
  WRITE_FROZEN: { title: "Changes are paused", action: "An operator froze writes (maintenance); try again later." },
  DEPENDENCY_UNAVAILABLE: { title: "A service is unavailable", action: "Try again in a moment." },
  SERVICE_BUSY: { title: "Nexus is busy", action: "Try again in a moment." },
  RUN_ON_OTHER_REPLICA: { title: "Reconnecting to the answer", action: "Try again in a moment." },
  RUN_ENDED: { title: "The answer is finished", action: "Open the session to read it." },
  REQUEST_TOO_LARGE: { title: "File too large for the browser", action: "Upload it with `nexus ingest`, which streams it." },
  UNSUPPORTED_MEDIA_TYPE: {
    title: "File type not supported",
    action: "Upload PDF, DOCX, text, Markdown, HTML or JSON.",
  },
  INVALID_ARGUMENT: { title: "Check your input", action: "Correct the highlighted value and try again." },
  VALIDATION_FAILED: { title: "Check your input", action: "Correct the value and try again." },
  MANAGED_BY_KUBERNETES: {
    title: "Managed by Kubernetes",
    action: "Change the Kubernetes resource that declares it (kubectl or your GitOps repository) instead.",
  },
  CONCURRENCY_CONFLICT: { title: "Someone saved a newer version", action: "Reload the workflow, reapply your change and save again." },
};

const BY_CODE: Partial<Record<Code, { title: string; action: string }>> = {
  [Code.Unavailable]: { title: "Nexus cannot be reached", action: "Check your connection; the console retries by itself." },
  [Code.DeadlineExceeded]: { title: "That took too long", action: "Try again." },
  [Code.Internal]: {
    title: "Something went wrong on the server",
    action: "Try again; if it persists, give the operator the time it happened.",
  },
};

/** A refusal or failure as {title, detail, action} — never a bare code. */
export function describe(err: unknown): { title: string; detail: string; action: string; reason: string } {
  if (err instanceof Refusal) {
    const advice = ADVICE[err.reason] ?? { title: "Refused", action: "Try again." };
    return { ...advice, detail: err.detail, reason: err.reason };
  }
  const ce = ConnectError.from(err);
  const reason = ce.findDetails(ErrorInfoSchema)[0]?.reason ?? "";
  const advice = ADVICE[reason] ?? BY_CODE[ce.code] ?? { title: "The request failed", action: "Try again." };
  return { ...advice, detail: ce.rawMessage, reason };
}

/** The ErrorInfo.reason of a failed call ("" when none). */
export function errorReason(err: unknown): string {
  return ConnectError.from(err).findDetails(ErrorInfoSchema)[0]?.reason ?? "";
}

/** True when WatchRun says the run is over and its events are gone (read the session instead). */
export function runEnded(err: unknown): boolean {
  const reason = errorReason(err);
  return reason === "RUN_ENDED" || reason === "NOT_FOUND";
}

/** True when the error means the session is gone (sign in again). */
export function isSignedOut(err: unknown): boolean {
  return err instanceof ConnectError && err.code === Code.Unauthenticated;
}
