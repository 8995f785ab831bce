"""The LoCoMo texts the benchmarks write and ask (../shared/bench/locomo, used in place)."""

from __future__ import annotations

import json

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
