"""Hosted notebooks (Colab / Kaggle): scripts/participant/hosted_setup.py and the setup cell of hosted/workshop_colab_kaggle.ipynb
(written from scripts/participant/hosted_cell.py).

The script installs requirements.txt without the torch family, so the platform's own CUDA torch stays; the cell
runs it on a hosted runtime only. The integration test emulates "the platform's torch" with a tiny fake ``torch``
2.12.0 distribution in a fresh venv (the real 2.12 wheels are multi-GB CUDA builds) and runs the real script:
pip installs the whole pinned stack from the package index (network), about 1.5 minutes on 2 busy CPU cores.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "participant" / "hosted_setup.py"
REQUIREMENTS = ROOT / "requirements.txt"
NOTEBOOK = ROOT / "hosted" / "workshop_colab_kaggle.ipynb"
CELL_SOURCE = ROOT / "scripts" / "participant" / "hosted_cell.py"
HOSTED_ENV_VARS = ("COLAB_RELEASE_TAG", "KAGGLE_KERNEL_RUN_TYPE", "KAGGLE_URL_BASE")
OUTPUT_DIR_AT_IMPORT = os.environ.get("WORKSHOP_OUTPUT_DIR")
LOCAL_MESSAGE = "ローカル / CI の環境なのでセットアップは不要です"


def load_script():
    return importlib.import_module("scripts.participant.hosted_setup")


def pinned_lines() -> list[str]:
    return [line.strip() for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def dist_name(line: str) -> str:
    return re.split(r"[\s=<>!~\[;@]", line, maxsplit=1)[0].lower().replace("_", "-")


def torch_family(line: str) -> bool:
    return dist_name(line) in {"torch", "torchvision", "torchaudio", "triton"} or dist_name(line).startswith("nvidia-")


HOSTED_STACK = {"jupyterlab", "ipykernel", "ipywidgets", "nbmake", "pytest"}  # in requirements.txt, left to the platform


def left_out(line: str) -> bool:
    return torch_family(line) or dist_name(line) in HOSTED_STACK


# --- the filter ------------------------------------------------------------------------------------------------
def test_filter_drops_exactly_the_torch_family_lines_of_requirements_txt():
    hs = load_script()
    pinned = pinned_lines()
    kept, dropped = hs.split_requirements(REQUIREMENTS.read_text(encoding="utf-8").splitlines())
    assert dropped == [line for line in pinned if left_out(line)]
    # requirements.txt pins torch alone of the family, and the kernel/notebook server and test tools
    assert sorted(dist_name(line) for line in dropped) == sorted({"torch"} | HOSTED_STACK)
    assert kept == [line for line in pinned if not left_out(line)]  # every other pinned line, in order
    assert len(kept) == len(pinned) - 1 - len(HOSTED_STACK) and all("==" in line for line in kept)


@pytest.mark.parametrize("line, family", [
    ("torch==2.13.0", True), ("torchvision==0.28.0", True), ("TorchVision==0.28.0", True), ("Torch_Audio==2.13.0", False), ("torchaudio>=2", True),
    ("triton==3.6.0", True), ("nvidia-cublas-cu12==12.8.4.1", True), ("NVIDIA_cudnn_cu12", True),
    ("torch[opt]==2.13.0 ; sys_platform == 'linux'", True), ("torchao==0.17.0", False), ("torchmetrics==1.0", False),
    ("pytorch-lightning==2.5", False), ("transformers==5.23.0  # torch inside", False),
])
def test_torch_family_names(line, family):
    hs = load_script()
    kept, dropped = hs.split_requirements(["# comment", "", line, "--extra-index-url https://example.invalid/simple"])
    assert (dropped == [line.split("  #")[0]]) is family
    assert kept[-1].startswith("--extra-index-url")  # pip options pass through


def test_the_platforms_data_stack_replaces_the_pins_where_it_is_installed():
    """pandas/matplotlib pins give way to the platform's installed versions (pip then upgrades one only if a pinned
    package needs it); a data-stack package the platform lacks keeps its pin; nothing else is touched."""
    hs = load_script()
    lines = ["transformers==5.23.0", "pandas==3.1.1", "matplotlib==3.11.2", "matplotlib-fontja==1.1.0", "Pillow==13.0.0"]
    out, kept = hs.keep_platform_versions(lines, {"pandas": "2.2.3", "pillow": "11.3.0", "matplotlib": None})
    assert out == ["transformers==5.23.0", "matplotlib==3.11.2", "matplotlib-fontja==1.1.0"]
    assert kept == {"pandas": "2.2.3", "pillow": "11.3.0"}
    assert hs.version_changes({"pyarrow": "18.1.0", "pandas": "2.2.3", "torchao": "0.10.0"},
                      {"pyarrow": "26.0.1", "pandas": "2.2.3", "torchao": None}) == ["pyarrow 18.1.0 → 26.0.1", "torchao 0.10.0 → なし"]


def test_refuses_without_torch(tmp_path):
    """Not on a hosted GPU runtime: no torch at all, so no platform torch to keep. Points to `make setup`."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    result = subprocess.run([str(venv / "bin" / "python"), str(SCRIPT), "--dry-run", "--out-dir", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "torch がインストールされていません" in result.stderr and "make setup" in result.stderr
    assert not (tmp_path / "out").exists()


