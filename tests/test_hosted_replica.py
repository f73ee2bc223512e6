"""The all-in-one hosted notebook in a replica of Google Colab's runtime, as a participant meets it.

Colab's kernel has imported pandas (and with it numpy and pyarrow) before the first cell. A setup that swaps those
packages on disk under the running kernel leaves pandas 2.2 in memory over pandas 3 files: every DataFrame display then
fails (``cannot import name 'format_name'``), and the first pandas plot stops the notebook. The replica:

- a venv holding Colab's versions of the packages the workshop touches (hosted/platforms/colab.txt, from Colab's
  published freeze) on this Python; this machine's CPU torch stands in for Colab's CUDA torch (the setup keeps the
  platform's torch whatever it is; the real 2.11+cu128 wheels are several GB);
- a kernel that imports pandas before anything else and runs with Colab's marker (COLAB_RELEASE_TAG);
- the setup cell as a participant runs it: the first run must replace pyarrow (datasets 5.2 needs >= 24, Colab has
  18.1), which the kernel has imported, so it says so and restarts the runtime; the second run finds everything
  installed and goes on; then the whole notebook in that one kernel with small budgets, and no error output at all
  (a failed display prints a traceback without failing the cell, so tracebacks are looked for in every output).

pip installs from the package index (network). About 5 minutes on 2 cores: `make test-extras` runs it (and .ci/run).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "hosted" / "workshop_colab_kaggle.ipynb"
URL = "https://github.com/example/lora-workshop.git"
BUDGETS = {"WORKSHOP_N_TRAIN": "32", "WORKSHOP_N_VAL": "8", "WORKSHOP_N_TEST": "12", "WORKSHOP_MAX_NEW_TOKENS": "32",
           "WORKSHOP_NUM_TRAIN_EPOCHS": "1", "WORKSHOP_KSHOT": "none"}
TRACEBACK = re.compile(r"Traceback|^\w*(Error|Exception): ", re.M)

pytestmark = pytest.mark.hosted


def link_this_torch(site: Path) -> str:
    """Colab's CUDA torch stands in as this Python's torch: its files linked into the replica (no multi-GB install)."""
    import importlib.metadata as md

    dist = md.distribution("torch")
    info = Path(dist._path)  # the .dist-info folder
    tops = (info / "top_level.txt").read_text().split()
    for name in [info.name, *tops]:
        (site / name).symlink_to(info.parent / name, target_is_directory=True)
    return dist.version


@pytest.fixture(scope="module")
def replica(tmp_path_factory, colab_freeze):
    """(python, kernel name, JUPYTER_PATH) of a venv with Colab's versions and a kernel that preloads pandas."""
    base = tmp_path_factory.mktemp("colab")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site = next((venv / "lib").glob("python3*/site-packages"))
    torch_version = link_this_torch(site)
    # torch is linked above; setuptools is left to pip: the stand-in torch 2.13 needs >= 77, Colab's 2.11 ships with 75
    wanted = [line for line in colab_freeze["lines"] if line.lower().split("==")[0] not in ("torch", "setuptools")]
    (base / "platform.txt").write_text("\n".join(wanted) + "\n")
    (base / "keep-torch.txt").write_text(f"torch=={torch_version}\n")
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           "-r", str(base / "platform.txt"), "-c", str(base / "keep-torch.txt")],
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    kernels = base / "jupyter" / "kernels" / "colab-replica"
    kernels.mkdir(parents=True)
    preload = ("import sys, pandas; sys.argv[0] = 'ipykernel_launcher'; "  # as Colab's runtime: pandas before cell 1
               "from ipykernel import kernelapp; kernelapp.launch_new_instance()")
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-c", preload, "-f", "{connection_file}"],
        "display_name": "Colab replica", "language": "python",
        "env": {"COLAB_RELEASE_TAG": "release-colab-replica", "HF_HUB_OFFLINE": "1", "WORKSHOP_PROFILE": "cpu",
                "WORKSHOP_OUTPUT_DIR": str(base / "outputs"), "PYTHONUNBUFFERED": "1", **BUDGETS}}))
    return {"python": python, "kernel": "colab-replica", "jupyter_path": str(base / "jupyter"), "base": base,
            "torch": torch_version}


