"""Search over the Postgres read model. This first slice ranks by dense similarity
(pgvector HNSW, cosine); the hybrid sources and RRF build on it."""

from __future__ import annotations

import json

import asyncpg
import numpy as np

SCOPE_FIELDS = ("agent_id", "run_id", "app_id")


async def dense_search(pool: asyncpg.Pool, vector: np.ndarray, user_id: str, scope: dict[str, str | None],
                       limit: int, threshold: float | None, ef_search: int = 100) -> list[dict]:
    clauses, args = ["user_id = $2", "state = 'active'"], [vector, user_id]
    for name in SCOPE_FIELDS:  # fixed column names; values are always parameters
        if scope.get(name) is not None:
            args.append(scope[name])
            clauses.append(f"{name} = ${len(args)}")
    args.append(limit)
    sql = (
        "SELECT id, text, metadata, created_at, updated_at, occurred_at, 1 - (embedding <=> $1) AS score "
        f"FROM memories WHERE {' AND '.join(clauses)} ORDER BY embedding <=> $1 LIMIT ${len(args)}"
    )
    async with pool.acquire() as conn, conn.transaction():
        # Iterative scans keep filtered HNSW queries from coming back short (pgvector 0.8).
        await conn.execute(f"SET LOCAL hnsw.ef_search = {int(ef_search)}")
        await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        rows = await conn.fetch(sql, *args)
    results = []
    for rank, row in enumerate(rows, start=1):
        score = float(row["score"])
        if threshold is not None and score < threshold:
            continue
        results.append({
            "id": str(row["id"]), "memory": row["text"], "score": round(score, 6),
            "metadata": json.loads(row["metadata"]) if isinstance(row["metadata"], str) else row["metadata"],
            "created_at": row["created_at"].isoformat(), "updated_at": row["updated_at"].isoformat(),
            "occurred_at": row["occurred_at"].isoformat(), "ranks": {"dense": rank},
        })
    # relaxed_order may return near-ties slightly out of order; results are sorted by score.
    results.sort(key=lambda r: r["score"], reverse=True)
    return results
