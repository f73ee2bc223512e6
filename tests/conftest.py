import os
import shutil
import subprocess
from pathlib import Path

import pytest

# Tests run offline in the cpu profile, whatever the machine.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WORKSHOP_PROFILE", "cpu")


@pytest.fixture
def clean_env(monkeypatch):
    """No WORKSHOP_* overrides leaking in from the caller's shell."""
    for key in list(os.environ):
        if key.startswith("WORKSHOP_"):
            monkeypatch.delenv(key)
    return monkeypatch


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from utils.recipe.config import TINY_MODEL_DIR
    from utils.recipe.modeling import load_tokenizer

    return load_tokenizer(str(TINY_MODEL_DIR))


@pytest.fixture(autouse=True)
def no_saved_settings(monkeypatch, tmp_path_factory):
    """The notebooks' saved settings (outputs/settings.json, written by a 設定のセル) never leak into a test."""
    from utils.recipe import config

    monkeypatch.setattr(config, "SETTINGS_PATH_FOR_TESTS", tmp_path_factory.mktemp("settings") / "settings.json")


@pytest.fixture
def make_plan(tmp_path):
    """``make -n`` of the project's Makefile: ``make_plan(*args)`` in a folder holding only the Makefile and the
    files its setup stamp depends on (so the checkout's own .venv cannot change the plan), ``here=True`` in the
    checkout. Run outside any outer make's MAKEFLAGS/MAKELEVEL (under ``make test`` they add "Entering directory")."""
    if shutil.which("make") is None:
        pytest.skip("needs make")
    root = Path(__file__).resolve().parent.parent
    for name in ("Makefile", "requirements.txt", "pyproject.toml"):
        shutil.copy(root / name, tmp_path / name)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}

    def plan(*args: str, here: bool = False) -> str:
        return subprocess.run(["make", "-n", "--no-print-directory", *args], cwd=root if here else tmp_path, env=env,
                              capture_output=True, text=True, check=True).stdout.replace("\\\n", " ")

    return plan


@pytest.fixture(scope="session")
def colab_freeze():
    """The committed copy of Colab's published freeze (hosted/platforms/colab.txt): its requirement lines, {canonical
    name: version without a local tag such as +cu128}, and its Python (major.minor)."""
    import re

    text = (Path(__file__).resolve().parents[1] / "hosted" / "platforms" / "colab.txt").read_text(encoding="utf-8")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    versions = {re.sub(r"[-_.]+", "-", line.split("==")[0]).lower(): line.split("==")[1].split("+")[0] for line in lines}
    python = re.search(r"^# python: (\d+\.\d+)", text, re.M).group(1)
    return {"lines": lines, "versions": versions, "python": python}
