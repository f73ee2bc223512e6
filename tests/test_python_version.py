"""Python >= 3.11 is enforced before `make setup` creates anything: on Ubuntu 22.04's Python 3.10, pip would only say
"No matching distribution found for transformers==5.23.0". The minimum lives once, in pyproject.toml."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from utils.machine import python_version

ROOT = Path(__file__).resolve().parents[1]


def fake_python(folder: Path, version: tuple[int, int, int]) -> Path:
    """An interpreter that reports another version: this Python, with sys.version_info replaced before the script runs
    (what `make setup` asks of $(PYTHON) first is to run utils/machine/python_version.py)."""
    script = folder / f"python{version[0]}.{version[1]}"
    code = (f"import runpy, sys; sys.version_info = {version + ('final', 0)!r}; sys.argv = sys.argv[1:]; "
            "runpy.run_path(sys.argv[0], run_name='__main__')")
    script.write_text(f"#!/bin/sh\nexec {sys.executable} -c \"{code}\" \"$@\"\n")
    script.chmod(0o755)
    return script


def test_minimum_is_pyprojects_requires_python():
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^requires-python = ">=3\.11"$', text, re.M)
    assert python_version.minimum_python() == (3, 11)


def test_check_refuses_310_and_says_how_to_get_311():
    ok, message = python_version.check((3, 10, 12), "/usr/bin/python3")
    assert not ok
    assert "3.10.12" in message and "/usr/bin/python3" in message and "3.11" in message
    assert "deadsnakes" in message and "python3.11-venv" in message and "make setup PYTHON=python3.11" in message
    assert python_version.check((3, 11, 0), "x")[0] and python_version.check((3, 13, 1), "x")[0]


def test_make_setup_stops_on_python_310_before_creating_the_venv(tmp_path):
    python = fake_python(tmp_path, (3, 10, 12))
    venv = tmp_path / "venv"
    result = subprocess.run(["make", "setup", f"PYTHON={python}", f"VENV={venv}"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "Python 3.10.12" in result.stderr and "deadsnakes" in result.stderr, result.stdout + result.stderr
    assert not venv.exists(), "the venv was created before the version check"


def test_make_setup_accepts_this_python_without_running_pip(tmp_path):
    """The check passes on 3.11: make goes on to `-m venv` (stopped here by a dry run, so nothing is installed)."""
    result = subprocess.run(["make", "-n", "setup", f"PYTHON={sys.executable}", f"VENV={tmp_path / 'venv'}"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    lines = [line for line in result.stdout.splitlines() if not line.startswith("make")]  # "make[1]: Entering…" under make test
    assert "utils/machine/python_version.py" in lines[0] and "-m venv" in lines[1]
