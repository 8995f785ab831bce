import { useState } from "react";
import { SearchAnswer } from "../api";
import { Link } from "../components/Link";
import { Status } from "../components/Status";
import { useSession } from "../session";

const SOURCES = ["dense", "sparse", "temporal", "graph"];

// POST /v1/memories/search: results with their fused score and each source's rank; the
// sources left out of the answer (degraded) are named.
export function SearchPage() {
  const { api } = useSession();
  const [query, setQuery] = useState("");
  const [limit, setLimit] = useState(10);
  const [answer, setAnswer] = useState<SearchAnswer | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  async function search(event: React.FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      setAnswer(await api.search({ query, limit }));
    } catch (exc) {
      setError((exc as Error).message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <section aria-labelledby="search-title">
      <h1 id="search-title">Search</h1>
      <form className="filters" role="search" onSubmit={search}>
        <label className="grow">
          Query
          <input type="search" name="query" value={query} onChange={(e) => setQuery(e.target.value)} required autoFocus />
        </label>
        <label>
          Results
          <input type="number" min={1} max={100} value={limit} onChange={(e) => setLimit(Number(e.target.value))} />
        </label>
        <button type="submit">Search</button>
      </form>
      <Status busy={busy} error={error} message={answer ? `${answer.results.length} results${answer.cache ? ` (cache ${answer.cache})` : ""}` : null} />
      {answer && answer.degraded.length > 0 && (
        <div className="warning" data-testid="degraded" role="note">
          <strong>Degraded:</strong>{" "}
          {answer.degraded.map((d) => `${d.source} (${d.reason})`).join("; ")} — results come from the other sources.
        </div>
      )}
      {answer && (
        <div className="table-wrap">
          <table data-testid="search-results">
            <thead>
              <tr>
                <th scope="col">Memory</th>
                <th scope="col">Score</th>
                {SOURCES.map((s) => <th scope="col" key={s}>{s} rank</th>)}
              </tr>
            </thead>
            <tbody>
              {answer.results.map((hit) => (
                <tr key={hit.id} data-memory-id={hit.id}>
                  <td><Link href={`/memories/${hit.id}`}>{hit.memory}</Link></td>
                  <td>{hit.score.toFixed(3)}</td>
                  {SOURCES.map((s) => <td key={s}>{hit.ranks[s] ?? "—"}</td>)}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
