"""Search and list filters in mem0's v2 shape, parsed and checked (pure: no I/O).

    {"AND": [{"agent_id": "cursor"},
             {"created_at": {"gte": "2024-07-01T00:00:00Z"}},
             {"OR": [{"metadata": {"topic": "rust"}}, {"categories": {"contains": "work"}}]},
             {"NOT": [{"metadata": {"draft": {"exists": true}}}]}]}

A condition is `{field: value}` (eq) or `{field: {op: value, ...}}` (several ops: AND).
`metadata` takes `{key: value-or-ops, ...}`. Logical nodes: AND / OR (a list), NOT (a list,
negating their AND, or one object). The result is a small tree the adapters translate to
parameterised SQL or Cypher; names and operators come only from the tables below, values
only ever travel as parameters.

Limits, all checked before anything reaches a database (a bad filter is a FilterError naming
its path, `filters.AND[1].metadata.n.gt`; the APIs answer 422 with it):
- JSON nesting: at most MAX_NESTING levels of objects and lists, measured first, without
  recursion (a filter nested thousands deep is refused, not a RecursionError); logical
  nesting (AND / OR / NOT) at most MAX_DEPTH; at most MAX_CONDITIONS conditions and
  MAX_LIST values per `in` / `nin` list.
- numbers: finite (no NaN or Infinity) and within a double's range (an integer of 400
  digits is refused too): every value must be one a JSON column can hold.
- strings (keys included): no NUL and no lone surrogate (Postgres refuses both).
- times: ISO 8601, naive = UTC, normalised to UTC; one whose UTC instant falls outside
  what datetime holds (0001-01-01T00:00+14:00 is year 0 in UTC) is clamped to its end.
"""

from __future__ import annotations

import math
import re
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Union

from domain.text import escaped, is_unicode

SCOPE_FIELDS = ("agent_id", "run_id", "app_id")
TIME_FIELDS = ("created_at", "updated_at", "occurred_at")
OPERATORS = ("eq", "ne", "in", "nin", "gt", "gte", "lt", "lte", "contains", "exists")
_FIELD_OPS = {
    **{f: {"eq", "ne", "in", "nin", "contains", "exists"} for f in SCOPE_FIELDS},
    **{f: {"eq", "ne", "gt", "gte", "lt", "lte"} for f in TIME_FIELDS},
    "importance": {"eq", "ne", "gt", "gte", "lt", "lte", "exists"},
    "categories": {"contains", "in", "nin", "exists"},
    "memory_id": {"eq", "ne", "in", "nin"},
}
_METADATA_OPS = set(OPERATORS)
METADATA_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$")
MAX_DEPTH = 8
MAX_NESTING = 32  # objects and lists; MAX_DEPTH logical levels take 2 each, a condition 3 more
MAX_CONDITIONS = 64
MAX_LIST = 1000
MAX_NUMBER = sys.float_info.max