def participants_notebook(cells: slice | None = None) -> nbformat.NotebookNode:
    """The committed notebook with the instructor's URL filled in and outputs kept in the run folder (no Drive)."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    setup = next(c for c in nb.cells if c.get("id") == "hosted-setup")
    source, urls = re.subn(r'^REPO_URL = ".*"', f'REPO_URL = "{URL}"', setup.source, flags=re.M)
    assert urls == 1 and "KEEP_OUTPUTS = True" in source, "the setup cell changed: update this test"
    setup.source = source.replace("KEEP_OUTPUTS = True", "KEEP_OUTPUTS = False")
    if cells is not None:
        nb.cells = nb.cells[cells]
    return nb


def execute(nb, replica, monkeypatch, workdir: Path):
    from nbclient import NotebookClient

    monkeypatch.setenv("JUPYTER_PATH", replica["jupyter_path"])
    client = NotebookClient(nb, timeout=1200, kernel_name=replica["kernel"],
                            resources={"metadata": {"path": str(workdir)}})
    try:
        client.execute()
    finally:
        os.chdir(ROOT)


def outputs_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type == "error":
            parts.append("\n".join(out.traceback))
        else:
            parts.append(str(out.get("data", {}).get("text/plain", "")))
    return "".join(parts)


def errors(nb) -> list[str]:
    """'cell id: first lines' for every error output, and every traceback printed into an output."""
    found = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        text = outputs_text(cell)
        if any(out.output_type == "error" for out in cell.get("outputs", [])) or TRACEBACK.search(text):
            found.append(f"{cell.get('id')}: {text[:1500]}")
    return found


def installed(python: Path, names) -> dict[str, str | None]:
    code = ("import importlib.metadata as m, json, sys\n"
            "out = {}\n"
            "for n in sys.argv[1:]:\n"
            "    try: out[n] = m.version(n)\n"
            "    except m.PackageNotFoundError: out[n] = None\n"
            "print(json.dumps(out))")
    result = subprocess.run([str(python), "-c", code, *names], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(result.stdout)


def test_colab_replica_restarts_once_then_runs_the_whole_notebook_without_an_error(replica, colab_freeze, monkeypatch,
                                                                                   tmp_path):
    from nbclient.exceptions import DeadKernelError

    workdir = replica["base"] / "content"  # Colab's /content: the "clone" is this checkout
    workdir.mkdir(exist_ok=True)
    if not (workdir / "lora-workshop").exists():
        (workdir / "lora-workshop").symlink_to(ROOT, target_is_directory=True)
    colab = colab_freeze["versions"]

    # 1. the setup cell, first run: pyarrow (imported with pandas) must be replaced, so the runtime restarts
    first = participants_notebook(slice(0, 3))
    with pytest.raises(DeadKernelError):
        execute(first, replica, monkeypatch, workdir)
    said = outputs_text(first.cells[2])
    assert "ランタイムを再起動します" in said, said[-4000:]
    assert f"pyarrow {colab['pyarrow']} →" in said, said[-4000:]  # names what it replaced under the kernel
    after = installed(replica["python"], ["pandas", "numpy", "matplotlib", "pillow", "pyarrow", "torch", "torchao",
                                          "transformers", "datasets", "trl", "peft", "ipykernel", "ipython"])
    for name in ("pandas", "numpy", "matplotlib", "pillow", "ipykernel", "ipython"):  # the platform's, kept
        assert after[name] == colab[name], (name, after[name])
    assert after["torch"] == replica["torch"] and after["torchao"] is None
    pins = dict(line.split("==") for line in (ROOT / "requirements.txt").read_text().split() if "==" in line)
    for name in ("transformers", "datasets", "trl", "peft"):
        assert after[name] == pins[name], (name, after[name])

    # 2. after the restart: the whole notebook in one kernel (setup cell again first), no error output anywhere
    nb = participants_notebook()
    execute(nb, replica, monkeypatch, workdir)
    setup = outputs_text(nb.cells[2])
    assert "インストールしたもの" in setup and "再起動" not in setup, setup[-3000:]  # nothing left to replace
    assert not errors(nb), "\n\n".join(errors(nb))[:12000]
    results = json.loads((replica["base"] / "outputs" / "cpu" / "results.json").read_text(encoding="utf-8"))
    assert results["n_test"] == 12 and list(results["arms"]) == ["0-shot", "lora"]
    assert installed(replica["python"], ["pandas"])["pandas"] == colab["pandas"]


def test_error_scan_sees_a_display_traceback():
    """The scan above is what makes 'no error output' mean something: a formatter failure is not an error output."""
    cell = nbformat.v4.new_code_cell("df")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=(
        "---------------------------------------------------------------------------\n"
        "ImportError                               Traceback (most recent call last)\n"))]
    clean = nbformat.v4.new_code_cell("x")
    clean.outputs = [nbformat.v4.new_output("stream", name="stderr", text="Generating train split: 100%|██| 32/32\n")]
    nb = nbformat.v4.new_notebook(cells=[cell, clean])
    assert len(errors(nb)) == 1
