"""CPU time each stack process spends on a timed phase, from /proc samples, per search.

A named process counts with its descendants (Postgres backends under the postmaster, nginx's
workers under its master, a launcher's JVM). A child that exited during the phase is not in
/proc any more: once its parent has reaped it, its time is in the parent's cutime/cstime, so a
tree's CPU is the sum over its live processes of utime + stime + cutime + cstime. A root that
restarted during the phase (another pid or start time) counts from its start.

parse_stat(), tree_ticks(), sample_of() and usage() are pure (tests/unit); read_sample() reads /proc.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ProcStat:
    pid: int
    ppid: int
    start: int  # clock ticks after boot: tells a reused pid apart
    ticks: int  # utime + stime
    reaped: int  # cutime + cstime: the children it has waited for


@dataclass(frozen=True)
class CpuSample:
    """CPU ticks so far of each named tree {name: (root pid, root start, ticks)}, of the whole
    machine (busy, every process) and of the measuring process itself."""
    trees: dict[str, tuple[int, int, int]]
    machine_busy: int
    client: int
    roots_missing: list[str] = field(default_factory=list)


def parse_stat(pid: int, text: str) -> ProcStat:
    """/proc/<pid>/stat: the command name is in parentheses and may hold spaces or ')'."""
    fields = text[text.rindex(")") + 2:].split()
    # After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14) ... starttime(19)
    return ProcStat(pid=pid, ppid=int(fields[1]), start=int(fields[19]), ticks=int(fields[11]) + int(fields[12]),
                    reaped=int(fields[13]) + int(fields[14]))


def machine_busy_ticks(proc_stat_text: str) -> int:
    """Busy ticks of every CPU from /proc/stat's first line (all but idle and iowait; guest
    time is already inside user and nice)."""
    values = [int(x) for x in proc_stat_text.splitlines()[0].split()[1:]]
    return sum(values[:8]) - values[3] - values[4]


def tree_ticks(stats: dict[int, ProcStat], root: int) -> int | None:
    """CPU ticks of `root` and its live descendants, reaped children included; None when root is gone."""
    if root not in stats:
        return None
    children: dict[int, list[int]] = {}
    for s in stats.values():
        children.setdefault(s.ppid, []).append(s.pid)
    total, todo, seen = 0, [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in stats:
            continue
        seen.add(pid)
        total += stats[pid].ticks + stats[pid].reaped
        todo += children.get(pid, [])
    return total


def sample_of(stats: dict[int, ProcStat], roots: dict[str, int], machine_busy: int, client_pid: int) -> CpuSample:
    trees, missing = {}, []
    for name, pid in roots.items():
        ticks = tree_ticks(stats, pid)
        if ticks is None:
            missing.append(name)
        else:
            trees[name] = (pid, stats[pid].start, ticks)
    client = stats[client_pid].ticks if client_pid in stats else 0
    return CpuSample(trees=trees, machine_busy=machine_busy, client=client, roots_missing=missing)


def usage(before: CpuSample, after: CpuSample, wall_s: float, searches: int, clk_tck: int = 100) -> dict:
    """What each process used between two samples: ms per search (and in total), % of one core,
    the stack's total; the measuring client and the rest of the machine apart (not in the total)."""
    def ms(ticks: int) -> float:
        return ticks * 1000 / clk_tck

    used: dict[str, float] = {}
    restarted = []
    for name, (pid, start, ticks) in after.trees.items():
        then = before.trees.get(name)
        if then is not None and then[:2] == (pid, start):
            used[name] = ms(max(0, ticks - then[2]))
        else:
            used[name] = ms(ticks)  # (re)started during the phase: from its start
            restarted.append(name)
    stack_ms = sum(used.values())
    client_ms = ms(max(0, after.client - before.client))
    machine_ms = ms(max(0, after.machine_busy - before.machine_busy))
    other_ms = max(0.0, machine_ms - stack_ms - client_ms)
    n = max(1, searches)
    wall_ms = max(1e-9, wall_s * 1000)
    ordered = dict(sorted(used.items(), key=lambda kv: -kv[1]))
    return {
        "searches": searches, "wall_s": round(wall_s, 2),
        "ms_per_search": {k: round(v / n, 2) for k, v in ordered.items()},
        "total_ms_per_search": round(stack_ms / n, 2),
        "client_ms_per_search": round(client_ms / n, 2),
        "other_ms_per_search": round(other_ms / n, 2),
        "pct_of_a_core": {k: round(100 * v / wall_ms, 1) for k, v in ordered.items()},
        "stack_pct": round(100 * stack_ms / wall_ms, 1),
        "machine_pct": round(100 * machine_ms / wall_ms, 1),
        "other_pct": round(100 * other_ms / wall_ms, 1),
        "restarted": restarted, "not_found": sorted(set(before.roots_missing) | set(after.roots_missing)),
    }


def top(per_search: dict[str, float], n: int = 6) -> str:
    """'postgres 3.1, neo4j 2.0, ...' (the largest first) for a one-line report."""
    return ", ".join(f"{k} {v:g}" for k, v in list(sorted(per_search.items(), key=lambda kv: -kv[1]))[:n] if v > 0)


# --- /proc (I/O) ------------------------------------------------------------------------------

def read_stats() -> dict[int, ProcStat]:
    out: dict[int, ProcStat] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                out[int(d.name)] = parse_stat(int(d.name), (d / "stat").read_text())
            except (OSError, ValueError, IndexError):
                continue  # exited while being read
    return out


def read_sample(roots: dict[str, int]) -> CpuSample:
    return sample_of(read_stats(), roots, machine_busy_ticks(Path("/proc/stat").read_text()), os.getpid())


CLK_TCK = os.sysconf("SC_CLK_TCK")
