"""Security tests (issue 19): path tricks through the proxy and MCP, hostile values per
field, the input fuzz, slow clients, key chains, cross-user isolation. They run against the
real stack, the same services the e2e tests start (their fixtures, reused here)."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import admin_headers, gateway, log, request_actor, services  # noqa: F401 (fixtures)


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/security/" in str(item.fspath):
            item.add_marker(pytest.mark.security)
