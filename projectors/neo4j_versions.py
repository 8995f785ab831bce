"""The graph read model's versions (projectors/versions.py): label sets `<Label>_v<n>`, the
pointer `(:ReadModelLive)`, each version's constraints and indexes, the switch and the drop, and
adopting a graph written before versions (projectors/neo4j_projector.py describes them)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from neo4j import AsyncDriver, AsyncManagedTransaction

from adapters.neo4j_read_model import NODE_LABELS, PROJECTION, READ_LIVE, check_version, versioned
from projectors.neo4j_projector import POSITIONS, Neo4jProjector
from projectors.neo4j_store import rows, run
from projectors.versions import covers

# Per version: `_vN` becomes `_v<n>` (versioned()).
VERSION_SCHEMA = (
    "CREATE CONSTRAINT rs_vN_user_id IF NOT EXISTS FOR (u:User_vN) REQUIRE u.user_id IS UNIQUE",
    "CREATE CONSTRAINT rs_vN_memory_id IF NOT EXISTS FOR (m:Memory_vN) REQUIRE m.id IS UNIQUE",
    ("CREATE CONSTRAINT rs_vN_entity_user_key IF NOT EXISTS FOR (e:Entity_vN)"
     " REQUIRE (e.user_id, e.key) IS UNIQUE"),
    ("CREATE CONSTRAINT rs_vN_projection_offset IF NOT EXISTS FOR (o:ProjectionOffset_vN)"
     " REQUIRE (o.projection, o.topic, o.partition) IS UNIQUE"),
    "CREATE CONSTRAINT rs_vN_applied_event_id IF NOT EXISTS FOR (a:AppliedEvent_vN) REQUIRE a.event_id IS UNIQUE",
    "CREATE INDEX rs_vN_memory_user IF NOT EXISTS FOR (m:Memory_vN) ON (m.user_id)",
    "CREATE INDEX rs_vN_entity_user IF NOT EXISTS FOR (e:Entity_vN) ON (e.user_id)",
    "CREATE INDEX rs_vN_entity_name IF NOT EXISTS FOR (e:Entity_vN) ON (e.name)",
    "CREATE INDEX rs_vN_applied_event_user IF NOT EXISTS FOR (a:AppliedEvent_vN) ON (a.user_id)",
)
VERSION_CONSTRAINTS = ("rs_vN_user_id", "rs_vN_memory_id", "rs_vN_entity_user_key", "rs_vN_projection_offset",
                       "rs_vN_applied_event_id")
VERSION_INDEXES = ("rs_vN_memory_user", "rs_vN_entity_user", "rs_vN_entity_name", "rs_vN_applied_event_user")
# Shared by every version: relationship property indexes, the pointer and the version markers.
GLOBAL_SCHEMA = (
    "CREATE CONSTRAINT rs_read_model_live IF NOT EXISTS FOR (p:ReadModelLive) REQUIRE p.projection IS UNIQUE",
    ("CREATE CONSTRAINT rs_read_model_version IF NOT EXISTS FOR (v:ReadModelVersion)"
     " REQUIRE (v.projection, v.version) IS UNIQUE"),
    "CREATE INDEX rs_relates_memory IF NOT EXISTS FOR ()-[r:RELATES]-() ON (r.memory_id)",
    "CREATE INDEX rs_relates_type IF NOT EXISTS FOR ()-[r:RELATES]-() ON (r.type)",
)
# What the code before versions created on the plain labels (dropped when adopting it).
LEGACY_CONSTRAINTS = ("rs_user_id", "rs_memory_id", "rs_entity_user_key", "rs_projection_offset",
                      "rs_applied_event_id")
LEGACY_INDEXES = ("rs_memory_user", "rs_entity_user", "rs_entity_name", "rs_applied_event_user")

_BATCH = 10_000
def _check_label(label: str) -> str:
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", label):
        raise ValueError(f"not a plain label name: {label!r}")
    return label


# A switch write-locks the live version's offsets (the Neo4j manual's `_LOCK_` idiom), then
# reads them: a batch advancing them commits first and is counted, or waits for the switch
# and then sees the pointer moved.
_LOCK_POSITIONS = """
MATCH (o:ProjectionOffset_vN {projection: $projection, topic: $topic})
WITH o ORDER BY o.partition
SET o._LOCK_ = true
"""
_UNLOCK_POSITIONS = """
MATCH (o:ProjectionOffset_vN {projection: $projection, topic: $topic})
REMOVE o._LOCK_
RETURN o.partition AS partition, o.offset AS offset
"""
_LOCK_LIVE = "MATCH (p:ReadModelLive {projection: $projection}) SET p._LOCK_ = true RETURN p.version AS version"
_SET_LIVE = "MATCH (p:ReadModelLive {projection: $projection}) REMOVE p._LOCK_ SET p.version = $version"
_UNLOCK_LIVE = "MATCH (p:ReadModelLive {projection: $projection}) REMOVE p._LOCK_"
_CREATE_LIVE = """
MERGE (p:ReadModelLive {projection: $projection})
  ON CREATE SET p.version = $version
