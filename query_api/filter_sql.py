"""Filters (domain/filters.py) as a parameterised SQL condition on the memories view.

Column names and SQL come only from this module; every value, and every metadata key,
is a query parameter. Metadata equality uses `@>` so the GIN index on metadata serves it.
"""

from __future__ import annotations

import json
import math
import struct

from domain.filters import SCOPE_FIELDS, TIME_FIELDS, All, Any_, Condition, Node, Not

_COMPARE = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def to_sql(node: Node | None, args: list) -> str:
    """The condition for `node`, appending its parameters to `args` ($n numbering continues
    after what `args` already holds). TRUE for no filter."""
    if node is None:
        return "TRUE"
    if isinstance(node, All):
        return "(" + " AND ".join(to_sql(item, args) for item in node.items) + ")"
    if isinstance(node, Any_):
        return "(" + " OR ".join(to_sql(item, args) for item in node.items) + ")"
    if isinstance(node, Not):
        return f"(NOT COALESCE({to_sql(node.item, args)}, FALSE))"
    return _condition(node, args)


def _param(args: list, value) -> str:
    args.append(value)
    return f"${len(args)}"


def _condition(c: Condition, args: list) -> str:
    if c.field == "metadata":
        return _metadata(c, args)
    if c.field in SCOPE_FIELDS:
        col = c.field
        if c.op == "exists":
            return f"({col} IS {'NOT ' if c.value else ''}NULL)"
        if c.op == "contains":
            return f"(strpos({col}, {_param(args, c.value)}::text) > 0)"
        return _membership(col, c, args, "text")
    if c.field == "memory_id":
        return _membership("id", c, args, "uuid")
    if c.field in TIME_FIELDS or c.field == "importance":
        col, cast = c.field, ("timestamptz" if c.field in TIME_FIELDS else "real")
        if c.op == "exists":
            return f"({col} IS {'NOT ' if c.value else ''}NULL)"
        value = c.value if c.field in TIME_FIELDS else as_real(c.value)
        if c.op == "ne":
            return f"({col} IS DISTINCT FROM {_param(args, value)}::{cast})"
        return f"({col} {_COMPARE[c.op]} {_param(args, value)}::{cast})"
    # categories
    if c.op == "contains":
        return f"({_param(args, c.value)}::text = ANY(categories))"
    if c.op == "exists":
        return f"(cardinality(categories) {'>' if c.value else '='} 0)"
    overlap = f"(categories && {_param(args, list(c.value))}::text[])"
    return overlap if c.op == "in" else f"(NOT {overlap})"


def as_real(value: float) -> float:
    """A comparison value for the `real` (float32) importance column, as Postgres's `::real`
    cast makes it: rounded to the nearest float32; beyond float32's range (where the cast, and
    asyncpg, refuse it) the infinity of its sign, which compares with every stored value as the
    number itself would."""
    try:
        return struct.unpack("f", struct.pack("f", value))[0]
    except OverflowError:
        return math.copysign(math.inf, value)


def _membership(col: str, c: Condition, args: list, cast: str) -> str:
    if c.op == "eq":
        return f"({col} = {_param(args, c.value)}::{cast})"
    if c.op == "ne":
        return f"({col} IS DISTINCT FROM {_param(args, c.value)}::{cast})"
    listed = f"({col} = ANY({_param(args, list(c.value))}::{cast}[]))"
    return listed if c.op == "in" else f"(NOT COALESCE({listed}, FALSE))"


def _metadata(c: Condition, args: list) -> str:
    key = _param(args, c.key)
    value = f"(metadata -> {key}::text)"
    if c.op == "exists":
        return f"({'' if c.value else 'NOT '}(metadata ? {key}::text))"
    if c.op in ("eq", "ne"):
        pair = f"(metadata @> jsonb_build_object({key}::text, {_param(args, json.dumps(c.value))}::jsonb))"
        return pair if c.op == "eq" else f"(NOT {pair})"
    if c.op in ("in", "nin"):
        listed = f"({value} IN (SELECT jsonb_array_elements({_param(args, json.dumps(list(c.value)))}::jsonb)))"
        return listed if c.op == "in" else f"(NOT COALESCE({listed}, FALSE))"
    if c.op == "contains":
        as_text = _param(args, str(c.value).lower() if not isinstance(c.value, bool) else json.dumps(c.value))
        as_json = _param(args, json.dumps(c.value))
        return (f"((jsonb_typeof({value}) = 'array' AND {value} @> jsonb_build_array({as_json}::jsonb))"
                f" OR (jsonb_typeof({value}) = 'string' AND strpos(lower(metadata ->> {key}::text), {as_text}::text) > 0))")
    # gt/gte/lt/lte: numbers compare with numbers, strings with strings; other types never match
    if isinstance(c.value, str):
        return (f"(CASE WHEN jsonb_typeof({value}) = 'string' THEN metadata ->> {key}::text END"
                f" {_COMPARE[c.op]} {_param(args, c.value)}::text)")
    return (f"(CASE WHEN jsonb_typeof({value}) = 'number' THEN (metadata ->> {key}::text)::numeric END"
            f" {_COMPARE[c.op]} {_param(args, c.value)}::numeric)")
