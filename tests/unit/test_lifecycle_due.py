"""Which users a timer tick of the running consolidation/forgetting worker passes over."""

from consolidation.faust_app import due_users

DAY = 86_400.0
ACTIVITY = [("quiet", {"seen": 10.0, "changed": 10.0}), ("busy", {"seen": 10.0, "changed": 500.0}),
            ("new", {"seen": 900.0, "changed": 0.0})]


def test_consolidation_passes_over_users_that_changed_since_their_last_pass_newest_change_first():
    last = {"quiet": 100.0, "busy": 100.0, "new": 950.0}
    assert due_users("consolidate", ACTIVITY, last, now=1_000.0, full_every_s=DAY) == ["busy"]


def test_every_user_is_due_once_per_full_period_and_after_a_restart():
    assert due_users("consolidate", ACTIVITY, {}, now=DAY + 1, full_every_s=DAY) == ["busy", "quiet", "new"]
    last = {"quiet": 100.0, "busy": 600.0, "new": 950.0}
    assert due_users("consolidate", ACTIVITY, last, now=100.0 + DAY, full_every_s=DAY) == ["quiet"]


def test_forgetting_passes_over_every_known_user_each_tick():
    last = {"quiet": 999.0, "busy": 999.0, "new": 999.0}
    assert due_users("forget", ACTIVITY, last, now=1_000.0, full_every_s=DAY) == ["busy", "quiet", "new"]
