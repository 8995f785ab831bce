"""Memories shown from the Redis read model while Postgres is down (query_api/cache_reads.py):
the scope's user and fields decide, the API's document shape comes out. The read model is an
in-memory stand-in with the real one's get_many contract (visible states only)."""

from datetime import datetime, timedelta, timezone

import pytest

from query_api.cache_reads import api_document, hydrator, in_scope
from query_api.pg_reads import Scope

AT = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def redis_doc(memory_id: str, user_id: str = "u", **fields) -> dict:
    return {"id": memory_id, "user_id": user_id, "agent_id": fields.get("agent_id"), "run_id": None,
            "app_id": fields.get("app_id"), "text": f"memory {memory_id}", "metadata": {"k": 1},
            "categories": ["work"], "importance": 0.7, "state": fields.get("state", "active"), "created_at": AT,
            "updated_at": AT, "occurred_at": AT, "version": 2, "embedding_model": "m",
            "expires_at": fields.get("expires_at")}


class ReadModel:
    def __init__(self, *docs):
        self.docs = {d["id"]: d for d in docs}

    async def get_many(self, ids, include_deleted=False, include_archived=False):
        return {i: self.docs[i] for i in ids if i in self.docs
                and (self.docs[i]["state"] == "active" or include_archived and self.docs[i]["state"] == "archived")}


async def test_only_the_users_memories_in_the_scope_fields_come_back_in_the_api_shape():
    model = ReadModel(redis_doc("a", agent_id="cursor"), redis_doc("b", agent_id="other"), redis_doc("c", "v"),
                      redis_doc("d", state="archived"))

    async def live():
        return model

    hydrate = hydrator(live)
    found = await hydrate(["a", "b", "c", "d", "missing"], Scope("u", {"agent_id": "cursor"}))
    assert list(found) == ["a"]
    assert found["a"] == {"id": "a", "memory": "memory a", "user_id": "u", "agent_id": "cursor", "run_id": None,
                          "app_id": None, "metadata": {"k": 1}, "categories": ["work"], "importance": 0.7,
                          "state": "active", "created_at": AT.isoformat(), "updated_at": AT.isoformat(),
                          "occurred_at": AT.isoformat(), "version": 2, "access_count": None,
                          "last_accessed_at": None, "expires_at": None, "expired": False, "similarity": None}
    assert set(await hydrate(["a", "b", "d"], Scope("u", include_archived=True))) == {"a", "b", "d"}
    assert await hydrate([], Scope("u")) == {}


def test_a_filter_tree_cannot_be_evaluated_here():
    from domain.filters import parse

    with pytest.raises(ValueError, match="needs Postgres"):
        in_scope(redis_doc("a"), Scope("u", filters=parse({"metadata": {"k": 1}})))
    assert api_document(redis_doc("x"))["memory"] == "memory x"


async def test_a_memory_leaves_at_its_expiry_instant_by_the_scopes_clock():
    ms = timedelta(milliseconds=1)
    model = ReadModel(redis_doc("gone", expires_at=AT - ms), redis_doc("at", expires_at=AT),
                      redis_doc("there", expires_at=AT + timedelta(seconds=1)), redis_doc("never"))

    async def live():
        return model

    hydrate = hydrator(live)
    found = await hydrate(["gone", "at", "there", "never"], Scope("u", now=AT))
    assert set(found) == {"there", "never"}
    assert found["there"]["expires_at"] == (AT + timedelta(seconds=1)).isoformat()
    assert set(await hydrate(["gone", "there"], Scope("u", now=AT - 2 * ms))) == {"gone", "there"}
