import cytoscape from "cytoscape";
import { useEffect, useRef, useState } from "react";
import { Graph } from "../api";
import { Status } from "../components/Status";
import { useSession } from "../session";

const TYPE_COLOURS: Record<string, string> = {
  person: "#4f7cff", organization: "#e0883b", location: "#2fa56a", place: "#2fa56a", event: "#b155d6",
};

// Cytoscape adds a <style> element (one rule) unless an element of this id exists: the page's
// Content-Security-Policy allows no inline styles, so the rule is in styles.css instead.
const CYTOSCAPE_STYLESHEET_ID = "__________cytoscape_stylesheet";
function skipCytoscapeStylesheet() {
  if (document.getElementById(CYTOSCAPE_STYLESHEET_ID)) return;
  const marker = document.createElement("meta");
  marker.id = CYTOSCAPE_STYLESHEET_ID;
  document.head.appendChild(marker);
}

// GET /v1/graph drawn with cytoscape (drag, zoom, click a node for its relations); the same
// relations as a table below for keyboard and screen-reader users.
export function GraphPage() {
  const { api } = useSession();
  const box = useRef<HTMLDivElement>(null);
  const [graph, setGraph] = useState<Graph | null>(null);
  const [chosen, setChosen] = useState<string | null>(null);
  const [includeClosed, setIncludeClosed] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const [reloads, setReloads] = useState(0);

  // No consistency token here: the graph projector may apply a write a moment after
  // Postgres, and the page shows what it has (Refresh reads again) rather than wait.
  useEffect(() => {
    setBusy(true);
    api.graph(includeClosed)
      .then((g) => { setGraph(g); setError(null); })
      .catch((exc) => setError(exc.message))
      .finally(() => setBusy(false));
  }, [api, includeClosed, reloads]);

  useEffect(() => {
    if (!graph || !box.current) return;
    const names = new Set(graph.entities.map((e) => e.name));
    const dark = document.documentElement.dataset.theme === "dark" ||
      (!document.documentElement.dataset.theme && matchMedia("(prefers-color-scheme: dark)").matches);
    skipCytoscapeStylesheet();
    const cy = cytoscape({
      container: box.current,
      elements: [
        ...graph.entities.map((e) => ({ data: { id: e.name, label: e.name, type: e.type, mentions: e.mentions, colour: TYPE_COLOURS[e.type] ?? "#888" } })),
        // A relation to an entity the page does not list (over the limit) gets a node too.
        ...[...new Set(graph.relations.flatMap((r) => [r.source, r.target]))].filter((n) => !names.has(n))
          .map((n) => ({ data: { id: n, label: n, type: "unknown", mentions: 0, colour: "#888" } })),
        ...graph.relations.map((r, i) => ({ data: { id: `r${i}`, source: r.source, target: r.target, label: r.type } })),
      ],
      style: [
        { selector: "node", style: { label: "data(label)", "background-color": "data(colour)", color: dark ? "#eee" : "#222", "font-size": 11, width: 22, height: 22 } },
        { selector: "edge", style: { label: "data(label)", "curve-style": "bezier", "target-arrow-shape": "triangle", width: 1.5, "line-color": "#999", "target-arrow-color": "#999", "font-size": 9, color: dark ? "#bbb" : "#555" } },
        { selector: ":selected", style: { "border-width": 3, "border-color": "#f5c542" } },
      ],
      layout: { name: "cose", animate: false, padding: 40 },
      maxZoom: 1.5, // a few nodes would otherwise fill the box
      minZoom: 0.05,
    });
    cy.on("tap", "node", (event) => setChosen(event.target.id()));
    box.current.dataset.nodeCount = String(cy.nodes().length);
    box.current.dataset.edgeCount = String(cy.edges().length);
    return () => cy.destroy();
  }, [graph]);

  const related = graph?.relations.filter((r) => chosen && (r.source === chosen || r.target === chosen)) ?? [];
  return (
    <section aria-labelledby="graph-title">
      <h1 id="graph-title">Graph</h1>
      <div className="filters">
        <label className="inline">
          <input type="checkbox" checked={includeClosed} onChange={(e) => setIncludeClosed(e.target.checked)} /> include relations no longer valid
        </label>
        <button type="button" onClick={() => setReloads(reloads + 1)}>Refresh</button>
        <span className="muted">{graph ? `${graph.entities.length} entities, ${graph.relations.length} relations` : ""}</span>
      </div>
      <Status busy={busy} error={error} />
      <div ref={box} className="graph" data-testid="graph" role="img" aria-label="Entities and relations; the table below lists them" />
      {chosen && (
        <div className="card" aria-live="polite">
          <h2>{chosen}</h2>
          <ul>{related.map((r, i) => <li key={i}>{r.source} <em>{r.type}</em> {r.target}</li>)}</ul>
        </div>
      )}
      {graph && graph.relations.length > 0 && (
        <details>
          <summary>Relations as a table</summary>
          <table>
            <thead><tr><th scope="col">Source</th><th scope="col">Relation</th><th scope="col">Target</th><th scope="col">Valid</th></tr></thead>
            <tbody>
              {graph.relations.map((r, i) => (
                <tr key={i}>
                  <td><button type="button" className="link" onClick={() => setChosen(r.source)}>{r.source}</button></td>
                  <td>{r.type}</td>
                  <td><button type="button" className="link" onClick={() => setChosen(r.target)}>{r.target}</button></td>
                  <td>{r.valid_to ? `until ${new Date(r.valid_to).toLocaleDateString()}` : "now"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </details>
      )}
    </section>
  );
}
