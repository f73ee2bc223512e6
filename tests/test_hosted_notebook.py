"""hosted/workshop_colab_kaggle.ipynb: notebooks 01-05 as one notebook for Colab / Kaggle, where each notebook would
get its own runtime and lose the files the earlier ones wrote. It is generated (scripts/maintainer/build_hosted_notebook.py),
so it must be exactly what the script writes from today's five notebooks, and it must run top to bottom in ONE
kernel (the five were written for a fresh kernel each)."""

from __future__ import annotations

import pytest

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOSTED = ROOT / "hosted" / "workshop_colab_kaggle.ipynb"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0[1-5]_*.ipynb"))


def test_committed_notebook_is_generated_from_the_five():
    result = subprocess.run([sys.executable, "scripts/maintainer/build_hosted_notebook.py", "--check"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr + " (run: python scripts/maintainer/build_hosted_notebook.py)"


def test_it_holds_every_cell_of_01_to_05_in_order_after_one_setup_cell():
    cells = json.loads(HOSTED.read_text(encoding="utf-8"))["cells"]
    assert [c["id"] for c in cells[:3]] == ["hosted-intro", "hosted-setup-intro", "hosted-setup"]
    expected = [c for path in NOTEBOOKS for c in json.loads(path.read_text(encoding="utf-8"))["cells"]]
    assert [c["id"] for c in cells[3:]] == [c["id"] for c in expected]
    for got, want in zip(cells[3:], expected):
        if want["cell_type"] == "code":
            assert got["source"] == want["source"], got["id"]  # code exactly as in the notebook
    text = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    assert "hosted/workshop_colab_kaggle.ipynb` を開いてください" not in text  # the pointer to itself is dropped
    assert ".ipynb`" not in text.split("**次へ:**", 1)[1].split("\n", 1)[0]  # "next" points below, not to a file


@pytest.mark.slow  # runs the hosted notebook
def test_runs_top_to_bottom_in_one_kernel(tmp_path):
    """Small budgets (32 train, 12 test records, 1 epoch, no k-shot arms: about 40 s here) so that it can run in every
    CI; the point is one kernel through all five parts, each reading what the earlier parts wrote. ``kshot=none`` also
    keeps the path without k-shot arms (03 skips them, 05 compares LoRA with 0-shot only) run somewhere."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WORKSHOP_PROFILE": "cpu", "WORKSHOP_OUTPUT_DIR": str(tmp_path / "out"),
           "WORKSHOP_N_TRAIN": "32", "WORKSHOP_N_VAL": "8", "WORKSHOP_N_TEST": "12", "WORKSHOP_MAX_NEW_TOKENS": "32",
           "WORKSHOP_NUM_TRAIN_EPOCHS": "1", "WORKSHOP_KSHOT": "none"}
    result = subprocess.run([sys.executable, "-m", "pytest", str(HOSTED), "--nbmake", "--nbmake-timeout=900",
                             "-p", "no:cacheprovider", "-q"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-8000:]
    run = tmp_path / "out" / "cpu"
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    assert results["n_test"] == 12  # the overrides reached every part (one environment for the whole kernel)
    assert list(results["arms"]) == ["0-shot", "lora"]  # kshot=none: no k-shot arm was generated or compared
    for artifact in ("splits", "predictions_base.jsonl", "adapter/adapter_config.json", "predictions_lora.jsonl"):
        assert (run / artifact).exists(), artifact