class FilterError(ValueError):
    """A filter that cannot be used; `path` says where (e.g. filters.AND[1].metadata.topic)."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path


@dataclass(frozen=True)
class Condition:
    field: str  # one of _FIELD_OPS, or "metadata"
    op: str
    value: Any
    key: str | None = None  # the metadata key


@dataclass(frozen=True)
class All:
    items: tuple["Node", ...]


@dataclass(frozen=True)
class Any_:
    items: tuple["Node", ...]


@dataclass(frozen=True)
class Not:
    item: "Node"


Node = Union[Condition, All, Any_, Not]


def parse(raw: Any, path: str = "filters") -> Node | None:
    """The filter tree of `raw` (None for an empty filter); FilterError otherwise."""
    if raw is None or raw == {}:
        return None
    _check_nesting(raw, path)
    counter = [0]
    return _node(raw, path, 0, counter)


def _check_nesting(raw: Any, path: str) -> None:
    """Refuse more than MAX_NESTING levels of objects and lists, walking without recursion,
    so that what follows (recursive) never meets a filter nested thousands deep."""
    stack = [(raw, path, 1)]
    while stack:
        value, where, level = stack.pop()
        if isinstance(value, dict):
            children = ((f"{where}.{_shown(k)}", v) for k, v in value.items())
        elif isinstance(value, list):
            children = ((f"{where}[{i}]", v) for i, v in enumerate(value))
        else:
            continue
        if level > MAX_NESTING:
            raise FilterError(where, f"nested deeper than {MAX_NESTING} levels of objects and lists")
        stack.extend((v, w, level + 1) for w, v in children)


def _shown(key: Any) -> str:
    """A key as it may appear in a path: a lone surrogate shown escaped (an error answer is UTF-8)."""
    return escaped(str(key))


def _node(raw: Any, path: str, depth: int, counter: list[int]) -> Node:
    if depth > MAX_DEPTH:
        raise FilterError(path, f"nested deeper than {MAX_DEPTH} levels")
    if not isinstance(raw, dict) or not raw:
        raise FilterError(path, "must be a non-empty object")
    parts: list[Node] = []
    for name, value in raw.items():
        where = f"{path}.{_shown(name)}"
        if name in ("AND", "OR"):
            items = _list_of_nodes(value, where, depth, counter)
            parts.append(All(items) if name == "AND" else Any_(items))
        elif name == "NOT":
            items = _list_of_nodes(value if isinstance(value, list) else [value], where, depth, counter)
            parts.append(Not(items[0] if len(items) == 1 else All(items)))
        elif name == "metadata":
            if not isinstance(value, dict) or not value:
                raise FilterError(where, "must be an object of metadata keys")
            for key, condition in value.items():
                if not isinstance(key, str) or not METADATA_KEY.match(key):
                    raise FilterError(f"{where}.{_shown(key)}", "a metadata key is 1-128 of A-Z a-z 0-9 _ . : - "
                                      "starting with a letter, digit or _")
                parts += _conditions("metadata", condition, f"{where}.{key}", counter, key)
        elif name in _FIELD_OPS:
            parts += _conditions(name, value, where, counter)
        else:
            known = ", ".join(["AND", "OR", "NOT", "metadata", *_FIELD_OPS])
            raise FilterError(where, f"unknown field; use one of {known}")
    return parts[0] if len(parts) == 1 else All(tuple(parts))


def _list_of_nodes(value: Any, path: str, depth: int, counter: list[int]) -> tuple[Node, ...]:
    if not isinstance(value, list) or not value:
        raise FilterError(path, "must be a non-empty list of filters")
    return tuple(_node(item, f"{path}[{i}]", depth + 1, counter) for i, item in enumerate(value))


def _conditions(field: str, raw: Any, path: str, counter: list[int], key: str | None = None) -> list[Condition]:
    allowed = _METADATA_OPS if field == "metadata" else _FIELD_OPS[field]
    ops = raw if isinstance(raw, dict) and raw and set(raw) <= set(OPERATORS) else {"eq": raw}
    if isinstance(raw, dict) and not (set(raw) <= set(OPERATORS)) and field != "metadata":
        raise FilterError(path, f"unknown operator(s) {sorted(set(raw) - set(OPERATORS))}; use {sorted(allowed)}")
    out = []
    for op, value in ops.items():
        if op not in allowed:
            raise FilterError(f"{path}.{op}", f"not available for {field}; use one of {sorted(allowed)}")
        counter[0] += 1
        if counter[0] > MAX_CONDITIONS:
            raise FilterError(path, f"more than {MAX_CONDITIONS} conditions")
        out.append(Condition(field, op, _value(field, op, value, f"{path}.{op}"), key))
    return out


def _value(field: str, op: str, value: Any, path: str) -> Any:
    if op == "exists":
        if not isinstance(value, bool):
            raise FilterError(path, "must be true or false")
        return value
    if op in ("in", "nin"):
        if not isinstance(value, list) or not value or len(value) > MAX_LIST:
            raise FilterError(path, f"must be a non-empty list of at most {MAX_LIST} values")
        return tuple(_scalar(field, op, v, f"{path}[{i}]") for i, v in enumerate(value))
    return _scalar(field, op, value, path)


def _leaves(value: Any):
    """Every scalar in a value, and every key of its objects (nesting already bounded)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        else:
            yield item


def _storable(value: Any, path: str) -> None:
    """What no stored value can hold, refused by name before it reaches a query."""
    for leaf in _leaves(value):
        if isinstance(leaf, str):
            if "\x00" in leaf:  # Postgres refuses \u0000
                raise FilterError(path, "must not contain the NUL character (\\u0000)")
            if not is_unicode(leaf):  # JSON may escape a lone surrogate ("\\ud800"); no UTF-8 text holds one
                raise FilterError(path, "must not contain lone surrogates (not valid Unicode text)")
        elif isinstance(leaf, (int, float)) and not isinstance(leaf, bool):
            if isinstance(leaf, float) and not math.isfinite(leaf):
                raise FilterError(path, "must be a finite number (not NaN or Infinity)")
            if abs(leaf) > MAX_NUMBER:
                raise FilterError(path, f"a number must be within ±{MAX_NUMBER:.6g}")


def _instant(value: str, path: str) -> datetime:
    """An ISO 8601 time in UTC (naive = UTC); past datetime's ends in UTC, clamped to them."""
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise FilterError(path, f"{value[:64]!r} is not an ISO 8601 date or time") from None
    if at.tzinfo is None:
        return at.replace(tzinfo=timezone.utc)
    try:
        return at.astimezone(timezone.utc)
    except OverflowError:  # 0001-01-01T00:00+14:00, 9999-12-31T23:00-14:00
        ahead = at.utcoffset() or timedelta(0)
        return (datetime.min if ahead > timedelta(0) else datetime.max).replace(tzinfo=timezone.utc)


def _scalar(field: str, op: str, value: Any, path: str) -> Any:
    _storable(value, path)
    if field in TIME_FIELDS:
        if not isinstance(value, str):
            raise FilterError(path, "must be an ISO 8601 date or time")
        return _instant(value, path)
    if field == "importance":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FilterError(path, "must be a number")
        return float(value)
    if field == "metadata":
        if op in ("gt", "gte", "lt", "lte") and (isinstance(value, bool) or not isinstance(value, (int, float, str))):
            raise FilterError(path, "must be a number or a string")
        if op == "contains" and not isinstance(value, (str, int, float, bool)):
            raise FilterError(path, "must be a string, number or boolean")
        if isinstance(value, (dict, list)) and op not in ("eq", "ne"):
            raise FilterError(path, "must be a single value")
        return value
    if not isinstance(value, str) or not value:
        raise FilterError(path, "must be a non-empty string")
    if field == "memory_id":
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise FilterError(path, f"{value[:64]!r} is not a memory id (a UUID)") from None
    return value
