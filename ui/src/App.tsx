import { lazy, Suspense, useCallback, useEffect, useMemo, useState } from "react";
import { Api, Me } from "./api";
import { Link } from "./components/Link";
import { navigate, useLocation } from "./router";
import { forget, isAdmin, Session, SessionContext, store, storedActingUser, storedKey } from "./session";
import { applyTheme, currentTheme } from "./theme";
import { SignIn } from "./pages/SignIn";
import { MemoriesPage } from "./pages/Memories";
import { MemoryPage } from "./pages/Memory";
import { SearchPage } from "./pages/Search";
import { CoreMemoryPage } from "./pages/CoreMemory";
import { NamespacesPage } from "./pages/Namespaces";
import { ProfilePage } from "./pages/Profile";
import { SystemPage } from "./pages/System";
import { TransferPage } from "./pages/Transfer";
import { UserPicker } from "./components/UserPicker";

// cytoscape is most of the bundle: loaded with the Graph page only.
const GraphPage = lazy(() => import("./pages/Graph").then((m) => ({ default: m.GraphPage })));

const PAGES = [
  ["/memories", "Memories"],
  ["/search", "Search"],
  ["/graph", "Graph"],
  ["/core-memory", "Core memory"],
  ["/profile", "Profile"],
  ["/namespaces", "Apps & agents"],
  ["/system", "System"],
  ["/transfer", "Export / import"],
] as const;

export function App() {
  const [signedIn, setSignedIn] = useState<{ key: string; me: Me } | null>(null);
  const [actingUser, setActingUser] = useState<string | null>(storedActingUser());
  const [notice, setNotice] = useState<string | null>(null);
  const [restoring, setRestoring] = useState(() => storedKey() !== null);

  const signOut = useCallback((message: string | null = null) => {
    forget();
    setSignedIn(null);
    setActingUser(null);
    setNotice(message);
  }, []);

  const api = useMemo(
    () => (signedIn ? new Api(signedIn.key, signedIn.me && isAdmin(signedIn.me) ? actingUser : signedIn.me.user_id, (m) => signOut(`Signed out: ${m}`)) : null),
    [signedIn, actingUser, signOut],
  );

  // A reload of the tab: the stored key is checked again.
  useEffect(() => {
    const key = storedKey();
    if (!key) return;
    new Api(key, null, () => {})
      .me()
      .then((me) => setSignedIn({ key, me }))
      .catch((exc) => signOut(`Signed out: ${exc.message}`))
      .finally(() => setRestoring(false));
  }, [signOut]);

  if (restoring) return <p className="centered" aria-live="polite">Checking your key…</p>;
  if (!signedIn || !api) {
    return (
      <SignIn
        notice={notice}
        onSignedIn={(key, me, user) => {
          store(key, user);
          setActingUser(user);
          setNotice(null);
          setSignedIn({ key, me });
        }}
      />
    );
  }
  const session: Session = { key: signedIn.key, me: signedIn.me, actingUser: api.userId, api };
  return (
    <SessionContext.Provider value={session}>
      <Shell
        onSignOut={() => signOut(null)}
        onActAs={(user) => {
          store(signedIn.key, user);
          setActingUser(user);
        }}
      />
    </SessionContext.Provider>
  );
}

function Shell({ onSignOut, onActAs }: { onSignOut: () => void; onActAs: (user: string) => void }) {
  const { path } = useLocation();
  const [menuOpen, setMenuOpen] = useState(false);
  const [theme, setTheme] = useState(currentTheme());
  useEffect(() => {
    if (path === "/") navigate("/memories");
    setMenuOpen(false);
  }, [path]);
  return (
    <SessionContext.Consumer>
      {(session) => (
        <div className="shell">
          <a className="skip" href="#main">Skip to content</a>
          <header className="top">
            <button className="menu" aria-expanded={menuOpen} aria-controls="nav" onClick={() => setMenuOpen(!menuOpen)}>
              Menu
            </button>
            <strong className="brand">recallstack</strong>
            <div className="who">
              {session && isAdmin(session.me) ? (
                <UserPicker value={session.actingUser} onChange={onActAs} />
              ) : (
                <span>user <code data-testid="acting-user">{session?.actingUser}</code></span>
              )}
              <button
                aria-label={`Switch to ${theme === "dark" ? "light" : "dark"} mode`}
                onClick={() => {
                  const next = theme === "dark" ? "light" : "dark";
                  applyTheme(next);
                  setTheme(next);
                }}
              >
                {theme === "dark" ? "Light" : "Dark"} mode
              </button>
              <button onClick={onSignOut}>Sign out</button>
            </div>
          </header>
          <nav id="nav" className={menuOpen ? "open" : ""} aria-label="Main">
            <ul>
              {PAGES.map(([href, label]) => (
                <li key={href}>
                  <Link href={href} aria-current={path.startsWith(href) ? "page" : undefined}>{label}</Link>
                </li>
              ))}
            </ul>
          </nav>
          <main id="main" tabIndex={-1}>
            {session?.actingUser ? <Page key={session.actingUser} path={path} /> : <p>Pick the user to act for (an admin key acts for any user but must name one).</p>}
          </main>
        </div>
      )}
    </SessionContext.Consumer>
  );
}

function Page({ path }: { path: string }) {
  const detail = path.match(/^\/memories\/([0-9a-fA-F-]{36})$/);
  if (detail) return <MemoryPage id={detail[1]} />;
  switch (path) {
    case "/":
    case "/memories":
      return <MemoriesPage />;
    case "/search":
      return <SearchPage />;
    case "/graph":
      return (
        <Suspense fallback={<p aria-live="polite">Loading the graph…</p>}>
          <GraphPage />
        </Suspense>
      );
    case "/core-memory":
      return <CoreMemoryPage />;
    case "/profile":
      return <ProfilePage />;
    case "/namespaces":
      return <NamespacesPage />;
    case "/system":
      return <SystemPage />;
    case "/transfer":
      return <TransferPage />;
    default:
      return (
        <section>
          <h1>Not found</h1>
          <p>No page at {path}. <Link href="/memories">Memories</Link></p>
        </section>
      );
  }
}