def test_refuses_a_platform_torch_older_than_the_pinned_stack_needs(tmp_path):
    """A hosted runtime with torch 2.5: transformers 5.23 would silently disable it. Refused before pip runs,
    naming both versions; torch is left as it is."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    info = site / "torch-2.5.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: torch\nVersion: 2.5.1\n")
    result = subprocess.run([str(venv / "bin" / "python"), str(SCRIPT), "--dry-run", "--out-dir", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "2.5.1" in result.stderr and "2.6" in result.stderr
    assert not (tmp_path / "out").exists()


def test_min_torch_is_what_the_pinned_packages_require():
    """MIN_TORCH is the highest lower bound on torch among the pinned packages' own requirements (installed here):
    today transformers' torch extra, >=2.6 (its import_utils disables an older torch with a warning only)."""
    from importlib.metadata import requires

    from packaging.requirements import Requirement
    from packaging.version import Version

    bounds = []
    for line in pinned_lines():
        name = dist_name(line)
        if torch_family(line) or name in HOSTED_STACK:
            continue
        for spec in requires(name) or []:
            req = Requirement(spec)
            # unconditional, or the extra a library names for its torch backend (not e.g. datasets' "audio", "tests")
            used = req.marker is None or req.marker.evaluate({"extra": "torch"})
            if canonical_name(req.name) == "torch" and used:
                bounds += [Version(s.version) for s in req.specifier if s.operator in (">=", "==", "~=")]
    assert bounds, "no pinned package declares a torch requirement"
    assert load_script().MIN_TORCH == max(bounds).release[:2]


def canonical_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_dry_run_prints_the_pip_commands_only(tmp_path):
    """This venv's torch stands in for the platform's: the commands keep it (constraints) and install the rest."""
    from importlib.metadata import version

    result = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--out-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    commands = [line for line in result.stdout.splitlines() if line.startswith("$ ")]
    assert len(commands) == 2, result.stdout
    assert f"-m pip install --progress-bar off -r {tmp_path / 'requirements.txt'} -c {tmp_path / 'constraints.txt'}" in commands[0]
    assert commands[1].endswith(f"-m pip install --progress-bar off --no-deps -e {ROOT}")
    assert f"torch {version('torch')}" in result.stdout and "torch==" in result.stdout  # what it keeps, what it drops
    written = (tmp_path / "requirements.txt").read_text(encoding="utf-8").splitlines()
    # this venv has pandas and matplotlib: their pins give way to the installed versions, as a platform's would
    assert [line for line in written if not line.startswith("#")] == [
        line for line in pinned_lines() if not left_out(line) and dist_name(line) not in ("pandas", "matplotlib")]
    assert f"pandas {version('pandas')}" in result.stdout.split("データ処理のライブラリ")[1].splitlines()[0]
    assert "jupyterlab" in result.stdout and "ipykernel" in result.stdout  # says what it leaves to the platform
    assert f"torch=={version('torch')}" in (tmp_path / "constraints.txt").read_text(encoding="utf-8").splitlines()


# --- the setup cell of the hosted notebook ------------------------------------------------------------------------
def setup_cell() -> str:
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    ids = [c["id"] for c in cells]
    i = ids.index("hosted-setup")
    assert i == 2 and cells[0]["source"][0].startswith("# LoRA SFT ハンズオン"), "right after the intro, before everything else"
    source = "".join(cells[i]["source"])
    assert source == CELL_SOURCE.read_text(encoding="utf-8").rstrip("\n"), "the cell is generated from scripts/participant/hosted_cell.py"
    return source


