"""Resident memory of each process of a running stack, sampled from /proc.

The stack's processes are the pids in $RECALLSTACK_HOME/run/<service>.json (the process table
`recallstack status` reads). A service counts with its children (Postgres backends, uvicorn
workers). RSS double-counts pages shared between a parent and its children (Postgres' shared
buffers), so PSS (/proc/<pid>/smaps_rollup, shared pages split between their users) is kept too.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from stack_processes import recorded  # $home/run/<name>.json: the process table


def proc_stats() -> dict[int, list[str]]:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, ..., utime at 11,
    stime at 12) of every process."""
    out: dict[int, list[str]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                raw = (d / "stat").read_text()
            except OSError:
                continue
            out[int(d.name)] = raw[raw.rindex(")") + 2:].split()
    return out


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for pid, fields in proc_stats().items():
        tree.setdefault(int(fields[1]), []).append(pid)
    return tree


def _kib(path: Path, field: str) -> int:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def tree_memory_mb(pid: int, children: dict[int, list[int]], others: frozenset[int] = frozenset()
                   ) -> dict[str, float] | None:
    """{"rss_mb", "pss_mb", "processes"} of pid and its descendants, less those in `others`
    (processes counted under names of their own: the supervisor is the parent of what it
    restarted); None when pid is gone."""
    if not Path(f"/proc/{pid}").exists():
        return None
    rss = pss = n = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        rss += _kib(Path(f"/proc/{p}/status"), "VmRSS:")
        pss += _kib(Path(f"/proc/{p}/smaps_rollup"), "Pss:")
        n += 1
        stack += [c for c in children.get(p, []) if c not in others]
    return {"rss_mb": round(rss / 1024, 1), "pss_mb": round(pss / 1024, 1), "processes": n}


def snapshot(home: Path) -> dict[str, dict]:
    children = _children()
    table = recorded(home)
    out = {}
    for name, pid in table.items():
        mem = tree_memory_mb(pid, children, frozenset(table.values()) - {pid})
        if mem is not None:
            out[name] = mem
    return out


class Sampler:
    """Samples snapshot(home) every `interval` seconds in a thread; result() is, per process,
    the peak and the mean RSS/PSS over the samples."""

    def __init__(self, home: Path, interval: float = 1.0):
        self.home, self.interval = home, interval
        self.samples: list[dict[str, dict]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(snapshot(self.home))
            self._stop.wait(self.interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def result(self) -> dict:
        return summarise(self.samples)


def summarise(samples: list[dict[str, dict]]) -> dict:
    names = sorted({n for s in samples for n in s})
    out = {}
    for name in names:
        rows = [s[name] for s in samples if name in s]
        out[name] = {"rss_mb_peak": max(r["rss_mb"] for r in rows),
                     "rss_mb_mean": round(sum(r["rss_mb"] for r in rows) / len(rows), 1),
                     "pss_mb_peak": max(r["pss_mb"] for r in rows), "samples": len(rows)}
    return out


def idle(home: Path, seconds: float = 5.0) -> dict:
    with Sampler(home) as s:
        time.sleep(seconds)
    return s.result()
