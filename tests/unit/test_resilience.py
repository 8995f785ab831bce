"""Retries with backoff and jitter (domain/retry.py), guarded calls and readiness
(adapters/resilience.py): no server needed."""

from __future__ import annotations

import asyncio

import pytest

from adapters import resilience
from adapters.resilience import Dependency, call, readiness
from domain.circuit_breaker import CircuitBreaker, CircuitOpen
from domain.retry import RetryPolicy


def test_backoff_is_exponential_capped_and_fully_jittered():
    top = RetryPolicy(attempts=6, base_delay_s=0.1, max_delay_s=0.5, rand=lambda: 1.0)
    assert [top.delay(a) for a in range(6)] == [0.1, 0.2, 0.4, 0.5, 0.5, None]
    low = RetryPolicy(attempts=3, rand=lambda: 0.0)
    assert low.delay(0) == 0.0 and low.delay(2) is None
    half = RetryPolicy(attempts=3, base_delay_s=0.2, rand=lambda: 0.5)
    assert half.delay(1) == pytest.approx(0.2)
    assert RetryPolicy.none().delay(0) is None


def test_a_retry_that_would_end_past_the_budget_is_not_started():
    policy = RetryPolicy(attempts=5, base_delay_s=1.0, max_delay_s=1.0, rand=lambda: 1.0)
    assert policy.may_retry(0, elapsed_s=0.5, budget_s=2.0) == 1.0
    assert policy.may_retry(0, elapsed_s=1.5, budget_s=2.0) is None
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


def run(coro):
    return asyncio.run(coro)


def test_call_retries_a_failure_then_succeeds_and_closes_the_breaker():
    breaker = CircuitBreaker("t", failure_threshold=3)
    tries = []

    async def flaky():
        tries.append(1)
        if len(tries) == 1:
            raise ConnectionRefusedError("down")
        return "ok"

    assert run(call(breaker, flaky, timeout_s=1, retry=RetryPolicy(attempts=2, base_delay_s=0.001))) == "ok"
    assert len(tries) == 2 and breaker.consecutive_failures == 0


def test_an_open_breaker_refuses_at_once_without_calling():
    breaker = CircuitBreaker("t", failure_threshold=2, reset_after_s=30)
    calls = []

    async def down():
        calls.append(1)
        raise OSError("refused")

    for _ in range(2):
        with pytest.raises(OSError):
            run(call(breaker, down, timeout_s=1))
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen) as refused:
        run(call(breaker, down, timeout_s=1))
    assert len(calls) == 2 and refused.value.retry_after_s > 0
    with pytest.raises(CircuitOpen):
        resilience.refuse_if_open(breaker)
    assert resilience.retry_after(breaker) == 30


def test_the_time_budget_counts_as_a_failure_and_other_errors_as_answers():
    breaker = CircuitBreaker("t", failure_threshold=5)

    async def hangs():
        await asyncio.sleep(5)

    with pytest.raises(asyncio.TimeoutError):
        run(call(breaker, hangs, timeout_s=0.05))
    assert breaker.consecutive_failures == 1

    async def bad_query():
        raise ValueError("syntax error")  # the server answered: not an outage

    with pytest.raises(ValueError):
        run(call(breaker, bad_query, timeout_s=1))
    assert breaker.consecutive_failures == 0


def test_readiness_ready_degraded_and_not_ready():
    async def ok():
        return 1

    async def down():
        raise ConnectionRefusedError("Connect call failed")

    pg = CircuitBreaker("postgres", failure_threshold=1)
    status, body = run(readiness([Dependency("kafka", ok), Dependency("neo4j", ok, required=False)]))
    assert status == 200 and body["status"] == "ready" and body["checks"] == {"kafka": "ok", "neo4j": "ok"}

    status, body = run(readiness([Dependency("kafka", ok),
                                  Dependency("neo4j", down, required=False, impact="no graph source")]))
    assert status == 200 and body["status"] == "degraded"
    assert body["degraded"] == [{"dependency": "neo4j", "impact": "no graph source"}]
    assert body["dependencies"]["neo4j"]["state"] == "down"

    status, body = run(readiness([Dependency("postgres", down, breaker=pg), Dependency("redis", ok, required=False)]))
    assert status == 503 and body["status"] == "not ready"
    assert body["checks"]["postgres"].startswith("down: ConnectionRefusedError")
    assert body["dependencies"]["postgres"]["breaker"] == "open"  # the probe's failure counted

    status, body = run(readiness([Dependency("postgres", ok, breaker=pg)]))
    assert status == 200 and body["dependencies"]["postgres"]["breaker"] == "closed"  # back: closed by the probe


def test_one_breaker_per_dependency_exported_as_the_gauge():
    from prometheus_client import REGISTRY

    b = resilience.breaker("unit-test-dependency")
    assert resilience.breaker("unit-test-dependency") is b
    assert REGISTRY.get_sample_value("recallstack_circuit_breaker_state", {"breaker": "unit-test-dependency"}) == 0