def run_cell(source: str) -> dict:
    namespace: dict = {}
    exec(compile(source, "hosted-setup", "exec"), namespace)  # noqa: S102 - the notebook's own cell
    return namespace


@pytest.fixture
def sandbox(monkeypatch):
    """No hosted marker, and every call that would start a process fails the test."""
    for name in HOSTED_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))

    def forbidden(*args, **kwargs):
        raise AssertionError(f"the setup cell started a process: {args}")

    for name in ("run", "call", "check_call", "check_output", "Popen"):
        monkeypatch.setattr(subprocess, name, forbidden)
    monkeypatch.setattr(os, "system", forbidden)
    return monkeypatch


def test_cell_does_nothing_locally_or_in_ci(sandbox, capsys):
    sandbox.chdir(ROOT / "hosted")  # where nbmake runs it
    path = list(sys.path)
    run_cell(setup_cell())
    assert capsys.readouterr().out == LOCAL_MESSAGE + "\n"
    assert sys.path == path and Path.cwd() == ROOT / "hosted"


def test_cell_with_the_url_placeholder_says_what_to_do(sandbox, capsys, tmp_path):
    sandbox.setenv("COLAB_RELEASE_TAG", "release-colab-test")
    sandbox.chdir(tmp_path)  # Colab's /content: nothing cloned yet
    run_cell(setup_cell())
    out = capsys.readouterr().out
    assert "REPO_URL がまだ書き換えられていません" in out and "もう一度実行" in out
    assert list(tmp_path.iterdir()) == []


def hosted_source(tmp_path: Path) -> str:
    """The cell with the instructor's URL filled in and the platforms' folders moved under tmp_path."""
    source = setup_cell()
    url = re.search(r'^REPO_URL = "(.*)"', source, re.M).group(1)
    source = source.replace(url, "https://github.com/example/lora-workshop.git")
    for folder in ("/content/drive", "/kaggle/working"):
        assert f'"{folder}' in source
        source = source.replace(f'"{folder}', f'"{tmp_path}{folder.replace("/content", "")}')
    return source


def fake_colab_drive(monkeypatch) -> list:
    """google.colab.drive as Colab's kernel has it: mount() records the folder and creates MyDrive."""
    import types

    mounts: list = []

    def mount(folder, **kwargs):
        mounts.append(folder)
        (Path(folder) / "MyDrive").mkdir(parents=True, exist_ok=True)

    colab = types.ModuleType("google.colab")
    colab.drive = types.SimpleNamespace(mount=mount)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    return mounts


class FakeSetup:
    """subprocess.Popen stand-in for the script: prints one line, exits 0."""

    calls: list[list[str]] = []

    def __init__(self, cmd, **kwargs):
        FakeSetup.calls.append(cmd)
        self.stdout = iter(["セットアップ完了 (fake)\n"])

    def wait(self):
        return 0


@pytest.mark.parametrize("marker", HOSTED_ENV_VARS)
def test_cell_on_a_hosted_runtime_clones_runs_the_script_and_adds_the_path(sandbox, capsys, tmp_path, marker):
    sandbox.setenv(marker, "x")
    sandbox.chdir(tmp_path)
    clones = []

    def fake_clone(cmd, check=False, **kwargs):  # "clones" by linking this repository
        clones.append(cmd)
        Path(cmd[-1]).symlink_to(ROOT, target_is_directory=True)
        return subprocess.CompletedProcess(cmd, 0)

    sandbox.setattr(subprocess, "run", fake_clone)
    sandbox.setattr(subprocess, "Popen", FakeSetup)
    FakeSetup.calls = []
    mounts = fake_colab_drive(sandbox) if marker == "COLAB_RELEASE_TAG" else None
    source = hosted_source(tmp_path)
    # the cell sets WORKSHOP_OUTPUT_DIR in os.environ: setenv first so that monkeypatch restores "unset" afterwards
    # (delenv of an unset variable records nothing, and the later notebooks of `make test` would write elsewhere)
    sandbox.setenv("WORKSHOP_OUTPUT_DIR", "unset-after-this-test")
    sandbox.delenv("WORKSHOP_OUTPUT_DIR")
    run_cell(source)

    repo = tmp_path / "lora-workshop"
    assert clones == [["git", "clone", "--depth", "1", "https://github.com/example/lora-workshop.git", str(repo)]]
    assert [call[:3] for call in FakeSetup.calls] == [[sys.executable, str(repo / "scripts" / "participant" / "hosted_setup.py"), "--imported"]]
    assert "pytest" in FakeSetup.calls[0][3].split(",")  # what this kernel has imported, as distributions
    assert Path.cwd() == (repo / "notebooks").resolve() and sys.path[0] == str(repo)
    out = capsys.readouterr().out
    assert "セットアップ完了 (fake)" in out
    # outputs where they survive the runtime: Google Drive on Colab (mounted first), /kaggle/working on Kaggle
    expected = tmp_path / ("drive/MyDrive/lora-sft-ja-workshop/outputs" if mounts is not None else "kaggle/working/outputs")
    assert os.environ["WORKSHOP_OUTPUT_DIR"] == str(expected) and expected.is_dir() and str(expected) in out
    if mounts is not None:
        assert mounts == [str(tmp_path / "drive")]

    # the same cell run again (now in the repository's notebooks/): no second clone, the same script
    run_cell(source)
    assert len(clones) == 1 and len(FakeSetup.calls) == 2 and FakeSetup.calls[1][1].endswith("hosted_setup.py")


