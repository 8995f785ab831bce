import { useCallback, useEffect, useState } from "react";
import { Memory, Page } from "../api";
import { ConfirmDialog } from "../components/Dialog";
import { Link } from "../components/Link";
import { Status } from "../components/Status";
import { when } from "../format";
import { useLocation } from "../router";
import { useSession } from "../session";

const PAGE_SIZE = 25;
type Scope = { agent_id: string; run_id: string; app_id: string };

// GET /v1/memories: scope filters, category chips (a categories filter), state, sort and
// paging; bulk delete is DELETE /v1/memories/{id} per selected row.
export function MemoriesPage() {
  const { api } = useSession();
  const { query } = useLocation(); // /memories?app_id=… (links of the Apps & agents page)
  const [draft, setDraft] = useState<Scope>({
    agent_id: query.get("agent_id") ?? "", run_id: query.get("run_id") ?? "", app_id: query.get("app_id") ?? "",
  });
  const [scope, setScope] = useState<Scope>(draft);
  const [state, setState] = useState("active");
  const [sort, setSort] = useState("created_at");
  const [category, setCategory] = useState<string | null>(null);
  const [known, setKnown] = useState<string[]>([]);
  const [page, setPage] = useState(1);
  const [data, setData] = useState<Page<Memory> | null>(null);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [message, setMessage] = useState<string | null>(null);

  const load = useCallback(async () => {
    setBusy(true);
    setError(null);
    try {
      const answer = await api.list({
        ...scope, state, sort, order: "desc", page, page_size: PAGE_SIZE,
        filters: category ? JSON.stringify({ categories: { contains: category } }) : undefined,
      });
      setData(answer);
      setKnown((before) => [...new Set([...before, ...answer.results.flatMap((m) => m.categories)])].sort());
      setSelected(new Set());
    } catch (exc) {
      setError((exc as Error).message);
    } finally {
      setBusy(false);
    }
  }, [api, scope, state, sort, category, page]);

  useEffect(() => {
    load();
  }, [load]);

  async function deleteSelected() {
    setConfirming(false);
    setBusy(true);
    const failed: string[] = [];
    for (const id of selected) {
      try {
        await api.remove(id);
      } catch (exc) {
        failed.push(`${id.slice(0, 8)}: ${(exc as Error).message}`);
      }
    }
    setBusy(false);
    setMessage(`Deleted ${selected.size - failed.length} of ${selected.size}.`);
    setError(failed.length ? failed.join("; ") : null);
    await load();
  }

  const rows = data?.results ?? [];
  const allSelected = rows.length > 0 && rows.every((m) => selected.has(m.id));
  const pages = data ? Math.max(1, Math.ceil(data.total / PAGE_SIZE)) : 1;

  return (
    <section aria-labelledby="memories-title">
      <h1 id="memories-title">Memories</h1>
      <form className="filters" onSubmit={(e) => { e.preventDefault(); setPage(1); setScope({ ...draft }); }}>
        {(["agent_id", "run_id", "app_id"] as const).map((name) => (
          <label key={name}>
            {name}
            <input name={name} value={draft[name]} onChange={(e) => setDraft({ ...draft, [name]: e.target.value })} />
          </label>
        ))}
        <label>
          state
          <select value={state} onChange={(e) => { setPage(1); setState(e.target.value); }}>
            {["active", "archived", "forgotten", "any"].map((s) => <option key={s}>{s}</option>)}
          </select>
        </label>
        <label>
          sort
          <select value={sort} onChange={(e) => setSort(e.target.value)}>
            {["created_at", "updated_at", "occurred_at", "importance"].map((s) => <option key={s}>{s}</option>)}
          </select>
        </label>
        <button type="submit">Filter</button>
        <button type="button" onClick={load}>Refresh</button>
      </form>
      {known.length > 0 && (
        <div className="chips" role="group" aria-label="Categories">
          <button type="button" aria-pressed={category === null} onClick={() => { setPage(1); setCategory(null); }}>all</button>
          {known.map((c) => (
            <button type="button" key={c} aria-pressed={category === c} onClick={() => { setPage(1); setCategory(category === c ? null : c); }}>{c}</button>
          ))}
        </div>
      )}
      <div className="toolbar">
        <span>{data ? `${data.total} memories` : ""}</span>
        <button type="button" className="danger" disabled={selected.size === 0} onClick={() => setConfirming(true)}>
          Delete selected ({selected.size})
        </button>
      </div>
      <Status busy={busy} error={error} message={message} />
      <div className="table-wrap">
        <table data-testid="memories-table">
          <thead>
            <tr>
              <th scope="col">
                <input type="checkbox" aria-label="Select all on this page" checked={allSelected}
                  onChange={() => setSelected(allSelected ? new Set() : new Set(rows.map((m) => m.id)))} />
              </th>
              <th scope="col">Memory</th>
              <th scope="col">Categories</th>
              <th scope="col">Scope</th>
              <th scope="col">Importance</th>
              <th scope="col">Created</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((m) => (
              <tr key={m.id} data-memory-id={m.id}>
                <td>
                  <input type="checkbox" aria-label={`Select ${m.memory.slice(0, 40)}`} checked={selected.has(m.id)}
                    onChange={() => {
                      const next = new Set(selected);
                      if (next.has(m.id)) next.delete(m.id);
                      else next.add(m.id);
                      setSelected(next);
                    }} />
                </td>
                <td><Link href={`/memories/${m.id}`}>{m.memory}</Link>{m.expires_at && <span className="muted"> · expires {when(m.expires_at)}</span>}</td>
                <td>{m.categories.map((c) => <span className="chip" key={c}>{c}</span>)}</td>
                <td className="muted">{[m.app_id && `app ${m.app_id}`, m.agent_id && `agent ${m.agent_id}`, m.run_id && `run ${m.run_id}`].filter(Boolean).join(", ") || "—"}</td>
                <td>{m.importance.toFixed(2)}</td>
                <td>{when(m.created_at)}</td>
              </tr>
            ))}
            {data && rows.length === 0 && (
              <tr><td colSpan={6} className="muted">No memories here.</td></tr>
            )}
          </tbody>
        </table>
      </div>
      <nav className="pager" aria-label="Paging">
        <button type="button" disabled={page <= 1} onClick={() => setPage(page - 1)}>Previous</button>
        <span>page {page} of {pages}</span>
        <button type="button" disabled={!data?.has_more} onClick={() => setPage(page + 1)}>Next</button>
      </nav>
      <ConfirmDialog open={confirming} title="Delete memories?" confirm={`Delete ${selected.size}`} onConfirm={deleteSelected} onCancel={() => setConfirming(false)}>
        <p>{selected.size} selected memories will be deleted. Their history stays in the log.</p>
      </ConfirmDialog>
    </section>
  );
}
