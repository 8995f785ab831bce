"""A content digest of one version of the graph read model (label set `<Label>_v<n>`).

Included: every node labelled User_v<n>, Memory_v<n>, Entity_v<n> or AppliedEvent_v<n>
with all its properties, and every relationship leaving a User, Memory or Entity node of
the version (OWNS, MENTIONS, RELATES) with its type, its properties and its two ends named
by their identity (User: user_id; Memory: id; Entity: user_id and key), except:
- ProjectionOffset_v<n> nodes (the projection's log positions);
- properties starting with `_` (a switch's transient `_LOCK_`).
Datetimes are ISO 8601 strings; property maps are sorted by key.

Each node and relationship becomes one line (canonical JSON), hashed; a part's digest
(one per label, one per relationship type) is the SHA-256 of its sorted line hashes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from neo4j import AsyncDriver

from adapters.neo4j_read_model import _check_version, versioned
from projectors.pg_digest import combine, rows_digest

NODE_LABELS = ("User", "Memory", "Entity", "AppliedEvent")
_IDENTITY = ("CASE WHEN {n}:Memory_vN THEN ['Memory', {n}.id] WHEN {n}:Entity_vN THEN ['Entity', {n}.user_id, {n}.key]"
             " WHEN {n}:User_vN THEN ['User', {n}.user_id] ELSE [head(labels({n})), elementId({n})] END")
_RELATIONSHIPS = f"""
MATCH (a)-[r]->(b)
WHERE a:User_vN OR a:Memory_vN OR a:Entity_vN
RETURN type(r) AS type, properties(r) AS props, {_IDENTITY.format(n='a')} AS source,
       {_IDENTITY.format(n='b')} AS target
"""


def _plain(value: Any) -> Any:
    if hasattr(value, "iso_format"):
        return value.iso_format()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _props(props: dict) -> dict:
    return {k: _plain(v) for k, v in sorted(props.items()) if not k.startswith("_")}


def _line_hash(item: Any) -> str:
    return hashlib.sha256(json.dumps(item, ensure_ascii=False, separators=(",", ":"), sort_keys=True,
                                     default=str).encode()).hexdigest()


async def digest(driver: AsyncDriver, version: int, database: str | None = None) -> dict:
    version = _check_version(version)
    hashes: dict[str, list[str]] = {}
    async with driver.session(database=database, default_access_mode="READ") as session:
        for label in NODE_LABELS:
            result = await session.run(versioned(f"MATCH (n:{label}_vN) RETURN properties(n) AS props", version))
            part = hashes.setdefault(label, [])
            async for record in result:
                part.append(_line_hash(_props(record["props"])))
        result = await session.run(versioned(_RELATIONSHIPS, version))
        async for record in result:
            hashes.setdefault(f"[:{record['type']}]", []).append(_line_hash(
                [record["source"], record["type"], _props(record["props"]), record["target"]]))
    if not hashes.get("Memory") and not hashes.get("User"):
        present = await driver.execute_query(
            versioned("RETURN EXISTS { (:ProjectionOffset_vN) } OR EXISTS { (:ReadModelVersion {version: $v}) }"
                      " OR EXISTS { (:ReadModelLive {version: $v}) } AS p", version), v=version, database_=database)
        if not present.records[0]["p"]:
            raise LookupError(f"version {version} of the graph read model has no nodes (does it exist?)")
    parts = {name: {"rows": len(h), "digest": rows_digest(sorted(h))} for name, h in hashes.items() if h}
    return {"projection": "neo4j", "version": version, "digest": combine(parts), "parts": parts,
            "excluded": {"labels": [f"ProjectionOffset_v{version}"], "properties": ["_*"]}}
