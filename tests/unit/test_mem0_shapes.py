"""application/mem0_shapes.py: mem0's bodies as recallstack's native ones, and the answers back."""

import pytest

from application.mem0_shapes import (MAX_LIMIT, Mem0ShapeError, add_answer, add_body, batch_items, history_answer,
                                     list_answer, list_scope, mem0_field, search_body, split_filters, update_body)

UUID = "6f1c7c2e-8f59-4f5e-9a63-4c1b0a3c2d11"


def refused(call, *args) -> str:
    with pytest.raises(Mem0ShapeError) as caught:
        call(*args)
    return caught.value.field


def test_the_entity_ids_of_mem0s_filters_become_the_scope_and_the_rest_stays_a_filter():
    assert split_filters({"user_id": "alice"}) == ({"user_id": "alice"}, None)
    scope, rest = split_filters({"AND": [{"user_id": "alice"}, {"agent_id": {"eq": "cursor"}},
                                         {"created_at": {"gte": "2024-01-01"}}]})
    assert scope == {"user_id": "alice", "agent_id": "cursor"} and rest == {"created_at": {"gte": "2024-01-01"}}
    scope, rest = split_filters({"user_id": "alice", "run_id": "*", "metadata": {"topic": "rust"}})
    assert scope == {"user_id": "alice"}
    assert rest == {"AND": [{"run_id": {"exists": True}}, {"metadata": {"topic": "rust"}}]}
    scope, rest = split_filters({"user_id": "alice", "agent_id": {"in": ["a", "b"]}})
    assert rest == {"agent_id": {"in": ["a", "b"]}}
    # OR keeps its entity ids: agent/run/app are filter fields; a user_id there the native parser refuses
    assert split_filters({"OR": [{"agent_id": "a"}, {"app_id": "b"}]}) == ({}, {"OR": [{"agent_id": "a"},
                                                                                      {"app_id": "b"}]})


@pytest.mark.parametrize("filters, field", [
    ({"user_id": "*"}, "filters.user_id"),
    ({"user_id": {"in": ["a", "b"]}}, "filters.user_id"),
    ({"AND": [{"user_id": "a"}, {"user_id": "b"}]}, "filters.AND[1].user_id"),
    (["user_id", "a"], "filters"),
])
def test_filters_recallstack_cannot_scope_are_refused_naming_where(filters, field):
    assert refused(split_filters, filters) == field


def test_an_add_maps_messages_ids_metadata_infer_and_timestamp():
    body = {"messages": [{"role": "user", "content": "I like tea", "name": "bob"}], "filters": {"user_id": "alice"},
            "agent_id": "cursor", "metadata": {"k": 1}, "infer": False, "timestamp": 0, "enable_graph": True}
    assert add_body(body) == {"user_id": "alice", "agent_id": "cursor", "messages": [{"role": "user",
                              "content": "I like tea"}], "metadata": {"k": 1}, "infer": False,
                              "occurred_at": "1970-01-01T00:00:00+00:00"}


@pytest.mark.parametrize("body, field", [
    ({"messages": "hi"}, "messages"),
    ({"messages": [], "frobnicate": 1}, "frobnicate"),
    ({"messages": [], "user_id": "a", "filters": {"user_id": "b"}}, "user_id"),
    ({"messages": [], "filters": {"created_at": {"gte": "2024-01-01"}}}, "filters"),
    ({"messages": [], "timestamp": "yesterday"}, "timestamp"),
    ({"messages": [], "timestamp": 1e300}, "timestamp"),
    ({"messages": [], "timestamp": True}, "timestamp"),
    ("text", "body"),
])
def test_an_add_recallstack_cannot_map_is_refused_naming_the_field(body, field):
    assert refused(add_body, body) == field


