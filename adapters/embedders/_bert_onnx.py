"""Build the all-MiniLM-L6-v2 sentence encoder as an ONNX graph straight from the safetensors weights.

No torch export: the graph is written node by node with onnx.helper. Inputs input_ids and
attention_mask, both int64 (batch, seq); output sentence_embedding (batch, hidden) float32:
the attention-mask-weighted mean of the last hidden states, L2-normalised (eps 1e-12),
which is what sentence-transformers' Transformer -> Pooling(mean) -> Normalize computes.

Two flavours of the encoder layers:
- fused=True: onnxruntime's com.microsoft contrib ops (Attention with the raw 2-D mask,
  SkipLayerNormalization, BiasGelu = exact erf GELU). Fastest on CPU.
- fused=False: standard ONNX opset-17 ops only (MatMul/Softmax/LayerNormalization/Erf),
  the additive mask bias being (1 - mask) * -10000.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ._weights import BertConfig

OPSET = 17
GRAPH_VERSION = 1  # bump when the graph changes: invalidates cached .onnx files
MS_DOMAIN = "com.microsoft"


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def const(self, name: str, array: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], domain: str = "", n_out: int = 1, **attrs) -> str | list[str]:
        self._n += 1
        outs = [f"{op_type.lower()}_{self._n}_{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=f"{op_type}_{self._n}", domain=domain, **attrs))
        return outs[0] if n_out == 1 else outs


def build_bert_onnx(tensors: dict[str, np.ndarray], cfg: BertConfig, fused: bool = True) -> onnx.ModelProto:
    f32 = lambda name: np.asarray(tensors[name], dtype=np.float32)
    g = _Graph()
    x = _embeddings(g, f32, cfg)
    mask_f = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)  # (B, S)
    if fused:
        mask_i32 = g.op("Cast", ["attention_mask"], to=TensorProto.INT32)
        for i in range(cfg.layers):
            x = _fused_layer(g, _layer_weights(f32, i), i, x, mask_i32, cfg)
    else:
        standard = _StandardOps(g, mask_f, cfg)
        for i in range(cfg.layers):
            x = standard.layer(_layer_weights(f32, i), i, x)
    _mean_pool_and_normalize(g, x, mask_f)
    return _model(g, cfg.hidden, fused)


def _layer_weights(f32, i: int):
    """Encoder layer i's tensors by their name within the layer, as float32."""
    return lambda name: f32(f"encoder.layer.{i}.{name}")


def _embeddings(g: _Graph, f32, cfg: BertConfig) -> str:
    """word + position + token_type[0] (single-segment input), LayerNorm: (B, S, H)."""
    word = g.const("word_embeddings", f32("embeddings.word_embeddings.weight"))
    pos_table = g.const("position_plus_type0", f32("embeddings.position_embeddings.weight")
                        + f32("embeddings.token_type_embeddings.weight")[0])
    shape = g.op("Shape", ["input_ids"])
    seq_len = g.op("Slice", [shape, g.const("c_i1", np.array([1], np.int64)), g.const("c_i2", np.array([2], np.int64))])
    zero = g.const("c_i0", np.array([0], np.int64))
    pos = g.op("Slice", [pos_table, zero, seq_len, zero])  # (S, H)
    x = g.op("Add", [g.op("Gather", [word, "input_ids"], axis=0), pos])
    return g.op("LayerNormalization", [x, g.const("emb_ln_g", f32("embeddings.LayerNorm.weight")),
                                       g.const("emb_ln_b", f32("embeddings.LayerNorm.bias"))], axis=-1, epsilon=cfg.eps)


