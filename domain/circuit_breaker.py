"""A circuit breaker for any dependency (the LLM endpoint, and Postgres, Neo4j and Redis in the
APIs: one per dependency per process, wired in adapters/resilience.py).

Pure: no I/O, the clock is injected. The caller asks `allow()` before a call and reports
the outcome with `record_success()` / `record_failure()`:

- closed: calls go through; `failure_threshold` consecutive failures open the circuit.
- open: calls are refused (fail fast instead of piling up timeouts) until `reset_after_s`
  have passed since it opened.
- half_open: one trial call goes through; its success closes the circuit, its failure
  opens it again for another `reset_after_s`. Other callers are refused meanwhile. A trial
  that never reports (its caller was cancelled) is given up after `reset_after_s`, so the
  breaker cannot stay stuck half-open.

Thread-safe (a lock around a few assignments), so a sync client on worker threads can
share one breaker with an asyncio caller.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Literal

State = Literal["closed", "open", "half_open"]


class CircuitOpen(Exception):
    """Raised by `CircuitBreaker.check()` while the circuit refuses calls."""

    def __init__(self, name: str, retry_after_s: float):
        self.name = name
        self.retry_after_s = retry_after_s
        super().__init__(f"circuit {name!r} is open (the dependency failed repeatedly); retry in {retry_after_s:.1f} s")


class CircuitBreaker:
    def __init__(self, name: str, failure_threshold: int = 5, reset_after_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        if reset_after_s < 0:
            raise ValueError("reset_after_s must be >= 0")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0  # consecutive, while closed
        self._opened_at: float | None = None  # set while open or half-open
        self._trial_at: float | None = None  # when the half-open trial was let through

    @property
    def state(self) -> State:
        with self._lock:
            return self._state(self._clock())

    def _state(self, now: float) -> State:
        if self._opened_at is None:
            return "closed"
        if self._trial_at is not None or now - self._opened_at >= self.reset_after_s:
            return "half_open"
        return "open"

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def retry_after_s(self) -> float:
        """Seconds until a call may be let through again (0 when one may go now)."""
        with self._lock:
            now = self._clock()
            if self._opened_at is None:
                return 0.0
            since = self._trial_at if self._trial_at is not None else self._opened_at
            return max(0.0, since + self.reset_after_s - now)

    def allow(self) -> bool:
        """May a call go through now? In half-open this admits the one trial call."""
        with self._lock:
            now = self._clock()
            state = self._state(now)
            if state == "closed":
                return True
            if state == "open":
                return False
            # half-open: admit a trial unless one is in flight (and not given up on)
            if self._trial_at is not None and now - self._trial_at < self.reset_after_s:
                return False
            self._trial_at = now
            return True

    def check(self) -> None:
        """`allow()` or raise CircuitOpen."""
        if not self.allow():
            raise CircuitOpen(self.name, self.retry_after_s())

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = self._trial_at = None

    def record_failure(self) -> None:
        with self._lock:
            now = self._clock()
            state = self._state(now)
            if state == "half_open":  # the trial failed: open again for a full cool-down
                self._opened_at, self._trial_at = now, None
                return
            if state == "open":  # a call from before it opened; the cool-down stands
                return
            self._failures += 1
            if self._failures >= self.failure_threshold:
                self._opened_at = now

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self.state!r}, failures={self._failures})"
