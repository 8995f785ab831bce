"""The int8 MiniLM graph for search queries: derived locally from the float graph and cached under
its own name, its own model id, vectors close enough to the reference (float32) vectors to search
float32 documents (docs/search.md "Query embedding": LoCoMo hit@10 within 0.01), and the query
embedder that routes a search's text to it while everything else keeps the documents' model.

Reference: ../shared/embeddings/minilm_l6_v2_reference.json (as test_embedder_reference.py).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from adapters.embedders import build_embedder, build_query_embedder
from adapters.embedders.minilm import INT8_MODEL_ID, MODEL_ID, MiniLMEmbedder
from adapters.embedders.routed import QueryEmbedder
from settings import shared_dir

# Measured on the reference set (16 sentences, one at a time): mean 0.994, worst 0.984 (the 600-word
# text, truncated at 256 tokens). The float32 graph keeps >= 0.9999 (test_embedder_reference.py).
MIN_MEAN_COSINE = 0.99
MIN_COSINE = 0.98


@pytest.fixture(scope="module")
def reference() -> tuple[list[str], np.ndarray]:
    path = shared_dir() / "embeddings" / "minilm_l6_v2_reference.json"
    if not path.is_file():
        pytest.fail(f"reference vectors not found at {path} (set RECALLSTACK_SHARED_DIR)")
    data = json.loads(path.read_text())
    vectors = np.asarray(data["embeddings"], dtype=np.float64)
    return data["sentences"], vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("embedder-int8-cache")


@pytest.fixture(scope="module")
def int8(cache_dir) -> MiniLMEmbedder:
    return MiniLMEmbedder(precision="int8", threads=1, spin=False, cache_dir=cache_dir).load()


def _cosines(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    got = got.astype(np.float64)
    return (got * ref).sum(1) / np.linalg.norm(got, axis=1)


def test_own_model_id_in_the_documents_space(int8):
    assert int8.model_id == INT8_MODEL_ID != MODEL_ID
    assert int8.space_id == MODEL_ID
    assert int8.dim == 384 and int8.runtime_backend == "onnx"
    assert MiniLMEmbedder().model_id == MODEL_ID  # float32 stays the documents' model


def test_one_query_at_a_time_is_close_to_the_reference(int8, reference):
    sentences, ref = reference
    got = np.stack([int8.embed_one(s) for s in sentences])
    assert got.dtype == np.float32 and got.shape == (len(sentences), 384)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cos = _cosines(got, ref)
    assert cos.mean() >= MIN_MEAN_COSINE, cos
    assert cos.min() >= MIN_COSINE, f"cosine {cos.min():.4f} for {sentences[int(cos.argmin())][:60]!r}"
    # ... and not the float32 graph under another name
    assert cos.mean() < 0.9995


def test_same_vector_every_time_and_from_any_thread(int8, reference, cache_dir):
    sentences, _ = reference
    first = np.stack([int8.embed_one(s) for s in sentences])
    with ThreadPoolExecutor(max_workers=4) as pool:
        again = np.stack(list(pool.map(int8.embed_one, sentences)))
    np.testing.assert_array_equal(first, again)
    two_threads = MiniLMEmbedder(precision="int8", threads=2, cache_dir=cache_dir)
    np.testing.assert_allclose(np.stack([two_threads.embed_one(s) for s in sentences]), first, atol=1e-5)


def test_graph_derived_locally_and_cached_under_its_own_name(int8, cache_dir, reference, tmp_path):
    sentences, ref = reference
    assert "int8 derived" in int8.graph_cache_status
    names = sorted((p.name for p in cache_dir.glob("all-MiniLM-L6-v2-*.onnx")), key=len)  # float, int8
    assert len(names) == 2 and names[1] == names[0].replace(".onnx", "-int8q2.onnx"), names
    float_file, int8_file = cache_dir / names[0], cache_dir / names[1]
    assert int8_file.stat().st_size < 0.8 * float_file.stat().st_size  # int8 weights

    again = MiniLMEmbedder(precision="int8", threads=1, spin=True, cache_dir=cache_dir)  # another runtime key
    assert again.graph_cache_status == f"cached {int8_file}"

    # A corrupt int8 file is derived again; a corrupt float file under a missing int8 one is rebuilt first.
    (tmp_path / names[1]).write_bytes(b"truncated")
    (tmp_path / names[0]).write_bytes(float_file.read_bytes())
    rebuilt = MiniLMEmbedder(precision="int8", threads=1, cache_dir=tmp_path)
    assert rebuilt.graph_cache_status.startswith("int8 derived"), rebuilt.graph_cache_status
    (tmp_path / names[1]).unlink()
    (tmp_path / names[0]).write_bytes(b"truncated")
    rebuilt = MiniLMEmbedder(precision="int8", threads=2, cache_dir=tmp_path)
    assert rebuilt.graph_cache_status.startswith("built"), rebuilt.graph_cache_status
    assert "int8 derived" in rebuilt.graph_cache_status
    assert _cosines(rebuilt.embed(sentences[:4]), ref[:4]).min() >= MIN_COSINE
    assert (tmp_path / names[0]).stat().st_size == float_file.stat().st_size

    uncached = MiniLMEmbedder(precision="int8", threads=3, cache_dir=False)
    assert uncached.graph_cache_status.endswith("not cached")
    np.testing.assert_allclose(uncached.embed_one(sentences[0]), int8.embed_one(sentences[0]), atol=1e-5)


def test_bad_precisions_are_refused():
    with pytest.raises(ValueError, match="float32, int8"):
        MiniLMEmbedder(precision="int4")
    with pytest.raises(ValueError, match="onnx backend"):
        MiniLMEmbedder(precision="int8", backend="numpy")
    with pytest.raises(ValueError, match="int8, float32"):
        build_query_embedder(MiniLMEmbedder(), "fp16")


def test_query_embedder_routes_a_search_to_int8_and_keeps_the_documents_model(int8, cache_dir, reference):
    sentences, ref = reference
    documents = build_embedder("minilm", cache_dir=cache_dir)
    queries = build_query_embedder(documents, "int8", cache_dir=cache_dir, spin=False)
    assert isinstance(queries, QueryEmbedder)
    assert queries.model_id == MODEL_ID and queries.vector_id == INT8_MODEL_ID and queries.dim == 384
    assert queries.queries.threads == 1
    np.testing.assert_array_equal(queries.embed_one(sentences[2]), int8.embed_one(sentences[2]))
    # lists of texts (documents) keep the float32 graph: the reference vectors
    assert _cosines(queries.embed(sentences[:3]), ref[:3]).min() >= 0.9999

    assert build_query_embedder(documents, "float32") is documents


class _OtherModel:
    model_id, dim = "openai:text-embedding-3-small", 384

    def embed(self, texts):
        raise AssertionError("not called")

    def embed_one(self, text):
        raise AssertionError("not called")


def test_int8_queries_never_search_another_models_documents(int8):
    other = _OtherModel()
    assert build_query_embedder(other, "int8") is other  # no int8 graph of that model: its own queries
    with pytest.raises(ValueError, match="space"):
        QueryEmbedder(int8, other)
