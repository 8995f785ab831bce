"""The percentile every benchmark reports: nearest rank on the sorted values."""

from __future__ import annotations


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]
