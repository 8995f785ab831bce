"""Where a LoCoMo-style benchmark's result goes: its JSON, its plot, and the report on stdout."""

from __future__ import annotations

import json
from pathlib import Path


def save_and_report(result: dict, out_dir: Path, plot, print_report, as_json: bool) -> None:
    """Write result["files"]["json"] and the plot, then print the report (or, as_json, the
    result without its per-question rows) on stdout."""
    out_dir.mkdir(parents=True, exist_ok=True)
    Path(result["files"]["json"]).write_text(json.dumps(result, indent=2, default=str))
    plot(result, Path(result["files"]["plot"]))
    if as_json:
        print(json.dumps({k: v for k, v in result.items() if k != "per_question"}, indent=2, default=str))
    else:
        print_report(result)