# --- integration: a fresh venv with "the platform's torch" ------------------------------------------------------
def fake_wheel(folder: Path, name: str, version: str) -> Path:
    """A minimal pure-Python wheel: package `name` with __version__, metadata that pip reads as name==version."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f'"""Stand-in for a hosted platform\'s preinstalled {name} (tests only)."""\n__version__ = "{version}"\n',
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: test stand-in\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests/test_hosted_setup.py\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return wheel


PROBE = """
import importlib.metadata as md, json, sys
import utils, torch
dists = dict.fromkeys(sys.argv[1:])
for n in dists:
    try:
        dists[n] = md.version(n)
    except md.PackageNotFoundError:
        pass
family = sorted(d.metadata["Name"] for d in md.distributions()
                if d.metadata["Name"].lower() in ("torch", "torchvision", "torchaudio", "triton", "torchao")
                or d.metadata["Name"].lower().startswith("nvidia"))
print(json.dumps({"versions": dists, "utils": utils.__file__, "torch_module": torch.__version__, "family": family}))
"""


@pytest.mark.hosted
def test_setup_in_a_fresh_venv_keeps_the_platforms_torch(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    platform = [fake_wheel(tmp_path, "torch", "2.12.0"), fake_wheel(tmp_path, "torchao", "0.10.0")]  # as Colab ships
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", *map(str, platform)],
                   check=True, timeout=300)

    result = subprocess.run([python, str(SCRIPT), "--out-dir", str(tmp_path / "out")], cwd=tmp_path,
                            capture_output=True, text=True, timeout=3000)
    log = f"--- stdout\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-6000:]}"
    assert result.returncode == 0, log
    assert "torch 2.12.0" in result.stdout, log  # says which torch it kept

    names = ["torch", "torchao"] + [dist_name(line) for line in pinned_lines() if not torch_family(line)]
    probe = subprocess.run([python, "-c", PROBE, *names], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr[-3000:]  # `import utils` works (utils imports no torch at import time)
    state = json.loads(probe.stdout)
    versions = state["versions"]
    assert versions["torch"] == "2.12.0" and state["torch_module"] == "2.12.0", "pip replaced the platform's torch"
    assert state["family"] == ["torch"], "no CUDA torch pieces pulled in; the old torchao (peft raises on it) removed"
    for line in pinned_lines():
        if dist_name(line) in HOSTED_STACK:  # the platform's own kernel stays as it is
            assert versions[dist_name(line)] is None, f"{line}: installed on a hosted runtime"
        elif not torch_family(line):
            assert versions[dist_name(line)] == line.split("==")[1], line
    assert Path(state["utils"]).resolve() == ROOT / "utils" / "__init__.py"  # the editable install of this checkout


def test_the_cell_tests_leave_the_output_dir_as_they_found_it():
    """Last in this file (pytest runs a file's tests in order): the hosted cell sets WORKSHOP_OUTPUT_DIR, and the
    notebooks that `make test` runs after the unit tests read it (they once wrote their results to a test's tmp_path)."""
    assert os.environ.get("WORKSHOP_OUTPUT_DIR") == OUTPUT_DIR_AT_IMPORT


# --- the hosted requirements for the platforms' own Python (resolved, not installed) ------------------------------
def metadata_wheel(folder: Path, name: str) -> Path:
    """A py3-none-any wheel carrying the installed distribution's own METADATA (name, version, Requires-Dist,
    Requires-Python) and no code: what a resolver reads, for the pinned packages PyPI has as sdists only."""
    from importlib.metadata import distribution

    dist = distribution(name)
    wheel_name = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
    info = f"{wheel_name}-{dist.version}.dist-info"
    files = {f"{info}/METADATA": dist.read_text("METADATA"),
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{info}/RECORD"] = "".join(f"{path},,\n" for path in [*files, f"{info}/RECORD"])
    wheel = folder / f"{wheel_name}-{dist.version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return wheel


# Ubuntu 22.04 (glibc 2.35) on x86-64, as Colab's os-info says; pip does not widen an explicit manylinux tag to the
# older glibc versions a wheel may name, so every one is listed (manylinux2014 = 2_17, manylinux1 = 2_5)
PLATFORM_TAGS = [arg for minor in range(35, 4, -1) for arg in ("--platform", f"manylinux_2_{minor}_x86_64")] + [
    "--platform", "manylinux2014_x86_64", "--platform", "manylinux2010_x86_64", "--platform", "manylinux1_x86_64"]


def resolve(tmp_path: Path, python: str, constraints: dict[str, str]) -> subprocess.CompletedProcess:
    """pip's resolver on the hosted requirements for CPython `python` on manylinux x86-64, nothing installed."""
    hs = load_script()
    kept, _ = hs.split_requirements(REQUIREMENTS.read_text(encoding="utf-8").splitlines())
    kept, _ = hs.keep_platform_versions(kept, {name: constraints.get(name) for name in hs.DATA_STACK})
    (tmp_path / "requirements.txt").write_text("\n".join(kept) + "\n")
    (tmp_path / "constraints.txt").write_text("".join(f"{n}=={v}\n" for n, v in sorted(constraints.items())))
    links = tmp_path / "links"
    links.mkdir(exist_ok=True)
    for name in ("rouge-score", "unidic-lite"):  # sdist-only on PyPI; --only-binary needs a wheel
        metadata_wheel(links, name)
    return subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                           "--disable-pip-version-check", "--only-binary=:all:", "--python-version", python,
                           "--implementation", "cp", *PLATFORM_TAGS, "--find-links", str(links),
                           "--report", str(tmp_path / "report.json"),
                           "-r", str(tmp_path / "requirements.txt"), "-c", str(tmp_path / "constraints.txt")],
                          capture_output=True, text=True, timeout=900)


