"""Fixtures the integration tests share (the real servers `make test` started)."""

from __future__ import annotations

import neo4j
import pytest

from adapters import postgres


@pytest.fixture
async def driver(settings):
    """A Neo4j driver for one test."""
    driver = neo4j.AsyncGraphDatabase.driver(settings.neo4j_uri, auth=(settings.neo4j_user, settings.neo4j_password))
    yield driver
    await driver.close()


@pytest.fixture
async def pool(settings):
    """A Postgres pool on the migrated schema, for one test."""
    await postgres.migrate(settings.pg_dsn, 384)
    pool = await postgres.create_pool(settings.pg_dsn)
    yield pool
    await pool.close()
