"""The projection logic stands apart (issue 24 item 2): a projection, a store or a double imports no
Kafka client, and the Postgres, Redis, graph and sparse projections and doubles no database client
(nor Tantivy) either, so they load and run without a server or an index library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NO_KAFKA = ["projectors.applied", "projectors.pg_projection", "projectors.pg_store", "projectors.pg_projector",
            "projectors.redis_projection", "projectors.redis_store", "projectors.redis_projector",
            "projectors.neo4j_projection", "projectors.neo4j_store", "projectors.neo4j_projector",
            "projectors.sparse_projection", "projectors.sparse_store", "projectors.sparse_projector",
            "projectors.in_memory_pg", "projectors.in_memory_redis", "projectors.in_memory_graph",
            "projectors.in_memory_sparse", "projectors.versions"]
# The sparse projection too: its documents (adapters/sparse_doc.py) are plain values, Tantivy stays in the store.
NO_DATABASE = ["projectors.pg_projection", "projectors.redis_projection", "projectors.neo4j_projection",
               "projectors.sparse_projection", "projectors.in_memory_pg", "projectors.in_memory_graph",
               "projectors.in_memory_sparse"]


def loaded(module: str) -> set[str]:
    """The top-level packages importing `module` loads, in a fresh interpreter."""
    code = f"import sys, {module}; print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=True)
    return set(done.stdout.split())


def test_no_projection_store_or_double_imports_kafka():
    for module in NO_KAFKA:
        assert "aiokafka" not in loaded(module), module


def test_the_projections_and_their_doubles_import_no_database_client():
    for module in NO_DATABASE:
        assert not loaded(module) & {"asyncpg", "redis", "neo4j", "tantivy"}, module
