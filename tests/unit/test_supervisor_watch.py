"""The supervisor's bookkeeping of one process: backoff, the restart budget, liveness
streaks, exit descriptions. Pure logic (times passed in); tests/integration/test_supervisor.py
runs the supervisor on real processes."""

import signal

from infra.supervisor import RestartPolicy, Watch, describe_exit

POLICY = RestartPolicy(first_backoff_s=1, max_backoff_s=8, stable_after_s=60, budget=5, window_s=600,
                       unhealthy_after=3)


def test_quick_failures_back_off_doubling_up_to_the_maximum():
    watch, now, delays = Watch("p"), 0.0, []
    for _ in range(5):
        delays.append(watch.failure(now, "exit code 1", "exited", POLICY))
        now = watch.next_restart_at
        watch.restarted(now)
        now += 1  # dies a second after each restart
    assert delays == [1, 2, 4, 8, 8]
    assert watch.restarts == 5 and watch.state == "running"


def test_a_process_that_ran_a_while_backs_off_from_the_start_again():
    watch = Watch("p")
    watch.failure(0, "exit code 1", "exited", POLICY)
    watch.restarted(1)
    watch.failure(2, "exit code 1", "exited", POLICY)
    watch.restarted(4)
    assert watch.failure(4 + 61, "killed by SIGKILL", "exited", POLICY) == 1


def test_the_budget_leaves_a_crash_loop_down_and_says_why():
    watch, now = Watch("p"), 0.0
    for _ in range(POLICY.budget):
        assert watch.failure(now, "exit code 2", "exited", POLICY) is not None
        watch.restarted(watch.next_restart_at)
        now = watch.next_restart_at or watch.running_since + 1
    assert watch.failure(now, "exit code 2", "exited", POLICY, "2026-12-06T12:00:00+00:00") is None
    assert watch.row() == {"state": "failed", "restarts": 5, "last_exit": "exit code 2", "last_reason": "exited",
                           "last_failure_at": "2026-12-06T12:00:00+00:00"}


def test_restarts_older_than_the_window_leave_the_budget():
    watch = Watch("p")
    for t in range(5):
        watch.failure(t * 10, "exit code 1", "exited", POLICY)
        watch.attempted(t * 10 + 1)  # tried, and it did not start
    assert watch.failure(1000, "exit code 1", "exited", POLICY) is not None  # all five are > 600 s old


def test_hung_only_after_enough_failed_checks_in_a_row():
    watch = Watch("p")
    assert [watch.check(ok, POLICY) for ok in (False, False, True, False, False)] == [False] * 5
    assert watch.check(False, POLICY) is True


def test_exits_are_described():
    assert describe_exit(3) == "exit code 3"
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"
    assert describe_exit(-200) == "killed by signal 200"
    assert describe_exit(None).startswith("exit code unknown")
