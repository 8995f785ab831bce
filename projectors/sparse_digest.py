"""A content digest of one version of the sparse index (<root>/v<n>).

Included: every memory document's stored fields (adapters/sparse_doc.MemoryDoc: id, user,
scope fields, state, text, entity words, occurred_us), as canonical JSON, in two parts:
`memories` (active, archived, forgotten) and `tombstones` (deleted: id, user, state).
Left out: the position documents (where the version stands in the log: a restored log has
other offsets), and what Tantivy derives (the unstemmed `words`, the id columns, segments).
Each document is hashed on its own and the hashes sorted, so neither segment layout nor
write order matters: the same log gives the same digest. Take it of a version nobody
writes (a replayed one), or of a quiet stack.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
from pathlib import Path

from adapters import sparse_layout, sparse_schema
from projectors.pg_digest import combine, rows_digest


def _digest(root: Path, version: int) -> dict:
    path = sparse_layout.version_dir(root, version)
    if not sparse_schema.exists(path):
        raise LookupError(f"version {version} of the sparse index does not exist (no index in {path})")
    index = sparse_schema.open_index(path)
    index.reload()
    searcher = index.searcher()
    query = sparse_schema.term("kind", sparse_schema.KIND_MEMORY)
    total = searcher.search(query, limit=1, count=True).count
    hashes: dict[str, list[str]] = {"memories": [], "tombstones": []}
    if total:
        for _score, address in searcher.search(query, limit=total, count=False).hits:
            doc = sparse_schema.memory_from_stored(searcher.doc(address).to_dict())
            line = json.dumps(dataclasses.asdict(doc), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
            part = "tombstones" if doc.state == "deleted" else "memories"
            hashes[part].append(hashlib.sha256(line.encode("utf-8", "surrogatepass")).hexdigest())
    parts = {name: {"rows": len(h), "digest": rows_digest(sorted(h))} for name, h in hashes.items()}
    return {"projection": "sparse", "version": version, "digest": combine(parts), "parts": parts,
            "excluded": {"documents": ["position documents"], "fields": ["words", "id_hi", "id_lo"]}}


async def digest(root: Path, version: int) -> dict:
    return await asyncio.to_thread(_digest, Path(root), version)
