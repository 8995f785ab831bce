"""Leave-one-conversation-out cross-validation of a search setting on LoCoMo (issue 23: tune
on the dev split only, without fitting its six conversations).

    python bench/locomo_cv.py RUN.json [RUN.json ...] [--metric hit@10] [--json]

Each RUN.json is a `bench/locomo_bench.py` result (`--out DIR` writes DIR/locomo.json) of the
same conversations with one setting (its `--extra-body`, e.g. '{"rrf_k": 20}'). For each
conversation held out, the setting with the best mean metric on the other conversations is
chosen, and scored on the held-out one; the cross-validated figure is the mean over all
questions of those held-out scores. Printed beside each setting's own figure on all the data
(which is what tuning without cross-validation would report), per category too. Pure
arithmetic over the per-question rows: no stack needed."""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

CATEGORY_NAMES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}


def load(path: Path, metric: str, name: str | None = None) -> tuple[str, list[dict]]:
    """(the run's setting, its per-question rows). The setting is `name` when given (a server-side
    setting, an environment variable or a code change, that the run's JSON does not show), else its
    search body extras and batches' context_turns."""
    result = json.loads(path.read_text())
    chosen = dict(result.get("search", {}).get("extra_body") or {})
    if result.get("load", {}).get("context_turns") is not None:  # a write-time setting (the batches')
        chosen["context_turns"] = result["load"]["context_turns"]
    setting = name or json.dumps(chosen, sort_keys=True)
    rows = [{"conversation": q["sample_id"], "category": q["category"], "question": q["question"],
             "score": _score(q, metric)} for q in result["per_question"]]
    return setting, rows


def _score(question: dict, metric: str) -> float:
    """The fused ranking's per-question metric; hit@1 from the top three the run keeps."""
    if metric == "hit@1" and metric not in question:
        top = question.get("fused_top3") or []
        return float(bool(top) and top[0] in set(question["evidence"]))
    return question[metric]["fused"]


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def cross_validate(runs: dict[str, list[dict]]) -> dict:
    """{"chosen": {held-out conversation: setting}, "rows": the held-out rows scored}."""
    conversations = sorted({r["conversation"] for rows in runs.values() for r in rows})
    chosen, scored = {}, []
    for held_out in conversations:
        def train_score(setting: str) -> float:
            return mean([r["score"] for r in runs[setting] if r["conversation"] != held_out])
        best = max(sorted(runs), key=train_score)
        chosen[held_out] = best
        scored += [r for r in runs[best] if r["conversation"] == held_out]
    return {"chosen": chosen, "rows": scored}


def by_category(rows: list[dict]) -> dict[str, float]:
    groups = defaultdict(list)
    for r in rows:
        groups[r["category"]].append(r["score"])
    return {CATEGORY_NAMES.get(c, str(c)): round(mean(v), 3) for c, v in sorted(groups.items())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="locomo.json files, each as PATH or NAME=PATH (NAME: the setting "
                                                "the run stands for, when its search body does not tell it)")
    parser.add_argument("--metric", default="hit@10", help="a per-question metric the runs keep (locomo_bench.py keeps hit@10; hit@1 from its top three)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    named = [(None, Path(run)) if "=" not in run else (run.split("=", 1)[0], Path(run.split("=", 1)[1]))
             for run in args.runs]
    first = json.loads(named[0][1].read_text())["per_question"][0]
    available = sorted(k for k, v in first.items() if "@" in k and isinstance(v, dict)) + (
        ["hit@1"] if "fused_top3" in first else [])
    if args.metric not in available:
        print(f"the runs' per-question rows have {', '.join(available)}, not {args.metric}", file=sys.stderr)
        return 2
    runs = dict(load(path, args.metric, name) for name, path in named)
    if len(runs) != len(named):
        print("two runs stand for the same setting: name them (NAME=PATH)", file=sys.stderr)
        return 2
    questions = {len(rows) for rows in runs.values()}
    if len(questions) != 1:
        print(f"the runs do not have the same questions: {sorted(questions)}", file=sys.stderr)
        return 2
    cv = cross_validate(runs)
    report = {
        "metric": args.metric,
        "settings": {s: {"overall": round(mean([r["score"] for r in rows]), 3), "by_category": by_category(rows)}
                     for s, rows in runs.items()},
        "cross_validated": {"overall": round(mean([r["score"] for r in cv["rows"]]), 3),
                            "by_category": by_category(cv["rows"]), "chosen_per_held_out": cv["chosen"]},
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{args.metric}, fused, {questions.pop()} questions, leave-one-conversation-out")
    for setting, figures in report["settings"].items():
        print(f"  {setting:<40} all data {figures['overall']:.3f}  {figures['by_category']}")
    cvr = report["cross_validated"]
    print(f"  {'cross-validated (held-out choice)':<40} {cvr['overall']:.3f}  {cvr['by_category']}")
    print(f"  chosen per held-out conversation: {cvr['chosen_per_held_out']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
