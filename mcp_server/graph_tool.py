"""The MCP tool over the user's knowledge graph: search_graph, the entities and relations
around a name (a person, a project, a company, a place).

It reads GET /v1/graph (the Neo4j read model, waiting for the caller's latest write) and
keeps the neighbourhood of the entities the name matches: `neighbourhood` is the pure part.
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_server import rest_extras
from mcp_server.toolkit import READING, Caller, Toolkit

KNOWN_SHOWN = 20  # entity names offered when the name matches none


def register(kit: Toolkit) -> None:
    kit.add(search_graph(kit), READING)


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())


def matching(entities: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The entities called `name` (or with it as an alias), case and spacing aside; failing
    those, the entities whose name contains it ("Moreau" finds "Alice Moreau")."""
    wanted = _norm(name)
    exact = [e for e in entities if wanted in {_norm(e["name"]), *map(_norm, e.get("aliases") or [])}]
    return exact or [e for e in entities if wanted and wanted in _norm(e["name"])]


def neighbourhood(graph: dict[str, Any], name: str, depth: int = 1, limit: int = 50) -> dict[str, Any]:
    """The part of a user's graph (GET /v1/graph's answer) around `name`: the matching
    entities, the relations within `depth` hops of them (newest first, at most `limit`), the
    entities those relations reach, the entities named together with them in memories
    (co-mentions, heaviest first) and the ids of the memories the relations come from."""
    entities = graph.get("entities") or []
    matches = matching(entities, name)
    if not matches:
        return {"name": name, "matches": [], "entities": [], "relations": [], "co_mentions": [], "memory_ids": [],
                "message": f"no entity named like {name!r} in the user's graph",
                "known_entities": [e["name"] for e in entities[:KNOWN_SHOWN]]}
    reached = {e["name"] for e in matches}
    relations: list[dict[str, Any]] = []
    for _hop in range(depth):
        new = [r for r in graph.get("relations") or []
               if (r["source"] in reached or r["target"] in reached) and r not in relations]
        relations += new
        reached |= {r["source"] for r in new} | {r["target"] for r in new}
    relations = relations[:limit]
    matched = {e["name"] for e in matches}
    co_mentions = [c for c in graph.get("co_mentions") or [] if c["source"] in matched or c["target"] in matched]
    named = {r["source"] for r in relations} | {r["target"] for r in relations} | matched
    return {"name": name, "matches": matches,
            "entities": [e for e in entities if e["name"] in named],
            "relations": [{k: v for k, v in r.items() if v is not None} for r in relations],
            "co_mentions": co_mentions[:limit],
            "memory_ids": list(dict.fromkeys(r["memory_id"] for r in relations if r.get("memory_id")))}


def search_graph(kit: Toolkit):
    async def search_graph(
        name: Annotated[str, Field(description="The entity to look around: a person, project, company, place "
                                               "or tool as the user names it (e.g. 'Alice', 'Acme Corp'); "
                                               "case does not matter, part of a name works",
                                   min_length=1, max_length=200)],
        depth: Annotated[int, Field(description="1: the entity's own relations; 2: also those of the entities "
                                                "it is related to", ge=1, le=2)] = 1,
        include_closed: Annotated[bool, Field(description="Also relations that no longer hold (changed by a "
                                                          "later memory), with their valid_to")] = False,
        limit: Annotated[int, Field(description="Maximum relations (and co-mentions) to return", ge=1,
                                    le=200)] = 50,
        ctx: Context = None,  # type: ignore[assignment]
    ) -> dict[str, Any]:
        """Look up what the user's memories say about a person, project, company, place or tool
        and how it relates to others, from the user's knowledge graph.

        Call this for questions about who or what something is connected to ("who does Alice
        work with?", "what is Project Atlas about?") or to see everything linked to a name.
        Returns the entities matching the name, the relations around them (source, type,
        target, the memory it comes from, since when it holds), entities often mentioned
        together with it, and the memory ids to read with get_memory. Use search_memory for
        questions that are not about a named thing.
        """
        async def action(who: Caller):
            graph = await rest_extras.user_graph(who.client, who.user_id, include_closed=include_closed)
            return neighbourhood(graph, name, depth, limit)
        return await kit.run(ctx, "search_graph", action)
    return search_graph
