"""One name per person: a short form stands for the longer name it begins (`Mel` for
`Melanie`, `Caro` for `Caroline`, `Caroline` for `Caroline Smith`). Pure: no I/O.

`alias_map(people)` takes (name, mentions) of a user's persons and gives each alias its
canonical name:
- an alias is one word of 3+ characters that begins the first word of another person's name
  (case-insensitively) and is not that whole name;
- among several such names, the one mentioned most wins when it has at least twice the
  mentions of the next (`Mel` -> `Melanie` (54) over the typo `Mell` (1)); otherwise the
  short name stays itself (`Max` with `Maxine` and `Maxwell` equally named: ambiguous);
- chains resolve to their end (`Mel` -> `Melanie` -> `Melanie Ruiz`).
Names are compared case-insensitively; the canonical spelling is the longer name's own."""

from __future__ import annotations

from typing import Iterable

__all__ = ["alias_map", "MIN_ALIAS_CHARS", "DOMINANCE"]

MIN_ALIAS_CHARS = 3
DOMINANCE = 2.0


def alias_map(people: Iterable[tuple[str, int]]) -> dict[str, str]:
    """{alias: canonical name} for the aliases among `people` ((name, mentions) pairs)."""
    mentions: dict[str, int] = {}
    spelling: dict[str, str] = {}
    for name, count in people:
        key = " ".join(name.split()).casefold()
        if key:
            mentions[key] = mentions.get(key, 0) + count
            spelling.setdefault(key, " ".join(name.split()))
    step: dict[str, str] = {}
    # Longest first, so a candidate that is itself an alias counts as the name it stands for.
    for short in sorted(mentions, key=lambda k: (-len(k), k)):
        if " " in short or len(short) < MIN_ALIAS_CHARS:
            continue
        groups: dict[str, int] = {}
        for key in mentions:
            if key != short and key.split(" ", 1)[0].startswith(short):
                end = _end(step, key)
                if end != short:
                    groups[end] = groups.get(end, 0) + mentions[key]
        ranked = sorted(groups, key=lambda k: (-groups[k], k))
        if ranked and (len(ranked) == 1 or groups[ranked[0]] >= DOMINANCE * groups[ranked[1]]):
            step[short] = ranked[0]
    return {spelling[short]: spelling[_end(step, short)] for short in sorted(step)}


def _end(step: dict[str, str], key: str) -> str:
    seen = {key}
    while key in step and step[key] not in seen:
        key = step[key]
        seen.add(key)
    return key


def merge_aliases(graph: dict) -> dict:
    """A user's graph (GET /v1/graph: entities, relations, co_mentions) with each person's
    aliases folded into the name they stand for: one entity (its `aliases` listed, mentions
    added up), relations and co-mentions renamed (a pair that became one name is dropped,
    co-mentions that became the same pair are added up)."""
    aliases = alias_map((e["name"], e["mentions"]) for e in graph["entities"] if e["type"] == "person")
    if not aliases:
        return graph

    def person(name: str) -> str:
        return aliases.get(name, name)

    merged: dict[tuple[str, str], dict] = {}
    for entity in graph["entities"]:
        name = person(entity["name"]) if entity["type"] == "person" else entity["name"]
        into = merged.setdefault((name, entity["type"]), {**entity, "name": name, "mentions": 0, "aliases": []})
        into["mentions"] += entity["mentions"]
        if name != entity["name"]:
            into["aliases"].append(entity["name"])
    entities = sorted(merged.values(), key=lambda e: (-e["mentions"], e["name"], e["type"]))
    for entity in entities:
        if not entity["aliases"]:
            del entity["aliases"]
    people = {e["name"] for e in graph["entities"] if e["type"] == "person"}
    relations = []
    for relation in graph["relations"]:
        source, target = (person(n) if n in people else n for n in (relation["source"], relation["target"]))
        if source != target:
            relations.append({**relation, "source": source, "target": target})
    pairs: dict[tuple, dict] = {}
    for pair in graph.get("co_mentions", []):
        ends = [(person(pair[side]) if pair[f"{side}_type"] == "person" else pair[side], pair[f"{side}_type"])
                for side in ("source", "target")]
        if ends[0] == ends[1]:
            continue
        (source, source_type), (target, target_type) = sorted(ends)
        key = (source, source_type, target, target_type)
        into = pairs.setdefault(key, {"source": source, "source_type": source_type, "target": target,
                                      "target_type": target_type, "weight": 0})
        into["weight"] += pair["weight"]
    co_mentions = sorted(pairs.values(), key=lambda c: (-c["weight"], c["source"], c["target"]))
    return {**graph, "entities": entities, "relations": relations, "co_mentions": co_mentions}
