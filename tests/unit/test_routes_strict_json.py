"""Every route of both APIs parses its JSON body strictly (adapters/json_body.py: no NaN or
Infinity, numbers within a double's range, a depth limit, 422 naming the field). The routes
live in APIRouter modules, and FastAPI keeps a router's own route class when the app includes
it: a router made without StrictJsonRoute would quietly take NaN again."""

from __future__ import annotations

from fastapi.routing import APIRoute

from adapters.json_body import StrictJsonRoute
from adapters.request_guard import every_route


def apps():
    from adapters.http_auth import Authenticator
    from command_api.app import create_app as command_app
    from query_api.app import QueryDeps, create_app as query_app

    yield command_app(None, None, None, 0, {}, Authenticator(None, required=False))
    yield query_app(QueryDeps(searching=None, reading=None, postgres=None, consistency=None, pool=None,
                              embeddings=None, checks={}))


def test_every_route_with_a_body_parses_it_strictly():
    checked = [route for app in apps() for route in every_route(app.router.routes)
               if isinstance(route, APIRoute)]
    assert len(checked) >= 40  # the routers' routes are seen, not only the app's own
    loose = [f"{sorted(route.methods)} {route.path}" for route in checked
             if route.body_field is not None and not isinstance(route, StrictJsonRoute)]
    assert not loose, f"routes whose JSON body is not parsed strictly: {loose}"


def test_an_unknown_method_is_405_naming_the_methods_the_routers_take():
    from fastapi.testclient import TestClient

    command, query = apps()
    for app, path, allowed in ((command, "/v1/memories", ["DELETE", "POST"]), (query, "/v1/memories", ["GET"])):
        answer = TestClient(app).request("FOO", path)
        assert answer.status_code == 405 and answer.json()["error"]["details"]["allowed"] == allowed, answer.text


def test_a_nan_in_an_add_is_refused_naming_the_field():
    from fastapi.testclient import TestClient

    command = next(apps())
    answer = TestClient(command).post("/v1/memories", content=b'{"text": "tea", "metadata": {"x": NaN}}',
                                      headers={"content-type": "application/json"})
    assert answer.status_code == 422 and answer.json()["error"]["details"]["field"] == "metadata.x", answer.text
