"""The kit for the lent GPU machine (scripts/device_kit.py) and its runner (scripts/device_day.sh).

The machine reaches no package index and takes at most 64 MiB per call, tree included, so what is carried is a
selection; these tests hold the selection's rules, the budget and the runner's use of the Makefile. Building the
kit downloads wheels, so it is not run here; it was rehearsed end to end on this machine with a Python holding
only the image's packages (REHEARSAL=1, see scripts/device_day.sh).
"""

from __future__ import annotations

import importlib.util
import json
import os
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
    assert carried["peft"].reason == "the image's version is unknown"
    # absent from the image
    for name in ("trl", "bitsandbytes", "datasets", "nbmake", "ipykernel", "fugashi", "rouge-score"):
        assert carried[name].reason == "not in the image", name
    # in the image at the pinned version: not carried
    for name in ("accelerate", "safetensors"):
        assert name not in carried and found[name] == kit.load_image(IMAGE)["packages"][name]
    for item in carried.values():
        assert item.version == found[item.name]


def test_small_image_packages_of_unread_versions_travel_at_their_pins(plan):
    """datasets 5.2 requires fsspec<=2026.9.0 and transformers checks regex's version on import: an image package
    whose version nobody has read is carried at the pin unless it is one of the large compiled ones."""
    found, _, carried, kept = plan
    for name in ("fsspec", "regex", "filelock", "tqdm", "packaging", "pytest"):
        assert carried[name].reason == "the image's version is unknown", name
    for name in ("pandas", "pyarrow", "matplotlib"):
        assert name not in carried and "version read on the machine" in kept[name], name


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
    built = ROOT / ".whl" / "kit.json"  # a kit built here since (git-ignored) is the fresher measurement
    if built.is_file() and json.loads(built.read_text())["python_version"] == image["python"]:
        measured = {part: entry["bytes"] for part, entry in json.loads(built.read_text())["parts"].items()}
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


def test_the_runner_reuses_make_check_gpu_without_a_venv(make_plan):
    """device_day.sh runs the Makefile's own check-gpu line with the machine's Python; with -o the setup stamp is
    taken as made, so make neither creates a venv nor pip-installs (the machine has no index)."""
    args = ["check-gpu", "BIN=/machine/bin", "CHECK_GPU_PROFILE=cpu", "CHECK_GPU_OUT=/out/bf16"]
    plain = make_plan(*args)
    assert "-m venv" in plain  # the control: without -o, make would set up a venv first
    taken = make_plan("-o", ".venv/.installed", *args)
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


def _runner(tmp_path, extra: dict, path: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    kit = tmp_path / "kit"
    kit.mkdir(exist_ok=True)
    env = {**os.environ, "OUT": str(tmp_path / "out"), "DEVICE_SITE": str(tmp_path / "site"), "DEVICE_KIT": str(kit),
           "DEVICE_WORK": str(tmp_path / "work"), "DEVICE_PYTHON": sys.executable, "DRY_RUN": "1", **extra}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(["bash", str(ROOT / "scripts" / "device_day.sh")], env=env, check=check,
                          capture_output=True, text=True, timeout=300)


def _summary(tmp_path) -> dict[str, list[str]]:
    lines = (tmp_path / "out" / "summary.txt").read_text().splitlines()[1:]
    return {line.split("\t")[0]: line.split("\t")[1:] for line in lines}


def test_the_runner_without_the_dictionary_part_skips_the_notebooks_and_keeps_the_benchmark(tmp_path):
    """The runner's control flow in seconds (DRY_RUN: each step's command goes to the summary), gpu branch: no kit
    here, so no dictionary part, as when the machine went back between the two calls."""
    _runner(tmp_path, {})
    rows = _summary(tmp_path)
    assert rows["machine"][0] == "dry-run" and rows["preflight"][0] == "dry-run"
    missing = "the dict part (call 1) is missing: ROUGE needs MeCab's dictionary"
    assert rows["check_gpu_bf16"] == ["skipped", "0", missing] and rows["check_gpu_fp16"] == ["skipped", "0", missing]
    assert rows["benchmark_profile"][0] == "dry-run"
    assert f"benchmarks/gpu_qlora.py --variants profile --out {tmp_path}/out/benchmark.json" in rows["benchmark_profile"][2]
    assert "--no-generation" in rows["benchmark_fp16"][2] and "total" in rows
    wrapper = subprocess.run([str(tmp_path / "site" / "bin" / "python"), "-c", "import sys; print(sys.prefix)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert wrapper == sys.prefix  # the wrapper keeps the machine's venv (a symlink elsewhere would not)


def test_the_runners_fallback_without_make_is_the_makefiles_recipe(tmp_path, make_plan):
    """Where the image has no make, device_day.sh runs the check-gpu recipe by hand: the same assignments and
    command as make expands it."""
    import re

    (tmp_path / "site").mkdir()
    (tmp_path / "site" / ".dict.done").write_text("0")  # as if call 1 had unpacked the dictionary
    _runner(tmp_path, {"ONLY": "check_gpu_bf16"})
    with_make = _summary(tmp_path)["check_gpu_bf16"][2]
    no_make = tmp_path / "bin"
    no_make.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        for tool in Path(folder).glob("*") if Path(folder).is_dir() else []:
            if tool.name != "make" and not (no_make / tool.name).exists():
                (no_make / tool.name).symlink_to(tool)
    (tmp_path / "out" / "summary.txt").unlink()
    _runner(tmp_path, {"ONLY": "check_gpu_bf16"}, path=str(no_make))
    by_hand = _summary(tmp_path)["check_gpu_bf16"][2]
    assert "make --no-print-directory" in with_make and "make --no-print-directory" not in by_hand
    recipe = make_plan("-o", ".venv/.installed", "check-gpu", f"BIN={tmp_path}/site/bin",
                       f"CHECK_GPU_OUT={tmp_path}/work/check-gpu-bf16", here=True)
    words = lambda text: sorted(w for w in text.split() if w not in ("env", "\\"))  # noqa: E731
    command = re.sub(r"^limit \d+ s: ", "", by_hand)
    assert words(command) == words(recipe)


def test_an_unknown_step_in_only_is_refused(tmp_path):
    proc = _runner(tmp_path, {"ONLY": "check_gpu_bf61"}, check=False)
    assert proc.returncode == 2 and "unknown step 'check_gpu_bf61'" in proc.stderr


def test_conflicts_name_the_unmet_requirement(kit, tmp_path):
    import numpy

    site = tmp_path / "site"
    info = site / "demo-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nRequires-Dist: numpy<1\n"
                                   "Requires-Dist: numpy>=1\nRequires-Dist: not-a-package-anywhere\n"
                                   "Requires-Dist: numpy<1; extra == \"test\"\n")
    assert kit.conflicts(site) == [f"CONFLICT demo 1.0 needs numpy<1, sees {numpy.__version__}",
                                   "CONFLICT demo 1.0 needs not-a-package-anywhere: not installed"]
