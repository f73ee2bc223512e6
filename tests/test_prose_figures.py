"""Figures written in the prose that depend on the recipe are the ones the code computes today: the gpu profile's
token budget (measured offline, with 04's own record selection), the training-time estimates derived from it,
and the one "shorter run" advice (utils.recipe.config.SHORTER_RUN). A recipe change that moves them turns this red."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from utils.recipe.config import SHORTER_RUN, shorter_run_exports
from utils.recipe.memory import GPU_PEAK_TFLOPS, about_minutes, gpu_training_tokens, training_minutes

ROOT = Path(__file__).resolve().parents[1]
BUDGET = json.loads((ROOT / "benchmarks" / "results" / "token_budget_gpu.json").read_text(encoding="utf-8"))
TIMETABLE = (ROOT / "docs" / "timetable.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = "\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").glob("*.md")))
BENCHMARK_PAGE = (ROOT / "docs" / "gpu-benchmarks.md").read_text(encoding="utf-8")


def notebook_header(name: str) -> str:
    cells = json.loads((ROOT / "notebooks" / name).read_text(encoding="utf-8"))["cells"]
    return "".join(cells[0]["source"])


def man(tokens: float) -> str:
    return f"約 {round(tokens / 1e4)} 万"


FULL = gpu_training_tokens()
ONE_EPOCH = gpu_training_tokens(epochs=1)
SHORT = gpu_training_tokens(epochs=SHORTER_RUN["num_train_epochs"], n_train=SHORTER_RUN["n_train"])


def minutes(run: dict, gpu: str) -> str:
    return about_minutes(training_minutes(run["tokens"], gpu))


def test_04_header_states_todays_budget_and_estimates():
    header = notebook_header("04_lora_sft.ipynb")
    assert f"学習トークン{man(FULL['tokens'])} (train {BUDGET['train_records']} 件 × {FULL['epochs']:g} エポック" in header
    assert f"1 エポック {BUDGET['train_epoch_tokens']:,} トークン" in header
    fit = BUDGET["train_fit"]
    assert f"削る {fit['dropped_cut_too_much']} 件" in header and f"超える {fit['dropped_too_long']} 件" in header
    for gpu in GPU_PEAK_TFLOPS:
        assert f"{gpu} {minutes(FULL, gpu)}" in header, gpu


def test_timetable_states_todays_estimates():
    assert f"学習トークン{man(FULL['tokens'])} (train {BUDGET['train_records']} 件" in TIMETABLE
    assert f"短縮設定で{minutes(SHORT, 'T4')}" in TIMETABLE
    assert f"L4 {minutes(FULL, 'L4')} / A100 {minutes(FULL, 'A100')}" in TIMETABLE
    assert f"| {minutes(FULL, 'H100')} (推定) |" in TIMETABLE
    assert f"フルの 2 エポックは推定{minutes(FULL, 'T4')}" in TIMETABLE
    assert f"ステップ数が半分 (推定 {minutes(ONE_EPOCH, 'T4')})" in TIMETABLE
    assert f"合わせて推定 {minutes(SHORT, 'T4')}" in TIMETABLE and f"収まるのは約 {round(SHORT['records'])} 件" in TIMETABLE
    assert f"`WORKSHOP_NUM_TRAIN_EPOCHS=1` だけで推定{minutes(ONE_EPOCH, 'L4')}" in TIMETABLE


def test_the_benchmark_pages_token_table_is_the_measured_budget():
    fit = BUDGET["train_fit"]
    assert (f"そのまま {fit['kept_as_is']} 件、本文を短縮 {fit['input_truncated']} 件、本文を半分より多く削る必要があるため除外 "
            f"{fit['dropped_cut_too_much']} 件、要約だけで超えるため除外 {fit['dropped_too_long']} 件 → 学習に使うのは "
            f"{BUDGET['train_records']} 件") in BENCHMARK_PAGE
    assert f"| {BUDGET['train_epoch_tokens']:,} (平均 {round(BUDGET['train_mean_sequence'])} トークン/件) → 2 エポックで{man(FULL['tokens'])}トークン |" in BENCHMARK_PAGE


def test_the_shorter_run_is_one_advice():
    block = re.search(r"\*\*T4 の短縮設定\*\*.*?```bash\n(.*?)```", TIMETABLE, re.S).group(1)
    exports = [line.split("#")[0].strip() for line in block.splitlines() if line.startswith("export")]
    assert exports == shorter_run_exports()
    # nowhere else gives another value for the same knobs
    texts = [README, DOCS] + ["".join("".join(c["source"]) for c in json.loads(p.read_text(encoding="utf-8"))["cells"])
                                   for p in sorted((ROOT / "notebooks").glob("0[1-9]_*.ipynb"))]
    for key, value in SHORTER_RUN.items():
        if key == "num_train_epochs":  # also written as a plain example of an override (e.g. =3 in 04's table)
            continue
        for text in texts:
            for found in re.findall(rf"WORKSHOP_{key.upper()}=(\d+)", text):  # numbers ("all" is another matter)
                assert found == str(value), f"WORKSHOP_{key.upper()}={found}, but SHORTER_RUN says {value}"


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "notebooks").glob("0[1-9]_*.ipynb")))
def test_exercise_answers_state_no_profile_figures(name):
    """An answer block (解答例 after a やってみよう) must not hand-write what this profile's run gives (the check
    cell prints that): e.g. '(cpu プロファイル, n = 485) … 32 回' went stale when the data rule changed."""
    cells = json.loads((ROOT / "notebooks" / name).read_text(encoding="utf-8"))["cells"]
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    for block in re.findall(r"### やってみよう.*?<details><summary>解答例</summary>(.*?)</details>", text, re.S):
        assert not re.search(r"(cpu|gpu) プロファイル[^\n。]*\d", block), block[:300]
        assert not re.search(r"\bn = \d", block), block[:300]