@pytest.mark.hosted
@pytest.mark.parametrize("python", ["platform", "3.12"])
def test_hosted_requirements_resolve_for_the_platforms_python_keeping_its_data_stack(tmp_path, python, colab_freeze):
    """Colab's Python (3.13, from the committed freeze) and Kaggle's (3.12: its image is built FROM Colab's runtime
    image, Kaggle/docker-python Dockerfile.tmpl), with the platform's torch and its numpy, pandas, matplotlib and
    pillow held as constraints: every pinned package has a wheel there and accepts them."""
    colab, colab_python = colab_freeze["versions"], colab_freeze["python"]
    python = colab_python if python == "platform" else python
    held = {name: colab[name] for name in ("torch", "numpy", "pandas", "matplotlib", "pillow")}
    result = resolve(tmp_path, python, held)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    report = json.loads((tmp_path / "report.json").read_text())
    got = {canonical_name(item["metadata"]["name"]): item["metadata"]["version"] for item in report["install"]}
    for name, version in held.items():
        assert got[name] == version, (name, got.get(name))
    for line in pinned_lines():
        if not left_out(line) and dist_name(line) not in ("pandas", "matplotlib"):
            assert got[dist_name(line)] == line.split("==")[1], line
    assert f"cp{python.replace('.', '')}" in {tag for item in report["install"]
                                              for tag in re.findall(r"-(cp\d+)-", item["download_info"]["url"])}


@pytest.mark.hosted
def test_the_platforms_pyarrow_is_not_accepted_so_the_setup_must_replace_it(tmp_path, colab_freeze):
    """The control for the restart: datasets 5.2 needs pyarrow >= 24, Colab's 18.1 (imported with pandas) cannot stay."""
    colab, python = colab_freeze["versions"], colab_freeze["python"]
    result = resolve(tmp_path, python, {"torch": colab["torch"], "pyarrow": colab["pyarrow"]})
    assert result.returncode != 0
    assert "pyarrow" in result.stderr and "datasets" in result.stderr, result.stderr[-3000:]
