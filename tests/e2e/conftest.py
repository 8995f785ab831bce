"""E2E: the services run as real processes (the same specs `recallstack up` uses),
against the infrastructure `make test` started."""

from __future__ import annotations

import httpx
import pytest


@pytest.fixture(scope="session")
def services(settings):
    from infra import stack

    processes = stack.table(settings)
    specs = stack.service_specs(settings)
    projectors = len(stack.PROJECTORS)
    stack.up(specs[:projectors], processes)  # the Postgres projector migrates the schema first
    stack.up(specs[projectors:], processes)
    yield settings
    stack.down(specs, processes)


@pytest.fixture
def gateway(services):
    with httpx.Client(base_url=services.gateway_url, timeout=30) as client:
        yield client
