import { useState } from "react";
import { Memory } from "../api";
import { Status } from "../components/Status";
import { useSession } from "../session";
import { addBody, chunks, expired, exportedAt, FileError, headerLine, importKey, memoryLine, readExport } from "../memoryFile";

const EXPORT_PAGE = 1000;

// Export / import in the format of `recallstack export` / `recallstack import` (JSON Lines:
// a header, then one memory a line), so files go both ways between the UI and the CLI.
export function TransferPage() {
  const { api, actingUser } = useSession();
  const [state, setState] = useState("active");
  const [progress, setProgress] = useState<{ done: number; total: number } | null>(null);
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [problems, setProblems] = useState<string[]>([]);

  async function exportAll() {
    setBusy(true); setError(null); setMessage(null);
    try {
      const info = await api.embedder();
      const lines: string[] = [];
      const seen = new Set<string>();
      for (let page = 1; ; page++) {
        const answer = await api.list({ state, sort: "created_at", order: "asc", page, page_size: EXPORT_PAGE });
        for (const m of answer.results as Memory[]) {
          if (!seen.has(m.id)) { seen.add(m.id); lines.push(memoryLine(m)); }
        }
        setProgress({ done: seen.size, total: answer.total });
        if (!answer.has_more) break;
      }
      const header = headerLine({ user_id: actingUser!, exported_at: exportedAt(), embedding_model: info.embedding_model ?? null, dim: info.dim ?? null, count: lines.length });
      const blob = new Blob([header, ...lines], { type: "application/x-ndjson" });
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = `${actingUser}-memories.jsonl`;
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
      setMessage(`Exported ${lines.length} memories of ${actingUser}.`);
    } catch (exc) {
      setError((exc as Error).message);
    } finally {
      setBusy(false);
    }
  }

  async function importFile(file: File) {
    setBusy(true); setError(null); setMessage(null); setProblems([]);
    try {
      const bytes = new Uint8Array(await file.arrayBuffer());
      const parsed = readExport(bytes);
      const now = new Date();
      const live = parsed.entries.filter((doc) => !expired(doc, now));
      const gone = parsed.entries.length - live.length;
      const bodies = live.map((doc) => addBody(doc, actingUser!, parsed.header.exported_at));
      const batches = chunks(bodies);
      const digest = await importKey(bytes);
      setProgress({ done: 0, total: bodies.length });
      let done = 0;
      const failed: string[] = [];
      for (const [index, batch] of batches.entries()) {
        try {
          await api.addBatch(batch, `ui-import-${digest.slice(0, 40)}-${index}`);
        } catch (exc) {
          failed.push(`batch ${index + 1} (${batch.length} memories): ${(exc as Error).message}`);
        }
        done += batch.length;
        setProgress({ done, total: bodies.length });
      }
      setProblems(failed);
      setMessage(`Imported ${bodies.length - failed.reduce((n, f) => n + Number(f.match(/\((\d+) memories/)?.[1] ?? 0), 0)} of ${bodies.length} memories into ${actingUser}.`
        + (gone ? ` ${gone} had expired since the export: not imported.` : ""));
    } catch (exc) {
      if (exc instanceof FileError) setProblems(exc.problems);
      setError((exc as Error).message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <section aria-labelledby="transfer-title">
      <h1 id="transfer-title">Export / import</h1>
      <div className="columns">
        <div className="card">
          <h2>Export</h2>
          <p>Every memory of <code>{actingUser}</code> as a <code>.jsonl</code> file that <code>recallstack import</code> reads.</p>
          <label>
            State
            <select value={state} onChange={(e) => setState(e.target.value)}>
              {["active", "archived", "forgotten", "any"].map((s) => <option key={s}>{s}</option>)}
            </select>
          </label>
          <button type="button" onClick={exportAll} disabled={busy}>Export</button>
        </div>
        <div className="card">
          <h2>Import</h2>
          <p>A file of <code>recallstack export</code> (or this page), added to <code>{actingUser}</code> in batches; running it again adds nothing twice.</p>
          <label htmlFor="import-file">File</label>
          <input id="import-file" type="file" accept=".jsonl,application/x-ndjson,application/json" disabled={busy}
            onChange={(e) => { const f = e.target.files?.[0]; if (f) importFile(f); e.target.value = ""; }} />
        </div>
      </div>
      {progress && (
        <p>
          <label htmlFor="transfer-progress">Progress</label>{" "}
          <progress id="transfer-progress" max={Math.max(progress.total, 1)} value={progress.done} /> {progress.done} / {progress.total}
        </p>
      )}
      <Status busy={busy} error={error} message={message} />
      {problems.length > 0 && (
        <ul className="problems" data-testid="import-problems">{problems.map((p, i) => <li key={i}>{p}</li>)}</ul>
      )}
    </section>
  );
}
