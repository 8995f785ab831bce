"""E2E: the services run as real processes (the same specs `recallstack up` uses),
against the infrastructure `make test` started."""

from __future__ import annotations

import os

import asyncio
import time

import httpx
import pytest

from tests.e2e.log_reader import appended, appended_since, end_offsets


# Budgets sized for a CI box that runs the whole stack and the tests on 2 cores: these tests
# check what each source contributes; the per-source budget itself is tested by stopping
# dependencies (test_search_degraded.py), not by racing a loaded machine.
os.environ.setdefault("RECALLSTACK_SEARCH_SOURCE_TIMEOUT_MS", "3000")
# Spans as JSON lines in each service's log (test_observability.py follows one trace through them).
os.environ.setdefault("RECALLSTACK_TRACING", "console")
# Every test client is 127.0.0.1, and the fuzzing and refusal tests present hundreds of bad keys
# a minute: with the default per-address limit on failed authentications, the session would lock
# itself out. tests/security/test_rate_limits.py checks that limit on its own API process.
os.environ.setdefault("RECALLSTACK_AUTH_FAILURES_PER_MIN", "1000000")


@pytest.fixture(scope="session")
def services(settings):
    from infra import stack

    processes = stack.table(settings)
    specs = stack.service_specs(settings, stack.SERVICES + stack.WORKERS)  # what `recallstack up` runs
    projectors = len(stack.PROJECTORS)
    running_before = {spec.name for spec in specs if processes.pid(spec.name) is not None}
    try:
        started = stack.up(specs[:projectors], processes)  # the Postgres projector migrates the schema first
        started += stack.up(specs[projectors:], processes)
    except BaseException:
        # A start that failed part way leaves the others running this session's code: stop what
        # this session started, or a later session would reuse them (a developer's stack stays).
        stack.down([spec for spec in specs if spec.name not in running_before], processes)
        raise
    if settings.auth:
        # Tests act as the local admin (any user_id); identity tests make their own user keys.
        from cli.keys import ensure_local_admin_key

        admin_key, _made = asyncio.run(ensure_local_admin_key(settings))
        os.environ["RECALLSTACK_API_KEY"] = admin_key  # the SDK, the MCP server and CLI commands read it
    yield settings
    # Stop what this session started; a stack that was already running (a developer's) stays.
    ours = {s.name for s in started if s.started}
    stack.down([spec for spec in specs if spec.name in ours], processes)


@pytest.fixture
def gateway(services):
    with httpx.Client(base_url=services.gateway_url, timeout=30, headers=admin_headers()) as client:
        yield client


def request_actor(user_id: str) -> str:
    """The actor the log records for a request of this session: its admin key, or in the
    no-auth mode the user it named."""
    key = os.environ.get("RECALLSTACK_API_KEY")
    return f"key:{key[:12]}" if key else f"user:{user_id}"


def search_when_consistent(gateway: httpx.Client, body: dict, timeout_s: float) -> httpx.Response:
    """POST /v1/memories/search, retried while the answer is a 503 not_yet_consistent, as its
    message asks, for up to timeout_s: a projector busy with an earlier test's big batch can
    hold the token's write past the search's own 2 s wait (a CI run saw 4 s)."""
    deadline = time.monotonic() + timeout_s
    answer = gateway.post("/v1/memories/search", json=body)
    while answer.status_code == 503 and "not_yet_consistent" in answer.text and time.monotonic() < deadline:
        time.sleep(0.2)
        answer = gateway.post("/v1/memories/search", json=body)
    return answer


def admin_headers() -> dict[str, str]:
    """The Authorization header of the session's admin key (none in the no-auth mode)."""
    key = os.environ.get("RECALLSTACK_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


@pytest.fixture
def log(settings):
    """The event log around a write: log.mark() before it; after it, log.records(token) gives
    (key, event) of every committed record up to the token, log.events(token) the events.
    user_id= keeps one user's records: other tests' workers append in the same window."""
    class Log:
        before: dict[int, int] = {}

        def mark(self):
            self.before = asyncio.run(end_offsets(settings.kafka_bootstrap, committed=False))

        def records(self, token, user_id=None):
            found = asyncio.run(appended(settings.kafka_bootstrap, self.before, token))
            return [r for r in found if user_id is None or r[0] == user_id.encode()]

        def events(self, token, user_id=None):
            return [event for _, event in self.records(token, user_id)]

        def unchanged(self, user_id=None):
            """Nothing appended since mark() (of user_id's, if given) but the workers' own events
            (actor worker:*: profiles, consolidation, expiry), which land on their schedule, in
            any test's window: a whole-log comparison failed on a UserProfileUpdated."""
            found = asyncio.run(appended_since(settings.kafka_bootstrap, self.before))
            return not [(key, event) for key, event in found if user_id is None or key == user_id.encode()
                        if event is None or not event.actor.startswith("worker:")]

    return Log()
