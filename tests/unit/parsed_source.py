"""`ast.parse` for the tests that read the repository's own source.

The collector is held off while parsing: on CPython 3.11.7 a finalizer that runs mid-parse and
itself parses (a leaked aiokafka client's "Unclosed ..." log, whose traceback formatting calls
ast.parse in 3.11) breaks the AST constructor's shared recursion counter, and the outer parse
fails with "SystemError: AST constructor recursion depth mismatch" (CPython gh-106905,
pytest-dev/pytest#10763). Stop 35's CI run failed that way in test_layering."""

from __future__ import annotations

import ast
import gc
from pathlib import Path


def parse_python(source: Path | str) -> ast.Module:
    """The module's tree; `source` is a path or the text itself."""
    text = source.read_text() if isinstance(source, Path) else source
    collecting = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(text, str(source) if isinstance(source, Path) else "<unknown>")
    finally:
        if collecting:
            gc.enable()
