"""A content digest of one version of the graph read model (label set `<Label>_v<n>`).

Included: every node labelled User_v<n>, Memory_v<n>, Entity_v<n> or AppliedEvent_v<n>
with all its properties, and every relationship leaving a User, Memory or Entity node of
the version (OWNS, MENTIONS, RELATES) with its type, its properties and its two ends named
by their identity (User: user_id; Memory: id; Entity: user_id and key), except:
- ProjectionOffset_v<n> nodes (the projection's log positions);
- properties starting with `_` (a switch's transient `_LOCK_`).

Neo4j renders each node and relationship as one line of text (properties sorted by key,
values with toString(): datetimes in ISO 8601, lists item by item; control characters
separate keys, values and items): the Python driver decodes a string several times faster
than a map of datetimes. Each line is hashed; a part's digest (one per label, one per
relationship type) is the SHA-256 of its sorted line hashes.
"""

from __future__ import annotations

import hashlib

from neo4j import AsyncDriver

from adapters.neo4j_read_model import check_version, versioned
from projectors.pg_digest import combine, rows_digest

NODE_LABELS = ("User", "Memory", "Entity", "AppliedEvent")
SOURCE_LABELS = ("User", "Memory", "Entity")


def _line(x: str) -> str:
    """Cypher for entity `x`'s properties as one string: key US value RS ..., sorted by key."""
    value = (f"CASE WHEN {x}[k] IS :: LIST<ANY> THEN reduce(t = '[', e IN {x}[k] | t + toString(e) + '\\u001f') + ']'"
             f" ELSE toString({x}[k]) END")
    return (f"reduce(s = '', k IN COLLECT {{ UNWIND keys({x}) AS k WITH k WHERE NOT k STARTS WITH '_' RETURN k"
            f" ORDER BY k }} | s + k + '\\u001d' + coalesce({value}, '') + '\\u001e')")


def _identity(n: str) -> str:
    return (f"CASE WHEN {n}:Memory_vN THEN 'Memory\\u001f' + {n}.id"
            f" WHEN {n}:Entity_vN THEN 'Entity\\u001f' + {n}.user_id + '\\u001f' + {n}.key"
            f" WHEN {n}:User_vN THEN 'User\\u001f' + {n}.user_id"
            f" ELSE head(labels({n})) + '\\u001f' + elementId({n}) END")


_NODES = f"MATCH (x:LABEL_vN) RETURN {_line('x')} AS line"
# One query per source label: a label scan each (an OR of labels would scan every node).
_RELATIONSHIPS = (f"MATCH (a:LABEL_vN)-[x]->(b) RETURN type(x) AS type,"
                  f" {_identity('a')} + '\\u001c' + type(x) + '\\u001c' + {_line('x')} + '\\u001c' + {_identity('b')}"
                  f" AS line")


def _hash(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8", "surrogatepass")).hexdigest()


async def digest(driver: AsyncDriver, version: int, database: str | None = None) -> dict:
    version = check_version(version)
    hashes: dict[str, list[str]] = {}
    async with driver.session(database=database, default_access_mode="READ") as session:
        for label in NODE_LABELS:
            part = hashes.setdefault(label, [])
            result = await session.run(versioned(_NODES.replace("LABEL", label), version))
            async for record in result:
                part.append(_hash(record["line"]))
        for label in SOURCE_LABELS:
            result = await session.run(versioned(_RELATIONSHIPS.replace("LABEL", label), version))
            async for record in result:
                hashes.setdefault(f"[:{record['type']}]", []).append(_hash(record["line"]))
    if not hashes.get("Memory") and not hashes.get("User"):
        present = await driver.execute_query(
            versioned("RETURN EXISTS { (:ProjectionOffset_vN) } OR EXISTS { (:ReadModelVersion {version: $v}) }"
                      " OR EXISTS { (:ReadModelLive {version: $v}) } AS p", version), v=version, database_=database)
        if not present.records[0]["p"]:
            raise LookupError(f"version {version} of the graph read model has no nodes (does it exist?)")
    parts = {name: {"rows": len(h), "digest": rows_digest(sorted(h))} for name, h in hashes.items() if h}
    return {"projection": "neo4j", "version": version, "digest": combine(parts), "parts": parts,
            "excluded": {"labels": [f"ProjectionOffset_v{version}"], "properties": ["_*"]}}
