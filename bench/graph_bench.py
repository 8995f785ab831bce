"""The knowledge graph of a conversation, as GET /v1/graph shows it: relations per memory,
entity hygiene, and a picture.

    python bench/graph_bench.py [--base-url http://127.0.0.1:8080] [--conversations N]
        [--picture SAMPLE_ID] [--keep-memories] [--json] [--out DIR]

Needs a running stack (`recallstack up --detach`). Each conversation of the LoCoMo development
split is loaded exactly as bench/locomo_bench.py loads it (one memory per turn, "Speaker: text",
infer false, through POST /v1/memories/batch), then its user's graph is read with the last
consistency token (so the Neo4j projector has applied every memory).

Per conversation it prints: memories, entities, typed relations (one per memory that states
it, as GET /v1/graph lists them, and distinct), co-mentioned pairs, and typed relations per
20 memories; the relation types; and the names that break issue 23's
hygiene rules: pronouns, interjections or greetings in a name, times as nodes (a `date` entity),
amounts as nodes, and one entity as two nodes (the same name in another case or type). The
verdict: at least one typed relation per 20 memories and no hygiene fault, per conversation.
Co-mentions are counted apart: they join what memories name together, they say nothing typed.

Writes DIR/graph.json and, for one conversation (--picture, default the first), DIR/graph.png:
entities sized by mentions and coloured by type, typed relations drawn dark and labelled,
co-mentions light, laid out by a spring model (co-mentions and relations pull, every pair
pushes), so clusters show. The run's memories are deleted at the end unless --keep-memories.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import uuid
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
from api_key import api_headers
from locomo_bench import BenchError, build_corpus, deleted_afterwards, failed, load
from locomo_texts import locomo
from machine_info import machine
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"
PER_MEMORIES = 20  # issue 23: at least one relation per 20 memories
# Words that must never be an entity's name or begin it (issue 23: no pronouns, interjections or
# greetings: "I", "Wow John"); a title may begin with one ("It Ends with Us").
BAD_WORDS = frozenset("""
    i i'm i'd i've me my mine we us our you your he him his she her they them their it its this that
    hey hi hello wow oh ah yeah yes no sure thanks thank congrats congratulations bye goodbye cheers
    woohoo omg haha lol hmm ok okay well anytime go bet besides name
    """.split())


def faults(graph: dict) -> list[str]:
    """What breaks the hygiene rules in one user's graph (GET /v1/graph's answer)."""
    found = []
    seen: dict[str, str] = {}
    for entity in graph["entities"]:
        name, type_ = entity["name"], entity["type"]
        words = re.findall(r"[\w'’]+", name.casefold().replace("’", "'"))
        if words and type_ != "title" and (words[0] in BAD_WORDS or " ".join(words) in BAD_WORDS):
            found.append(f"pronoun or interjection: {name!r} ({type_})")
        if type_ == "date":
            found.append(f"a time as a node: {name!r}")
        if type_ == "quantity":
            found.append(f"an amount as a node: {name!r}")
        key = " ".join(name.casefold().split())
        if key in seen:
            found.append(f"one entity, two nodes: {name!r} ({type_}) and ({seen[key]})")
        seen[key] = type_
    return found


def conversation_figures(conv: dict, graph: dict) -> dict:
    memories = len(conv["memories"])
    relations = graph["relations"]
    return {
        "sample_id": conv["sample_id"], "user_id": conv["user_id"], "memories": memories,
        "entities": len(graph["entities"]), "relations": len(relations),
        "distinct_relations": len({(r["source"], r["type"], r["target"]) for r in relations}),
        "co_mentioned_pairs": len(graph.get("co_mentions", [])),
        "relations_per_20_memories": round(PER_MEMORIES * len(relations) / max(1, memories), 2),
        "entity_types": dict(Counter(e["type"] for e in graph["entities"]).most_common()),
        "relation_types": dict(Counter(r["type"] for r in relations).most_common()),
        "aliases": graph.get("aliases", {}),
        "faults": faults(graph),
        "top_entities": [(e["name"], e["type"], e.get("mentions")) for e in
                         sorted(graph["entities"], key=lambda e: -(e.get("mentions") or 0))[:15]],
        "sample_relations": [(r["source"], r["type"], r["target"]) for r in relations[:15]],
    }


def read_graph(client: httpx.Client, conv: dict) -> dict:
    params = {"user_id": conv["user_id"], "limit": 5000}
    if conv.get("token"):
        params["consistency_token"] = conv["token"]
    answer = client.get("/v1/graph", params=params, timeout=120)
    if answer.status_code != 200:
        raise BenchError(f"GET /v1/graph answered {answer.status_code}: {answer.text[:200]}")
    return answer.json()


def spring_layout(names: list[str], edges: list[tuple[int, int, float]], steps: int = 300) -> np.ndarray:
    """Fruchterman-Reingold positions in [-1, 1]^2, seeded (the same graph draws the same way)."""
    n = len(names)
    pos = np.random.default_rng(23).uniform(-1, 1, (n, 2))
    if n < 2:
        return pos
    k = 1.0 / np.sqrt(n)
    heat = 0.1
    for _ in range(steps):
        delta = pos[:, None, :] - pos[None, :, :]
        dist = np.maximum(np.linalg.norm(delta, axis=2), 1e-3)
        move = ((k * k / dist ** 2)[:, :, None] * delta).sum(1)  # every pair pushes
        for a, b, w in edges:
            d = pos[a] - pos[b]
            pull = d * np.linalg.norm(d) / k * min(w, 5.0) ** 0.5
            move[a] -= pull
            move[b] += pull
        length = np.maximum(np.linalg.norm(move, axis=1), 1e-9)[:, None]
        pos += move / length * np.minimum(length, heat)
        heat = max(heat * 0.985, 0.002)
    pos -= pos.mean(0)
    return pos / max(np.abs(pos).max(), 1e-9)


def picture(graph: dict, title: str, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entities = sorted(graph["entities"], key=lambda e: -(e.get("mentions") or 0))[:120]
    index = {e["name"]: i for i, e in enumerate(entities)}
    relations = sorted({(index[r["source"]], index[r["target"]], r["type"]) for r in graph["relations"]
                        if r["source"] in index and r["target"] in index})  # one arrow per relation, not per memory
    co = [(index[c["source"]], index[c["target"]], float(c.get("weight", 1))) for c in graph.get("co_mentions", [])
          if c["source"] in index and c["target"] in index]
    pos = spring_layout([e["name"] for e in entities], co + [(a, b, 2.0) for a, b, _ in relations])
    types = sorted({e["type"] for e in entities})
    colours = dict(zip(types, plt.cm.tab10.colors))
    fig, ax = plt.subplots(figsize=(16, 12))
    for a, b, w in co:
        ax.plot(*zip(pos[a], pos[b]), color="#cccccc", lw=0.4 + min(w, 10) * 0.15, zorder=1)
    for a, b, type_ in relations:
        ax.annotate("", pos[b], pos[a], arrowprops={"arrowstyle": "->", "color": "#444444", "lw": 0.8}, zorder=2)
        mid = (pos[a] + pos[b]) / 2
        ax.text(*mid, type_, fontsize=6, color="#444444", ha="center", zorder=3)
    sizes = np.array([e.get("mentions") or 1 for e in entities], dtype=float)
    ax.scatter(pos[:, 0], pos[:, 1], s=30 + 400 * np.sqrt(sizes / sizes.max()),
               c=[colours[e["type"]] for e in entities], edgecolors="white", zorder=4)
    for i, e in enumerate(entities):
        ax.text(pos[i, 0], pos[i, 1] + 0.025, e["name"], fontsize=7, ha="center", zorder=5)
    for type_, colour in colours.items():
        ax.scatter([], [], color=colour, label=type_)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(title)
    ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_report(result: dict) -> None:
    m = result["machine"]
    print(f"machine: {m.get('cpu')} x{m.get('cores')}, {m.get('ram_gib')} GiB; "
          f"{result['corpus']['memories']} memories in {result['corpus']['conversations']} conversations")
    table = Table(title="The graph of each LoCoMo conversation (GET /v1/graph)")
    for column in ("conversation", "memories", "entities", "relations", "distinct", "per 20 memories",
                   "co-mentioned pairs", "faults"):
        table.add_column(column, justify="right")
    for c in result["conversations"]:
        table.add_row(str(c["sample_id"]), str(c["memories"]), str(c["entities"]), str(c["relations"]),
                      str(c["distinct_relations"]),
                      f"{c['relations_per_20_memories']:.2f}", str(c["co_mentioned_pairs"]), str(len(c["faults"])))
    Console().print(table)
    for c in result["conversations"]:
        print(f"conversation {c['sample_id']}: relation types {c['relation_types']}")
        print(f"  entity types {c['entity_types']}")
        for fault in c["faults"]:
            print(f"  fault: {fault}")
    print(f"verdict: {result['verdict']}")
    print(f"picture: {result['files']['plot']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", default=os.environ.get("RECALLSTACK_URL", "http://127.0.0.1:8080"))
    ap.add_argument("--conversations", type=int, default=None, help="only the first N conversations")
    ap.add_argument("--picture", default=None, help="the sample_id of the conversation to draw (default: the first)")
    ap.add_argument("--keep-memories", action="store_true", help="do not delete the run's memories at the end")
    ap.add_argument("--json", action="store_true", help="print the result as JSON instead of tables")
    ap.add_argument("--out", default=str(RESULTS), help="folder for graph.json and graph.png")
    args = ap.parse_args()
    runid = uuid.uuid4().hex[:8]
    samples = locomo()[:args.conversations] if args.conversations else locomo()
    convs = build_corpus(samples, runid, set(), None, user_prefix="graph")
    out_dir = Path(args.out)
    drawn = args.picture or str(convs[0]["sample_id"])
    result = {"benchmark": "graph", "runid": runid, "machine": machine(),
              "corpus": {"conversations": len(convs), "memories": sum(len(c["memories"]) for c in convs)},
              "files": {"json": str(out_dir / "graph.json"), "plot": str(out_dir / "graph.png")}}
    graphs = {}
    try:
        with httpx.Client(headers=api_headers(), base_url=args.base_url, timeout=httpx.Timeout(120.0, connect=5.0)) as client:
            with deleted_afterwards(client, convs, args.keep_memories, result):
                result["load"] = load(client, convs, runid, 250)
                graphs = {str(c["sample_id"]): read_graph(client, c) for c in convs}
    except (BenchError, httpx.TransportError) as exc:
        return failed("graph bench", args.base_url, exc)
    result["conversations"] = [conversation_figures(c, graphs[str(c["sample_id"])]) for c in convs]
    result["verdict"] = {
        "relations_per_20_memories_at_least_1": all(c["relations_per_20_memories"] >= 1 for c in result["conversations"]),
        "no_hygiene_fault": not any(c["faults"] for c in result["conversations"])}
    out_dir.mkdir(parents=True, exist_ok=True)
    Path(result["files"]["json"]).write_text(json.dumps(result, indent=2, default=str))
    if drawn in graphs:
        picture(graphs[drawn], f"LoCoMo conversation {drawn}: its knowledge graph (GET /v1/graph)",
                Path(result["files"]["plot"]))
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
