import { useEffect, useState } from "react";
import { Namespaces } from "../api";
import { Link } from "../components/Link";
import { Status } from "../components/Status";
import { useSession } from "../session";

// GET /v1/namespaces: the user's apps and agents with their memory counts.
export function NamespacesPage() {
  const { api } = useSession();
  const [data, setData] = useState<Namespaces | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api.namespaces().then(setData).catch((exc) => setError(exc.message));
  }, [api]);
  return (
    <section aria-labelledby="ns-title">
      <h1 id="ns-title">Apps &amp; agents</h1>
      <Status error={error} busy={!data && !error} />
      {data && (
        <>
          <p>User <code>{data.user_id}</code> has <strong data-testid="ns-total">{data.memories}</strong> memories.</p>
          <div className="columns">
            <Counts title="Apps" field="app_id" rows={data.apps.map((a) => [a.app_id, a.memories])} />
            <Counts title="Agents" field="agent_id" rows={data.agents.map((a) => [a.agent_id, a.memories])} />
          </div>
        </>
      )}
    </section>
  );
}

function Counts({ title, field, rows }: { title: string; field: string; rows: [string, number][] }) {
  return (
    <div className="card">
      <h2>{title}</h2>
      {rows.length === 0 ? <p className="muted">None.</p> : (
        <table>
          <thead><tr><th scope="col">{field}</th><th scope="col">Memories</th></tr></thead>
          <tbody>{rows.map(([name, count]) => <tr key={name}><td><Link href={`/memories?${field}=${encodeURIComponent(name)}`}><code>{name}</code></Link></td><td>{count}</td></tr>)}</tbody>
        </table>
      )}
    </div>
  );
}
