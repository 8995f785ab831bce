"""The MiniLM ONNX graphs on disk: built from the weights (float32) or derived from that (int8), kept in
the cache folder under names that pin what made them, written atomically (concurrent starters never
see a partial file). Without a usable cache folder they go to a temporary folder instead.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

PRECISIONS = ("float32", "int8")


def graph_names(weights_digest: str) -> dict[str, str]:
    """File name per precision: the weights' sha256 prefix, the graph and quantisation recipe versions."""
    from ._bert_int8 import QUANT_VERSION
    from ._bert_onnx import GRAPH_VERSION

    stem = f"all-MiniLM-L6-v2-{weights_digest[:16]}-g{GRAPH_VERSION}"
    return {"float32": f"{stem}.onnx", "int8": f"{stem}-int8q{QUANT_VERSION}.onnx"}


class GraphFiles:
    """Makes the graph file of a precision when the cache has none; `status` says what was done."""

    def __init__(self, weights: bytes, cfg, names: dict[str, str], cache_dir: Path | None, scratch: Path):
        self.weights, self.cfg, self.names = weights, cfg, names
        self.cache_dir, self.scratch = cache_dir, scratch
        self.done: list[str] = []

    @property
    def status(self) -> str:
        return ", ".join(self.done)

    def file(self, precision: str) -> Path:
        if precision == "float32":
            return self._float_file()
        return self._int8_file()

    def _float_file(self) -> Path:
        cached = self._cached("float32")
        if cached is not None:
            return cached

        def build(file: Path) -> None:
            from ._bert_onnx import build_bert_onnx
            from ._weights import load_safetensors

            tensors = load_safetensors(Path("model.safetensors"), data=self.weights)
            file.write_bytes(build_bert_onnx(tensors, self.cfg, fused=True).SerializeToString())

        return self._store("float32", build, "built")

    def _int8_file(self) -> Path:
        from ._bert_int8 import quantize_graph

        float_file = self._float_file()
        try:
            return self._store("int8", lambda file: quantize_graph(float_file, file), "int8 derived")
        except Exception as exc:  # noqa: BLE001 - an unreadable cached float graph: build it again, once
            if self.done:  # the float graph was just built, not read from the cache
                raise
            log.warning("discarding unreadable cached graph %s: %s", float_file, exc)
            float_file.unlink(missing_ok=True)
            float_file = self._float_file()
            return self._store("int8", lambda file: quantize_graph(float_file, file), "int8 derived")

    def _cached(self, precision: str) -> Path | None:
        if self.cache_dir is None:
            return None
        file = self.cache_dir / self.names[precision]
        return file if file.is_file() else None

    def _store(self, precision: str, write, what: str) -> Path:
        """write(file) makes the graph; it lands in the cache when it can, else in the scratch folder."""
        name = self.names[precision]
        t = time.perf_counter()
        if self.cache_dir is not None:
            tmp = self.cache_dir / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
            try:
                self.cache_dir.mkdir(parents=True, exist_ok=True)
                write(tmp)
                os.replace(tmp, self.cache_dir / name)  # atomic: concurrent starters never see a partial file
                self.done.append(f"{what} in {time.perf_counter() - t:.2f}s, cached {self.cache_dir / name}")
                return self.cache_dir / name
            except OSError as exc:
                log.warning("cannot cache the MiniLM graph in %s (%s); keeping it in a temporary folder",
                            self.cache_dir, exc)
            finally:
                tmp.unlink(missing_ok=True)
        file = self.scratch / name
        write(file)
        self.done.append(f"{what} in {time.perf_counter() - t:.2f}s, not cached")
        return file
