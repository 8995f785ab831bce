"""The order of a search's results after a cross-encoder scored the best of them (pure: no I/O).

Fusion (ranking.py) ranks by where each source put a memory; a cross-encoder reads the query
and each memory together and scores how well the memory answers it. The rerank stage
(application/reranking.py) sends the first fused results to one and reorders them here: the
scored ones by its score, best first, and those it did not score after them in fused order (an
endpoint may cap how many it scores). Equal scores keep their fused order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TypeVar

T = TypeVar("T")


class InvalidScores(ValueError):
    """Scores that cannot order the results: an index out of range or twice, a score that is no
    finite number, or none at all."""


def checked_scores(pairs: Sequence[tuple[object, object]], count: int) -> dict[int, float]:
    """{index: score} from an endpoint's (index, score) pairs for `count` texts; InvalidScores
    naming the first problem."""
    scores: dict[int, float] = {}
    for index, score in pairs:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
            raise InvalidScores(f"index {index!r:.40} is not one of the {count} texts sent")
        if index in scores:
            raise InvalidScores(f"index {index} is scored twice")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise InvalidScores(f"the score of index {index} is not a finite number ({score!r:.40})")
        scores[index] = float(score)
    if count and not scores:
        raise InvalidScores("no text was scored")
    return scores


def reordered(items: Sequence[T], scores: Mapping[int, float]) -> list[T]:
    """`items` (in fused order) with the scored ones first, by score (best first, ties in fused
    order), then the others in fused order."""
    scored = sorted(scores, key=lambda i: (-scores[i], i))
    rest = [i for i in range(len(items)) if i not in scores]
    return [items[i] for i in scored + rest]
