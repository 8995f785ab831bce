"""The optional rerank stage of a search (`rerank: true`, as mem0's search has it): a cross-encoder
behind an endpoint re-scores the best fused results, and the answer follows its order.

Fusion ranks a memory by where each source put it; a cross-encoder reads the query and the memory
together, which tells an answer from a memory that merely shares its words. It costs a model call
per search, so it is asked for, not the default. The engine is asked for `candidates` results (more
than `limit`), the stage sends their texts to the `Reranker` port (adapters/reranker_http.py,
injected by bootstrap.py), reorders them (domain/reranking.py) and cuts at `limit`; each scored
result carries `rerank_score`.

An endpoint that is down, slow, refused by its circuit breaker or answering garbage never fails a
search: the fused order is kept and `degraded` names `rerank` with the reason, as it names a search
source that was left out. Without an endpoint configured, the native API refuses `rerank: true`
(RerankNotConfigured: a 422 naming the setting: a caller who asked for it should not believe it
got it); mem0's route accepts it and says so in `degraded` (mem0's own library also does nothing
with `rerank=True` when no reranker is configured, and its clients may send it by habit).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from domain.reranking import reordered

log = logging.getLogger(__name__)

SETTING = "RECALLSTACK_RERANK_URL"
NOT_CONFIGURED = f"no rerank endpoint is configured ({SETTING}): the fused order is kept"


class Reranker(Protocol):
    description: dict[str, Any]  # what scores, for `explain`: style, model (no address, no key)

    async def scores(self, query: str, texts: list[str]) -> dict[int, float]:
        """{index in `texts`: relevance, higher is better}; some texts may go unscored. Raises on
        any failure, with a text fit for the client (it goes into `degraded`)."""


class RerankNotConfigured(Exception):
    """`rerank: true` on a deployment without a rerank endpoint."""

    def __init__(self):
        super().__init__(f"rerank: true needs a rerank endpoint, and none is configured (set {SETTING}; "
                         "docs/configuration.md, \"Reranking\")")


@dataclass(frozen=True)
class Reranking:
    """The stage: `reranker` None when no endpoint is configured; `candidates` how many fused
    results it scores; `failures` the exceptions whose text may be shown (others are named by
    type only)."""
    reranker: Reranker | None = None
    candidates: int = 40
    failures: tuple[type[BaseException], ...] = ()

    async def close(self) -> None:
        """Let go of the endpoint's connections (the query API's shutdown)."""
        if self.reranker is not None and hasattr(self.reranker, "aclose"):
            await self.reranker.aclose()

    def wanted(self, options: dict, optional: bool = False) -> bool:
        """Whether a search with these options is reranked; RerankNotConfigured when it asks for it,
        none is configured and the caller did not say the request may do without."""
        if not options.get("rerank"):
            return False
        if self.reranker is None and not optional:
            raise RerankNotConfigured()
        return True

    def identity(self) -> dict[str, Any] | None:
        """What a reranked answer depends on besides the request (the answer cache's key)."""
        return None if self.reranker is None else {**self.reranker.description, "candidates": self.candidates}

    def depth(self, limit: int) -> int:
        """How many results to ask the engine for: enough to rerank, at least `limit`."""
        return max(limit, self.candidates) if self.reranker is not None else limit

    async def applied(self, text: str, outcome: Any, limit: int) -> Any:
        """The engine's Outcome (application/search.py) reranked and cut at `limit`; unchanged
        but for `degraded` when the reranker is missing or fails."""
        if self.reranker is None:
            return _left_as_is(outcome, limit, NOT_CONFIGURED, {})
        head = outcome.results[:self.candidates]
        began = time.perf_counter()
        try:
            scores = await self.reranker.scores(text, [r.get("memory") or "" for r in head]) if head else {}
        except Exception as exc:  # an optional stage: nothing it raises may fail the search
            reason = str(exc) if isinstance(exc, self.failures) else f"failed ({type(exc).__name__})"
            log.warning("rerank failed: %s: %s", type(exc).__name__, exc)
            return _left_as_is(outcome, limit, f"not reranked, the fused order is kept: {reason}",
                               {"rerank": _ms(began)})
        order = reordered(range(len(head)), scores)
        results = [{**head[i], "rerank_score": round(scores[i], 6)} if i in scores else head[i] for i in order]
        explain = {**outcome.explain, "rerank": {"candidates": len(head), "scored": len(scores),
                                                 **self.reranker.description}}
        return dataclasses.replace(outcome, results=(results + outcome.results[len(head):])[:limit], explain=explain,
                                   timings_ms={**outcome.timings_ms, "rerank": _ms(began)})


def _left_as_is(outcome: Any, limit: int, reason: str, timings: dict[str, float]) -> Any:
    return dataclasses.replace(outcome, results=outcome.results[:limit],
                               degraded=[*outcome.degraded, {"source": "rerank", "reason": reason}],
                               timings_ms={**outcome.timings_ms, **timings})


def _ms(began: float) -> float:
    return round((time.perf_counter() - began) * 1000, 2)
