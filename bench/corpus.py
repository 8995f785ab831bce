"""What the benchmarks share: LoCoMo texts (used in place from ../shared), percentiles, the machine."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from settings import shared_dir


def locomo() -> list[dict]:
    return json.loads((shared_dir() / "bench" / "locomo" / "locomo10_dev.json").read_text())


def turns(limit: int | None = None, with_speaker: bool = True) -> list[str]:
    """Dialogue turns in order ("Speaker: text"), repeated to reach `limit` when asked for more."""
    texts = []
    for sample in locomo():
        conv = sample["conversation"]
        for key in sorted((k for k in conv if k.startswith("session_") and isinstance(conv[k], list)),
                          key=lambda k: int(k.split("_")[1])):
            texts += [f"{t['speaker']}: {t['text']}" if with_speaker else t["text"] for t in conv[key] if t.get("text")]
    if limit is None:
        return texts
    return (texts * (1 + limit // max(1, len(texts))))[:limit]


def questions() -> list[str]:
    return [q["question"] for sample in locomo() for q in sample["qa"] if q.get("question")]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def machine() -> dict:
    info = {"cores": len(os.sched_getaffinity(0)), "cpu_count": os.cpu_count(), "python": platform.python_version()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
        info["simd"] = " ".join(f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni") if f" {f}" in flags)
        mem = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
        info["ram_gib"] = round(int(mem.split()[1]) / 1024 / 1024, 1)
    except (OSError, StopIteration):
        pass
    info["loadavg_1m_at_start"] = os.getloadavg()[0]
    return info


def save_and_report(result: dict, out_dir: Path, plot, print_report, as_json: bool) -> None:
    """Write result["files"]["json"] and the plot, then print the report (or, as_json, the
    result without its per-question rows) on stdout."""
    out_dir.mkdir(parents=True, exist_ok=True)
    Path(result["files"]["json"]).write_text(json.dumps(result, indent=2, default=str))
    plot(result, Path(result["files"]["plot"]))
    if as_json:
        print(json.dumps({k: v for k, v in result.items() if k != "per_question"}, indent=2, default=str))
    else:
        print_report(result)


def api_headers() -> dict[str, str]:
    """The Authorization header benches send: $RECALLSTACK_API_KEY, else the local stack's
    admin key ($RECALLSTACK_HOME/admin.key, made by `recallstack up`; admin keys are not
    rate limited). None in the no-auth mode."""
    from cli.keys import cli_api_key
    from settings import Settings

    key = cli_api_key(Settings.from_env())
    return {"Authorization": f"Bearer {key}"} if key else {}


def event_log(events: int, user_prefix: str, batch_size: int = 1000, access_every: int = 0):
    """A replay-like corpus in batches: (events, accesses) per batch. 90 % MemoryCreated
    (LoCoMo turns, 384-dimension unit vectors, 200 users), 8 % MemoryUpdated (new text and
    vector), 2 % MemoryDeleted; with access_every=N, a MemoryAccessed of a live memory every
    N events. Seeded: the same arguments give the same texts, users and vectors."""
    import uuid

    import numpy as np

    from domain.events import MemoryAccessed, MemoryCreated, MemoryDeleted, MemoryUpdated, utcnow

    rng = np.random.default_rng(42)
    texts = turns(5000)
    users = [f"{user_prefix}-{n}" for n in range(200)]
    live: list[tuple[str, str]] = []  # (user, memory id) that can still be updated or deleted
    written = 0

    def unit() -> tuple[float, ...]:
        v = rng.normal(size=384).astype(np.float32)
        return tuple((v / np.linalg.norm(v)).tolist())

    while written < events:
        batch, reads = [], []
        for _ in range(min(batch_size, events - written)):
            roll = rng.random()
            if roll < 0.90 or len(live) < 100:
                user = users[int(rng.integers(len(users)))]
                memory_id = str(uuid.uuid4())
                live.append((user, memory_id))
                batch.append(MemoryCreated(user_id=user, actor="worker:bench", memory_id=memory_id,
                                           text=texts[written % len(texts)], embedding=unit(),
                                           embedding_model="all-MiniLM-L6-v2", happened_at=utcnow()))
            elif roll < 0.98:
                user, memory_id = live[int(rng.integers(len(live)))]
                batch.append(MemoryUpdated(user_id=user, actor="worker:bench", memory_id=memory_id,
                                           text=texts[(written * 7) % len(texts)], embedding=unit(),
                                           embedding_model="all-MiniLM-L6-v2"))
            else:
                user, memory_id = live.pop(int(rng.integers(len(live))))
                batch.append(MemoryDeleted(user_id=user, actor="worker:bench", memory_id=memory_id))
            if access_every and written % access_every == 0:
                user, memory_id = live[int(rng.integers(len(live)))]
                reads.append(MemoryAccessed(user_id=user, actor="worker:bench", memory_ids=(memory_id,),
                                            source="search"))
            written += 1
        yield batch, reads
