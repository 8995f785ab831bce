"""What the mem0 routes of both APIs share (command_api/mem0_routes.py, query_api/mem0_routes.py).

A mem0 route translates mem0's body (application/mem0_shapes.py) and calls the native route that
does the same thing, so validation, use cases, idempotency and errors are the native ones. The
native route is found by its endpoint's name in the app (`native(request, "search")`): the names
are the OpenAPI operation ids' stems, which stay put however the routes are arranged in modules.

On the paths the two share (a memory's history), mem0's client is told apart by its auth scheme,
`Authorization: Token <key>`: Mem0SchemeRoute matches only such requests, so it must come before
the native route (its router is included first), and a Bearer client keeps the native shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.routing import Match

from adapters.http_api import ApiError
from adapters.json_body import StrictJsonRoute
from adapters.request_guard import every_route


class Mem0SchemeRoute(StrictJsonRoute):
    """A route only for requests authenticated with mem0's `Token` scheme."""

    def matches(self, scope: dict) -> tuple[Match, dict]:
        for name, value in scope.get("headers") or ():
            if name == b"authorization" and value[:6].lower() == b"token ":
                return super().matches(scope)
        return Match.NONE, {}


def native(request: Request, name: str) -> Callable[..., Any]:
    """The endpoint function of the app's native route called `name` (never a mem0 route's)."""
    for route in every_route(request.app.router.routes):
        if isinstance(route, APIRoute) and route.name == name and not route.name.startswith("mem0_"):
            return route.endpoint
    raise LookupError(f"no native route {name!r} in this app")


def validated(model: type[BaseModel], data: dict, rename: Callable[[str], str] = str) -> BaseModel:
    """`data` (a translated mem0 body) as the native request model; a refusal answers exactly as
    the native route's own validation does (422 naming the field, 413 for a size), with the field
    named as mem0's body named it (`rename`)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = []
        for error in exc.errors(include_url=False):
            field = rename(".".join(str(part) for part in error["loc"]))
            errors.append({**error, "loc": ("body", *field.split("."))} if field else {**error, "loc": ("body",)})
        raise RequestValidationError(errors) from exc


def refusal(field: str, message: str) -> ApiError:
    """A mem0 body that cannot be mapped: 422 naming the field, nothing appended."""
    return ApiError(422, "invalid_request", f"{field}: {message}", {"field": field})
