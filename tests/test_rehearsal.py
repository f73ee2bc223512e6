"""The instructor's GPU rehearsal (scripts/instructor/rehearsal.py, `make rehearsal`) on this CPU with the cpu
profile: the steps, the time budget and the report folder. On a GPU the same code runs the gpu profile, the 7B shape
and the fp16 pass."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.instructor import rehearsal

ROOT = Path(__file__).resolve().parents[1]
FAST_NOTEBOOK = "notebooks/02_dataset_formatting.ipynb"  # seconds on the cpu profile


def run(out: Path, minutes: float, notebooks: str = FAST_NOTEBOOK, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scripts.instructor.rehearsal", "--profile", "cpu", "--minutes",
                           str(minutes), "--out", str(out), "--notebooks", notebooks, *extra], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)


def test_the_gpu_plan_runs_check_gpu_twice_and_the_7b_benchmark(tmp_path):
    steps = {step.name: step for step in rehearsal.plan("gpu", tmp_path, "notebooks", "/venv/bin/python")}
    assert list(steps) == ["machine", "preflight", "notebooks", "benchmark", "notebooks_fp16"]
    for name in ("notebooks", "notebooks_fp16"):
        command = steps[name].command
        assert command[:2] == ["make", "--no-print-directory"] and "check-gpu" in command
        assert "CHECK_GPU_PROFILE=gpu" in command and "BIN=/venv/bin" in command
    assert steps["notebooks_fp16"].env == {"WORKSHOP_COMPUTE_DTYPE": "float16"} and not steps["notebooks_fp16"].skip_reason
    assert "--shape" not in steps["benchmark"].command  # the benchmark's default: the 7B shape
    cpu = {step.name: step for step in rehearsal.plan("cpu", tmp_path, "notebooks", "python")}
    assert cpu["notebooks_fp16"].skip_reason and "tiny-test" in cpu["benchmark"].command


def test_the_notebooks_never_take_the_time_the_benchmark_needs(tmp_path):
    steps = rehearsal.plan("gpu", tmp_path, "notebooks", "python")
    by_name = {step.name: step for step in steps}
    assert rehearsal.limit_for(by_name["notebooks"], steps, 200) == 200 - by_name["benchmark"].min_seconds - 15
    assert rehearsal.limit_for(by_name["benchmark"], steps, 200) == 200
    assert rehearsal.limit_for(by_name["benchmark"], steps, 5000) == by_name["benchmark"].max_seconds


def test_make_rehearsal_passes_the_budget_profile_and_folder():
    dry = subprocess.run(["make", "-n", "-o", ".venv/.installed", "rehearsal", "REHEARSAL_MINUTES=12",
                          "REHEARSAL_OUT=/tmp/r", "CHECK_GPU_PROFILE=cpu"], cwd=ROOT, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    assert "-m scripts.instructor.rehearsal --minutes 12 --out /tmp/r" in dry.stdout
    assert "--profile cpu --notebooks notebooks" in dry.stdout


@pytest.mark.slow  # a notebook and the benchmark's tiny shape: about 40 s
def test_a_cpu_rehearsal_writes_the_report(tmp_path):
    result = run(tmp_path, 6)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    results = {step["name"]: step["result"] for step in summary["steps"]}
    assert results == {"machine": "ok", "preflight": "ok", "notebooks": "ok", "benchmark": "ok",
                       "notebooks_fp16": "skipped"}
    assert summary["exit_code"] == 0 and summary["profile"] == "cpu" and summary["budget_minutes"] == 6
    assert any(line.startswith("- benchmark profile: ") and "秒/step" in line for line in summary["figures"])
    table = (tmp_path / "summary.md").read_text()
    assert "| notebooks | ✓ |" in table and "| notebooks_fp16 | — |" in table and "cpu プロファイルでは行いません" in table
    assert "torch" in (tmp_path / "machine.txt").read_text()
    assert "1 passed" in (tmp_path / "notebooks.log").read_text()
    assert json.loads((tmp_path / "preflight.json").read_text())


@pytest.mark.slow  # the budget cuts notebook 04 (a training run) and leaves the benchmark its time
def test_the_budget_stops_a_long_step_and_keeps_the_benchmark(tmp_path):
    result = run(tmp_path, 1.5, f"{FAST_NOTEBOOK} notebooks/03_baseline_inference.ipynb notebooks/04_lora_sft.ipynb")
    summary = json.loads((tmp_path / "summary.json").read_text())
    steps = {step["name"]: step for step in summary["steps"]}
    assert steps["notebooks"]["result"] == "timed out", steps["notebooks"]
    assert steps["notebooks"]["seconds"] <= 1.5 * 60 - 30  # its limit and its stopping left the benchmark its 30 s
    assert steps["benchmark"]["result"] == "ok"
    assert result.returncode == 1 and summary["exit_code"] == 1
    assert "| notebooks | ✗ (時間切れ) |" in (tmp_path / "summary.md").read_text()
    # the stopped step left nothing running (make, pytest and the notebook's kernel stop together)
    left = subprocess.run(["pgrep", "-f", str(tmp_path / "work" / "notebooks")], capture_output=True, text=True)
    assert left.stdout.strip() == "", left.stdout


def test_a_budget_too_small_for_any_step_runs_nothing_and_says_so(tmp_path):
    result = run(tmp_path, 0.05)
    assert result.returncode == 2
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert {step["result"] for step in summary["steps"]} == {"no time", "skipped"}
    assert "時間が足りず走らなかった手順があります" in (tmp_path / "summary.md").read_text()


def test_a_failing_step_is_reported_and_the_next_ones_still_run(tmp_path):
    result = run(tmp_path, 3, "notebooks/no_such_notebook.ipynb", "--only", "preflight", "notebooks")
    assert result.returncode == 1
    steps = {step["name"]: step for step in json.loads((tmp_path / "summary.json").read_text())["steps"]}
    assert steps["notebooks"]["result"] == "failed" and "exit code" in steps["notebooks"]["note"]
    assert steps["preflight"]["result"] == "ok" and steps["benchmark"]["result"] == "skipped"
    assert "| notebooks | ✗ |" in (tmp_path / "summary.md").read_text()


def test_an_unknown_step_is_refused():
    result = subprocess.run([sys.executable, "-m", "scripts.instructor.rehearsal", "--only", "benchmarks"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 2 and "unknown step ['benchmarks']" in result.stderr