def _fused_layer(g: _Graph, t, i: int, x: str, mask_i32: str, cfg: BertConfig) -> str:
    """One encoder layer in onnxruntime's contrib ops: Attention, SkipLayerNormalization, BiasGelu."""
    w_qkv = np.concatenate([t("attention.self.query.weight"), t("attention.self.key.weight"),
                            t("attention.self.value.weight")], axis=0).T  # (H, 3H)
    b_qkv = np.concatenate([t("attention.self.query.bias"), t("attention.self.key.bias"),
                            t("attention.self.value.bias")])
    ctx = g.op("Attention", [x, g.const(f"l{i}_qkv_w", w_qkv), g.const(f"l{i}_qkv_b", b_qkv), mask_i32],
               domain=MS_DOMAIN, num_heads=cfg.heads)
    attn = g.op("MatMul", [ctx, g.const(f"l{i}_ao_w", t("attention.output.dense.weight").T)])
    x = g.op("SkipLayerNormalization", [attn, x, g.const(f"l{i}_ln1_g", t("attention.output.LayerNorm.weight")),
                                        g.const(f"l{i}_ln1_b", t("attention.output.LayerNorm.bias")),
                                        g.const(f"l{i}_ao_b", t("attention.output.dense.bias"))],
             domain=MS_DOMAIN, epsilon=cfg.eps)
    h = g.op("MatMul", [x, g.const(f"l{i}_ff1_w", t("intermediate.dense.weight").T)])
    h = g.op("BiasGelu", [h, g.const(f"l{i}_ff1_b", t("intermediate.dense.bias"))], domain=MS_DOMAIN)
    h = g.op("MatMul", [h, g.const(f"l{i}_ff2_w", t("output.dense.weight").T)])
    return g.op("SkipLayerNormalization", [h, x, g.const(f"l{i}_ln2_g", t("output.LayerNorm.weight")),
                                           g.const(f"l{i}_ln2_b", t("output.LayerNorm.bias")),
                                           g.const(f"l{i}_ff2_b", t("output.dense.bias"))],
                domain=MS_DOMAIN, epsilon=cfg.eps)


