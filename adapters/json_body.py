"""Strict JSON request bodies, for both APIs: what Python's json module lets through but no
read model can hold is refused before a route sees the body, naming where it is.

Python's `json.loads` accepts `NaN`, `Infinity` and `-Infinity`, turns `1e400` into `inf`,
recurses once per nesting level (a body nested a few thousand deep is a RecursionError) and
passes `"\\u0000"` and lone surrogates (`"\\ud800"`) through as text. Postgres (jsonb, text)
refuses all of those, so an event carrying one was acknowledged and then dead-lettered by its
projector. Here, a body of a JSON route (content type application/json, `+json`, or none) is:

- UTF-8 (a byte order mark is ignored), else 400 invalid_json;
- nested at most MAX_DEPTH levels of objects and arrays, measured on the raw bytes without
  recursion before it is parsed, else 422 too_deep naming the path where it goes deeper;
- valid JSON, else 400 invalid_json with the position;
- made of numbers that are finite doubles: `NaN`/`Infinity` literals and numbers beyond
  +-1.7976931348623157e308 (integers included) are 422 non_finite_number naming the field;
- made of strings and object keys without U+0000 and without lone surrogates: 422
  nul_character / invalid_unicode naming the field.

`StrictJsonRoute` is the route class that applies it (`install_strict_json(app)` before the
routes are declared); `parse_json` is the parser itself, for JSON found elsewhere (a query
string's `filters`).
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np
from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute

from adapters.http_api import ApiError
from domain.text import is_unicode

MAX_DEPTH = 32
# A finite double has at most 309 digits before the point; a longer literal overflows.
_MAX_NUMBER_CHARS = 400
# A literal that could overflow a double has a 3-digit exponent, or 200 digits in a row (JSON
# has no leading zeros, so with a 2-digit exponent it needs 210 digits). Strings may match too:
# then the numbers are merely parsed the slow way, through the hooks.
_BIG_EXPONENT = re.compile(rb"[eE][+-]?0*[1-9][0-9]{2}")
_DIGITS_AS_ZEROS = bytes(ord("0") if ord("0") <= b <= ord("9") else ord(" ") for b in range(256))
_LONG_DIGITS = b"0" * 200
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")  # "\u0000" or a surrogate, maybe escaped itself


class _Refused:
    """What the parse hooks put where a number no read model can hold was (found again by path)."""

    def __init__(self, literal: str, problem: str):
        self.literal, self.problem = literal, problem


def _number(literal: str, convert: Callable[[str], Any]) -> Any:
    """A number literal's value, or _Refused when it is no finite double (NaN, Infinity, 1e400,
    an integer beyond 1.8e308) or absurdly long."""
    if len(literal) > _MAX_NUMBER_CHARS:
        return _Refused(literal, f"a number literal longer than {_MAX_NUMBER_CHARS} characters")
    value = convert(literal)
    if isinstance(value, float) and not math.isfinite(value) or abs(value) > sys.float_info.max:
        return _Refused(literal, f"not a finite number within ±{sys.float_info.max!r} (NaN and Infinity are not "
                                 "JSON numbers)")
    return value


def parse_json(raw: bytes | str, field: str = "") -> Any:
    """The JSON value of `raw`, or ApiError (400 invalid_json, 422 naming the field below
    `field`). Never recursion deeper than MAX_DEPTH levels."""
    if isinstance(raw, str):  # already text (a query string): raw surrogates are checked below
        text, data = raw, raw.encode("utf-8", "surrogatepass")
    else:
        data = raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _invalid(f"not UTF-8 at byte {exc.start}", field, exc.start) from exc
    too_deep = _first_too_deep(data)
    if too_deep is not None:
        path = _path_at(data, too_deep)
        where = _joined(field, path) if path is not None else field or "body"
        raise ApiError(422, "invalid_request", f"{where}: nested deeper than {MAX_DEPTH} levels (at byte {too_deep})",
                       _details(where, f"nested deeper than {MAX_DEPTH} levels", "too_deep", position=too_deep,
                                limit=MAX_DEPTH))
    refused: list[_Refused] = []

    def number(literal: str, convert: Callable[[str], Any]) -> Any:
        value = _number(literal, convert)
        if isinstance(value, _Refused):
            refused.append(value)
        return value

    hooks = {}
    if _BIG_EXPONENT.search(data) or _LONG_DIGITS in data.translate(_DIGITS_AS_ZEROS):  # else no literal can overflow: numbers parse at C speed
        hooks = {"parse_float": lambda s: number(s, float), "parse_int": lambda s: number(s, int)}
    try:
        value = json.loads(text, parse_constant=lambda name: number(name, float), **hooks)
    except json.JSONDecodeError as exc:
        raise _invalid(f"{exc.msg} (line {exc.lineno}, column {exc.colno})", field, exc.pos) from exc
    except (ValueError, RecursionError) as exc:  # cannot happen after the checks above; never a 500 anyway
        raise _invalid(str(exc)[:200], field, None) from exc
    if refused or _SUSPECT_ESCAPE.search(data) or (isinstance(raw, str) and not _clean(raw)):
        _check_values(value, field)
    return value


def _clean(text: str) -> bool:
    """No NUL, no lone surrogate."""
    return "\x00" not in text and is_unicode(text)


def _invalid(problem: str, field: str, position: int | None) -> ApiError:
    if field:  # JSON inside a field (a query string's filters): that field is invalid
        return ApiError(422, "invalid_request", f"{field}: not valid JSON: {problem}",
                        _details(field, problem, "json_invalid", position=position))
    return ApiError(400, "invalid_json", f"the body is not valid JSON (UTF-8): {problem}",
                    _details("body", problem, "json_invalid", position=position))


def _details(field: str, problem: str, kind: str, **extra) -> dict:
    return {"field": field, **{k: v for k, v in extra.items() if v is not None},
            "errors": [{"field": field, "problem": problem, "type": kind}]}


# --- depth, on the raw bytes (vectorised: a 16 MiB body takes milliseconds, no recursion) ----

_OPEN_ARRAY, _OPEN_OBJECT, _CLOSE, _QUOTE, _BACKSLASH = 1, 2, 3, 4, 5
_CODES = bytes({ord("["): _OPEN_ARRAY, ord("{"): _OPEN_OBJECT, ord("]"): _CLOSE, ord("}"): _CLOSE,
                ord('"'): _QUOTE, ord("\\"): _BACKSLASH}.get(b, 0) for b in range(256))


def _brackets(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The brackets outside strings: their offsets, codes and the depth after each."""
    codes = np.frombuffer(data.translate(_CODES), dtype=np.uint8)
    special = np.flatnonzero(codes)
    kinds = codes[special]
    at = special[kinds <= _CLOSE]
    quotes = _unescaped_quotes(special[kinds == _QUOTE], special[kinds == _BACKSLASH])
    if len(quotes):  # a bracket after an odd number of quotes is inside a string
        at = at[(np.searchsorted(quotes, at) & 1) == 0]
    kinds = codes[at]
    return at, kinds, np.cumsum(np.where(kinds == _CLOSE, -1, 1), dtype=np.int64)


