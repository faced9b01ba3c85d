import { useEffect, useState } from "react";
import { signIn, singleSignOnOf } from "../api.js";
import { ErrorBox } from "../ui.js";

/**
 * Sign-in with the organisation's OpenID provider (the tenant's, when it has one: "Sign in with
 * <provider>") or with an API key; neither a key nor a token is ever kept in the page.
 */
export function SignIn({ onSignedIn, ended }: { onSignedIn: () => void; ended: boolean }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const [tenant, setTenant] = useState(() => new URLSearchParams(window.location.search).get("tenant") ?? "");
  const [provider, setProvider] = useState<string>();
  useEffect(() => {
    setProvider(undefined);
    const slug = tenant.trim();
    if (slug === "") return;
    let current = true;
    const timer = setTimeout(() => {
      void singleSignOnOf(slug).then((p) => {
        if (current) setProvider(p);
      });
    }, 250);
    return () => {
      current = false;
      clearTimeout(timer);
    };
  }, [tenant]);
  const ssoUrl = `/auth/oidc/login?tenant=${encodeURIComponent(tenant.trim())}&redirect_uri=${encodeURIComponent(`${window.location.origin}/console/`)}`;
  return (
    <main className="center">
      <div className="card signin">
        <h1>Sign in to Nexus</h1>
        {ended ? <p className="muted">Your session ended. Sign in again.</p> : null}
        <section>
          <h2>With your organisation</h2>
          <label htmlFor="tenant">Organisation (tenant id)</label>
          <input id="tenant" autoComplete="organization" placeholder="acme" value={tenant} onChange={(e) => setTenant(e.target.value)} />
          {provider ? (
            <a className="button" href={ssoUrl}>
              Sign in with {provider}
            </a>
          ) : tenant.trim() !== "" ? (
            <p className="muted">No single sign-on for this organisation: use an API key.</p>
          ) : null}
        </section>
        <form
          onSubmit={async (e) => {
            e.preventDefault();
            setBusy(true);
            setError(undefined);
            try {
              await signIn(key);
              setKey("");
              onSignedIn();
            } catch (err) {
              setError(err);
            } finally {
              setBusy(false);
            }
          }}
        >
          <h2>With an API key</h2>
          <label htmlFor="api-key">API key</label>
          <input
            id="api-key"
            type="password"
            autoComplete="off"
            required
            placeholder="nxs_…"
            value={key}
            onChange={(e) => setKey(e.target.value)}
          />
          <p className="muted">The key is exchanged for a session cookie; the console never stores it.</p>
          <button type="submit" disabled={busy || key === ""}>
            {busy ? "Signing in…" : "Sign in"}
          </button>
          {error ? <ErrorBox error={error} /> : null}
        </form>
      </div>
    </main>
  );
}
