import { useState } from "react";
import { Api, Me } from "../api";
import { isAdmin } from "../session";
import { Status } from "../components/Status";

const USER_ID = /^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$/;

// Sign in with an API key, checked with GET /v1/me. An admin key must also name the user it acts for.
export function SignIn({ notice, onSignedIn }: { notice: string | null; onSignedIn: (key: string, me: Me, user: string | null) => void }) {
  const [key, setKey] = useState("");
  const [user, setUser] = useState("");
  const [admin, setAdmin] = useState<Me | null>(null);
  const [error, setError] = useState<string | null>(notice);
  const [busy, setBusy] = useState(false);

  async function submit(event: React.FormEvent) {
    event.preventDefault();
    setError(null);
    if (admin) {
      if (!USER_ID.test(user)) return setError("Name the user to act for (1-128 of A-Z a-z 0-9 _ . : @ -).");
      return onSignedIn(key.trim(), admin, user);
    }
    setBusy(true);
    try {
      const me = await new Api(key.trim(), null, () => {}).me();
      if (isAdmin(me)) setAdmin(me);
      else onSignedIn(key.trim(), me, null);
    } catch (exc) {
      setError((exc as Error).message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="signin" id="main">
      <form onSubmit={submit} aria-describedby="signin-help">
        <h1>recallstack</h1>
        <p id="signin-help">Sign in with an API key (<code>recallstack keys create</code> makes one). It is kept in this tab only.</p>
        <label htmlFor="api-key">API key</label>
        <input id="api-key" name="api-key" type="password" autoComplete="off" value={key} onChange={(e) => { setKey(e.target.value); setAdmin(null); }} required autoFocus />
        {admin && (
          <>
            <label htmlFor="act-for">Act for user</label>
            <input id="act-for" name="act-for" value={user} onChange={(e) => setUser(e.target.value)} required autoFocus />
            <p className="hint">This is an admin key ({admin.key_prefix}): it may act for any user but must name one.</p>
          </>
        )}
        <button type="submit" disabled={busy}>{admin ? "Continue" : "Sign in"}</button>
        <Status error={error} busy={busy} />
      </form>
    </main>
  );
}
