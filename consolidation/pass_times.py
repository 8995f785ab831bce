"""When each user was last passed over by a consolidation or forgetting worker, kept in a small
JSON file beside the worker's faust data (`<home>/faust/<kind>-last-pass.json`), so a restarted
worker does not make every user due again: after a restart of a worker with 890 users the
consolidation pass went over all of them at once (its memory grew from 104 to 644 MB).

A worker on another machine that takes over partitions does not have their times: their users
are due once there, which is safe (a pass is idempotent). A file that is missing or unreadable
is an empty record, for the same reason. Writes replace the file atomically."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)


class PassTimes:
    def __init__(self, path: Path):
        self.path = path
        self._saved_at = time.monotonic()

    def load(self) -> dict[str, float]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("%s unreadable (%s): every user is due once", self.path, exc)
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(user): float(at) for user, at in data.items() if isinstance(at, (int, float))}

    def save(self, times: dict[str, float], unless_saved_within_s: float = 0.0) -> None:
        """Write `times` (all of them: the file is replaced), unless the last write is younger
        than `unless_saved_within_s` (a pass over many users saves as it goes, not per user)."""
        if time.monotonic() - self._saved_at < unless_saved_within_s:
            return
        self._saved_at = time.monotonic()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.path.with_suffix(f".{os.getpid()}.tmp")
        scratch.write_text(json.dumps(times, separators=(",", ":"), sort_keys=True))
        os.replace(scratch, self.path)
