"""Every route of both APIs parses its JSON body strictly (adapters/json_body.py: no NaN or
Infinity, numbers within a double's range, a depth limit, 422 naming the field). The routes
live in APIRouter modules, and FastAPI keeps a router's own route class when the app includes
it: a router made without StrictJsonRoute would quietly take NaN again."""

from __future__ import annotations

from fastapi.routing import APIRoute

from adapters.json_body import StrictJsonRoute


def apps():
    from adapters.http_auth import Authenticator
    from command_api.app import create_app as command_app
    from query_api.app import QueryDeps, create_app as query_app

    yield command_app(None, None, None, 0, {}, Authenticator(None, required=False))
    yield query_app(QueryDeps(searching=None, reading=None, postgres=None, consistency=None, pool=None,
                              embeddings=None, checks={}))


def test_every_route_with_a_body_parses_it_strictly():
    loose = [f"{sorted(route.methods)} {route.path}" for app in apps() for route in app.router.routes
             if isinstance(route, APIRoute) and route.body_field is not None
             and not isinstance(route, StrictJsonRoute)]
    assert not loose, f"routes whose JSON body is not parsed strictly: {loose}"


def test_a_nan_in_an_add_is_refused_naming_the_field():
    from fastapi.testclient import TestClient

    command = next(apps())
    answer = TestClient(command).post("/v1/memories", content=b'{"text": "tea", "metadata": {"x": NaN}}',
                                      headers={"content-type": "application/json"})
    assert answer.status_code == 422 and answer.json()["error"]["details"]["field"] == "metadata.x", answer.text
