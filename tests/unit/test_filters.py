"""Filters in mem0's v2 shape: parsing, clear errors, and SQL that carries every value as a parameter."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from domain.filters import All, Any_, Condition, FilterError, Not, parse
from query_api.filter_sql import to_sql


def test_the_v2_shape_parses_into_a_tree():
    tree = parse({"AND": [{"agent_id": "cursor"}, {"created_at": {"gte": "2024-07-01", "lt": "2024-08-01T00:00:00Z"}},
                          {"OR": [{"metadata": {"topic": "rust"}}, {"categories": {"contains": "work"}}]},
                          {"NOT": {"metadata": {"draft": {"exists": True}}}}]})
    july = datetime(2024, 7, 1, tzinfo=timezone.utc)
    assert tree == All((
        Condition("agent_id", "eq", "cursor"),
        All((Condition("created_at", "gte", july),
             Condition("created_at", "lt", datetime(2024, 8, 1, tzinfo=timezone.utc)))),
        Any_((Condition("metadata", "eq", "rust", "topic"), Condition("categories", "contains", "work"))),
        Not(Condition("metadata", "exists", True, "draft")),
    ))
    assert parse(None) is None and parse({}) is None


@pytest.mark.parametrize("raw, path, message", [
    ({"colour": "red"}, "filters.colour", "unknown field"),
    ({"agent_id": {"gt": "a"}}, "filters.agent_id.gt", "not available for agent_id"),
    ({"agent_id": {"like": "a%"}}, "filters.agent_id", "unknown operator"),
    ({"created_at": {"gte": "yesterday"}}, "filters.created_at.gte", "not an ISO 8601"),
    ({"importance": {"gt": "high"}}, "filters.importance.gt", "must be a number"),
    ({"memory_id": "1; DROP TABLE memories"}, "filters.memory_id.eq", "not a memory id"),
    ({"metadata": {"a'b": 1}}, "filters.metadata.a'b", "metadata key"),
    ({"metadata": {"x) OR 1=1 --": 1}}, "filters.metadata.x) OR 1=1 --", "metadata key"),
    ({"AND": []}, "filters.AND", "non-empty list"),
    ({"OR": [{"agent_id": "a"}, 3]}, "filters.OR[1]", "non-empty object"),
    ({"agent_id": {"in": []}}, "filters.agent_id.in", "non-empty list"),
    ({"metadata": {"n": {"exists": "yes"}}}, "filters.metadata.n.exists", "true or false"),
])
def test_a_bad_filter_is_refused_naming_where(raw, path, message):
    with pytest.raises(FilterError, match=message) as caught:
        parse(raw)
    assert caught.value.path == path


def test_depth_and_size_are_bounded():
    deep: dict = {"agent_id": "a"}
    for _ in range(10):
        deep = {"AND": [deep]}
    with pytest.raises(FilterError, match="deeper"):
        parse(deep)
    with pytest.raises(FilterError, match="conditions"):
        parse({"OR": [{"agent_id": f"a{i}"} for i in range(100)]})


def test_sql_holds_no_value_and_no_key_only_parameters():
    hostile = "x'); DROP TABLE memories; --"
    args: list = ["the user"]
    sql = to_sql(parse({"AND": [{"agent_id": hostile}, {"metadata": {"topic": {"contains": hostile}}},
                                {"metadata": {"k": {"in": [hostile, 1]}}}, {"categories": {"nin": [hostile]}}]}), args)
    assert hostile not in sql and "DROP" not in sql and "topic" not in sql
    used = {int(n) for n in re.findall(r"\$(\d+)", sql)}
    assert used == set(range(2, len(args) + 1))  # numbering continues after the caller's $1
    assert hostile in args and "topic" in args
    assert to_sql(None, []) == "TRUE"


def test_a_nul_character_is_refused_by_name():
    for raw in ({"metadata": {"k": "a\x00b"}}, {"agent_id": {"in": ["ok", "\x00"]}}, {"metadata": {"k": {"x": "\x00"}}}):
        with pytest.raises(FilterError, match="NUL"):
            parse(raw)


def test_a_lone_surrogate_is_refused_by_name():
    """JSON may escape one ("\\ud800"); no query parameter (UTF-8) can hold it."""
    for raw in ({"agent_id": "\ud800"}, {"categories": {"contains": "a\udfff"}}, {"metadata": {"k": {"x\ud800": 1}}},
                {"metadata": {"k": {"in": ["ok", "\ud83d"]}}}):
        with pytest.raises(FilterError, match="lone surrogates"):
            parse(raw)
    assert parse({"agent_id": "caf\u00e9 \U0001f600"})  # a surrogate pair is a character like any other
