"""A cross-encoder behind an HTTP rerank endpoint: the search's rerank stage (application/reranking.py).

Two request shapes, RECALLSTACK_RERANK_STYLE:

    tei     Hugging Face text-embeddings-inference: POST {url}/rerank {query, texts, truncate}
            -> [{index, score}]
    cohere  Cohere, Jina, vLLM, Infinity, llama.cpp (the OpenAI-style servers' rerank): POST
            {url}/v1/rerank {model, query, documents, top_n} -> {results: [{index, relevance_score}]}

Either answer is read the same way (a list, or one under `results`; `score` or `relevance_score`),
then checked (domain/reranking.checked_scores): an index out of range or twice, a score that is no
finite number, is garbage. Texts go in batches of `batch` (TEI refuses more than 32 by default),
at once. The whole call has `timeout_s`, and every failure (no connection, a timeout, an HTTP
error, garbage) counts on the `rerank` circuit breaker (adapters/resilience.py): once the endpoint
failed three times in a row, searches stop paying its timeout until it is tried again. Failures
raise RerankFailed, whose text is the client's to read: what failed, never the endpoint's address,
key or own message (those go to the log).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
from prometheus_client import Counter, Histogram

from adapters import resilience
from domain.circuit_breaker import CircuitBreaker, CircuitOpen
from domain.reranking import InvalidScores, checked_scores

log = logging.getLogger(__name__)

STYLES = ("tei", "cohere")
REQUESTS = Counter("recallstack_rerank_requests_total",
                   "Rerank calls by outcome: ok, timeout, unreachable, http_error, invalid_answer, circuit_open",
                   ["outcome"])
SECONDS = Histogram("recallstack_rerank_seconds", "Time of each rerank call (any outcome)",
                    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


class RerankFailed(Exception):
    """No usable scores; the text says why, fit for a client."""


class _Garbage(Exception):
    """An answer that is not scores (counts on the breaker like a failure)."""


def endpoint(url: str, style: str) -> str:
    """Where the texts go: {url}/rerank (tei) or {url}/v1/rerank (cohere; a url that ends in /v1
    is taken as the API's root, as OpenAI-style base URLs are written)."""
    url = url.rstrip("/")
    if style == "tei":
        return f"{url}/rerank"
    return f"{url.removesuffix('/v1')}/v1/rerank"


def request_body(style: str, model: str, query: str, texts: list[str]) -> dict[str, Any]:
    if style == "tei":
        return {"query": query, "texts": texts, "truncate": True}
    return {**({"model": model} if model else {}), "query": query, "documents": texts, "top_n": len(texts)}


def parsed_scores(answer: Any, count: int) -> dict[int, float]:
    """{index: score} of an endpoint's JSON answer for `count` texts (either shape); InvalidScores
    naming what is wrong."""
    items = answer.get("results") if isinstance(answer, dict) else answer
    if not isinstance(items, list):
        raise InvalidScores("expected a list of {index, score} (or {results: [...]})")
    pairs = []
    for item in items:
        if not isinstance(item, dict) or "index" not in item:
            raise InvalidScores("an item has no index")
        pairs.append((item["index"], item.get("relevance_score", item.get("score"))))
    return checked_scores(pairs, count)


class HttpReranker:
    def __init__(self, url: str, style: str = "cohere", model: str = "", api_key: str = "", timeout_s: float = 2.0,
                 batch: int = 32, breaker: CircuitBreaker | None = None, client: httpx.AsyncClient | None = None):
        if style not in STYLES:
            raise ValueError(f"rerank style must be one of {', '.join(STYLES)}, got {style!r}")
        self.url, self.style, self.model, self.timeout_s, self.batch = endpoint(url, style), style, model, timeout_s, batch
        self.breaker = breaker or resilience.breaker("rerank")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # httpx waits a little longer than the call: its own timeout must not preempt the named one
        self.client = client or httpx.AsyncClient(headers=headers, timeout=timeout_s + 1)
        self.description = {"style": style, **({"model": model} if model else {})}

    async def scores(self, query: str, texts: list[str]) -> dict[int, float]:
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            found = await resilience.call(self.breaker, lambda: self._all(query, texts), timeout_s=self.timeout_s,
                                          failures=(httpx.HTTPError, OSError, _Garbage))
        except CircuitOpen as exc:
            raise self._failed("circuit_open", f"the rerank endpoint failed repeatedly (circuit open; tried again "
                                                f"in {exc.retry_after_s:.1f} s)", began)
        except asyncio.TimeoutError:
            raise self._failed("timeout", f"no answer from the rerank endpoint within {self.timeout_s * 1000:.0f} ms",
                                began)
        except httpx.HTTPStatusError as exc:
            log.warning("the rerank endpoint answered HTTP %s: %s", exc.response.status_code, exc.response.text[:300])
            raise self._failed("http_error", f"the rerank endpoint answered HTTP {exc.response.status_code}", began)
        except (httpx.HTTPError, OSError) as exc:
            log.warning("the rerank endpoint is unreachable: %s: %s", type(exc).__name__, exc)
            raise self._failed("unreachable", f"the rerank endpoint is unreachable ({type(exc).__name__})", began)
        except _Garbage as exc:
            raise self._failed("invalid_answer", f"the rerank endpoint's answer is not scores: {exc}", began)
        REQUESTS.labels("ok").inc()
        SECONDS.observe(loop.time() - began)
        return found

    @staticmethod
    def _failed(outcome: str, reason: str, began: float) -> RerankFailed:
        REQUESTS.labels(outcome).inc()
        SECONDS.observe(asyncio.get_running_loop().time() - began)
        return RerankFailed(reason)

    async def _all(self, query: str, texts: list[str]) -> dict[int, float]:
        starts = range(0, len(texts), self.batch)
        parts = await asyncio.gather(*(self._batch(query, texts[s:s + self.batch]) for s in starts))
        return {start + index: score for start, part in zip(starts, parts) for index, score in part.items()}

    async def _batch(self, query: str, texts: list[str]) -> dict[int, float]:
        answer = await self.client.post(self.url, json=request_body(self.style, self.model, query, texts))
        answer.raise_for_status()
        try:
            return parsed_scores(answer.json(), len(texts))
        except ValueError as exc:  # not JSON (json's error is a ValueError), or InvalidScores
            raise _Garbage(str(exc)[:200]) from exc

    async def aclose(self) -> None:
        await self.client.aclose()
