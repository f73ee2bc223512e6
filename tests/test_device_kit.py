"""The kit for the lent GPU machine (scripts/device_kit.py) and its runner (scripts/device_day.sh).

The machine reaches no package index and takes at most 64 MiB per call, tree included, so what is carried is a
selection; these tests hold the selection's rules, the budget and the runner's use of the Makefile. Building the
kit downloads wheels, so it is not run here; it was rehearsed end to end on this machine with a Python holding
only the image's packages (REHEARSAL=1, see scripts/device_day.sh).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IMAGE = ROOT / "configs" / "device" / "nvidia-h200.json"


@pytest.fixture(scope="module")
def kit():
    spec = importlib.util.spec_from_file_location("device_kit", ROOT / "scripts" / "device_kit.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["device_kit"] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def plan(kit):
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    found, direct = kit.closure(lines)
    carried, kept = kit.select(found, direct, kit.load_image(IMAGE))
    return found, direct, {item.name: item for item in carried}, kept


def test_the_torch_family_and_the_browser_tools_stay_behind(plan):
    found, direct, carried, _ = plan
    assert not any(name in found for name in ("torch", "triton", "jupyterlab", "playwright"))
    assert not any(name.startswith(("nvidia-", "cuda-")) for name in found)
    assert "trl" in direct and "peft" in direct


def test_the_tested_stack_travels_at_the_pins(plan, kit):
    found, _, carried, _ = plan
    # the image has transformers 5.17.0 and huggingface-hub 1.33.0 (KINDS.md's pip list), the pins are newer
    assert carried["transformers"].reason == "the image has 5.17.0"
    assert carried["huggingface-hub"].reason == "the image has 1.33.0"
    # absent from the image
    for name in ("trl", "bitsandbytes", "datasets", "nbmake", "ipykernel", "fugashi", "rouge-score"):
        assert carried[name].reason == "not in the image", name
    # in the image at the pinned version: not carried
    for name in ("accelerate", "safetensors"):
        assert name not in carried and found[name] == kit.load_image(IMAGE)["packages"][name]
    for item in carried.values():
        assert item.version == found[item.name]


def test_a_dependency_outside_the_stack_runs_at_the_images_version(plan):
    found, direct, carried, kept = plan
    # numpy is only a dependency: the image's 2.5.2 runs rather than 16 MB of wheel
    assert "numpy" not in direct and "numpy" not in carried
    assert kept["numpy"].startswith("the image's (2.5.2); pinned here")


def test_only_the_dictionary_rides_in_the_first_part(plan):
    _, _, carried, _ = plan
    assert [name for name, item in carried.items() if item.part == "dict"] == ["unidic-lite"]
    assert {item.part for item in carried.values()} == {"dict", "stack"}


def test_what_is_left_out_is_in_the_closure_and_optional_in_the_pinned_sources(plan, kit):
    found, _, carried, kept = plan
    for name in kit.LEFT_OUT:
        assert name in found and name not in carried and kept[name].startswith("left out"), name
    site = Path(importlib.util.find_spec("ipykernel").origin).parent.parent
    debugger = (site / "ipykernel" / "debugger.py").read_text()
    guarded = debugger[debugger.index("try:\n    # This import is required"):]
    assert guarded.index("from debugpy.server import api") < guarded.index("except ImportError:\n    _is_debugpy_available = False")
    completer = (site / "IPython" / "core" / "completer.py").read_text()
    assert 'find_spec("jedi")' in completer and "\nimport jedi" not in completer


def test_the_parts_fit_beside_the_tree(kit):
    """The sizes a build measured (configs/device/*.json): if the tree grows past the room, the first call no
    longer fits (the tool refuses a call whose tree is over 64 MiB)."""
    image = json.loads(IMAGE.read_text(encoding="utf-8"))
    measured = image["kit_measured"]["bytes"]
    assert set(measured) == set(kit.PARTS)
    assert kit.check_budget(measured, kit.tree_bytes(), image["carry_limit_mib"]) == []
    # together they would not: the reason there are two calls
    assert kit.check_budget({"both": sum(measured.values())}, kit.tree_bytes(), image["carry_limit_mib"])


def test_the_budget_check_names_the_part_and_the_figures(kit):
    mib = kit.MIB
    assert kit.check_budget({"dict": 28 * mib}, 31 * mib, 64) == []
    (line,) = kit.check_budget({"dict": 28 * mib, "stack": 33 * mib}, 31 * mib, 64)
    assert line.startswith("stack: 33.0 MiB + the tree 31.0 MiB > 62 MiB")


def test_bitsandbytes_keeps_the_images_cuda_library_and_its_cpu_one(kit, tmp_path):
    package = tmp_path / "bitsandbytes"
    package.mkdir()
    for name in ("cpu", "cuda118", "cuda128", "cuda130", "cuda132", "rocm72", "xpu2026"):
        (package / f"libbitsandbytes_{name}.so").write_bytes(b"x")
    removed = kit.trim_bitsandbytes(tmp_path, "130")
    assert sorted(p.name for p in package.iterdir()) == ["libbitsandbytes_cpu.so", "libbitsandbytes_cuda130.so"]
    assert len(removed) == 5
    with pytest.raises(SystemExit, match="libbitsandbytes_cuda126.so"):
        kit.trim_bitsandbytes(tmp_path, "126")


def test_the_runner_is_valid_bash():
    subprocess.run(["bash", "-n", str(ROOT / "scripts" / "device_day.sh")], check=True)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_the_runner_reuses_make_check_gpu_without_a_venv(tmp_path):
    """device_day.sh runs the Makefile's own check-gpu line with the machine's Python; with -o the setup stamp is
    taken as made, so make neither creates a venv nor pip-installs (the machine has no index)."""
    for name in ("Makefile", "requirements.txt", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    args = ["make", "-n", "check-gpu", "BIN=/machine/bin", "CHECK_GPU_PROFILE=cpu", "CHECK_GPU_OUT=/out/bf16"]
    plain = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert "-m venv" in plain  # the control: without -o, make would set up a venv first
    taken = subprocess.run([*args[:2], "-o", ".venv/.installed", *args[2:]], cwd=tmp_path, capture_output=True,
                           text=True, check=True).stdout
    assert "-m venv" not in taken and "pip install" not in taken
    assert "WORKSHOP_PROFILE=cpu" in taken and "WORKSHOP_OUTPUT_DIR=/out/bf16" in taken
    assert "/machine/bin/python -m pytest notebooks --nbmake" in taken
    runner = (ROOT / "scripts" / "device_day.sh").read_text()
    assert "-o .venv/.installed check-gpu" in runner


def test_the_runner_writes_no_more_files_than_a_call_brings_back():
    """The device tool brings back at most 8 files from $OUT, none deeper than two folders."""
    import re

    runner = (ROOT / "scripts" / "device_day.sh").read_text()
    names = set(re.findall(r'\$OUT/([A-Za-z0-9_.-]+)', runner))
    assert "summary.txt" in names and "check_gpu_outputs.tar.gz" in names
    assert len(names) <= 8, sorted(names)
