import cytoscape from "cytoscape";
import { useEffect, useMemo, useRef, useState } from "react";
import { Graph, SearchHit } from "../api";
import { Link } from "../components/Link";
import { Status } from "../components/Status";
import { useSession } from "../session";

const TYPE_COLOURS: Record<string, string> = {
  person: "#4f7cff", organization: "#e0883b", place: "#2fa56a", location: "#2fa56a", product: "#d6a300",
  title: "#b155d6", event: "#b155d6", code_identifier: "#7a8899", file_path: "#7a8899", url: "#5aa9c9",
  email: "#5aa9c9", quantity: "#999999", topic: "#c05780", other: "#888888",
};
// Names drawn at every zoom: the most mentioned ones (others show when zoomed in or chosen),
// so labels do not pile up on a large graph.
const ALWAYS_LABELLED = 25;

// Cytoscape adds a <style> element (one rule) unless an element of this id exists: the page's
// Content-Security-Policy allows no inline styles, so the rule is in styles.css instead.
const CYTOSCAPE_STYLESHEET_ID = "__________cytoscape_stylesheet";
function skipCytoscapeStylesheet() {
  if (document.getElementById(CYTOSCAPE_STYLESHEET_ID)) return;
  const marker = document.createElement("meta");
  marker.id = CYTOSCAPE_STYLESHEET_ID;
  document.head.appendChild(marker);
}

const nodeId = (name: string, type: string) => `${type}:${name}`;

