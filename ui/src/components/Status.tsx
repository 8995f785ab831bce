// Status and errors for screen readers as well (aria-live).
export function Status({ error, busy, message }: { error?: string | null; busy?: boolean; message?: string | null }) {
  return (
    <div className="status" aria-live="polite" role="status">
      {busy && <span className="busy">Loading…</span>}
      {message && <span className="ok">{message}</span>}
      {error && <span className="error" role="alert">{error}</span>}
    </div>
  );
}
