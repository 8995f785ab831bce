"""The int8 variant of the MiniLM graph, derived locally from the float graph (never downloaded).

Recipe (QUANT_VERSION 2): onnxruntime's dynamic quantisation, weights int8 per output channel in
7 bits (`reduce_range`), activations uint8 per tensor, quantised at run time (DynamicQuantizeMatMul, QAttention after
onnxruntime's fusions). Two weights stay float32: the word embeddings (a Gather reads a dozen rows,
quantising them saves nothing) and layer 0's FFN output, the single most sensitive matmul (measured
one node at a time: it alone cost 0.0013 of the 0.005 mean cosine loss; its GELU input is wide).
On LoCoMo questions the vectors keep cosine ~0.995 with the float32 graph (worst ~0.99) and a
question embeds ~2.4x faster on one thread (bench/embedder_bench.py, docs/search.md).

The result depends on the float graph (GRAPH_VERSION), this recipe (QUANT_VERSION) and onnxruntime's
quantiser; vectors made with it carry their own model id (minilm.INT8_MODEL_ID).

Why 7-bit weights (version 2): on a CPU without AVX-512 VNNI, onnxruntime's u8s8 AVX2 kernels add
pairs of products in int16, which saturates with full 8-bit weights. Version 1 measured there: the
empty query's vector at cosine 0.974 to float32. With 7 bits there is no overflow on any CPU. On
AVX2 the LoCoMo questions keep mean cosine 0.9953, worst 0.9929. One recipe everywhere keeps a
model id naming one set of vectors.
"""

from __future__ import annotations

import logging
from pathlib import Path

QUANT_VERSION = 2
# Initializers whose consuming nodes are left in float32 (names written by _bert_onnx.build_bert_onnx).
KEEP_FLOAT = frozenset({"word_embeddings", "l0_ff2_w"})


class _NoPreprocessAdvice(logging.Filter):
    """quantize_dynamic logs "Please consider to run pre-processing..." on the root logger: not for us
    (the graph is already fused and shape-typed where it matters)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def quantize_graph(float_file: Path, out_file: Path) -> None:
    """Write the int8 graph of `float_file` (a _bert_onnx graph) to `out_file`."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(float_file))
    exclude = [node.name for node in model.graph.node if KEEP_FLOAT.intersection(node.input)]
    if len(exclude) != len(KEEP_FLOAT):
        raise RuntimeError(f"the float graph {float_file} does not have the expected nodes ({exclude})")
    quiet = _NoPreprocessAdvice()
    root = logging.getLogger()
    root.addFilter(quiet)
    try:
        quantize_dynamic(model, out_file, weight_type=QuantType.QInt8, per_channel=True, reduce_range=True, nodes_to_exclude=exclude,
                         # contrib ops (Attention, SkipLayerNormalization) defeat ONNX shape inference: their
                         # outputs are float32
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        root.removeFilter(quiet)
