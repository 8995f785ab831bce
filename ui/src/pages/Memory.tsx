import { useCallback, useEffect, useState } from "react";
import { HistoryEntry, Memory } from "../api";
import { ConfirmDialog } from "../components/Dialog";
import { Link } from "../components/Link";
import { Status } from "../components/Status";
import { when } from "../format";
import { navigate } from "../router";
import { useSession } from "../session";

// One memory: its fields, an edit form (PATCH), delete, and its history from the log.
export function MemoryPage({ id }: { id: string }) {
  const { api } = useSession();
  const [memory, setMemory] = useState<Memory | null>(null);
  const [history, setHistory] = useState<HistoryEntry[]>([]);
  const [editing, setEditing] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [message, setMessage] = useState<string | null>(null);

  const load = useCallback(async () => {
    setBusy(true);
    try {
      // The token of this tab's last write: both answers include it (read-your-writes).
      const [m, h] = await Promise.all([api.get(id), api.history(id)]);
      setMemory(m);
      setHistory(h.history);
      setError(null);
    } catch (exc) {
      setError((exc as Error).message);
    } finally {
      setBusy(false);
    }
  }, [api, id]);

  useEffect(() => {
    load();
  }, [load]);

  async function remove() {
    setConfirming(false);
    try {
      await api.remove(id);
      navigate("/memories");
    } catch (exc) {
      setError((exc as Error).message);
    }
  }

  return (
    <section aria-labelledby="memory-title">
      <p><Link href="/memories">← Memories</Link></p>
      <h1 id="memory-title">Memory</h1>
      <Status busy={busy} error={error} message={message} />
      {memory && !editing && (
        <article className="card">
          <p className="memory-text" data-testid="memory-text">{memory.memory}</p>
          <dl className="fields">
            <dt>id</dt><dd><code>{memory.id}</code></dd>
            <dt>state</dt><dd>{memory.state}</dd>
            <dt>categories</dt><dd>{memory.categories.map((c) => <span className="chip" key={c}>{c}</span>)}{memory.categories.length === 0 && "—"}</dd>
            <dt>importance</dt><dd>{memory.importance.toFixed(2)}</dd>
            <dt>scope</dt><dd>user {memory.user_id}{memory.app_id && `, app ${memory.app_id}`}{memory.agent_id && `, agent ${memory.agent_id}`}{memory.run_id && `, run ${memory.run_id}`}</dd>
            <dt>created</dt><dd>{when(memory.created_at)}</dd>
            <dt>updated</dt><dd>{when(memory.updated_at)} (version {memory.version})</dd>
            <dt>occurred</dt><dd>{when(memory.occurred_at)}</dd>
            <dt>expires</dt><dd data-testid="memory-expires">{memory.expires_at ? <>{when(memory.expires_at)}{memory.expired && " (expired: left out of search and lists)"}</> : "never"}</dd>
            <dt>metadata</dt><dd><pre>{JSON.stringify(memory.metadata, null, 2)}</pre></dd>
          </dl>
          <div className="actions">
            <button type="button" onClick={() => { setMessage(null); setEditing(true); }}>Edit</button>
            <button type="button" className="danger" onClick={() => setConfirming(true)}>Delete</button>
          </div>
        </article>
      )}
      {memory && editing && (
        <EditForm memory={memory} onCancel={() => setEditing(false)} onSaved={async () => { setEditing(false); setMessage("Saved."); await load(); }} />
      )}
      <h2>History</h2>
      <ol className="timeline" data-testid="history">
        {history.map((h) => (
          <li key={h.event_id}>
            <div><strong>{h.event}</strong> <time dateTime={h.at}>{when(h.at)}</time></div>
            <div className="muted">by <code>{h.actor}</code>{h.reason && <> — reason: {h.reason}</>}</div>
            {h.after && "memory" in h.after && <div>→ {String(h.after.memory)}</div>}
          </li>
        ))}
      </ol>
      <ConfirmDialog open={confirming} title="Delete this memory?" confirm="Delete" onConfirm={remove} onCancel={() => setConfirming(false)}>
        <p>“{memory?.memory}” will be deleted. Its history stays in the log.</p>
      </ConfirmDialog>
    </section>
  );
}

function EditForm({ memory, onCancel, onSaved }: { memory: Memory; onCancel: () => void; onSaved: () => void }) {
  const { api } = useSession();
  const [text, setText] = useState(memory.memory);
  const [metadata, setMetadata] = useState(JSON.stringify(memory.metadata, null, 2));
  const [categories, setCategories] = useState(memory.categories.join(", "));
  const [importance, setImportance] = useState(String(memory.importance.toFixed(2)));
  const [expires, setExpires] = useState(localInput(memory.expires_at));
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function save(event: React.FormEvent) {
    event.preventDefault();
    const body: Record<string, unknown> = {};
    if (text !== memory.memory) body.text = text;
    try {
      const parsed = JSON.parse(metadata || "{}");
      if (JSON.stringify(parsed) !== JSON.stringify(memory.metadata)) body.metadata = parsed;
    } catch {
      return setError("Metadata is not valid JSON.");
    }
    const cats = categories.split(",").map((c) => c.trim()).filter(Boolean);
    if (cats.join(",") !== memory.categories.join(",")) body.categories = cats;
    const imp = Number(importance);
    if (Math.abs(imp - memory.importance) > 0.004) body.importance = imp;
    if (expires !== localInput(memory.expires_at)) body.expires_at = expires ? new Date(expires).toISOString() : null;
    if (Object.keys(body).length === 0) return onCancel();
    setBusy(true);
    try {
      await api.update(memory.id, body);
      onSaved();
    } catch (exc) {
      setError((exc as Error).message);
      setBusy(false);
    }
  }

  return (
    <form className="card edit" onSubmit={save} onKeyDown={(e) => e.key === "Escape" && onCancel()}>
      <label htmlFor="edit-text">Text</label>
      <textarea id="edit-text" value={text} onChange={(e) => setText(e.target.value)} rows={4} required autoFocus />
      <label htmlFor="edit-categories">Categories (comma separated)</label>
      <input id="edit-categories" value={categories} onChange={(e) => setCategories(e.target.value)} />
      <label htmlFor="edit-importance">Importance (0–1)</label>
      <input id="edit-importance" type="number" min={0} max={1} step={0.01} value={importance} onChange={(e) => setImportance(e.target.value)} />
      <label htmlFor="edit-expires">Expires (your local time; empty: never)</label>
      <input id="edit-expires" type="datetime-local" value={expires} onChange={(e) => setExpires(e.target.value)} />
      <label htmlFor="edit-metadata">Metadata (JSON)</label>
      <textarea id="edit-metadata" value={metadata} onChange={(e) => setMetadata(e.target.value)} rows={5} className="mono" />
      <Status error={error} busy={busy} />
      <div className="actions">
        <button type="button" onClick={onCancel}>Cancel</button>
        <button type="submit" disabled={busy}>Save</button>
      </div>
    </form>
  );
}

/** An ISO time as a datetime-local input's value (local time, to the minute); "" for none. */
function localInput(iso: string | null | undefined): string {
  if (!iso) return "";
  const at = new Date(iso);
  const local = new Date(at.getTime() - at.getTimezoneOffset() * 60_000);
  return local.toISOString().slice(0, 16);
}
