"""A filter tree (domain/filters.py) evaluated on one memory held in memory (pure).

The live reads translate filters to SQL (query_api/filter_sql.py); a read `as_of` a past
moment answers from a state rebuilt in memory (application/as_of.py) and evaluates the same
tree here, with the same meaning: a NULL column satisfies no comparison and NOT counts an
unknown as false first (SQL's COALESCE(x, FALSE)), `ne` is IS DISTINCT FROM, metadata
equality is JSON containment (jsonb's @>), `contains` on metadata is an array element or a
case-insensitive substring, ordering compares numbers with numbers and strings with strings.

`row` is a memories row as the in-memory read model holds it: id, agent_id, run_id, app_id,
metadata (dict), categories (list), importance, created_at, updated_at, occurred_at.
"""

from __future__ import annotations

import math
import operator
import struct
from typing import Any

from domain.filters import SCOPE_FIELDS, TIME_FIELDS, All, Any_, Condition, Node, Not

_COMPARE = {"eq": operator.eq, "gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


def matches(node: Node | None, row: dict) -> bool:
    if node is None:
        return True
    if isinstance(node, All):
        return all(matches(item, row) for item in node.items)
    if isinstance(node, Any_):
        return any(matches(item, row) for item in node.items)
    if isinstance(node, Not):
        return not matches(node.item, row)
    return _condition(node, row)


def _condition(c: Condition, row: dict) -> bool:
    if c.field == "metadata":
        return _metadata(c, row.get("metadata") or {})
    if c.field == "categories":
        categories = set(row.get("categories") or ())
        if c.op == "contains":
            return c.value in categories
        if c.op == "exists":
            return bool(categories) == bool(c.value)
        overlap = bool(categories & set(c.value))
        return overlap if c.op == "in" else not overlap
    value = row.get("id") if c.field == "memory_id" else row.get(c.field)
    if c.op == "exists":
        return (value is not None) == bool(c.value)
    wanted = c.value
    if c.field == "memory_id":
        value = str(value).lower()
        wanted = [str(v).lower() for v in wanted] if c.op in ("in", "nin") else str(wanted).lower()
    elif c.field == "importance" and value is not None:
        value, wanted = _real(value), _real(wanted)  # Postgres's `real` column and `::real` cast
    if c.op == "ne":
        return value != wanted
    if c.op == "nin":
        return value is None or value not in wanted
    if value is None:
        return False
    if c.op == "in":
        return value in wanted
    if c.op == "contains":  # scope fields only
        return str(wanted) in value
    if c.field in SCOPE_FIELDS or c.field == "memory_id" or c.field in TIME_FIELDS or c.field == "importance":
        return _COMPARE[c.op](value, wanted)
    return False


def _real(value: float) -> float:
    try:
        return struct.unpack("f", struct.pack("f", value))[0]
    except OverflowError:
        return math.copysign(math.inf, value)


def _metadata(c: Condition, metadata: dict) -> bool:
    present = c.key in metadata
    stored = metadata.get(c.key)
    if c.op == "exists":
        return present == bool(c.value)
    if c.op in ("eq", "ne"):
        contained = present and json_contains(stored, c.value)
        return contained if c.op == "eq" else not contained
    if c.op in ("in", "nin"):
        listed = present and any(json_equal(stored, v) for v in c.value)
        return listed if c.op == "in" else not listed
    if not present:
        return False
    if c.op == "contains":
        if isinstance(stored, list):
            return any(json_contains(item, c.value) for item in stored)
        if isinstance(stored, str):
            needle = (("true" if c.value else "false") if isinstance(c.value, bool) else str(c.value).lower())
            return needle in stored.lower()
        return False
    if isinstance(c.value, str):
        return isinstance(stored, str) and _COMPARE[c.op](stored, c.value)
    return _is_number(stored) and _COMPARE[c.op](stored, c.value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def json_equal(a: Any, b: Any) -> bool:
    """jsonb equality: a boolean is no number (Python's True == 1 is not JSON's)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) or _is_number(b):
        return _is_number(a) and _is_number(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def json_contains(stored: Any, wanted: Any) -> bool:
    """jsonb's `stored @> wanted` below the top level: an object holds the wanted keys (each
    contained), an array holds each wanted element (in any order), a scalar equals."""
    if isinstance(wanted, dict):
        return isinstance(stored, dict) and all(k in stored and json_contains(stored[k], v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return isinstance(stored, list) and all(any(json_contains(s, w) for s in stored) for w in wanted)
    return json_equal(stored, wanted)
