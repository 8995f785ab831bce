"""all-MiniLM-L6-v2 without torch must reproduce sentence-transformers (torch) vectors.

Reference: ../shared/embeddings/minilm_l6_v2_reference.json (override the shared folder with
RECALLSTACK_SHARED_DIR), 16 sentences incl. the empty string, CJK, emoji and a ~600-word text
that sentence-transformers truncates at 256 tokens.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from adapters.embedders import Embedder, build_embedder
from adapters.embedders.minilm import MiniLMEmbedder
from settings import shared_dir

MIN_COSINE = 0.9999


def _reference_path() -> Path:
    return shared_dir() / "embeddings" / "minilm_l6_v2_reference.json"


@pytest.fixture(scope="module")
def reference() -> tuple[list[str], np.ndarray]:
    path = _reference_path()
    if not path.is_file():
        pytest.fail(f"reference vectors not found at {path} (set RECALLSTACK_SHARED_DIR)")
    data = json.loads(path.read_text())
    assert data["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert data["max_seq_length"] == 256
    vectors = np.asarray(data["embeddings"], dtype=np.float64)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    assert vectors.shape == (len(data["sentences"]), 384)
    return data["sentences"], vectors


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("embedder-cache")


@pytest.fixture(scope="module")
def embedder(cache_dir) -> MiniLMEmbedder:
    emb = build_embedder("minilm", cache_dir=cache_dir)
    assert isinstance(emb, MiniLMEmbedder)
    return emb.load()


def _cosines(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    got = got.astype(np.float64)
    return (got * ref).sum(1) / np.linalg.norm(got, axis=1)


def _check_block(got: np.ndarray, n: int) -> None:
    assert got.shape == (n, 384)
    assert got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_reference_covers_the_edge_cases(reference):
    sentences, _ = reference
    assert "" in sentences
    assert max(len(s.split()) for s in sentences) >= 500  # forces truncation at 256 tokens


def test_protocol_and_metadata(embedder):
    assert isinstance(embedder, Embedder)
    assert embedder.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert embedder.dim == 384
    assert embedder.runtime_backend == "onnx"


def test_single_sentence_calls_match_reference(embedder, reference):
    sentences, ref = reference
    got = np.stack([embedder.embed_one(s) for s in sentences])
    _check_block(got, len(sentences))
    cos = _cosines(got, ref)
    worst = int(cos.argmin())
    assert cos.min() >= MIN_COSINE, f"cosine {cos[worst]:.6f} for {sentences[worst][:60]!r}"
    for s in sentences[:3]:  # embed([x]) and embed_one(x) are the same thing
        np.testing.assert_array_equal(embedder.embed([s])[0], embedder.embed_one(s))


def test_one_batched_call_matches_reference(embedder, reference):
    """All 16 in one call: short sentences are padded up to the 256-token one; padding must not matter."""
    sentences, ref = reference
    got = embedder.embed(sentences)
    _check_block(got, len(sentences))
    cos = _cosines(got, ref)
    assert cos.min() >= MIN_COSINE, f"worst cosine {cos.min():.6f} for {sentences[int(cos.argmin())][:60]!r}"
    single = np.stack([embedder.embed_one(s) for s in sentences])
    np.testing.assert_allclose(got, single, atol=2e-5)


def test_small_chunks_keep_input_order(embedder, reference):
    """batch_size=3 forces several length-sorted chunks; rows must come back in input order."""
    sentences, ref = reference
    emb = MiniLMEmbedder(batch_size=3, cache_dir=embedder.cache_dir)
    order = list(reversed(range(len(sentences))))
    got = emb.embed([sentences[i] for i in order])
    assert _cosines(got, ref[order]).min() >= MIN_COSINE


def test_empty_input_and_type_errors(embedder):
    out = embedder.embed([])
    assert out.shape == (0, 384) and out.dtype == np.float32
    assert embedder.embed_one("").shape == (384,)
    with pytest.raises(TypeError):
        embedder.embed("a plain string is not a list of texts")
    with pytest.raises(TypeError):
        embedder.embed(["ok", None])  # type: ignore[list-item]


def test_concurrent_calls_from_a_thread_pool(embedder, reference):
    sentences, ref = reference
    jobs = [sentences[i % len(sentences)] for i in range(64)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(embedder.embed_one, jobs))
    cos = _cosines(np.stack(got), ref[[i % len(sentences) for i in range(64)]])
    assert cos.min() >= MIN_COSINE


def test_graph_is_cached_on_disk_and_a_corrupt_cache_is_rebuilt(embedder, cache_dir, reference, tmp_path):
    sentences, ref = reference
    files = list(cache_dir.glob("all-MiniLM-L6-v2-*.onnx"))
    assert len(files) == 1, files
    # threads=1 is another runtime key: a fresh load that must find the graph file
    again = MiniLMEmbedder(threads=1, cache_dir=cache_dir)
    assert again.graph_cache_status.startswith("cached")
    assert _cosines(again.embed(sentences), ref).min() >= MIN_COSINE

    (tmp_path / files[0].name).write_bytes(b"truncated")
    rebuilt = MiniLMEmbedder(threads=1, cache_dir=tmp_path)
    assert rebuilt.graph_cache_status.startswith("built")
    assert _cosines(rebuilt.embed(sentences[:4]), ref[:4]).min() >= MIN_COSINE
    assert (tmp_path / files[0].name).stat().st_size > 80_000_000


def test_numpy_backend_matches_reference_too(reference):
    sentences, ref = reference
    emb = MiniLMEmbedder(backend="numpy", cache_dir=False)
    got = np.stack([emb.embed_one(s) for s in sentences])  # one by one: no padding to 256, 5x less work
    assert emb.runtime_backend == "numpy"
    _check_block(got, len(sentences))
    assert _cosines(got, ref).min() >= MIN_COSINE


def test_factory_rejects_unknown_names_and_options():
    with pytest.raises(ValueError, match="minilm, openai"):
        build_embedder("word2vec")
    with pytest.raises(ValueError, match="backend"):
        build_embedder("minilm", backend="torch")
    with pytest.raises(TypeError):
        build_embedder("minilm", base_url="http://x")
