// A tiny history-API router: the gateway answers every UI path with index.html, so deep
// links (/memories/<id>) work on reload.
import { useEffect, useState } from "react";

export function navigate(to: string) {
  if (to === location.pathname + location.search) return;
  history.pushState(null, "", to);
  window.dispatchEvent(new PopStateEvent("popstate"));
}

export function useLocation(): { path: string; query: URLSearchParams } {
  const [where, setWhere] = useState(() => location.pathname + location.search);
  useEffect(() => {
    const changed = () => setWhere(location.pathname + location.search);
    window.addEventListener("popstate", changed);
    return () => window.removeEventListener("popstate", changed);
  }, []);
  const url = new URL(where, location.origin);
  return { path: url.pathname, query: url.searchParams };
}

// A left click without modifiers moves within the app; others keep the browser's behaviour.
export function linkClick(event: React.MouseEvent<HTMLAnchorElement>) {
  if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  navigate(event.currentTarget.getAttribute("href") ?? "/");
}