RETURN p.version AS version
"""


class Neo4jVersions:
    """The graph read model's versions (projectors/versions.py): label sets `<Label>_v<n>`.

    `legacy_labels` / `legacy_schema`: what to adopt as version 1 when the pointer is first
    created. By default, for the real projection ("neo4j"), the contract labels and the
    unversioned constraints and indexes of the code before versions; for any other
    projection name nothing global (its own plain ProjectionOffset nodes only), so a test
    projection never relabels or drops what is not its own.
    """

    name = PROJECTION

    def __init__(self, driver: AsyncDriver, database: str | None = None, *, projection: str = PROJECTION,
                 legacy_labels: Sequence[str] | None = None, legacy_schema: Sequence[str] | None = None):
        self.driver = driver
        self.database = database
        self.name = projection
        real = projection == PROJECTION
        self.legacy_labels = tuple(_check_label(label) for label in (
            legacy_labels if legacy_labels is not None
            else [label for label in NODE_LABELS if label != "ProjectionOffset"] if real else ()))
        self.legacy_schema = tuple(_check_label(name) for name in (
            legacy_schema if legacy_schema is not None else (*LEGACY_CONSTRAINTS, *LEGACY_INDEXES) if real else ()))

    def _session(self):
        return self.driver.session(database=self.database, bookmark_manager=self.driver.execute_query_bookmark_manager)

    async def _query(self, query: str, **params: Any) -> list[dict]:
        records, _, _ = await self.driver.execute_query(query, params, database_=self.database)
        return [r.data() for r in records]

    async def _schema(self, statements: Iterable[str]) -> None:
        async with self._session() as session:
            for statement in statements:
                result = await session.run(statement)
                await result.consume()

    # --- the protocol --------------------------------------------------------------------

    async def live_version(self) -> int:
        rows = await self._query(READ_LIVE, projection=self.name)
        if rows:
            return rows[0]["version"]
        return await self._create_live()

    async def versions(self) -> list[int]:
        """The live version, the versions this projection created (their markers), and any
        label set with nodes (memories or offsets) that no projection claims."""
        found = {await self.live_version()}
        markers = await self._query(
            "MATCH (v:ReadModelVersion) RETURN v.projection AS projection, v.version AS version")
        found |= {r["version"] for r in markers if r["projection"] == self.name}
        claimed = {r["version"] for r in markers}
        # db.labels() also lists labels that only a constraint names: count the nodes.
        unclaimed = {int(match[1]) for r in await self._query("CALL db.labels() YIELD label RETURN label")
                     if (match := re.fullmatch(r"(?:Memory|ProjectionOffset)_v(\d+)", r["label"]))} - claimed - found
        for version in sorted(unclaimed):
            query = versioned("RETURN EXISTS { (:Memory_vN) } OR EXISTS { (:ProjectionOffset_vN) } AS present", version)
            if (await self._query(query))[0]["present"]:
                found.add(version)
        return sorted(found)

    async def create_version(self, version: int) -> None:
        version = check_version(version)
        await self._schema(GLOBAL_SCHEMA)
        await self._schema(versioned(statement, version) for statement in VERSION_SCHEMA)
        await self._query("MERGE (:ReadModelVersion {projection: $projection, version: $version})",
                          projection=self.name, version=version)

    def projection(self, version: int | None = None) -> Neo4jProjector:
        return Neo4jProjector(self, version)

    async def switch(self, version: int, topic: str) -> bool:
        version = check_version(version)
        await self.live_version()  # the pointer exists
        async with self._session() as session:
            return await session.execute_write(self._switch, version, topic)

    async def _switch(self, tx: AsyncManagedTransaction, version: int, topic: str) -> bool:
        # Lock order: the pointer, then the live offsets (a batch only ever locks offsets).
        live = (await rows(tx, _LOCK_LIVE, projection=self.name))[0]["version"]
        if live == version:
            await run(tx, _UNLOCK_LIVE, projection=self.name)
            return True
        await run(tx, versioned(_LOCK_POSITIONS, live), projection=self.name, topic=topic)
        current = {r["partition"]: r["offset"] for r in await rows(
            tx, versioned(_UNLOCK_POSITIONS, live), projection=self.name, topic=topic)}
        candidate = {r["partition"]: r["offset"] for r in await rows(
            tx, versioned(POSITIONS, version), projection=self.name, topic=topic)}
        if not covers(candidate, current):
            await run(tx, _UNLOCK_LIVE, projection=self.name)
            return False
        await run(tx, _SET_LIVE, projection=self.name, version=version)
        return True

    async def drop(self, version: int) -> None:
        """Delete a version with everything in it (never one that is live, for any projection:
        labels are shared), then its constraints, indexes and marker."""
        version = check_version(version)
        if await self.live_version() == version:
            raise ValueError(f"version {version} of the {self.name} read model is live; it cannot be dropped")
        live_elsewhere = await self._query("MATCH (p:ReadModelLive {version: $version}) RETURN p.projection AS p",
                                           version=version)
        if live_elsewhere:
            raise ValueError(f"version {version}'s labels are live for {live_elsewhere[0]['p']!r}; not dropped")
        for label in ("Memory", "Entity", "User", "AppliedEvent", "ProjectionOffset"):  # offsets last: still listed
            query = f"MATCH (n:{label}_v{version}) WITH n LIMIT $limit DETACH DELETE n RETURN count(*) AS deleted"
            while (await self._query(query, limit=_BATCH))[0]["deleted"]:
                pass
        await self._schema([*(f"DROP CONSTRAINT {versioned(name, version)} IF EXISTS" for name in VERSION_CONSTRAINTS),
                            *(f"DROP INDEX {versioned(name, version)} IF EXISTS" for name in VERSION_INDEXES)])
        await self._query("MATCH (v:ReadModelVersion {projection: $projection, version: $version}) DELETE v",
                          projection=self.name, version=version)

    # --- the first pointer, and adopting a graph written before versions -----------------

    async def _create_live(self) -> int:
        await self.create_version(1)
        await self.adopt_unversioned(1)
        await self.drop_legacy_schema()
        return (await self._query(_CREATE_LIVE, projection=self.name, version=1))[0]["version"]

    async def adopt_unversioned(self, version: int = 1) -> int:
        """Give the nodes written before versions the labels of `version`: every node of a
        `legacy_labels` label that has no versioned label yet, and this projection's plain
        ProjectionOffset nodes. In batches of their own transactions; an interrupted run
        continues where it stopped. Returns how many nodes were relabelled."""
        version = check_version(version)
        adopted = 0
        steps = [(label, "") for label in self.legacy_labels if label != "ProjectionOffset"]
        steps.append(("ProjectionOffset", "n.projection = $projection AND "))
        async with self._session() as session:
            for label, scope in steps:
                result = await session.run(
                    f"MATCH (n:{label}) WHERE {scope}none(l IN labels(n) WHERE l =~ $versioned)"
                    f" CALL (n) {{ SET n:{label}_v{version} }} IN TRANSACTIONS OF {_BATCH} ROWS",
                    projection=self.name, versioned=f"{label}_v[0-9]+")
                adopted += (await result.consume()).counters.labels_added
        return adopted

    async def drop_legacy_schema(self) -> None:
        """Drop the `legacy_schema` constraints and indexes that exist: uniqueness on a plain
        label would make two versions collide (the same memory id is in both)."""
        names = list(self.legacy_schema)
        if not names:
            return
        constraints = [r["name"] for r in await self._query(
            "SHOW CONSTRAINTS YIELD name WHERE name IN $names RETURN name", names=names)]
        indexes = [r["name"] for r in await self._query(
            "SHOW INDEXES YIELD name, owningConstraint WHERE name IN $names AND owningConstraint IS NULL"
            " RETURN name", names=names)]
        await self._schema([*(f"DROP CONSTRAINT {name} IF EXISTS" for name in constraints),
                            *(f"DROP INDEX {name} IF EXISTS" for name in indexes)])
