"""Notebook 01 in a real browser, as a participant runs it: `make lab` (scripts/participant/lab.py) + headless Chromium, "Restart
Kernel and Run All Cells" from JupyterLab's own command. What nbmake cannot see: widgets and progress bars rendered
(no "Error displaying widget"), no popup over the notebook, the kernel being this venv's Python. 01 only here (about
30 s); `make browser-test` runs 01, 02 and 04 (several minutes) and keeps the screenshots."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
from scripts.ci import browser_check

pytestmark = pytest.mark.slow  # JupyterLab + Chromium run notebook 01



def test_notebook_01_runs_cleanly_through_jupyterlab(tmp_path):
    assert shutil.which(browser_check.CHROMIUM) or os.path.exists(browser_check.CHROMIUM), (
        f"{browser_check.CHROMIUM} がありません: sudo apt-get install -y --no-install-recommends chromium "
        "(または環境変数 CHROMIUM に Chrome / Chromium のパスを設定)")
    pytest.importorskip("playwright", reason="make test installs it from requirements-dev.txt")
    (result,) = browser_check.run(["01_base_model_selection.ipynb"], tmp_path, port=18930, timeout=300)
    assert result["errors"] == [] and not result["widget_errors"], result
    assert result["widgets"] > 0, "the progress bars (ipywidgets) did not render"
    assert result["images"] >= 1, "the figure (the XL-Sum chart) did not render"
    assert not result["news_popup"], "JupyterLab's news popup is over the notebook"
    assert result["kernel"] == "python3" and result["kernel_is_this_venv"], result
    # the preflight table (the first cell) names the kernel's interpreter: this venv's python
    assert f"({Path(sys.prefix) / 'bin' / 'python'})" in result["page_text"]
    assert "✗ はありません" in result["page_text"]
    assert Path(result["screenshot"]).stat().st_size > 50_000
