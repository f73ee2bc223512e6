"""Notebooks are committed without outputs and follow the workshop's naming and skeleton."""

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
HOSTED = Path(__file__).resolve().parents[1] / "hosted" / "workshop_colab_kaggle.ipynb"  # generated from the five


def test_the_numbered_notebooks_exist():
    """01-05 are the workshop; 06 (hyper-parameters), 07 (memory and tokens), 08 (k-shot, faithfulness, forgetting) and
    09 (chat format, serving) are optional."""
    names = [nb.name for nb in NOTEBOOKS]
    assert len(names) == 9 and all(re.fullmatch(r"0[1-9]_[a-z0-9_]+\.ipynb", n) for n in names), names


@pytest.mark.parametrize("path", [*NOTEBOOKS, HOSTED], ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert dirty == [], f"{path.name}: cells {dirty} have outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_skeleton_and_no_secrets(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    text = "\n".join("".join(c["source"]) for c in nb["cells"])
    first = "".join(nb["cells"][0]["source"])
    assert first.startswith("# "), "the first cell is the H1 title"
    for heading in ("学習目標", "所要時間", "前提", "まとめ", "理解度チェック"):
        assert heading in text, f"{path.name} lacks {heading}"
    assert not re.search(r"hf_[A-Za-z0-9]{20,}", text), "a Hugging Face token in a notebook"
    assert "trust_remote_code=True" not in text
    ids = [c.get("id") for c in nb["cells"]]
    assert len(ids) == len(set(ids)), f"{path.name}: duplicate cell ids (nbformat would silently rename them)"
