"""CircuitBreaker with a fake clock: closed -> open -> half_open -> closed / open again."""

from __future__ import annotations

import pytest

from domain.circuit_breaker import CircuitBreaker, CircuitOpen
from tests.fakes import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        assert breaker.allow()
        breaker.record_failure()


def test_defaults_and_closed_start(clock):
    breaker = CircuitBreaker("db", clock=clock)
    assert (breaker.failure_threshold, breaker.reset_after_s) == (5, 30.0)
    assert breaker.state == "closed" and breaker.allow() and breaker.retry_after_s() == 0.0


def test_opens_after_threshold_consecutive_failures(clock):
    breaker = CircuitBreaker("db", failure_threshold=3, reset_after_s=10, clock=clock)
    fail(breaker, 2)
    assert breaker.state == "closed"
    fail(breaker, 1)
    assert breaker.state == "open"
    assert not breaker.allow()
    assert breaker.retry_after_s() == pytest.approx(10)


def test_success_resets_the_failure_count(clock):
    breaker = CircuitBreaker("db", failure_threshold=3, clock=clock)
    fail(breaker, 2)
    breaker.record_success()
    fail(breaker, 2)
    assert breaker.state == "closed" and breaker.consecutive_failures == 2


def test_half_open_after_cool_down_lets_one_trial_through(clock):
    breaker = CircuitBreaker("db", failure_threshold=1, reset_after_s=30, clock=clock)
    fail(breaker, 1)
    clock.now += 29.9
    assert breaker.state == "open" and not breaker.allow()
    assert breaker.retry_after_s() == pytest.approx(0.1)
    clock.now += 0.1
    assert breaker.state == "half_open"
    assert breaker.allow()  # the trial
    assert not breaker.allow()  # others wait for its outcome
    assert breaker.state == "half_open"


def test_trial_success_closes(clock):
    breaker = CircuitBreaker("db", failure_threshold=2, reset_after_s=5, clock=clock)
    fail(breaker, 2)
    clock.now += 5
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.consecutive_failures == 0
    assert breaker.allow() and breaker.allow()
    fail(breaker, 1)
    assert breaker.state == "closed"  # the count started again from zero


def test_trial_failure_reopens_for_a_full_cool_down(clock):
    breaker = CircuitBreaker("db", failure_threshold=2, reset_after_s=5, clock=clock)
    fail(breaker, 2)
    clock.now += 7
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    assert breaker.retry_after_s() == pytest.approx(5)
    clock.now += 5
    assert breaker.allow()


def test_a_trial_that_never_reports_is_given_up_after_the_cool_down(clock):
    breaker = CircuitBreaker("db", failure_threshold=1, reset_after_s=5, clock=clock)
    fail(breaker, 1)
    clock.now += 5
    assert breaker.allow()  # trial, whose caller is then cancelled and reports nothing
    clock.now += 4
    assert not breaker.allow()
    clock.now += 1
    assert breaker.allow()


def test_a_straggler_failure_does_not_extend_the_cool_down(clock):
    breaker = CircuitBreaker("db", failure_threshold=1, reset_after_s=10, clock=clock)
    fail(breaker, 1)
    clock.now += 6
    breaker.record_failure()  # a call that started before the circuit opened
    clock.now += 4
    assert breaker.state == "half_open"


def test_check_raises_circuit_open_with_name_and_retry_after(clock):
    breaker = CircuitBreaker("neo4j", failure_threshold=1, reset_after_s=30, clock=clock)
    breaker.check()
    breaker.record_failure()
    clock.now += 10
    with pytest.raises(CircuitOpen) as info:
        breaker.check()
    assert info.value.name == "neo4j"
    assert info.value.retry_after_s == pytest.approx(20)
    assert "neo4j" in str(info.value) and "20.0 s" in str(info.value)


@pytest.mark.parametrize("kwargs", [{"failure_threshold": 0}, {"reset_after_s": -1}])
def test_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        CircuitBreaker("x", **kwargs)
