"""The Neo4j graph read model, read side: the version helpers and `Neo4jReadModel`, what the
query API reads the graph through (it never imports projectors/).

Written only by projectors/neo4j_projector.py, whose module docstring describes the graph
(users, memories, entities, RELATES relations with `valid_from`/`valid_to`, per-user
everything) and its versions: every node of version n carries a versioned label
(`Memory_v3`, `Entity_v3`, ...), the pointer `(:ReadModelLive {projection: "neo4j",
version: n})` says which version is live, and a replay builds n+1 beside it, switches the
pointer and drops n. Queries are written with `_vN` labels (`MATCH (m:Memory_vN)`) and
`versioned(query, n)` turns them into one version's; the version is an int, so nothing
from input ever enters the query text. Every value is a Cypher parameter.

`Neo4jReadModel(driver)` reads the live version: it resolves the pointer at most once per
`live_ttl` seconds (1 s by default; 0 reads it on every call), so after a switch it may
read the old version for up to that long (which a replay drops right after the switch: such
a read may come back short). Its reads are auto-commit transactions, which
the driver does not retry: when Neo4j is down they raise one of `NEO4J_UNAVAILABLE` at
once (after the driver's `connection_timeout` when the host does not answer at all), for
the caller to degrade the graph source.

The graph retrieval source (`memories_for_entities`):

1. Seeds: the user's entities whose name matches a query name, case-insensitively. All
   through the `(user_id, key)` uniqueness index (`key` = `lower(name)|type`):
   - exact: `key STARTS WITH "<name>|"` (index seek), weight `EXACT_WEIGHT`;
   - the entity name contains the query name as a whole (space-separated) word, for
     query names of 3+ characters, weight `WORD_WEIGHT`: as its first word
     `key STARTS WITH "<name> "` (index seek); as a later word `key CONTAINS " <name> "`
     or `" <name>|"` (a scan of the user's slice of that index, values read from the index);
   - the query name contains the entity name as a whole word (3+ characters), weight
     `WORD_WEIGHT`: every contiguous run of the query name's words is looked up exactly
     (index seeks).
   At most `MAX_SEEDS` seeds, best first.
2. Expansion, one hop at a time up to `hops` (at most `MAX_HOPS`): over RELATES relations
   that hold at the time asked about, either direction. By default that is now
   (`valid_to IS NULL`); `valid_at` asks about the past: at an instant t the relations with
   `valid_from <= t` and `valid_to` unset or after t (so a fact an update has replaced since
   is still followed), or during a window [start, end) those that held at any moment of it.
   Relations of forgotten or deleted memories are never followed (a forgotten memory's
   relations are not closed, it may be restored: its `state` decides); those of archived
   memories are (what a consolidated memory said is history, not refuted). Each entity
   expands at most `PER_NODE` relations and each hop at most `PER_HOP` in all, so a hub
   entity cannot blow the work up. An entity reached at distance d weighs `w / (1 + d)` (w: its seed's
   weight); one reached several ways keeps its best weight.
3. Memories: the active (optionally archived) memories of the scope that MENTION any of
   those entities, scored by the sum of the weights of the entities they mention (more
   matched entities: higher; neighbours count less), ties broken by the most recent
   `occurred_at`, then id. At most `SEED_MENTIONS` MENTIONS of the seeds are read, and of
   the neighbours at most `PER_NEIGHBOUR` each and `NEIGHBOUR_MENTIONS` in all, the
   best-weighted (closest) first. `scope` (agent_id / run_id / app_id) filters the
   memories; the expansion walks all of the user's valid relations.

`user_graph` (GET /v1/graph): the user's entities with the number of active memories that
mention each (entities no active memory mentions are left out unless include_closed),
most mentioned first, then by name; the relations between the entities listed
(`limit` may cut both), newest `valid_from` first, times as ISO 8601 strings; and their
co-mentions (pairs of entities named by the same memories, `weight` the number of
memories), heaviest first. A person's short names are folded into the name they stand for
(`Mel` into `Melanie`: domain/aliases.py), listed as its `aliases`. Closed
relations are not shown by default: only those that hold now (`valid_to` unset) of memories
that are not forgotten (archived memories' relations hold: they are history).
`include_closed=true` (the endpoint's query parameter) shows every relation, the whole
history: closed by an update or a delete (with their `valid_to`) and forgotten memories'.
There is no "as of" for the endpoint yet; `valid_at` is the search source's.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import neo4j
from neo4j import AsyncDriver, RoutingControl
from neo4j.exceptions import ServiceUnavailable, SessionExpired

from domain.aliases import merge_aliases

PROJECTION = "neo4j"
NODE_LABELS = ("User", "Memory", "Entity", "ProjectionOffset", "AppliedEvent")  # the contract labels

# What the caller turns into a degraded source (503 / skipped in search) rather than a 500.
NEO4J_UNAVAILABLE: tuple[type[BaseException], ...] = (ServiceUnavailable, SessionExpired, OSError)

READ_LIVE = "MATCH (p:ReadModelLive {projection: $projection}) RETURN p.version AS version"


def check_version(version: int) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"a read-model version is a positive int, not {version!r}")
    return version


@lru_cache(maxsize=1024)
def versioned(template: str, version: int) -> str:
    """A query template for `version`: every `_vN` (as in `Memory_vN`, `rs_vN_memory_id`)
    becomes `_v<version>`. The version is an int, so nothing else enters the query text."""
    return re.sub(r"_vN(?![A-Za-z0-9])", f"_v{check_version(version)}", template)


def labels(version: int) -> dict[str, str]:
    """The versioned label of each contract label: {"Memory": "Memory_v3", ...}."""
    return {label: f"{label}_v{check_version(version)}" for label in NODE_LABELS}


async def live_graph_version(driver: AsyncDriver, database: str | None = None, projection: str = PROJECTION) -> int:
    """The version readers read (a plain read of the pointer; 1 while there is none)."""
    records, _, _ = await driver.execute_query(READ_LIVE, projection=projection, database_=database,
                                               routing_=RoutingControl.READ)
    return records[0]["version"] if records else 1


# --- the graph retrieval source ----------------------------------------------------------

EXACT_WEIGHT = 1.0  # a seed whose name is the query name
WORD_WEIGHT = 0.8  # a seed whose name contains the query name as a word, or the other way round
MIN_WORD_CHARS = 3  # the contained side of a word match needs this many characters
MAX_NAMES = 32  # query names looked at
MAX_NAME_WORDS = 8  # words of a query name looked at for the "query contains entity" match
MAX_HOPS = 3
MAX_SEEDS = 100
PER_NODE = 100  # relations one entity expands per hop
PER_HOP = 1000  # relations expanded per hop in all
# MENTIONS of the seeds read in all. The source returns at most a few hundred; a speaker named in
# half of a 100k-memory user's memories would otherwise cost Neo4j ~10k relationship reads a search.
SEED_MENTIONS = 2_000
MAX_NEIGHBOURS = 500  # neighbours whose mentions are read, the best-weighted first
PER_NEIGHBOUR = 25  # MENTIONS read per neighbour
NEIGHBOUR_MENTIONS = 1000  # MENTIONS of neighbours read in all
MAX_LIMIT = 1000
SCOPE_FIELDS = ("agent_id", "run_id", "app_id")
MEMORY_STATES = ("active", "archived")
HIDDEN_STATES = ["forgotten", "deleted"]  # memories whose relations are never followed

# Both branches read the (user_id, key) uniqueness index: seeks by prefix, and for the
# infixes a scan of the user's slice with the keys taken from the index (the hint; the
# planner would otherwise pick the user_id index and read every key from the store).
_SEEDS = """
CALL () {
  UNWIND $prefixes AS p
  MATCH (e:Entity_vN)
  WHERE e.user_id = $user_id AND e.key STARTS WITH p.prefix
  RETURN e, p.weight AS w
  UNION ALL
  MATCH (e:Entity_vN)
  USING INDEX e:Entity_vN(user_id, key)
  WHERE size($infixes) > 0 AND e.user_id = $user_id AND e.key IS NOT NULL
    AND any(c IN $infixes WHERE e.key CONTAINS c)
  RETURN e, $word_weight AS w
}
WITH e, max(w) AS w
ORDER BY w DESC, e.key
LIMIT $max_seeds
WITH collect({e: e, w: w}) AS hop0
"""
# Hop d expands hop d-1 (never back into the seeds, which weigh the most anyway).
_HOP = """
CALL ({imports}) {{
  UNWIND hop{prev} AS f
  WITH hop0, f.e AS fe, f.w AS fw
  CALL (fe) {{
    MATCH (fe)-[r:RELATES]-(n:Entity_vN)
    WHERE (CASE WHEN $since IS NULL THEN r.valid_to IS NULL
                ELSE r.valid_from <= $until AND (r.valid_to IS NULL OR r.valid_to > $since) END)
      AND NOT EXISTS {{ MATCH (h:Memory_vN {{id: r.memory_id}}) WHERE h.state IN $hidden }}
    RETURN n
    LIMIT $per_node
  }}
  WITH hop0, n, fw
  LIMIT $per_hop
  WITH hop0, n, max(fw) AS w
  WHERE none(s IN hop0 WHERE s.e = n)
  RETURN collect({{e: n, w: w}}) AS hop{d}
}}
"""
# Seeds: every mention (up to $seed_mentions). Neighbours: at most $per_neighbour memories each and
# $neighbour_mentions in all, the best-weighted first, so a hub neighbour cannot flood the work.
_MENTIONED = """
CALL ({imports}) {{
  UNWIND hop0 AS x
  WITH x.e AS e, x.w AS w
  MATCH (m:Memory_vN)-[:MENTIONS]->(e)
  WHERE {memory_filter}
  RETURN m, w
  LIMIT $seed_mentions{neighbour_branch}
}}
"""
_NEIGHBOUR_BRANCH = """
  UNION ALL
  UNWIND {neighbours} AS x
  WITH x.e AS e, max(x.w) AS w
  ORDER BY w DESC
  LIMIT $max_neighbours
  CALL (e) {{
    MATCH (m:Memory_vN)-[:MENTIONS]->(e)
    WHERE {memory_filter}
    RETURN m
    LIMIT $per_neighbour
  }}
  RETURN m, w
  LIMIT $neighbour_mentions"""
_MEMORY_FILTER = ("m.state IN $states AND ($agent_id IS NULL OR m.agent_id = $agent_id)"
                  " AND ($run_id IS NULL OR m.run_id = $run_id) AND ($app_id IS NULL OR m.app_id = $app_id)")
_SCORED = """
WITH m, sum(w) AS score
ORDER BY score DESC, m.occurred_at DESC, m.id
LIMIT $limit
RETURN collect([m.id, score]) AS hits
"""


@lru_cache(maxsize=16)
def _retrieval_template(hops: int) -> str:
    """The `_vN` query for `hops` hops (an int in 0..MAX_HOPS: the only thing that shapes the text)."""
    if isinstance(hops, bool) or not isinstance(hops, int) or not 0 <= hops <= MAX_HOPS:
        raise ValueError(f"hops is an int from 0 to {MAX_HOPS}, not {hops!r}")
    hop_lists = [f"hop{d}" for d in range(hops + 1)]  # hop0: the seeds
    expansion = "".join(_HOP.format(imports=", ".join(dict.fromkeys(["hop0", hop_lists[d - 1]])), prev=d - 1, d=d)
                        for d in range(1, hops + 1))
    neighbour_branch = _NEIGHBOUR_BRANCH.format(memory_filter=_MEMORY_FILTER, neighbours=" + ".join(
        f"[x IN hop{d} | {{e: x.e, w: x.w / {1 + d}.0}}]" for d in range(1, hops + 1))) if hops else ""
    mentioned = _MENTIONED.format(imports=", ".join(hop_lists), neighbour_branch=neighbour_branch,
                                  memory_filter=_MEMORY_FILTER)
    return _SEEDS + expansion + mentioned + _SCORED


def _norm(name: Any) -> str:
    return " ".join(str(name).split()).lower()


def match_patterns(names: Sequence[str]) -> tuple[list[dict], list[str]]:
    """What the seed query looks for: `prefixes` ({prefix, weight}: `key STARTS WITH prefix`)
    and `infixes` (`key CONTAINS infix`, weight WORD_WEIGHT). Keys are `lower(name)|type`
    with names whitespace-collapsed, so `"<name>|"` is an exact name, a space a word boundary."""
    if isinstance(names, str):
        raise TypeError("names is a list of names, not one string")
    prefixes: dict[str, float] = {}
    infixes: list[str] = []

    def add(prefix: str, weight: float) -> None:
        prefixes[prefix] = max(weight, prefixes.get(prefix, 0.0))

    for raw in list(names)[:MAX_NAMES]:
        name = _norm(raw)
        if not name:
            continue
        add(name + "|", EXACT_WEIGHT)
        if len(name) >= MIN_WORD_CHARS:
            add(name + " ", WORD_WEIGHT)  # the entity's first word(s)
            for infix in (f" {name} ", f" {name}|"):  # a later word, in the middle or at the end
                if infix not in infixes:
                    infixes.append(infix)
        words = name.split(" ")[:MAX_NAME_WORDS]
        whole = len(name.split(" "))
        for i in range(len(words)):
            for j in range(i + 1, len(words) + 1):
                if i == 0 and j == whole:
                    continue  # the name itself: exact
                part = " ".join(words[i:j])
                if len(part) >= MIN_WORD_CHARS:
                    add(part + "|", WORD_WEIGHT)
    return [{"prefix": p, "weight": w} for p, w in prefixes.items()], infixes


# Reads a bounded slice of the store (not the whole label), then keeps the best-connected.
_SAMPLE_ENTITIES = """
MATCH (e:Entity_vN)
WITH e LIMIT 2000
WITH e, COUNT { (:Memory_vN)-[:MENTIONS]->(e) } AS mentions
ORDER BY mentions DESC
LIMIT $limit
RETURN e.user_id AS user_id, e.name AS name
"""


# --- the graph endpoint ------------------------------------------------------------------

# Relations only between the entities listed (all of the user's unless `limit` cut them).
_USER_GRAPH = """
MATCH (e:Entity_vN)
WHERE e.user_id = $user_id
WITH e, COUNT { (m:Memory_vN)-[:MENTIONS]->(e) WHERE m.state = 'active' } AS mentions
WHERE mentions > 0 OR $include_closed
WITH e, mentions
ORDER BY mentions DESC, e.name, e.type
LIMIT $limit
WITH collect(e) AS nodes, collect([e.name, e.type, mentions]) AS entities
CALL (nodes) {
  UNWIND nodes AS s
  MATCH (s)-[r:RELATES]->(t:Entity_vN)
  WHERE ($include_closed OR (r.valid_to IS NULL
                             AND NOT EXISTS { MATCH (h:Memory_vN {id: r.memory_id}) WHERE h.state IN $hidden }))
    AND (size(nodes) < $limit OR t IN nodes)
  WITH s, r, t
  ORDER BY r.valid_from DESC, s.name, t.name, r.type, r.memory_id
  LIMIT $limit
  RETURN collect([s.name, t.name, r.type, r.memory_id, toString(r.valid_from), toString(r.valid_to)]) AS relations
}
CALL (nodes) {
  UNWIND nodes AS a
  MATCH (a)-[c:CO_MENTIONED]->(b:Entity_vN)
  WHERE b IN nodes
  WITH a, b, c
  ORDER BY c.weight DESC, a.name, b.name
  LIMIT $limit
  RETURN collect([a.name, a.type, b.name, b.type, c.weight]) AS co_mentions
}
RETURN entities, relations, co_mentions
"""
_POSITIONS = """
MATCH (o:ProjectionOffset_vN {projection: $projection, topic: $topic})
RETURN o.partition AS partition, o.offset AS offset
"""


def _iso(value: str | None) -> str | None:
    """A Cypher `toString(datetime)` as Python's ISO 8601 (`...+00:00`, microseconds at most)."""
    if value is None:
        return None
    try:
        return datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", value)).isoformat()
    except ValueError:
        return value  # a form Python does not parse (a named zone): Neo4j's own ISO 8601