def test_a_search_maps_filters_top_k_threshold_and_mem0_extras():
    native = search_body({"query": "tea", "filters": {"AND": [{"user_id": "alice"}, {"metadata": {"k": 1}}]},
                          "top_k": 5000, "threshold": 0.3, "rerank": True, "categories": ["food"],
                          "reference_date": "2024-06-01"})
    assert native == {"user_id": "alice", "query": "tea", "limit": MAX_LIMIT, "threshold": 0.3, "rerank": True,
                      "filters": {"AND": [{"metadata": {"k": 1}}, {"categories": {"in": ["food"]}}]},
                      "reference_time": "2024-06-01T00:00:00+00:00"}
    assert search_body({"query": "tea", "top_k": 3}) == {"query": "tea", "limit": 3}
    assert refused(search_body, {"query": "tea", "top_k": 0}) == "top_k"
    assert refused(search_body, {"query": "tea", "top_k": True}) == "top_k"
    assert refused(search_body, {"query": "tea", "sort": "x"}) == "sort"
    assert mem0_field("limit") == "top_k" and mem0_field("filters.AND.0") == "filters.AND.0"


def test_get_all_maps_filters_and_dates_and_answers_a_paginated_list():
    scope = list_scope({"filters": {"user_id": "alice", "app_id": "notes"}, "start_date": "2024-01-01",
                        "show_expired": True})
    assert scope == {"user_id": "alice", "agent_id": None, "run_id": None, "app_id": "notes",
                     "filters": {"created_at": {"gte": "2024-01-01T00:00:00+00:00"}}}
    assert list_scope(None)["filters"] is None
    assert refused(list_scope, {"filters": {"user_id": "has space"}}) == "filters.user_id"
    assert refused(list_scope, {"agent_id": 5}) == "agent_id"
    page = {"results": [{"id": UUID}], "page": 2, "page_size": 1, "total": 3, "has_more": True}
    assert list_answer(page, "/v3/memories/") == {"count": 3, "next": "/v3/memories/?page=3&page_size=1",
                                                  "previous": "/v3/memories/?page=1&page_size=1",
                                                  "results": [{"id": UUID}]}


def test_updates_and_batches_map_text_and_metadata_and_name_the_item_refused():
    assert update_body({"text": "new", "metadata": {"a": 1}, "timestamp": 3}) == {"text": "new", "metadata": {"a": 1}}
    assert refused(update_body, {"text": "x", "memory": "y"}) == "memory"
    items = batch_items({"memories": [{"memory_id": UUID.upper(), "text": "t"}, {"memory_id": UUID}]})
    assert items == [(UUID, {"text": "t"}), (UUID, {})]
    assert refused(batch_items, {"memories": [{"memory_id": UUID}, {"memory_id": "nope"}]}) == "memories.1.memory_id"
    assert refused(batch_items, {"memories": [{"memory_id": UUID, "colour": 1}]}) == "memories.0.colour"
    assert refused(batch_items, {"memories": []}) == "memories"
    assert refused(batch_items, {"memories": [{"memory_id": UUID}] * 1001}) == "memories"


def test_answers_carry_mem0s_fields_beside_the_native_ones():
    queued = add_answer({"results": [], "conversation_id": "c1", "status": "queued", "consistency_token": "t"})
    assert queued["status"] == "PENDING" and queued["event_id"] == "c1" and queued["consistency_token"] == "t"
    added = add_answer({"results": [{"id": UUID, "memory": "m", "event": "ADD", "status": "processing"}],
                        "consistency_token": "t"})
    assert added["event_id"] == UUID and added["results"][0]["memory"] == "m"
    native = {"memory_id": UUID, "history": [
        {"event_id": "e1", "event": "MemoryCreated", "actor": "key:x", "at": "t1", "before": None,
         "after": {"memory": "one", "metadata": {}}, "reason": None},
        {"event_id": "e2", "event": "MemoryUpdated", "actor": "key:x", "at": "t2", "before": None,
         "after": {"memory": None, "metadata": {"a": 1}}, "reason": None},
        {"event_id": "e3", "event": "MemoryDeleted", "actor": "key:x", "at": "t3", "before": None, "after": None,
         "reason": None}]}
    changes = history_answer(native, "alice")
    assert [(c["event"], c["old_memory"], c["new_memory"]) for c in changes] == [
        ("ADD", None, "one"), ("UPDATE", "one", "one"), ("DELETE", "one", None)]
    assert changes[1]["metadata"] == {"a": 1} and changes[0]["memory_id"] == UUID and changes[0]["user_id"] == "alice"
