"""The HTTP reranker (adapters/reranker_http.py) against a canned rerank endpoint.

CannedRerankServer is a MOCK OF THE MODEL ENDPOINT (no cross-encoder runs here, and none ships in a
package): a stdlib server that answers TEI's POST /rerank and the Cohere-style POST /v1/rerank in
their real shapes, scoring each text by a fixed rule (`overlap`: the share of the text's words that
are words of the query), or failing on purpose (`mode`). The real httpx client, the timeout and the
circuit breaker are exercised; nothing else is mocked. No Kafka or Postgres needed. The e2e test
(tests/e2e/test_rerank.py) runs the whole stack against the same server.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from adapters.reranker_http import HttpReranker, RerankFailed
from domain.circuit_breaker import CircuitBreaker


def overlap(query: str, text: str) -> float:
    """The canned relevance: the share of the text's words that are words of the query (a short
    text on the query's subject beats a long one that mentions it in passing)."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    asked = set(re.findall(r"[a-z0-9]+", query.lower()))
    return round(sum(w in asked for w in words) / len(words), 6) if words else 0.0


class CannedRerankServer:
    """`mode`: ok, error (HTTP 503), garbage (scores that are not scores), not_json, slow (answers
    after `delay_s`). `requests` holds every body received. stop() and start() close and reopen
    the same port (an endpoint that is down, then back)."""

    def __init__(self, port: int = 0) -> None:
        self.mode, self.delay_s, self.requests = "ok", 3.0, []
        self.stopping = threading.Event()
        self.port = port
        self.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real endpoint: the cost measured is not a TCP setup
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall between

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "body": body,
                                        "authorization": self.headers.get("Authorization")})
                texts = body.get("texts") if self.path == "/rerank" else body.get("documents")
                if self.path not in ("/rerank", "/v1/rerank") or not isinstance(texts, list):
                    return self._send(404, {"error": "unknown route or shape"})
                if server.mode == "error":
                    return self._send(503, {"error": "model loading"})
                if server.mode == "slow" and server.stopping.wait(server.delay_s):
                    return
                if server.mode == "not_json":
                    return self._send(200, "<html>gateway</html>", raw=True)
                scores = [overlap(body["query"], t) for t in texts]
                if server.mode == "garbage":
                    scores = ["high"] * len(texts)
                if self.path == "/rerank":
                    ranked = sorted(range(len(texts)), key=lambda i: -scores[i] if server.mode != "garbage" else 0)
                    return self._send(200, [{"index": i, "score": scores[i]} for i in ranked])
                ranked = sorted(range(len(texts)), key=lambda i: -scores[i] if server.mode != "garbage" else 0)
                self._send(200, {"id": "canned", "results": [{"index": i, "relevance_score": scores[i]}
                                                             for i in ranked[:body.get("top_n") or len(texts)]]})

            def _send(self, status, payload, raw=False):
                data = payload.encode() if raw else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html" if raw else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        ThreadingHTTPServer.allow_reuse_address = True
        self.stopping.clear()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    canned = CannedRerankServer()
    yield canned
    canned.stop()


QUERY = "quokka marmalade festival"
TEXTS = ["At the festival the quokka keeper served marmalade on toast to visitors all afternoon",
         "quokka photos", "the weather", "marmalade jars and marmalade labels"]
EXPECTED = {i: overlap(QUERY, t) for i, t in enumerate(TEXTS)}


def reranker(server: CannedRerankServer, style: str, **options) -> HttpReranker:
    options.setdefault("breaker", CircuitBreaker("rerank-test", failure_threshold=3, reset_after_s=60))
    return HttpReranker(server.base_url, style, **options)


@pytest.mark.parametrize("style", ["tei", "cohere"])
def test_both_shapes_give_every_text_its_score(server, style):
    found = asyncio.run(reranker(server, style, model="canned-ce", api_key="k-1").scores(QUERY, TEXTS))
    assert found == EXPECTED
    sent = server.requests[-1]
    assert sent["path"] == ("/rerank" if style == "tei" else "/v1/rerank")
    assert sent["authorization"] == "Bearer k-1"
    if style == "cohere":
        assert sent["body"] == {"model": "canned-ce", "query": QUERY, "documents": TEXTS, "top_n": len(TEXTS)}
    else:
        assert sent["body"] == {"query": QUERY, "texts": TEXTS, "truncate": True}


def test_texts_go_in_batches_and_come_back_in_one_index_space(server):
    found = asyncio.run(reranker(server, "tei", batch=3).scores(QUERY, TEXTS))
    assert found == EXPECTED
    assert sorted(len(r["body"]["texts"]) for r in server.requests) == [1, 3]  # sent at once


def test_a_base_url_ending_in_v1_is_the_api_root(server):
    rr = HttpReranker(server.base_url + "/v1/", "cohere", breaker=CircuitBreaker("rerank-test"))
    assert asyncio.run(rr.scores(QUERY, TEXTS)) == EXPECTED


@pytest.mark.parametrize("mode, reason", [
    ("error", "the rerank endpoint answered HTTP 503"),
    ("garbage", "the rerank endpoint's answer is not scores: the score of index"),
    ("not_json", "the rerank endpoint's answer is not scores"),
])
def test_a_failing_endpoint_raises_rerank_failed_naming_what_failed(server, mode, reason):
    server.mode = mode
    with pytest.raises(RerankFailed, match=re.escape(reason)):
        asyncio.run(reranker(server, "cohere").scores(QUERY, TEXTS))


def test_a_slow_endpoint_costs_its_timeout_not_more(server):
    server.mode, server.delay_s = "slow", 5.0
    rr = reranker(server, "tei", timeout_s=0.3)

    async def timed():
        began = asyncio.get_running_loop().time()
        with pytest.raises(RerankFailed, match="no answer from the rerank endpoint within 300 ms"):
            await rr.scores(QUERY, TEXTS)
        return asyncio.get_running_loop().time() - began

    assert asyncio.run(timed()) < 1.0


def test_an_endpoint_that_is_down_opens_the_breaker_then_is_not_called(server):
    breaker = CircuitBreaker("rerank-test", failure_threshold=2, reset_after_s=60)
    rr = reranker(server, "cohere", breaker=breaker)
    server.stop()

    async def three():
        reasons = []
        for _ in range(3):
            try:
                await rr.scores(QUERY, TEXTS)
            except RerankFailed as exc:
                reasons.append(str(exc))
        return reasons

    reasons = asyncio.run(three())
    assert reasons[:2] == ["the rerank endpoint is unreachable (ConnectError)"] * 2
    assert reasons[2].startswith("the rerank endpoint failed repeatedly (circuit open")
    assert breaker.state == "open"
    server.start()  # the fixture stops it again


def test_an_unknown_style_is_refused():
    with pytest.raises(ValueError, match="tei, cohere"):
        HttpReranker("http://127.0.0.1:1", "openai")
