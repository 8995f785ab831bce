// The signed-in key lives in sessionStorage: it survives a reload of this tab but not the
// tab itself, and is not shared with other tabs or written to disk like localStorage would be.
// It is a bearer secret; the page's Content-Security-Policy (no third-party scripts) keeps
// other code from reading it. Signing out clears it.
import { createContext, useContext } from "react";
import { Api, Me } from "./api";

const KEY = "recallstack.key";
const ACTING = "recallstack.user";

export type Session = { key: string; me: Me; actingUser: string | null; api: Api };

export function storedKey(): string | null {
  return sessionStorage.getItem(KEY);
}
export function storedActingUser(): string | null {
  return sessionStorage.getItem(ACTING);
}
export function store(key: string, actingUser: string | null) {
  sessionStorage.setItem(KEY, key);
  if (actingUser) sessionStorage.setItem(ACTING, actingUser);
  else sessionStorage.removeItem(ACTING);
}
export function forget() {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(ACTING);
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("no session");
  return session;
}

export const isAdmin = (me: Me) => me.scopes.includes("admin");