class _StandardOps:
    """The encoder layers in standard ONNX ops, with the constants every layer shares."""

    def __init__(self, g: _Graph, mask_f: str, cfg: BertConfig) -> None:
        self.g, self.cfg = g, cfg
        hidden, heads = cfg.hidden, cfg.heads
        # (1 - mask) * -10000 -> (B, 1, 1, S) additive bias on the attention scores
        inv = g.op("Sub", [g.const("c_f1", np.array(1.0, np.float32)), mask_f])
        bias = g.op("Mul", [inv, g.const("c_neg", np.array(-10000.0, np.float32))])
        self.bias = g.op("Unsqueeze", [bias, g.const("c_ax12", np.array([1, 2], np.int64))])
        self.split_shape = g.const("c_split_heads", np.array([0, 0, heads, hidden // heads], np.int64))
        self.merge_shape = g.const("c_merge_heads", np.array([0, 0, hidden], np.int64))
        self.inv_sqrt2 = g.const("c_inv_sqrt2", np.array(1 / np.sqrt(2.0), np.float32))
        self.half = g.const("c_half", np.array(0.5, np.float32))
        self.one = g.const("c_one", np.array(1.0, np.float32))
        self.scale = np.float32(1.0 / np.sqrt(hidden // heads))

    def layer(self, t, i: int, x: str) -> str:
        x = self.attention(t, i, x)
        return self.feed_forward(t, i, x)

    def attention(self, t, i: int, x: str) -> str:
        """Self-attention, its output projection and the residual LayerNorm; the 1/sqrt(head_dim)
        scale is folded into the query projection."""
        g, scale, split_shape = self.g, self.scale, self.split_shape
        w_qkv = np.concatenate([t("attention.self.query.weight") * scale, t("attention.self.key.weight"),
                                t("attention.self.value.weight")], axis=0).T
        b_qkv = np.concatenate([t("attention.self.query.bias") * scale, t("attention.self.key.bias"),
                                t("attention.self.value.bias")])
        qkv = g.op("Add", [g.op("MatMul", [x, g.const(f"l{i}_qkv_w", w_qkv)]), g.const(f"l{i}_qkv_b", b_qkv)])
        q, k, v = g.op("Split", [qkv, g.const(f"l{i}_split", np.array([self.cfg.hidden] * 3, np.int64))], n_out=3,
                       axis=-1)
        q = g.op("Transpose", [g.op("Reshape", [q, split_shape])], perm=[0, 2, 1, 3])  # (B, nh, S, hd)
        k = g.op("Transpose", [g.op("Reshape", [k, split_shape])], perm=[0, 2, 3, 1])  # (B, nh, hd, S)
        v = g.op("Transpose", [g.op("Reshape", [v, split_shape])], perm=[0, 2, 1, 3])
        probs = g.op("Softmax", [g.op("Add", [g.op("MatMul", [q, k]), self.bias])], axis=-1)
        ctx = g.op("Reshape", [g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3]), self.merge_shape])
        attn = g.op("Add", [g.op("MatMul", [ctx, g.const(f"l{i}_ao_w", t("attention.output.dense.weight").T)]),
                            g.const(f"l{i}_ao_b", t("attention.output.dense.bias"))])
        return g.op("LayerNormalization", [g.op("Add", [attn, x]),
                                           g.const(f"l{i}_ln1_g", t("attention.output.LayerNorm.weight")),
                                           g.const(f"l{i}_ln1_b", t("attention.output.LayerNorm.bias"))],
                    axis=-1, epsilon=self.cfg.eps)

    def feed_forward(self, t, i: int, x: str) -> str:
        """The intermediate projection, exact (erf) GELU, the output projection and the residual LayerNorm."""
        g = self.g
        h = g.op("Add", [g.op("MatMul", [x, g.const(f"l{i}_ff1_w", t("intermediate.dense.weight").T)]),
                         g.const(f"l{i}_ff1_b", t("intermediate.dense.bias"))])
        erf = g.op("Erf", [g.op("Mul", [h, self.inv_sqrt2])])
        h = g.op("Mul", [g.op("Mul", [h, self.half]), g.op("Add", [erf, self.one])])  # exact GELU
        h = g.op("Add", [g.op("MatMul", [h, g.const(f"l{i}_ff2_w", t("output.dense.weight").T)]),
                         g.const(f"l{i}_ff2_b", t("output.dense.bias"))])
        return g.op("LayerNormalization", [g.op("Add", [h, x]), g.const(f"l{i}_ln2_g", t("output.LayerNorm.weight")),
                                           g.const(f"l{i}_ln2_b", t("output.LayerNorm.bias"))],
                    axis=-1, epsilon=self.cfg.eps)


def _mean_pool_and_normalize(g: _Graph, x: str, mask_f: str) -> None:
    """Masked mean pooling, then L2 normalisation (eps 1e-12 like torch.nn.functional.normalize)
    into the output sentence_embedding."""
    axis1 = g.const("c_axis1", np.array([1], np.int64))
    m3 = g.op("Unsqueeze", [mask_f, g.const("c_axis_last", np.array([2], np.int64))])  # (B, S, 1)
    summed = g.op("ReduceSum", [g.op("Mul", [x, m3]), axis1], keepdims=0)  # (B, H)
    count = g.op("ReduceSum", [mask_f, axis1], keepdims=1)  # (B, 1)
    count = g.op("Max", [count, g.const("c_min_count", np.array(1e-9, np.float32))])
    mean = g.op("Div", [summed, count])
    norm = g.op("ReduceL2", [mean], axes=[1], keepdims=1)  # axes is an attribute before opset 18
    norm = g.op("Max", [norm, g.const("c_min_norm", np.array(1e-12, np.float32))])
    g.nodes.append(helper.make_node("Div", [mean, norm], ["sentence_embedding"], name="normalize"))


def _model(g: _Graph, hidden: int, fused: bool) -> onnx.ModelProto:
    graph = helper.make_graph(
        g.nodes, "all-MiniLM-L6-v2",
        inputs=[helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
                helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        outputs=[helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", hidden])],
        initializer=g.inits,
    )
    opsets = [helper.make_opsetid("", OPSET)] + ([helper.make_opsetid(MS_DOMAIN, 1)] if fused else [])
    model = helper.make_model(graph, opset_imports=opsets, producer_name="recallstack")
    model.ir_version = 8
    return model
