"""Importance policies (pure, with a controllable clock): write-time heuristic, decay, access boost, forgetting."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from domain.importance import ForgettingPolicy, current_importance, forgetting_action, initial_importance

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("text, expected", [
    ("thanks!", 0.05),
    ("ok", 0.05),
    ("the sky was grey", 0.3),
    ("I prefer dark mode in the editor", 0.5),
    ("Remember that the deploy key lives in ~/.ssh/deploy", 0.75),
    ("We decided to always squash merge", 0.5),
    ("Please remember: I hate meetings before 10 and we must never deploy on Fridays", 1.0),
])
def test_initial_importance_table(text, expected):
    assert initial_importance(text) == pytest.approx(expected)


def test_decay_halves_every_half_life_and_future_counts_as_now():
    assert current_importance(0.8, T0, T0) == pytest.approx(0.8)
    assert current_importance(0.8, T0, T0 + timedelta(days=30)) == pytest.approx(0.4)
    assert current_importance(0.8, T0, T0 + timedelta(days=60)) == pytest.approx(0.2)
    assert current_importance(0.8, T0, T0 - timedelta(days=5)) == pytest.approx(0.8)


def test_access_keeps_an_old_memory_alive_and_fades_when_idle():
    old = T0 + timedelta(days=120)
    unused = current_importance(0.5, T0, old)
    used_yesterday = current_importance(0.5, T0, old, accesses=7, last_accessed_at=old - timedelta(days=1))
    used_long_ago = current_importance(0.5, T0, old, accesses=7, last_accessed_at=T0 + timedelta(days=1))
    assert unused < used_long_ago < used_yesterday
    assert used_yesterday == pytest.approx(0.5 / 16 + 0.1 * 3 * 0.5 ** (1 / 30), rel=1e-5)
    assert current_importance(0.9, T0, old, accesses=10 ** 6, last_accessed_at=old) == 1.0


def test_pinned_is_always_one_and_bad_arguments_are_refused():
    assert current_importance(0.0, T0, T0 + timedelta(days=10_000), pinned=True) == 1.0
    with pytest.raises(ValueError, match="half_life_days"):
        current_importance(0.5, T0, T0, half_life_days=0)
    with pytest.raises(ValueError, match="accesses"):
        current_importance(0.5, T0, T0, accesses=-1)


def test_forgetting_thresholds():
    policy = ForgettingPolicy(forget_below=0.05, delete_below=0.01, min_age_days=90)
    assert forgetting_action(0.5, 400, policy) == "keep"
    assert forgetting_action(0.03, 10, policy) == "forget"
    assert forgetting_action(0.005, 10, policy) == "forget"  # too young to delete
    assert forgetting_action(0.005, 90, policy) == "delete"
    assert forgetting_action(0.0, 1_000, policy, pinned=True) == "keep"
    with pytest.raises(ValueError, match="thresholds"):
        ForgettingPolicy(forget_below=0.01, delete_below=0.05)
