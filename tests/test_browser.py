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


TRY_IT = [
    "from utils.classroom.try_it import side_by_side\n",
    "from utils.recipe.config import get_config\n",
    "from utils.recipe.generation import stream_local\n",
    "from utils.recipe.modeling import load_model_and_tokenizer\n",
    "from utils.recipe.prompt import format_prompt\n",
    "\n",
    "cfg = get_config()\n",
    "model, tokenizer = load_model_and_tokenizer(cfg)  # the bundled tiny base model\n",
    "view = side_by_side(\n",
    "    base=lambda text: stream_local(model, tokenizer, format_prompt('次の文章を要約してください。', text), max_new_tokens=24),\n",
    "    tuned=lambda text: iter(['学習後', 'の側: ', text[:6]]),\n",
    "    example='今日は朝から雨が降っていましたが、午後には晴れて気温が上がりました。',\n",
    ")\n",
    "display(view)\n",
]


def press_summarize(page) -> dict:
    """The participant presses 要約 and waits for both panels to finish (each shows its seconds)."""
    page.click(".jp-OutputArea .jupyter-widgets button:has-text('要約')")
    page.wait_for_function("""() => Array.from(document.querySelectorAll('.jp-OutputArea .widget-html-content'))
        .filter(e => /[0-9.]+ 秒/.test(e.textContent)).length >= 2""", timeout=120_000)
    panels = page.evaluate("""() => Array.from(document.querySelectorAll('.jp-OutputArea .widget-html-content'))
        .map(e => e.textContent)""")
    return {"panels": panels}


@pytest.mark.extras  # with notebook 09 in make test-extras
def test_the_try_it_view_streams_both_sides_in_jupyterlab(tmp_path):
    """09's try-it view as a participant uses it: rendered in JupyterLab, the button pressed, both panels filled (the
    left one by the tiny base model, streamed in the kernel)."""
    pytest.importorskip("playwright", reason="make test installs it from requirements-dev.txt")
    notebook = {"cells": [{"cell_type": "code", "execution_count": None, "id": "try-it", "metadata": {}, "outputs": [],
                           "source": TRY_IT}],
                "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
                "nbformat": 4, "nbformat_minor": 5}
    (result,) = browser_check.run(["try_it.ipynb"], tmp_path, port=18932, timeout=300, extra={"try_it.ipynb": notebook},
                                  after_run=press_summarize)
    assert result["errors"] == [] and not result["widget_errors"], result
    left, right = [p for p in result["interaction"]["panels"] if "秒" in p][:2]
    assert left.startswith("ベースモデル") and len(left) > len("ベースモデル 0.0 秒") + 3, left
    assert right.startswith("学習後 (API)") and "学習後の側: 今日は朝から" in right, right
