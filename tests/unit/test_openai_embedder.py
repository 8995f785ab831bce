"""OpenAICompatibleEmbedder against a real HTTP server on 127.0.0.1.

The stdlib server below is the stand-in for the remote embedding endpoint (OpenAI, Ollama,
vLLM...): it answers POST /v1/embeddings in the OpenAI response shape, so the real `openai`
client, its HTTP stack and our error mapping are all exercised; nothing is mocked.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import openai
import pytest

from adapters.embedders import Embedder, EmbedderUnavailable, build_embedder
from adapters.embedders.openai_compat import OpenAICompatibleEmbedder

DIM = 8


class FakeEmbeddingServer:
    """Vector for the i-th input "t<n>" of a request: [n + 1, 2, 0, ..., 0] (deliberately not unit norm);
    other texts get [len(text) + 1, 2, 0, ...]. Rows are sent in reverse order, each with its index."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.status = 200
        self.delay = 0.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
                if server.delay:
                    time.sleep(server.delay)
                if self.path != "/v1/embeddings":
                    return self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
                if server.status != 200:
                    return self._send(server.status, {"error": {"message": f"boom {server.status}", "type": "server_error"}})
                dim = body.get("dimensions") or DIM
                rows = []
                for i, text in enumerate(body["input"]):
                    vec = [0.0] * dim
                    vec[0] = float(int(text[1:]) + 1) if text.startswith("t") and text[1:].isdigit() else len(text) + 1.0
                    vec[1] = 2.0
                    rows.append({"object": "embedding", "index": i, "embedding": vec})
                self._send(200, {"object": "list", "data": rows[::-1], "model": body["model"],
                                 "usage": {"prompt_tokens": len(rows), "total_tokens": len(rows)}})

            def _send(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def server():
    with FakeEmbeddingServer() as srv:
        yield srv


def make(server, **opts) -> OpenAICompatibleEmbedder:
    opts.setdefault("model", "test-embed")
    opts.setdefault("dimensions", DIM)
    emb = build_embedder("openai", base_url=server.base_url, api_key="sk-test", max_retries=0, **opts)
    assert isinstance(emb, OpenAICompatibleEmbedder)
    return emb


def expected(n: int, dim: int = DIM) -> np.ndarray:
    v = np.zeros(dim)
    v[0], v[1] = n + 1, 2.0
    return (v / np.linalg.norm(v)).astype(np.float32)


def test_vectors_are_normalised_and_in_input_order(server):
    emb = make(server)
    assert isinstance(emb, Embedder)
    assert emb.model_id == "openai:test-embed"
    assert emb.dim == DIM
    out = emb.embed(["t0", "t1", "t41"])
    assert out.shape == (3, DIM) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(out, np.stack([expected(0), expected(1), expected(41)]), atol=1e-6)
    one = emb.embed_one("t7")
    assert one.shape == (DIM,)
    np.testing.assert_allclose(one, expected(7), atol=1e-6)
    req = server.requests[0]
    assert req["path"] == "/v1/embeddings" and req["auth"] == "Bearer sk-test"
    assert req["model"] == "test-embed" and req["dimensions"] == DIM
    assert req["encoding_format"] == "float"  # base64 (the client default) is not supported everywhere


def test_inputs_are_sent_in_chunks(server):
    emb = make(server, batch_size=256)
    texts = [f"t{i}" for i in range(600)]
    out = emb.embed(texts)
    assert [len(r["input"]) for r in server.requests] == [256, 256, 88]
    assert server.requests[1]["input"][0] == "t256"
    np.testing.assert_allclose(out[[0, 255, 256, 599]], np.stack([expected(i) for i in (0, 255, 256, 599)]), atol=1e-6)


def test_empty_list_makes_no_request_and_empty_string_is_sent_as_space(server):
    emb = make(server)
    assert emb.embed([]).shape == (0, DIM)
    assert server.requests == []
    emb.embed_one("")
    assert server.requests[0]["input"] == [" "]


def test_dim_of_an_unknown_model_is_probed_once(server):
    emb = make(server, model="my-local-model", dimensions=None)
    assert server.requests == []  # nothing asked until `dim` is read
    assert emb.dim == DIM and emb.dim == DIM
    assert len(server.requests) == 1 and "dimensions" not in server.requests[0]


def test_known_model_dim_needs_no_request(server):
    emb = make(server, model="text-embedding-3-small", dimensions=None)
    assert emb.dim == 1536
    assert server.requests == []


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_server_errors_raise_embedder_unavailable(server, status):
    server.status = status
    with pytest.raises(EmbedderUnavailable, match=str(status)):
        make(server).embed(["t1"])


def test_client_errors_are_not_masked_as_unavailable(server):
    server.status = 401
    with pytest.raises(openai.AuthenticationError):
        make(server).embed(["t1"])


def test_closed_port_raises_embedder_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    emb = build_embedder("openai", base_url=f"http://127.0.0.1:{port}/v1", api_key="k", model="m",
                         dimensions=4, timeout=2.0, max_retries=0)
    with pytest.raises(EmbedderUnavailable, match="cannot reach"):
        emb.embed(["hello"])


def test_timeout_raises_embedder_unavailable(server):
    server.delay = 1.5
    emb = make(server, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(EmbedderUnavailable, match="timed out"):
        emb.embed(["t1"])
    assert time.monotonic() - started < 1.4
