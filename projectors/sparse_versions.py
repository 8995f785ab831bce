"""The sparse index's versions (projectors/versions.py): directories <root>/v<n>, the live one
named by <root>/live (adapters/sparse_layout.py)."""

from __future__ import annotations

import asyncio
import shutil
import weakref
from pathlib import Path

from adapters import sparse_layout, sparse_schema
from projectors.sparse_projector import (PROJECTION, SparseProjector, ensure_live, ensure_live_locked,
                                        read_version_positions)
from projectors.versions import covers


class SparseVersions:
    """The sparse index's versions (projectors/versions.py): directories <root>/v<n>."""

    name = PROJECTION

    def __init__(self, root: Path):
        self.root = Path(root)
        self._made: list[weakref.ref] = []  # projectors this process made: closed before a switch or drop

    def _projectors(self, version: int) -> list[SparseProjector]:
        alive = [p for p in (ref() for ref in self._made) if p is not None]
        self._made = [weakref.ref(p) for p in alive]
        return [p for p in alive if p.version == version]

    async def live_version(self) -> int:
        return await asyncio.to_thread(ensure_live, self.root)

    async def versions(self) -> list[int]:
        live = await self.live_version()
        return sorted(set(sparse_layout.versions(self.root)) | {live})

    async def create_version(self, version: int) -> None:
        await asyncio.to_thread(self._create_version, version)

    def _create_version(self, version: int) -> None:
        path = sparse_layout.version_dir(self.root, version)
        try:
            sparse_schema.open_index(path, create=True)
        except sparse_schema.SchemaMismatch:
            if version == sparse_layout.read_live(self.root):
                raise
            # Left by an interrupted replay of an older release: worth nothing to this one.
            shutil.rmtree(path)
            sparse_schema.open_index(path, create=True)

    def projection(self, version: int | None = None) -> SparseProjector:
        projector = SparseProjector(self.root, version)
        self._made.append(weakref.ref(projector))
        return projector

    async def switch(self, version: int, topic: str) -> bool:
        return await asyncio.to_thread(self._switch, version, topic)

    def _switch(self, version: int, topic: str) -> bool:
        sparse_layout.version_dir(self.root, version)  # checks the number
        with sparse_layout.locked(self.root):
            live = ensure_live_locked(self.root)
            if live == version:
                return True
            if not covers(read_version_positions(self.root, version, topic),
                          read_version_positions(self.root, live, topic)):
                return False
            # The replay's writer finishes its merges and lets go: the live projector writes it next.
            for projector in self._projectors(version):
                projector.close()
            sparse_layout.write_live(self.root, version)
            return True

    async def drop(self, version: int) -> None:
        if await self.live_version() == version:
            raise ValueError(f"version {version} of the sparse index is live; it cannot be dropped")
        for projector in self._projectors(version):
            await asyncio.to_thread(projector.close)
        await asyncio.to_thread(shutil.rmtree, sparse_layout.version_dir(self.root, version), True)
