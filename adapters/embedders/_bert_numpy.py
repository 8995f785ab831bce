"""Plain numpy float32 BERT encoder + masked mean pooling.

The fallback backend (used when onnxruntime is missing or backend="numpy"), and an
independent cross-check for the ONNX graph in the tests.
"""

from __future__ import annotations

import numpy as np

from ._weights import BertConfig


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26, |error| < 1.5e-7: below float32 resolution of the GELU output.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def _layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    xc = x - mu
    var = (xc * xc).mean(-1, keepdims=True)
    return xc / np.sqrt(var + eps) * g + b


class NumpyBert:
    def __init__(self, tensors: dict[str, np.ndarray], cfg: BertConfig):
        self.cfg = cfg
        f = lambda name: np.ascontiguousarray(tensors[name], dtype=np.float32)
        self.word = f("embeddings.word_embeddings.weight")
        # token_type_ids are always 0 for single sentences: fold that row into the position table.
        self.pos = f("embeddings.position_embeddings.weight") + f("embeddings.token_type_embeddings.weight")[0]
        self.emb_ln = (f("embeddings.LayerNorm.weight"), f("embeddings.LayerNorm.bias"))
        scale = np.float32(1.0 / np.sqrt(cfg.hidden // cfg.heads))
        self.layers = []
        for i in range(cfg.layers):
            p = f"encoder.layer.{i}."
            w_qkv = np.concatenate([f(p + "attention.self.query.weight") * scale, f(p + "attention.self.key.weight"),
                                    f(p + "attention.self.value.weight")], axis=0).T.copy()
            b_qkv = np.concatenate([f(p + "attention.self.query.bias") * scale, f(p + "attention.self.key.bias"),
                                    f(p + "attention.self.value.bias")])
            self.layers.append((
                w_qkv, b_qkv,
                f(p + "attention.output.dense.weight").T.copy(), f(p + "attention.output.dense.bias"),
                f(p + "attention.output.LayerNorm.weight"), f(p + "attention.output.LayerNorm.bias"),
                f(p + "intermediate.dense.weight").T.copy(), f(p + "intermediate.dense.bias"),
                f(p + "output.dense.weight").T.copy(), f(p + "output.dense.bias"),
                f(p + "output.LayerNorm.weight"), f(p + "output.LayerNorm.bias"),
            ))

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """input_ids, attention_mask: (B, S) integers -> mean-pooled (B, hidden) float32 (not normalised)."""
        cfg = self.cfg
        bsz, seq = input_ids.shape
        nh, hd = cfg.heads, cfg.hidden // cfg.heads
        mask = attention_mask.astype(np.float32)
        bias = ((1.0 - mask) * np.float32(-10000.0))[:, None, None, :]
        x = _layer_norm(self.word[input_ids] + self.pos[:seq], *self.emb_ln, cfg.eps).reshape(bsz * seq, cfg.hidden)
        for w_qkv, b_qkv, w_o, b_o, g1, be1, w_i, b_i, w_2, b_2, g2, be2 in self.layers:
            # contiguous (B, nh, S, hd) blocks: numpy's stacked matmul only uses BLAS on those
            qkv = np.ascontiguousarray((x @ w_qkv + b_qkv).reshape(bsz, seq, 3, nh, hd).transpose(2, 0, 3, 1, 4))
            scores = qkv[0] @ np.ascontiguousarray(qkv[1].transpose(0, 1, 3, 2)) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            ctx = (scores @ qkv[2]).transpose(0, 2, 1, 3).reshape(bsz * seq, cfg.hidden)
            x = _layer_norm(ctx @ w_o + b_o + x, g1, be1, cfg.eps)
            h = x @ w_i + b_i
            h = 0.5 * h * (1.0 + _erf(h * np.float32(0.7071067811865476)))
            x = _layer_norm(h @ w_2 + b_2 + x, g2, be2, cfg.eps)
        x = x.reshape(bsz, seq, cfg.hidden)
        summed = (x * mask[:, :, None]).sum(1)
        return (summed / np.maximum(mask.sum(1, keepdims=True), 1e-9)).astype(np.float32)
