"""Shared fixtures. Integration and e2e tests talk to the real servers that
`recallstack infra up` started (make test does that first); nothing is mocked."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def settings():
    from settings import Settings, default_home, ensure_secrets

    ensure_secrets(default_home())
    return Settings.from_env()


@pytest.fixture
def user_id() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"