def _first_too_deep(data: bytes) -> int | None:
    """The byte offset of the first `[` or `{` (outside strings) that opens level MAX_DEPTH + 1."""
    if data.count(b"[") + data.count(b"{") <= MAX_DEPTH:
        return None
    at, _, depth = _brackets(data)
    over = np.flatnonzero(depth > MAX_DEPTH)
    return int(at[over[0]]) if len(over) else None


def _unescaped_quotes(quotes: np.ndarray, slashes: np.ndarray) -> np.ndarray:
    """The `"` offsets that open or close strings: not preceded by an odd run of backslashes."""
    if not len(slashes) or not len(quotes):
        return quotes
    # The run of backslashes right before a quote ends at q - 1; it starts where consecutive
    # backslash offsets stop being consecutive.
    starts = np.ones(len(slashes), dtype=bool)
    starts[1:] = slashes[1:] != slashes[:-1] + 1
    run_start = np.maximum.accumulate(np.where(starts, np.arange(len(slashes)), 0))
    last = np.maximum(np.searchsorted(slashes, quotes) - 1, 0)
    follows = slashes[last] == quotes - 1
    run = np.where(follows, last - run_start[last] + 1, 0)
    return quotes[(run & 1) == 0]


def _path_at(data: bytes, offset: int) -> list | None:
    """The path of the container opening at `offset`: the body up to it, closed there, parsed
    (at most MAX_DEPTH levels) with objects kept as ordered pairs; None if that is not JSON."""
    at, kinds, depth = _brackets(data[:offset])
    closers = []
    for level in range(MAX_DEPTH, 0, -1):  # the innermost open container at each level
        opened = np.flatnonzero((kinds != _CLOSE) & (depth == level))
        if not len(opened):
            return None
        closers.append("]" if kinds[opened[-1]] == _OPEN_ARRAY else "}")
    try:
        tree = json.loads(data[:offset].decode("utf-8", "surrogatepass") + "null" + "".join(closers),
                          object_pairs_hook=_Pairs, parse_constant=lambda _: None)
    except (ValueError, RecursionError):
        return None
    path: list = []
    node = tree
    for _ in range(MAX_DEPTH):
        if isinstance(node, _Pairs) and node:
            key, node = node[-1]
            path.append(key)
        elif isinstance(node, list) and node:
            path.append(len(node) - 1)
            node = node[-1]
        else:
            return None
    return path


