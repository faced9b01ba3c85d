import { type ReactNode, useState } from "react";
import { describe, isSignedOut } from "./api.js";

/** A failure as the person needs it: what happened, the server's explanation, what to do. */
export function ErrorBox({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  const d = describe(error);
  return (
    <div className="error" role="alert">
      <strong>{d.title}.</strong> <span>{d.detail}</span>
      <p className="action">{d.action}</p>
      {isSignedOut(error) ? (
        <button type="button" onClick={() => window.location.reload()}>
          Sign in again
        </button>
      ) : null}
      {onRetry && !isSignedOut(error) ? (
        <button type="button" onClick={onRetry}>
          Try again
        </button>
      ) : null}
    </div>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p className="muted" role="status" aria-live="polite">
      Loading {what}…
    </p>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="empty">{children}</p>;
}

export function Section({ title, children, actions }: { title: string; children: ReactNode; actions?: ReactNode }) {
  return (
    <section aria-label={title}>
      <div className="section-head">
        <h2>{title}</h2>
        {actions}
      </div>
      {children}
    </section>
  );
}

/** A date/time from a protobuf Timestamp, in the browser's locale. */
export function when(ts: { seconds: bigint; nanos: number } | undefined): string {
  if (!ts) return "—";
  return new Date(Number(ts.seconds) * 1000 + ts.nanos / 1e6).toLocaleString();
}

/** A new secret (key, app key, master secret): shown once, with a copy button; gone when dismissed. */
export function Secret({ secret, onDone, label = "key" }: { secret: string; onDone: () => void; label?: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <div className="secret" role="status">
      <p>
        <strong>Copy this {label} now — it is shown only once.</strong>
      </p>
      <code data-testid="new-secret">{secret}</code>{" "}
      <button
        type="button"
        onClick={async () => {
          await navigator.clipboard?.writeText(secret).catch(() => undefined);
          setCopied(true);
        }}
      >
        {copied ? "Copied" : "Copy"}
      </button>{" "}
      <button type="button" onClick={onDone}>
        Done
      </button>
    </div>
  );
}