// GET /v1/graph drawn with cytoscape: entities sized by mentions and coloured by type,
// relations as labelled arrows, co-mentions as lines thicker with their weight (they pull
// clusters together in the layout). Filters by type; a chosen entity shows its neighbourhood
// (the rest fades, or is hidden with "neighbourhood only"), its relations and its memories.
// The same relations as a table below for keyboard and screen-reader users.
export function GraphPage() {
  const { api } = useSession();
  const box = useRef<HTMLDivElement>(null);
  const [graph, setGraph] = useState<Graph | null>(null);
  const [chosen, setChosen] = useState<string | null>(null);  // a node id: type:name
  const [hiddenTypes, setHiddenTypes] = useState<Set<string>>(new Set());
  const [onlyNeighbourhood, setOnlyNeighbourhood] = useState(false);
  const [includeClosed, setIncludeClosed] = useState(false);
  const [memories, setMemories] = useState<SearchHit[] | null>(null);
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

  const types = useMemo(() => [...new Set(graph?.entities.map((e) => e.type) ?? [])].sort(), [graph]);
  const byName = useMemo(() => {
    const ids = new Map<string, string>();  // relations name entities without a type: the first listed
    for (const e of graph?.entities ?? []) if (!ids.has(e.name)) ids.set(e.name, nodeId(e.name, e.type));
    return ids;
  }, [graph]);
  const chosenEntity = graph?.entities.find((e) => nodeId(e.name, e.type) === chosen) ?? null;

  useEffect(() => {
    if (!graph || !box.current) return;
    const dark = document.documentElement.dataset.theme === "dark" ||
      (!document.documentElement.dataset.theme && matchMedia("(prefers-color-scheme: dark)").matches);
    const shown = graph.entities.filter((e) => !hiddenTypes.has(e.type));
    const ids = new Set(shown.map((e) => nodeId(e.name, e.type)));
    const labelled = new Set(shown.slice(0, ALWAYS_LABELLED).map((e) => nodeId(e.name, e.type)));
    const most = Math.max(1, ...shown.map((e) => e.mentions));
    const heaviest = Math.max(1, ...graph.co_mentions.map((c) => c.weight));
    const relations = graph.relations.map((r) => ({ ...r, s: byName.get(r.source), t: byName.get(r.target) }))
      .filter((r) => r.s && r.t && ids.has(r.s) && ids.has(r.t));
    const pairs = graph.co_mentions.map((c) => ({ ...c, s: nodeId(c.source, c.source_type), t: nodeId(c.target, c.target_type) }))
      .filter((c) => ids.has(c.s) && ids.has(c.t));
    skipCytoscapeStylesheet();
    const cy = cytoscape({
      container: box.current,
      elements: [
        ...shown.map((e) => {
          const id = nodeId(e.name, e.type);
          return {
            data: { id, label: e.name, type: e.type, mentions: e.mentions, colour: TYPE_COLOURS[e.type] ?? "#888",
                    size: 14 + 30 * Math.sqrt(e.mentions / most) },
            classes: labelled.has(id) ? "labelled" : "",
          };
        }),
        ...relations.map((r, i) => ({ data: { id: `r${i}`, source: r.s!, target: r.t!, label: r.type }, classes: "relation" })),
        ...pairs.map((c, i) => ({ data: { id: `c${i}`, source: c.s, target: c.t, weight: c.weight,
                                          width: 0.5 + 4 * Math.sqrt(c.weight / heaviest) }, classes: "co-mention" })),
      ],
      style: [
        { selector: "node", style: {
          "background-color": "data(colour)", width: "data(size)", height: "data(size)", label: "",
          color: dark ? "#eee" : "#222", "font-size": 11, "text-valign": "bottom", "text-margin-y": 3,
          "text-background-color": dark ? "#1b1d22" : "#ffffff", "text-background-opacity": 0.75,
          "text-background-padding": "1px", "min-zoomed-font-size": 7 } },
        { selector: "node.labelled, node.near, node:selected", style: { label: "data(label)" } },
        { selector: "edge.relation", style: {
          label: "data(label)", "curve-style": "bezier", "target-arrow-shape": "triangle", width: 1.5,
          "line-color": dark ? "#8a8f99" : "#777", "target-arrow-color": dark ? "#8a8f99" : "#777", "font-size": 9,
          color: dark ? "#bbb" : "#555", "min-zoomed-font-size": 9, "text-rotation": "autorotate" } },
        { selector: "edge.co-mention", style: {
          width: "data(width)", "line-color": dark ? "#4a5060" : "#c9ced8", "curve-style": "haystack", opacity: 0.8 } },
        { selector: ".faded", style: { opacity: 0.12 } },
        { selector: ":selected", style: { "border-width": 3, "border-color": "#f5c542" } },
      ],
      // Force-directed: co-mentions weigh in as springs, so people, places and things talked
      // about together form clusters; components are packed side by side.
      layout: {
        name: "cose", animate: false, padding: 30, randomize: false, nodeRepulsion: () => 9000,
        idealEdgeLength: (edge: cytoscape.EdgeSingular) => (edge.hasClass("co-mention") ? 60 : 90),
        edgeElasticity: (edge: cytoscape.EdgeSingular) => (edge.hasClass("co-mention") ? 40 + 60 * (edge.data("weight") / heaviest) : 100),
        nodeOverlap: 12, componentSpacing: 60, numIter: 1500,
      } as cytoscape.LayoutOptions,
      maxZoom: 2, // a few nodes would otherwise fill the box
      minZoom: 0.05,
    });
    if (chosen && cy.getElementById(chosen).nonempty()) {
      const node = cy.getElementById(chosen);
      const near = node.closedNeighborhood();
      node.select();
      near.nodes().addClass("near");
      if (onlyNeighbourhood) {
        cy.elements().difference(near).remove();
        cy.layout({ name: "concentric", animate: false, padding: 30,
                    concentric: (n: cytoscape.NodeSingular) => (n.id() === chosen ? 2 : 1), levelWidth: () => 1 } as cytoscape.LayoutOptions).run();
      } else {
        cy.elements().difference(near).addClass("faded");
      }
    }
    cy.on("tap", "node", (event) => setChosen(event.target.id()));
    cy.on("tap", (event) => { if (event.target === cy) setChosen(null); });
    box.current.dataset.nodeCount = String(cy.nodes().length);
    box.current.dataset.edgeCount = String(cy.edges(".relation").length);
    box.current.dataset.coMentionCount = String(cy.edges(".co-mention").length);
    return () => cy.destroy();
  }, [graph, hiddenTypes, chosen, onlyNeighbourhood, byName]);

  // The chosen entity's memories, one click away: a search for its name (and aliases).
  useEffect(() => {
    setMemories(null);
    if (!chosenEntity) return;
    const query = [chosenEntity.name, ...(chosenEntity.aliases ?? [])].join(" ");
    api.search({ query, limit: 10 }).then((answer) => setMemories(answer.results)).catch(() => setMemories([]));
  }, [api, chosenEntity?.name, chosenEntity?.type]);

  function toggleType(type: string) {
    const next = new Set(hiddenTypes);
    if (next.has(type)) next.delete(type); else next.add(type);
    setHiddenTypes(next);
  }

  const related = graph?.relations.filter((r) => chosenEntity && (r.source === chosenEntity.name || r.target === chosenEntity.name)) ?? [];
  const together = graph?.co_mentions.filter((c) => chosenEntity && (nodeId(c.source, c.source_type) === chosen || nodeId(c.target, c.target_type) === chosen)) ?? [];
  return (
    <section aria-labelledby="graph-title">
      <h1 id="graph-title">Graph</h1>
      <div className="filters">
        <label className="inline">
          <input type="checkbox" checked={includeClosed} onChange={(e) => setIncludeClosed(e.target.checked)} /> include relations no longer valid
        </label>
        <button type="button" onClick={() => setReloads(reloads + 1)}>Refresh</button>
        <span className="muted">{graph ? `${graph.entities.length} entities, ${graph.relations.length} relations, ${graph.co_mentions.length} co-mentions` : ""}</span>
      </div>
      {types.length > 0 && (
        <fieldset className="filters" data-testid="graph-types">
          <legend>Entity types</legend>
          {types.map((type) => (
            <label className="inline" key={type}>
              <input type="checkbox" checked={!hiddenTypes.has(type)} onChange={() => toggleType(type)} />{" "}
              <span className={`swatch swatch-${type in TYPE_COLOURS ? type : "other"}`} aria-hidden="true" /> {type}
            </label>
          ))}
          {chosen && (
            <label className="inline">
              <input type="checkbox" checked={onlyNeighbourhood} onChange={(e) => setOnlyNeighbourhood(e.target.checked)} /> neighbourhood only
            </label>
          )}
        </fieldset>
      )}
      <Status busy={busy} error={error} />
      <div ref={box} className="graph" data-testid="graph" role="img" aria-label="Entities and relations; the table below lists them" />
      {chosenEntity && (
        <div className="card" aria-live="polite" data-testid="graph-chosen">
          <h2>{chosenEntity.name} <span className="muted">{chosenEntity.type}, {chosenEntity.mentions} mentions</span></h2>
          {chosenEntity.aliases && <p className="muted">also called {chosenEntity.aliases.join(", ")}</p>}
          {related.length > 0 && <ul>{related.map((r, i) => <li key={i}>{r.source} <em>{r.type}</em> {r.target}</li>)}</ul>}
          {together.length > 0 && (
            <p>Named together with {together.slice(0, 12).map((c) => `${c.source === chosenEntity.name ? c.target : c.source} (${c.weight})`).join(", ")}</p>
          )}
          <h3>Memories</h3>
          {memories === null ? <p className="muted">Loading…</p> : (
            <ul data-testid="graph-memories">
              {memories.map((m) => <li key={m.id}><Link href={`/memories/${m.id}`}>{m.memory}</Link></li>)}
            </ul>
          )}
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
                  <td><button type="button" className="link" onClick={() => setChosen(byName.get(r.source) ?? null)}>{r.source}</button></td>
                  <td>{r.type}</td>
                  <td><button type="button" className="link" onClick={() => setChosen(byName.get(r.target) ?? null)}>{r.target}</button></td>
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
