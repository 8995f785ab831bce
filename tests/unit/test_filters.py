"""Filters in mem0's v2 shape: parsing, clear errors, and SQL that carries every value as a parameter."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import numpy as np
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


# --- hostile values (issue 19): refused by name before any database sees them -------------------

def _nested(levels: int, leaf) -> object:
    value = leaf
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize("raw, path, message", [
    ({"importance": {"gt": float("nan")}}, "filters.importance.gt", "finite"),
    ({"importance": {"lt": float("inf")}}, "filters.importance.lt", "finite"),
    ({"metadata": {"n": float("-inf")}}, "filters.metadata.n.eq", "finite"),
    ({"metadata": {"n": {"in": [1, float("nan")]}}}, "filters.metadata.n.in[1]", "finite"),
    ({"metadata": {"n": {"gt": 10 ** 400}}}, "filters.metadata.n.gt", "within"),
    ({"importance": {"gte": -10 ** 309}}, "filters.importance.gte", "within"),
    ({"metadata": {"n": {"doc": {"deep": [float("nan")]}}}}, "filters.metadata.n.eq", "finite"),
    ({"metadata": {"n": {"contains": float("inf")}}}, "filters.metadata.n.contains", "finite"),
])
def test_numbers_must_be_finite_and_within_a_doubles_range(raw, path, message):
    with pytest.raises(FilterError, match=message) as caught:
        parse(raw)
    assert caught.value.path == path


def test_big_but_finite_numbers_are_accepted():
    assert parse({"importance": {"gt": 1e300}}) == Condition("importance", "gt", 1e300)
    assert parse({"metadata": {"n": {"lt": -(10 ** 300)}}}).value == -(10 ** 300)


@pytest.mark.parametrize("levels", [40, 300, 5000])
def test_nesting_is_measured_before_any_recursion(levels):
    """A few hundred levels used to end in a RecursionError (a 500); now the walk is iterative."""
    for raw in ({"metadata": {"k": _nested(levels, 1)}},
                _nested_logic(levels)):
        with pytest.raises(FilterError, match="nested deeper") as caught:
            parse(raw)
        assert caught.value.path.startswith("filters")


def _nested_logic(levels: int) -> dict:
    value: dict = {"agent_id": "a"}
    for _ in range(levels):
        value = {"OR": [value]}
    return value


def test_a_value_nested_within_the_limit_is_fine():
    assert parse({"metadata": {"k": _nested(10, "x")}}).value == _nested(10, "x")


@pytest.mark.parametrize("value, expected", [
    ("0001-01-01T00:00:00+14:00", datetime.min.replace(tzinfo=timezone.utc)),  # year 0 in UTC: clamped
    ("9999-12-31T23:00:00-14:00", datetime.max.replace(tzinfo=timezone.utc)),  # year 10000 in UTC
    ("2024-07-01T02:00:00+02:00", datetime(2024, 7, 1, tzinfo=timezone.utc)),  # normalised to UTC
    ("0001-01-01", datetime(1, 1, 1, tzinfo=timezone.utc)),
])
def test_times_are_utc_and_clamped_to_what_datetime_holds(value, expected):
    condition = parse({"created_at": {"gt": value}})
    assert condition.value == expected and condition.value.utcoffset().total_seconds() == 0


def test_a_path_shows_a_lone_surrogate_escaped():
    with pytest.raises(FilterError) as caught:
        parse({"metadata": {"bad\ud800key": 1}})
    assert caught.value.path == "filters.metadata.bad\\ud800key"
    caught.value.path.encode("utf-8")  # an error answer can carry it


def test_importance_compares_as_the_float32_it_is_stored_as():
    from query_api.filter_sql import as_real
    assert as_real(0.1) == float(np.float32(0.1))
    assert as_real(1e300) == float("inf") and as_real(-1e39) == float("-inf")
    assert as_real(3.4028235e38) == float(np.finfo(np.float32).max)
