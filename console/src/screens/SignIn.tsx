import { useState } from "react";
import { signIn } from "../api.js";
import { ErrorBox } from "../ui.js";

/** Sign-in with an API key; the key goes to the server once and is never kept in the page. */
export function SignIn({ onSignedIn, ended }: { onSignedIn: () => void; ended: boolean }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  return (
    <main className="center">
      <form
        className="card signin"
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
        <h1>Sign in to Nexus</h1>
        {ended ? <p className="muted">Your session ended. Sign in again.</p> : null}
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
    </main>
  );
}