def _validity(valid_at: datetime | tuple[datetime, datetime] | None) -> tuple[datetime | None, datetime | None]:
    """(since, until) for the expansion: a relation is followed when valid_from <= until and it
    was not closed by since. An instant t is (t, t); a window [start, end) is (start, end - 1 µs)."""
    if valid_at is None:
        return None, None
    since, until = valid_at if isinstance(valid_at, tuple) else (valid_at, valid_at)
    if not all(isinstance(t, datetime) and t.utcoffset() is not None for t in (since, until)):
        raise ValueError(f"valid_at is a timezone-aware datetime or a (start, end) pair of them, not {valid_at!r}")
    if until < since:
        raise ValueError(f"valid_at's window ends before it starts: {valid_at!r}")
    if until > since:
        until -= timedelta(microseconds=1)  # the window's end is exclusive
    return since, until


def _check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit is a positive int, not {limit!r}")
    return min(limit, MAX_LIMIT)


class Neo4jReadModel:
    """Reads of the live version of the graph read model. The driver is the caller's."""

    def __init__(self, driver: AsyncDriver, database: str | None = None, *, projection: str = PROJECTION,
                 live_ttl: float = 1.0, query_timeout_s: float = 5.0):
        self.driver = driver
        self.database = database
        self.projection = projection  # the pointer's key and ProjectionOffset.projection (another one only in tests)
        self.live_ttl = live_ttl
        self.query_timeout_s = query_timeout_s  # Neo4j terminates a read running longer
        self._live: tuple[int, float] | None = None  # (version, monotonic time read)

    async def version(self) -> int:
        """The live version (read at most once per live_ttl seconds)."""
        now = time.monotonic()
        if self._live is not None and now - self._live[1] < self.live_ttl:
            return self._live[0]
        rows = await self._run(READ_LIVE, projection=self.projection)
        version = rows[0]["version"] if rows else 1
        self._live = (version, now)
        return version

    async def _run(self, query: str, **params: Any) -> list[dict]:
        # An auto-commit read, not execute_query: no retries, so an outage surfaces at once
        # (NEO4J_UNAVAILABLE) and the caller degrades the source instead of waiting.
        async with self.driver.session(database=self.database, default_access_mode=neo4j.READ_ACCESS,
                                       bookmark_manager=self.driver.execute_query_bookmark_manager) as session:
            # A server-side timeout: a search that stopped waiting must not leave the query running.
            result = await session.run(neo4j.Query(query, timeout=self.query_timeout_s), params)
            return await result.data()

    async def _read(self, template: str, **params: Any) -> list[dict]:
        return await self._run(versioned(template, await self.version()), **params)

    async def check(self) -> None:
        """A cheap round trip, for readiness; raises what the driver raises."""
        await self._run("RETURN 1 AS ok")

    async def positions(self, topic: str) -> dict[int, int]:
        """Partition -> highest offset of `topic` the live version has applied (what
        consistency tokens are checked against)."""
        records = await self._read(_POSITIONS, projection=self.projection, topic=topic)
        return {r["partition"]: r["offset"] for r in records}

    async def sample_entities(self, limit: int = 20) -> list[tuple[str, str]]:
        """(user id, name) of up to `limit` entities of the live version, the most mentioned
        of those read first: real seeds for warming the graph source up."""
        records = await self._read(_SAMPLE_ENTITIES, limit=_check_limit(limit))
        return [(r["user_id"], r["name"]) for r in records]

    async def memories_for_entities(self, user_id: str, names: list[str], *, hops: int = 2, limit: int = 50,
                                    scope: dict | None = None, include_archived: bool = False,
                                    valid_at: datetime | tuple[datetime, datetime] | None = None,
                                    ) -> list[tuple[str, float]]:
        """(memory id, score) of the user's memories that mention an entity named in `names`
        or one within `hops` relations of it valid at `valid_at` (an instant or a [start, end)
        window; None: now), best first (see the module docstring)."""
        limit = _check_limit(limit)
        since, until = _validity(valid_at)
        if isinstance(hops, bool) or not isinstance(hops, int) or hops < 0:
            raise ValueError(f"hops is a non-negative int, not {hops!r}")
        template = _retrieval_template(min(hops, MAX_HOPS))  # deeper than MAX_HOPS: MAX_HOPS
        scope = dict(scope or {})
        unknown = set(scope) - set(SCOPE_FIELDS)
        if unknown:
            raise ValueError(f"scope fields are {', '.join(SCOPE_FIELDS)}; not {', '.join(sorted(unknown))}")
        prefixes, infixes = match_patterns(names)
        if not prefixes:
            return []
        records = await self._read(
            template, user_id=user_id, prefixes=prefixes, infixes=infixes, word_weight=WORD_WEIGHT,
            max_seeds=MAX_SEEDS, per_node=PER_NODE, per_hop=PER_HOP, seed_mentions=SEED_MENTIONS,
            max_neighbours=MAX_NEIGHBOURS, per_neighbour=PER_NEIGHBOUR, neighbour_mentions=NEIGHBOUR_MENTIONS,
            states=list(MEMORY_STATES if include_archived else MEMORY_STATES[:1]), limit=limit,
            since=since, until=until, hidden=HIDDEN_STATES,
            **{field: scope.get(field) for field in SCOPE_FIELDS})
        return [(memory_id, float(score)) for memory_id, score in records[0]["hits"]] if records else []

    async def user_graph(self, user_id: str, *, limit: int = 500, include_closed: bool = False) -> dict:
        """The user's entities (with how many active memories mention each; those no active
        memory mentions only with include_closed) sorted by mentions, then name, and the
        relations between them (only those that still hold, of memories not forgotten, unless
        include_closed), newest first; at most `limit` of each."""
        records = await self._read(_USER_GRAPH, user_id=user_id, limit=_check_limit(limit),
                                   include_closed=include_closed, hidden=HIDDEN_STATES)
        entities, relations, co_mentions = ((records[0]["entities"], records[0]["relations"], records[0]["co_mentions"])
                                            if records else ([], [], []))
        return merge_aliases({
            "entities": [{"name": name, "type": type_, "mentions": mentions} for name, type_, mentions in entities],
            "relations": [{"source": source, "target": target, "type": type_, "memory_id": memory_id,
                           "valid_from": _iso(valid_from), "valid_to": _iso(valid_to)}
                          for source, target, type_, memory_id, valid_from, valid_to in relations],
            "co_mentions": [{"source": a, "source_type": a_type, "target": b, "target_type": b_type, "weight": weight}
                            for a, a_type, b, b_type, weight in co_mentions],
        })
