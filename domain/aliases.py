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
Names are compared case-insensitively; the canonical spelling is the longer name's own.

`merge_aliases(graph)` applies it to GET /v1/graph's answer, after giving each name one type
(`one_type_per_name`), so the graph shows one node per entity."""

from __future__ import annotations

from typing import Iterable

__all__ = ["alias_map", "merge_aliases", "one_type_per_name", "MIN_ALIAS_CHARS", "DOMINANCE"]

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


# When a name has mentions under several types, the most mentioned type wins; on a tie, the
# first of these (a person's name must not become a product because one line said "love Toby").
_TYPE_ORDER = ("person", "place", "organization", "title", "product", "topic")


def one_type_per_name(entities: Iterable[dict]) -> dict[str, tuple[str, str]]:
    """{casefolded name: (spelling, type)} of a user's entities: one node per name, whatever
    the type each memory's extraction guessed (`Toby` the dog typed product in one line and
    person in the others; `Dancing` and `dancing`)."""
    counts: dict[str, dict[str, int]] = {}
    spellings: dict[str, dict[str, int]] = {}
    for entity in entities:
        key = _fold(entity["name"])
        counts.setdefault(key, {}).setdefault(entity["type"], 0)
        counts[key][entity["type"]] += entity["mentions"]
        spellings.setdefault(key, {}).setdefault(entity["name"], 0)
        spellings[key][entity["name"]] += entity["mentions"]

    def rank(type_: str) -> int:
        return _TYPE_ORDER.index(type_) if type_ in _TYPE_ORDER else len(_TYPE_ORDER)

    return {key: (max(sorted(spellings[key]), key=lambda n: spellings[key][n]),
                  min(types, key=lambda t: (-types[t], rank(t), t)))
            for key, types in counts.items()}


def _fold(name: str) -> str:
    return " ".join(name.split()).casefold()


def merge_aliases(graph: dict) -> dict:
    """A user's graph (GET /v1/graph: entities, relations, co_mentions) with one node per
    entity: a name's types and spellings folded into one (`one_type_per_name`), and each
    person's aliases folded into the name they stand for: one entity (its `aliases` listed,
    mentions added up), relations and co-mentions renamed (a pair that became one name is
    dropped, co-mentions that became the same pair are added up)."""
    kinds = one_type_per_name(graph["entities"])
    aliases = alias_map((kinds[_fold(e["name"])][0], e["mentions"]) for e in graph["entities"]
                        if kinds[_fold(e["name"])][1] == "person")

    def canonical(name: str, type_: str = "other") -> tuple[str, str]:
        spelling, kind = kinds.get(_fold(name), (name, type_))
        return (aliases.get(spelling, spelling) if kind == "person" else spelling), kind

    merged: dict[tuple[str, str], dict] = {}
    for entity in graph["entities"]:
        name, kind = canonical(entity["name"], entity["type"])
        into = merged.setdefault((name, kind), {**entity, "name": name, "type": kind, "mentions": 0, "aliases": []})
        into["mentions"] += entity["mentions"]
        if _fold(name) != _fold(entity["name"]) and entity["name"] not in into["aliases"]:
            into["aliases"].append(entity["name"])
    entities = sorted(merged.values(), key=lambda e: (-e["mentions"], e["name"], e["type"]))
    for entity in entities:
        if not entity["aliases"]:
            del entity["aliases"]
    relations = []
    for relation in graph["relations"]:
        source, target = (canonical(n)[0] for n in (relation["source"], relation["target"]))
        if source != target:
            relations.append({**relation, "source": source, "target": target})
    pairs: dict[tuple, dict] = {}
    for pair in graph.get("co_mentions", []):
        ends = [canonical(pair[side], pair[f"{side}_type"]) for side in ("source", "target")]
        if ends[0] == ends[1]:
            continue
        (source, source_type), (target, target_type) = sorted(ends)
        key = (source, source_type, target, target_type)
        into = pairs.setdefault(key, {"source": source, "source_type": source_type, "target": target,
                                      "target_type": target_type, "weight": 0})
        into["weight"] += pair["weight"]
    co_mentions = sorted(pairs.values(), key=lambda c: (-c["weight"], c["source"], c["target"]))
    return {**graph, "entities": entities, "relations": relations, "co_mentions": co_mentions}
