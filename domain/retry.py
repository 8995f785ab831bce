"""Retries with exponential backoff and full jitter, within a time budget. Pure: no I/O,
the random source is injected.

`RetryPolicy.delay(attempt)` is how long to wait after failed attempt `attempt` (0-based)
before the next one: uniform(0, min(max_delay_s, base_delay_s * 2**attempt)) ("full
jitter", so clients that failed together do not retry together), or None when no attempt
is left. `plan(budget_s)` is the delays that fit in a budget. Only what is safe to repeat
is retried: reads, and appends whose ids make a repeat a no-op. The adapters' guarded
calls (adapters/resilience.py) use it; the SDK has its own client-side policy.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 2  # in all, the first included
    base_delay_s: float = 0.05
    max_delay_s: float = 1.0
    rand: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def __post_init__(self):
        if self.attempts < 1:
            raise ValueError("attempts must be >= 1")
        if self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError("delays must be >= 0")

    @classmethod
    def none(cls) -> "RetryPolicy":
        return cls(attempts=1)

    def ceiling(self, attempt: int) -> float:
        """The longest wait after failed attempt `attempt` (the jitter's upper bound)."""
        return min(self.max_delay_s, self.base_delay_s * 2 ** attempt)

    def delay(self, attempt: int) -> float | None:
        """Seconds to wait after failed attempt `attempt` (0-based); None: give up."""
        if attempt + 1 >= self.attempts:
            return None
        return self.rand() * self.ceiling(attempt)

    def may_retry(self, attempt: int, elapsed_s: float, budget_s: float) -> float | None:
        """The wait before another attempt, or None when none is left or the wait would
        end past the budget (a retry that cannot finish in time is not started)."""
        wait = self.delay(attempt)
        if wait is None or elapsed_s + wait >= budget_s:
            return None
        return wait
