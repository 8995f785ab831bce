import { useEffect, useState } from "react";
import { SystemSnapshot } from "../api";
import { Sparkline } from "../components/Sparkline";
import { Status } from "../components/Status";
import { useSession } from "../session";

const POLL_MS = 2000;

// The gateway's /ui/api/system every 2 s: health (/readyz), projector lag, throughput and
// latency from the services' /metrics, as sparklines of the gateway's recent samples.
export function SystemPage() {
  const { api } = useSession();
  const [snap, setSnap] = useState<SystemSnapshot | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let stopped = false;
    const poll = () => api.system().then((s) => { if (!stopped) { setSnap(s); setError(null); } })
      .catch((exc) => !stopped && setError(exc.message));
    poll();
    const timer = setInterval(poll, POLL_MS);
    return () => { stopped = true; clearInterval(timer); };
  }, [api]);
  const series = (name: keyof SystemSnapshot["samples"][number]) => snap?.samples.map((s) => s[name] as number | null) ?? [];
  return (
    <section aria-labelledby="system-title">
      <h1 id="system-title">System</h1>
      <Status error={error} busy={!snap && !error} />
      {snap && (
        <>
          <div className={`health ${snap.health.status.replace(" ", "-")}`} data-testid="health">
            Health: <strong>{snap.health.status}</strong>
            <ul>
              {Object.entries(snap.health.checks).map(([name, check]) => <li key={name}>{name} API: {check}</li>)}
            </ul>
          </div>
          <div className="sparks">
            <Sparkline label="API requests" unit="/s" values={series("requests_per_s")} />
            <Sparkline label="API latency (mean)" unit="ms" values={series("latency_ms")} />
            <Sparkline label="5xx errors" unit="/s" values={series("errors_5xx_per_s")} digits={2} />
            <Sparkline label="Events applied" unit="/s" values={series("applied_per_s")} />
            <Sparkline label="Projector lag" unit="events" values={series("lag")} digits={0} />
          </div>
          <h2>Projector lag</h2>
          <table>
            <thead><tr><th scope="col">Projection</th><th scope="col">Events behind</th></tr></thead>
            <tbody>
              {Object.entries(snap.lag).map(([name, lag]) => (
                <tr key={name}><td>{name}</td><td>{lag ?? `unknown${snap.errors[name] ? ` (${snap.errors[name]})` : ""}`}</td></tr>
              ))}
            </tbody>
          </table>
          {Object.keys(snap.errors).length > 0 && (
            <p className="muted">Not read: {Object.entries(snap.errors).map(([n, e]) => `${n}: ${e}`).join("; ")}</p>
          )}
        </>
      )}
    </section>
  );
}
