"""The two APIs' OpenAPI documents stay as they are unless a change means to change them
(issue 24: a refactor moves code, not the contract). The documents are built from the apps
without servers and compared with the snapshots in tests/snapshots/; a deliberate change of
the API regenerates them:

    UPDATE_OPENAPI_SNAPSHOTS=1 .venv/bin/python -m pytest tests/unit/test_openapi_snapshot.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

SNAPSHOTS = Path(__file__).resolve().parents[1] / "snapshots"


def command_document() -> dict:
    from adapters.http_auth import Authenticator
    from command_api.app import create_app

    return create_app(None, None, None, 0, {}, Authenticator(None, required=False)).openapi()


def query_document() -> dict:
    from query_api.app import QueryDeps, create_app

    return create_app(QueryDeps(searching=None, reading=None, postgres=None, consistency=None, pool=None,
                                embeddings=None, checks={})).openapi()


@pytest.mark.parametrize("name, build", [("command", command_document), ("query", query_document)])
def test_the_openapi_document_is_the_snapshot(name, build):
    path = SNAPSHOTS / f"openapi-{name}.json"
    document = json.loads(json.dumps(build(), sort_keys=True))
    if os.environ.get("UPDATE_OPENAPI_SNAPSHOTS"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    assert path.exists(), f"no snapshot {path}: run with UPDATE_OPENAPI_SNAPSHOTS=1 once"
    assert document == json.loads(path.read_text()), (
        f"the {name} API's OpenAPI document changed; if that is meant, regenerate the snapshot "
        "(UPDATE_OPENAPI_SNAPSHOTS=1, see this module's docstring) and say so in the change")
