import pytest

from adapters.embedders.routed import SizeRoutedEmbedder
from tests.unit.fakes import FakeEmbedder


class Counting(FakeEmbedder):
    def __init__(self):
        self.calls = []

    def embed(self, texts):
        self.calls.append(len(texts))
        return super().embed(texts)


def test_small_requests_go_to_the_small_embedder_and_batches_to_the_bulk_one():
    small, bulk = Counting(), Counting()
    routed = SizeRoutedEmbedder(small, bulk, cutoff=2)
    routed.embed(["a", "b"])
    routed.embed_one("c")
    routed.embed(["d", "e", "f"])
    assert (small.calls, bulk.calls) == ([2, 1], [3])
    assert routed.embed(["x"]).shape == (1, FakeEmbedder.dim)


def test_models_must_match():
    other = FakeEmbedder()
    other.model_id = "another"
    with pytest.raises(ValueError, match="same model"):
        SizeRoutedEmbedder(FakeEmbedder(), other)
