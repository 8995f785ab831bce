"""Test doubles shared by the unit and integration tests (pure; no I/O)."""


class FakeClock:
    """A clock the test moves by hand: `clock.now += 5`; calling it reads the time."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
