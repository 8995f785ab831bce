"""Where a user's vectors are indexed in the Postgres read model: one HNSW index per bucket
of users (migration 0007), not one index over everyone's.

A single index made every dense search walk other users' vectors and drop them: a user with
9 % of the rows cost ~6 ms of Postgres per search, and a user with 1 % made the iterative
scan give up before it found enough (docs/search.md). With 32 buckets a search walks its
own bucket only. The bucket is a pure function of the user id that Postgres and Python both
compute (the first byte of md5(user_id), modulo 32); a query names it as a literal, so the
planner proves the partial index's predicate whatever the plan cache mode.
"""

from __future__ import annotations

import hashlib

VECTOR_BUCKETS = 32  # the migration's loop and modulo say the same


def bucket_expression(column: str = "user_id") -> str:
    """The bucket as SQL over a user id column: the indexes' predicate, character for character."""
    return f"(get_byte(decode(md5({column}), 'hex'), 0) % {VECTOR_BUCKETS})"


def vector_bucket(user_id: str) -> int:
    """The bucket of `user_id`, as Postgres computes it (md5 of the UTF-8 text)."""
    return hashlib.md5(user_id.encode("utf-8")).digest()[0] % VECTOR_BUCKETS


def in_bucket_of(user_id: str) -> str:
    """The condition that lets a dense query of one user's memories use its bucket's index
    (a literal integer: nothing from the request reaches the SQL text)."""
    return f"{bucket_expression()} = {vector_bucket(user_id)}"
