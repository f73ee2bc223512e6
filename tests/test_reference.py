"""The shipped reference results that 01 shows as "the goal of the day": provenance, a rule-chosen example."""

import json

import pytest

from utils.evaluation import reference
from utils.recipe.config import get_config
from utils.recipe.data import load_dolly, select, split_records, clean_summarization
from utils.recipe.prompt import format_prompt


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
    assert ref is not None, "reference_results/cpu.json is missing: run the cpu workshop, then scripts/maintainer/save_reference.py"
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


def test_documented_figures_for_prompting_faithfulness_and_forgetting_are_the_reference_run():
    """docs/measurements.md's cpu table quotes 08's k-shot, faithfulness and adapter-scale figures; a recipe change that
    moves them must move the page too."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "docs" / "measurements.md").read_text(encoding="utf-8")
    ref = reference.load_reference("cpu")
    arms, vs, f, curve = ref["arms"], ref["lora_vs"], ref["faithfulness"], ref["forgetting"]
    kshot = [n for n in arms if n not in ("0-shot", "lora")]
    row = ("| k-shot (ROUGE-L) | " + "、".join(f"{n} {arms[n]['rougeL']:.1f}" for n in ["0-shot", *kshot])
           + f"、LoRA {arms['lora']['rougeL']:.1f} (" + "、".join(
               f"LoRA − {n} の CI [{vs[n]['rougeL']['ci_low']:+.1f}, {vs[n]['rougeL']['ci_high']:+.1f}]" for n in kshot) + ") |")
    assert row in readme, row
    a = f["arms"]
    row = (f"| 本文にない数か名前を含む出力 | 学習前 {a['0-shot']['with_invented']:.0%} → 学習後 {a['lora']['with_invented']:.0%} ("
           + "、".join(f"{n} {a[n]['with_invented']:.0%}" for n in kshot)
           + f"、参照要約 {f['reference']['with_invented']:.0%})。植え込んだ数・名前の検出 {f['planted']['numbers_flagged']}/{f['planted']['n']}・"
             f"{f['planted']['names_flagged']}/{f['planted']['n']} |")
    assert row in readme, row
    names = {"test": "test の要約", "other_tasks": "別のタスク", "new_text": "新しい文章"}
    row = ("| アダプタの強さ m = 0 → 1 の損失 (nats/トークン) | "
           + "、".join(f"{names[k]} {v[0]:.2f} → {v[-1]:.2f}" for k, v in curve["loss"].items()) + " |")
    assert row in readme, row
