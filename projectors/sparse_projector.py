"""SparseProjector: the sparse index (Tantivy, adapters/sparse_schema.py) kept from the log,
with its log positions committed in the same commit as the data they cover.

Layout and locking: adapters/sparse_layout.py (`<root>/live`, `<root>/lock`, `<root>/v<n>/`).
Each version has one writer (Tantivy's own lock file refuses a second: `SparseBusy`, waited
out like an outage). A batch is applied in a worker thread (the event loop keeps Kafka's
heartbeats going): the documents its events name are read from the last commit in one
query, the events applied in log order (projectors/sparse_projection.py), then each changed
memory's document is replaced (delete by id term + add), the position documents of the
partitions it moved replaced, and everything committed at once. A crash before the commit
leaves the previous commit: the batch is fetched again from the positions it holds.

Following the live version (the projector process), each batch holds `<root>/lock` from
reading `live` to its commit, and raises `Relocated` (nothing written) when `live` moved:
a switch never lands between. A pinned version (a replay) takes no lock: nobody else
writes it.

Erasure: Tantivy deletes are tombstones until segments merge, so a batch with a
UserErased of a user the files hold anything of (none in a replay: the user's events come
shredded) rewrites the whole version in its commit: every surviving document is read
back from its stored fields and added anew after `delete_all_documents`, the old segments
and their files go, and the writer waits for merges in flight before it collects garbage
files, so no file of the version holds anything of the user (cost: re-indexing the
version, ~2-3 s per 100,000 memories here).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import tantivy

from adapters import sparse_layout, sparse_schema
from adapters.sparse_schema import KIND_MEMORY, memory_document, memory_from_stored, position_document
from projectors.applied import Applied, Relocated
from projectors.sparse_projection import MEMORY_EVENTS, project, referenced_ids
from projectors.sparse_store import Changes, TantivyCommitted

log = logging.getLogger(__name__)

PROJECTION = "sparse"
LIVE_WRITER = (1, 64_000_000)  # (indexing threads, heap bytes): small batches, little memory
REPLAY_WRITER = (2, 256_000_000)  # a replay indexes millions of documents as fast as it can


class SparseBusy(Exception):
    """Another writer holds this version (a projector still exiting, a replay, a DLQ retry)."""


class SparseOutdated(Exception):
    """The live version was built with another schema (an older release): the projector
    waits, applying nothing, until a replay switches readers to a version of this one."""


def ensure_live(root: Path) -> int:
    """The live version; creates version 1 (empty) as live when there is none."""
    live = sparse_layout.read_live(root)
    if live is not None:
        return live
    with sparse_layout.locked(root):
        return ensure_live_locked(root)


def ensure_live_locked(root: Path) -> int:
    live = sparse_layout.read_live(root)
    if live is None:
        existing = sparse_layout.versions(root)  # `live` lost: the newest version stands in
        live = max(existing) if existing else 1
        sparse_schema.open_index(sparse_layout.version_dir(root, live), create=True)
        sparse_layout.write_live(root, live)
    return live


def read_version_positions(root: Path, version: int, topic: str) -> dict[int, int]:
    path = sparse_layout.version_dir(root, version)
    if not sparse_schema.exists(path):
        return {}
    index = sparse_schema.open_index(path, check=False)  # positions read by the index's own schema
    index.reload()
    return sparse_schema.read_positions(index.searcher(), topic, index.schema)


class SparseProjector:
    name = PROJECTION
    # A full disk or an I/O error waits like a database outage; so do another writer and a
    # version of an older schema (until a replay replaces it).
    transient_errors: tuple[type[BaseException], ...] = (SparseBusy, SparseOutdated, OSError)

    def __init__(self, root: Path, version: int | None = None, writer: tuple[int, int] | None = None):
        self.root = Path(root)
        self.pinned = version  # None: follow the live version
        self.version = version
        self.threads, self.heap = writer or (REPLAY_WRITER if version is not None else LIVE_WRITER)
        self._index: tantivy.Index | None = None
        self._writer: tantivy.IndexWriter | None = None
        self._positions: dict[str, dict[int, int]] = {}  # per topic, as of the last commit
        self._busy = threading.Lock()  # one batch (or close) at a time

    # --- the Projection protocol --------------------------------------------------------------

    async def positions(self, topic: str) -> dict[int, int]:
        return await asyncio.to_thread(self._read_positions, topic)

    async def apply_batch(self, topic: str, batch: Sequence[Applied]) -> None:
        if batch:
            await asyncio.to_thread(self._apply, topic, list(batch))

    def close(self) -> None:
        """Let merges finish and release the writer (reopened by the next batch)."""
        with self._busy:
            self._close()

    # --- inside the worker thread -----------------------------------------------------------

    def _read_positions(self, topic: str) -> dict[int, int]:
        with self._busy:
            if self.pinned is None:
                live = ensure_live(self.root)
                if live != self.version:
                    self._close()
                    self.version = live
            if self._index is not None:
                return sparse_schema.read_positions(self._index.searcher(), topic)
            return read_version_positions(self.root, self.version, topic)

    def _apply(self, topic: str, batch: list[Applied]) -> None:
        with self._busy:
            if self.pinned is not None:
                self._write(topic, batch)
                return
            with sparse_layout.locked(self.root):
                live = ensure_live_locked(self.root)
                if self.version is None:  # used without positions() first (a DLQ retry)
                    self.version = live
                elif live != self.version:
                    moved_from = self.version
                    self._close()
                    raise Relocated(f"sparse index moved from v{moved_from} to v{live}")
                self._write(topic, batch)

    def _open(self) -> tuple[tantivy.Index, tantivy.IndexWriter]:
        if self._writer is None:
            try:
                index = sparse_schema.open_index(sparse_layout.version_dir(self.root, self.version), create=True)
            except sparse_schema.SchemaMismatch as exc:
                raise SparseOutdated(str(exc)) from exc
            try:
                self._writer = index.writer(heap_size=self.heap, num_threads=self.threads)
            except ValueError as exc:
                if "LockBusy" in str(exc):
                    raise SparseBusy(f"another process writes version {self.version} of the sparse index "
                                     "(a projector-sparse, a replay or a DLQ retry)") from exc
                raise
            index.reload()
            self._index = index
            self._positions = {}
        return self._index, self._writer

    def _close(self) -> None:
        writer, self._writer, self._index, self._positions = self._writer, None, None, {}
        if writer is not None:
            try:
                writer.wait_merging_threads()
            except Exception as exc:  # the version was dropped under it: nothing to keep
                log.warning("sparse writer of v%s closed with %s", self.version, type(exc).__name__)

    def _write(self, topic: str, batch: list[Applied]) -> None:
        index, writer = self._open()
        searcher = index.searcher()
        committed = TantivyCommitted(searcher)
        events = [item.event for item in batch if type(item.event) in MEMORY_EVENTS]
        committed.prefetch(referenced_ids(events))
        changes = Changes(committed)
        for event in events:
            project(changes, event)
        if topic not in self._positions:
            self._positions[topic] = sparse_schema.read_positions(searcher, topic)
        positions = dict(self._positions[topic])
        moved: dict[int, int] = {}
        for item in batch:
            if item.offset > positions.get(item.partition, -1):
                positions[item.partition] = moved[item.partition] = item.offset
        # Only a user with bytes in the files needs the rewrite (doc_freq counts documents a delete
        # only marked, too); a replay meets erased users' events shredded and has none of theirs.
        purge = any(searcher.doc_freq("user_id", user) for user in changes.erased)
        if not changes.changed and not moved and not purge:
            return  # all of it applied before (a redelivery)
        try:
            if purge:
                self._rewrite(writer, searcher, changes, {**self._all_positions(searcher), topic: positions})
            else:
                for memory_id, doc in changes.changed.items():
                    writer.delete_documents_by_term("memory_id", memory_id)
                    if doc is not None:
                        writer.add_document(memory_document(doc))
                for partition, offset in moved.items():
                    writer.delete_documents_by_term("slot", sparse_schema.slot(topic, partition))
                    writer.add_document(position_document(topic, partition, offset))
            writer.commit()
        except BaseException:
            writer.rollback()
            raise
        self._positions[topic] = positions
        if purge:
            self._collect_garbage()
        index.reload()

    def _all_positions(self, searcher: tantivy.Searcher) -> dict[str, dict[int, int]]:
        total = searcher.search(sparse_schema.term("kind", sparse_schema.KIND_POSITION), limit=1, count=True).count
        out: dict[str, dict[int, int]] = {}
        if total:
            for _score, address in searcher.search(sparse_schema.term("kind", sparse_schema.KIND_POSITION),
                                                   limit=total, count=False).hits:
                stored = searcher.doc(address)
                out.setdefault(stored["topic"][0], {})[stored["partition"][0]] = stored["offset"][0]
        return out

    def _rewrite(self, writer: tantivy.IndexWriter, searcher: tantivy.Searcher, changes: Changes,
                 positions: dict[str, dict[int, int]]) -> None:
        """The whole version anew in this commit, without the erased users' documents. The
        searcher keeps reading the last commit's segments while the writer starts from none."""
        query = sparse_schema.term("kind", KIND_MEMORY)
        total = searcher.search(query, limit=1, count=True).count
        writer.delete_all_documents()
        kept = 0
        if total:
            for _score, address in searcher.search(query, limit=total, count=False).hits:
                doc = memory_from_stored(searcher.doc(address).to_dict())
                if doc.user_id not in changes.erased and doc.memory_id not in changes.changed:
                    writer.add_document(memory_document(doc))
                    kept += 1
        for doc in changes.changed.values():
            if doc is not None:
                writer.add_document(memory_document(doc))
                kept += 1
        for topic, by_partition in positions.items():
            for partition, offset in by_partition.items():
                writer.add_document(position_document(topic, partition, offset))
        log.info("sparse index v%s rewritten for an erasure: %d memory documents kept", self.version, kept)

    def _collect_garbage(self) -> None:
        """After an erasure's rewrite: merges still running on the old segments finish (their
        output is discarded), then every file no commit uses is deleted."""
        self._writer.wait_merging_threads()
        self._writer = None
        _index, writer = self._open()
        writer.garbage_collect_files()
