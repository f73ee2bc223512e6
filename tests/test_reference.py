"""The shipped reference results that 01 shows as "the goal of the day": provenance, a rule-chosen example."""

import json

import pytest

from utils import reference
from utils.config import get_config
from utils.data import load_dolly, select, split_records, clean_summarization
from utils.prompt import format_prompt


def _rows(n: int, text: str) -> list[dict]:
    return [{"id": str(i), "prompt": format_prompt("要約して", f"本文{i}"), "reference": f"参照{i}",
             "prediction": f"{text}{i}"} for i in range(n)]


def _results(after: list[float]) -> dict:
    m = {"before": 10.0, "after": 20.0, "ci_low": 1.0, "ci_high": 3.0, "lead": 30.0, "shuffled": 12.0}
    return {"profile": "cpu", "base_model": "/somewhere/models/tiny-ja-mistral", "n_test": len(after), "train_seconds": 99.0,
            "metrics": {"rouge1": m, "rouge2": m, "rougeL": m}, "behaviour": {},
            "per_example": {"rougeL_before": [1.0] * len(after), "rougeL_after": after}}


def test_the_example_is_the_median_record_not_the_best():
    assert reference.median_example_index([50.0, 10.0, 30.0, 20.0, 40.0]) == 2
    assert reference.median_example_index([5.0, 1.0, 3.0, 2.0]) == 3  # lower median of an even count: 2.0


def test_build_reference_records_where_it_came_from_and_the_passage_it_shows():
    ref = reference.build_reference(_results([50.0, 10.0, 30.0]), _rows(3, "前"), _rows(3, "後"),
                                    {"optimizer_steps": 62}, {"total": 330.0}, "make workshop", "test machine")
    p, ex = ref["provenance"], ref["example"]
    assert (p["profile"], p["base_model"], p["command"], p["machine"], p["optimizer_steps"], p["workshop_minutes"]) == (
        "cpu", "tiny-ja-mistral", "make workshop", "test machine", 62, 5.5)
    assert p["commit"] and p["date"]
    assert (ex["id"], ex["instruction"], ex["passage"], ex["before"], ex["after"], ex["rougeL_after"]) == (
        "2", "要約して", "本文2", "前2", "後2", 30.0)
    assert "median" in ex["rule"]
    line = reference.provenance_line(ref)
    assert "make workshop" in line and "cpu" in line and "tiny-ja-mistral" in line


def test_mismatched_prediction_files_are_refused():
    with pytest.raises(ValueError, match="03 と 05"):
        reference.build_reference(_results([1.0, 2.0]), _rows(2, "前"), _rows(2, "後")[::-1], None, None, "x")


def test_the_shipped_cpu_reference_is_a_real_run_of_this_workshop(clean_env):
    """01 shows it: its example must be a test record the cpu profile evaluates, and its figures internally consistent."""
    ref = reference.load_reference("cpu")
    assert ref is not None, "reference_results/cpu.json is missing: run the cpu workshop, then scripts/save_reference.py"
    cfg = get_config("cpu")
    records, _ = load_dolly(cfg)
    kept, _ = clean_summarization(records)
    test = {r["index"]: r for r in select(split_records(kept), cfg)["test"]}
    ex = ref["example"]
    assert ex["id"] in test and ex["reference"] == test[ex["id"]]["output"].strip()
    assert ex["passage"].rstrip("…") in test[ex["id"]]["input"]
    assert ref["provenance"]["n_test"] == len(test)
    m = ref["metrics"]["rougeL"]
    assert m["ci_low"] <= m["after"] - m["before"] <= m["ci_high"]
    assert ex["rougeL_after"] <= ex["rougeL_after_median"]  # the lower median of an even count
    assert reference.load_reference("no-such-profile") is None
    json.dumps(ref)  # plain JSON