class _Pairs(list):
    """An object as its (key, value) pairs in document order (the path follows the last one)."""


# --- values: where a refused number, a NUL or a lone surrogate is ------------------------------

def _check_values(value: Any, field: str) -> None:
    """Walk the parsed body (iteratively: it is at most MAX_DEPTH deep anyway) and raise for the
    first value no read model can hold."""
    stack: list[tuple[Any, tuple]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            for key, child in reversed(node.items()):
                _check_text(key, (*path, key), field, "key")
                stack.append((child, (*path, key)))
        elif isinstance(node, list):
            stack.extend((child, (*path, i)) for i, child in reversed(list(enumerate(node))))
        elif isinstance(node, str):
            _check_text(node, path, field, "value")
        elif isinstance(node, _Refused):
            where = _joined(field, path)
            literal = node.literal if len(node.literal) <= 40 else node.literal[:20] + "…"
            problem = f"{literal}: {node.problem}"
            raise ApiError(422, "invalid_request", f"{where}: {problem}", _details(where, problem, "non_finite_number"))


def _check_text(text: str, path: tuple, field: str, what: str) -> None:
    if "\x00" in text:
        where = _joined(field, path)
        problem = f"a {what} must not contain the NUL character (\\u0000): no stored text can hold it"
        raise ApiError(422, "invalid_request", f"{where}: {problem}", _details(where, problem, "nul_character"))
    if not text.isascii() and not is_unicode(text):
        where = _joined(field, path)
        lone = next(char for char in text if "\ud800" <= char <= "\udfff")
        problem = f"a {what} must not contain a lone surrogate ({lone!r} is not Unicode text)"
        raise ApiError(422, "invalid_request", f"{where}: {problem}", _details(where, problem, "invalid_unicode"))


def _joined(field: str, path) -> str:
    """`metadata.x`, `memories.3.metadata.x`: dotted like the other validation errors; a key
    is shown printable (escaped) and cut at 64 characters."""
    parts = [field] if field else []
    for part in path:
        if isinstance(part, str):
            part = part.encode("unicode_escape").decode("ascii") if not part.isprintable() else part
            part = part if len(part) <= 64 else part[:64] + "…"
        parts.append(str(part))
    return ".".join(parts) or "body"


# --- wiring -------------------------------------------------------------------------------------

class StrictJsonRequest(Request):
    """A request whose JSON body is parsed by parse_json (what FastAPI reads through json())."""

    async def json(self) -> Any:
        if not hasattr(self, "_strict_json"):
            self._strict_json = parse_json(await self.body())
        return self._strict_json


def _is_json(request: Request) -> bool:
    """The bodies FastAPI parses as JSON: no content type, application/json or +json."""
    kind = request.headers.get("content-type")
    if kind is None:
        return True
    kind = kind.split(";", 1)[0].strip().lower()
    return kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


class StrictJsonRoute(APIRoute):
    """A route whose JSON body goes through parse_json before FastAPI sees it: its refusal is the
    app's ApiError answer (raised out of FastAPI's own body parsing, which would turn any error
    into an anonymous 400)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def strict(request: Request) -> Response:
            if _is_json(request):
                request = StrictJsonRequest(request.scope, request.receive)
                if await request.body():
                    await request.json()
            return await handler(request)

        return strict


def install_strict_json(app: FastAPI) -> None:
    """Every route declared on `app` from now on parses its JSON body strictly."""
    if any(isinstance(route, APIRoute) for route in app.router.routes):
        raise RuntimeError("install_strict_json must run before the app's routes are declared")
    app.router.route_class = StrictJsonRoute
