"""Leave-one-conversation-out cross-validation of a search setting (bench/locomo_cv.py): the
held-out conversation never takes part in choosing the setting it is scored with. Pure."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from locomo_cv import cross_validate  # noqa: E402


def rows(scores: dict[str, list[float]]) -> list[dict]:
    return [{"conversation": c, "category": 1, "question": f"{c}{i}", "score": s}
            for c, values in scores.items() for i, s in enumerate(values)]


def test_each_held_out_conversation_is_scored_with_the_setting_the_others_chose():
    runs = {"a": rows({"x": [1, 1], "y": [0, 0], "z": [1, 0]}),
            "b": rows({"x": [0, 0], "y": [1, 1], "z": [1, 1]})}
    result = cross_validate(runs)
    # Holding out x: on y and z, b (4 of 4) beats a (1 of 4), so x is scored with b: 0, 0.
    # Holding out y: on x and z, a (3 of 4) beats b (2 of 4): y scored with a: 0, 0.
    # Holding out z: a tie (2 of 4 each) goes to the first setting by name: z scored with a: 1, 0.
    assert result["chosen"] == {"x": "b", "y": "a", "z": "a"}
    assert sorted(r["score"] for r in result["rows"]) == [0, 0, 0, 0, 0, 1]


def test_one_setting_cross_validates_to_itself():
    only = {"a": rows({"x": [1, 0], "y": [1, 1]})}
    result = cross_validate(only)
    assert result["chosen"] == {"x": "a", "y": "a"} and result["rows"] == only["a"]


def run_file(tmp_path: Path, name: str, hits: list[float]) -> Path:
    import json
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"search": {"extra_body": {}}, "load": {}, "per_question": [
        {"sample_id": "x" if i % 2 else "y", "category": 1, "question": f"q{i}", "evidence": ["D1:1"],
         "hit@10": {"fused": h}} for i, h in enumerate(hits)]}))
    return path


def test_runs_of_the_same_body_are_told_apart_by_name_and_must_be(tmp_path, capsys):
    from locomo_cv import main
    plain, tuned = run_file(tmp_path, "plain", [0, 0, 1, 0]), run_file(tmp_path, "tuned", [1, 1, 1, 1])
    assert main([str(plain), str(tuned)]) == 2  # both "{}": one setting, said so
    assert "name them" in capsys.readouterr().err
    assert main([f"before={plain}", f"after={tuned}", "--json"]) == 0
    import json
    report = json.loads(capsys.readouterr().out)
    assert set(report["settings"]) == {"before", "after"} and report["cross_validated"]["overall"] == 1.0
