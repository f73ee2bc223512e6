"""Reference results the project ships: what a finished run of the workshop looked like, with its provenance.

Notebook 01 shows one before/after example from here as "the goal of the day" before the participant has
trained anything. The file is written by ``scripts/maintainer/save_reference.py`` from a real run's outputs (results.json,
the two prediction files, train_metrics.json, timings.json) and says which run made it: profile, base model,
date, commit, command, machine. The example is chosen by a stated rule (the test record whose ROUGE-L after
training is the median), never by hand, so it is typical rather than the best case.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from datetime import date
from pathlib import Path

from utils.recipe.config import PROJECT_ROOT
from utils.recipe.prompt import parse_prompt

REFERENCE_DIR = PROJECT_ROOT / "reference_results"
EXAMPLE_RULE = "the test record whose ROUGE-L after training is the median of the run (typical, not the best case)"


def reference_path(profile: str) -> Path:
    return REFERENCE_DIR / f"{profile}.json"


def median_example_index(rouge_after: list[float]) -> int:
    """Index of the record at the (lower) median of the per-record ROUGE-L after training."""
    order = sorted(range(len(rouge_after)), key=lambda i: (rouge_after[i], i))
    return order[(len(order) - 1) // 2]


def _git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+uncommitted changes" if dirty else "")


def build_reference(results: dict, before: list[dict], after: list[dict], train_metrics: dict | None,
                    timings: dict | None, command: str, machine: str | None = None) -> dict:
    """The shipped summary of one run: metrics, behaviour, one typical example, and where it came from."""
    if [r["id"] for r in before] != [r["id"] for r in after]:
        raise ValueError("predictions_base.jsonl と predictions_lora.jsonl のテスト例の並びが違います。03 と 05 を実行し直してください。")
    rouge_after = results["per_example"]["rougeL_after"]
    i = median_example_index(rouge_after)
    parts = parse_prompt(after[i]["prompt"])
    return {
        "provenance": {
            "profile": results["profile"],
            "base_model": Path(results["base_model"]).name if Path(results["base_model"]).is_absolute() else results["base_model"],
            "date": date.today().isoformat(),
            "commit": _git_commit(),
            "command": command,
            "machine": machine or f"{platform.machine()} CPU, {os.cpu_count()} cores",
            "n_test": results["n_test"],
            "train_seconds": results.get("train_seconds"),
            "optimizer_steps": (train_metrics or {}).get("optimizer_steps"),
            "workshop_minutes": round(timings["total"] / 60, 1) if timings and "total" in timings else None,
        },
        "metrics": results["metrics"],
        "behaviour": results["behaviour"],
        # 05 §7-9: the prompting arms, invented numbers/names, the adapter-scale curve (absent in older results)
        **{key: results[key] for key in ("arms", "lora_vs", "kshot_plans", "faithfulness", "forgetting") if key in results},
        "example": {
            "rule": EXAMPLE_RULE,
            "id": after[i]["id"],
            "instruction": parts["instruction"],
            "passage": parts["input"],
            "reference": after[i]["reference"],
            "before": before[i]["prediction"],
            "after": after[i]["prediction"],
            "rougeL_before": results["per_example"]["rougeL_before"][i],
            "rougeL_after": rouge_after[i],
            "rougeL_after_median": statistics.median(rouge_after),
        },
    }


def load_reference(profile: str) -> dict | None:
    """The shipped reference of ``profile``, or None when no run of that profile has been recorded."""
    path = reference_path(profile)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def provenance_line(ref: dict) -> str:
    """One Japanese sentence saying which run the reference figures come from."""
    p = ref["provenance"]
    minutes = f"、ワークショップ全体 {p['workshop_minutes']} 分" if p.get("workshop_minutes") else ""
    return (f"出典: `reference_results/{p['profile']}.json` — {p['date']} に `{p['command']}` で実行した "
            f"{p['profile']} プロファイルの結果 (ベースモデル {p['base_model']}、コミット {p['commit']}、{p['machine']}、"
            f"test {p['n_test']} 件{minutes})。")
