"""The offline install (scripts/instructor/wheelhouse.py, `make wheelhouse` / `make install-offline`).

The unit tests read the real requirements.txt closure; the `network` ones download from the package index (make
test-extras): a wheelhouse for another Python and platform than this one (its wheels' tags, the target's freeze, parts
within the size asked), and one for this Python that a fresh venv installs from its parts with no index reachable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from scripts.instructor import wheelhouse as wh

ROOT = Path(__file__).resolve().parents[1]
MIB = 2**20


def installed(name: str) -> str:
    import importlib.metadata

    return importlib.metadata.version(name)


def offline_env() -> dict[str, str]:
    """pip with no index it could reach: this machine's pip configuration (extra indexes, find-links) left out and
    the index pointed at a closed port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return env | {"PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_RETRIES": "0",
                  "PIP_TIMEOUT": "2"}


def test_the_plan_leaves_the_torch_family_to_the_target_and_carries_the_pinned_stack(capsys):
    assert wh.main(["--plan", "--python-version", "3.12", "--platform", "manylinux_2_28_x86_64"]) == 0
    out = capsys.readouterr().out
    carried = {line.split()[1].split("==")[0] for line in out.splitlines() if line.startswith("  carry ")}
    assert {"transformers", "trl", "peft", "bitsandbytes", "datasets", "fugashi", "unidic-lite", "rouge-score"} <= carried
    assert f"transformers=={installed('transformers')}" in out  # at the pin this venv holds
    assert not {name for name in carried if name in ("torch", "triton") or name.startswith(("nvidia-", "cuda-"))}
    assert "torch: the target's own" in out


def test_a_target_freeze_leaves_out_what_it_has_at_the_pin_and_says_what_it_replaces():
    pins = {"numpy": "2.4.6", "tqdm": "4.70.1", "regex": "2026.12.2"}
    freeze = wh.parse_freeze("numpy==2.4.6\ntqdm==4.60.0\n-e git+https://x/y#egg=z\nfoo @ file:///tmp/foo.whl\n"
                             "Torch==2.11.0+cu130\n")
    assert freeze == {"numpy": "2.4.6", "tqdm": "4.60.0", "torch": "2.11.0+cu130"}
    carry, left_out, replaced = wh.plan(pins, freeze)
    assert carry == {"tqdm": "4.70.1", "regex": "2026.12.2"}
    assert left_out == {"numpy": "the target has 2.4.6"}
    assert replaced == {"tqdm": "4.60.0 -> 4.70.1"}
    assert wh.torch_note(freeze) == "torch: the target's 2.11.0+cu130"
    assert "NOT in the target's freeze" in wh.torch_note({"numpy": "2.4.6"})
    assert "older than 2.6" in wh.torch_note({"torch": "2.4.1"})


def test_manylinux_targets_accept_older_glibc_wheels():
    tags = wh.platform_tags("manylinux_2_28_aarch64")
    assert tags[0] == "manylinux_2_28_aarch64" and "manylinux_2_17_aarch64" in tags and "manylinux2014_aarch64" in tags
    assert "manylinux_2_29_aarch64" not in tags and not any("x86_64" in tag for tag in tags)
    assert wh.platform_tags("macosx_11_0_arm64") == ["macosx_11_0_arm64"]


def test_parts_stay_within_the_size_asked_and_a_too_large_wheel_is_named(tmp_path):
    files = []
    for i, size in enumerate([700_000, 300_000, 450_000, 90_000, 20_000]):
        path = tmp_path / f"pkg{i}-1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.some-long-tag-{i}.whl"
        path.write_bytes(os.urandom(size))
        files.append(path)
    shared = tmp_path / "requirements.txt"
    shared.write_text("pkg0==1.0\n")
    limit = MIB
    groups = wh.split(files, limit, [shared])
    assert sorted(p.name for g in groups for p in g) == sorted(p.name for p in files)
    for number, group in enumerate(groups):
        part = tmp_path / f"part{number}.tar"
        with tarfile.open(part, "w", format=tarfile.PAX_FORMAT) as tar:
            tar.add(shared, arcname=shared.name)
            for path in group:
                tar.add(path, arcname=f"wheels/{path.name}")
        assert part.stat().st_size <= wh.tar_bytes([shared.stat().st_size] + [p.stat().st_size for p in group]) <= limit
    with pytest.raises(wh.WheelhouseError, match="pkg0-1.0.*does not fit in a part of 0.5 MiB"):
        wh.split(files, MIB // 2, [shared])


def test_install_refuses_an_incomplete_or_damaged_wheelhouse(tmp_path):
    for n in (1, 3):
        with tarfile.open(tmp_path / f"wheelhouse-0{n}-of-03.tar", "w") as tar:
            pass
    with pytest.raises(wh.WheelhouseError, match="parts missing from .*: 02-of-03"):
        wh.gather(tmp_path, tmp_path / "work")
    house = tmp_path / "house"
    (house / "wheels").mkdir(parents=True)
    (house / "wheels" / "a-1.0-py3-none-any.whl").write_bytes(b"one")
    (house / "manifest.json").write_text(json.dumps({"wheels": {"a-1.0-py3-none-any.whl": {"sha256": "0" * 64}}}))
    with pytest.raises(wh.WheelhouseError, match="a-1.0-py3-none-any.whl: its SHA-256 differs"):
        wh.verify(house)
    with pytest.raises(wh.WheelhouseError, match="neither manifest.json"):
        wh.gather(tmp_path / "house" / "wheels", tmp_path / "work")


def test_from_a_python_in_a_venv_the_workshop_venv_sees_that_venv(tmp_path):
    """GPU images often install torch into a venv (python3 is /opt/.../.venv/bin/python3). `venv
    --system-site-packages` made from there sees the base interpreter's packages, not that venv's: the install adds
    them after its own (a .pth file), so the machine's torch, and what the target's freeze left out, are found.
    Here the machine's venv holds a package `machine_marker` 1.0 that the wheelhouse does not carry."""
    machine = tmp_path / "machine-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(machine)], check=True)
    site = Path(subprocess.run([str(machine / "bin" / "python"), "-c",
                                "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "machine_marker").mkdir()
    (site / "machine_marker" / "__init__.py").write_text("WHERE = 'machine'\n")
    (site / "machine_marker-1.0.dist-info").mkdir()
    (site / "machine_marker-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: machine-marker\nVersion: 1.0\n")
    house = tmp_path / "house"
    (house / "wheels").mkdir(parents=True)
    (house / "requirements.txt").write_text("machine-marker==1.0\n")
    (house / "manifest.json").write_text(json.dumps({"target": {"python_version": f"{sys.version_info.major}."
                                                                                  f"{sys.version_info.minor}"},
                                                     "wheels": {}}))
    venv = tmp_path / "workshop-venv"
    result = subprocess.run([str(machine / "bin" / "python"), "-m", "scripts.instructor.wheelhouse", "install",
                             str(house), "--venv", str(venv), "--no-torch-check", "--project", ""], cwd=ROOT,
                            env=offline_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "also sees this Python's virtual environment" in result.stdout
    check = subprocess.run([str(venv / "bin" / "python"), "-c", "import machine_marker; print(machine_marker.WHERE)"],
                           cwd=tmp_path, capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout.strip() == "machine", check.stderr


def test_a_python_without_ensurepip_gets_a_venv_that_uses_the_pip_it_sees(tmp_path):
    """Debian and Ubuntu without python3.X-venv: `python -m venv` stops at "ensurepip is not available". The venv
    is made --without-pip and the pip of the machine's environment installs into it (here a stand-in Python that
    refuses venvs with pip, as that one does)."""
    shim = tmp_path / "python-without-ensurepip"
    shim.write_text(f"""#!/bin/sh
case " $* " in
  *" venv "*) case " $* " in *" --without-pip "*) ;; *)
      echo "The virtual environment was not created successfully because ensurepip is not available." >&2
      exit 1;; esac;;
esac
exec {sys.executable} "$@"
""")
    shim.chmod(0o755)
    venv = tmp_path / "venv"
    wh.create_venv(str(shim), venv, system_site=True)
    assert (venv / "bin" / "python").exists()
    assert not list(venv.glob("lib/python*/site-packages/pip"))  # no pip of its own
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "--version"], capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr  # the one it sees
    with pytest.raises(wh.WheelhouseError, match="could not create"):
        wh.create_venv("/bin/false", tmp_path / "other", system_site=True)  # another failure is reported as is


def small_requirements(tmp_path: Path, names: list[str]) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text("".join(f"{name}=={installed(name)}\n" for name in names))
    return path


@pytest.mark.network
def test_a_wheelhouse_for_another_python_and_platform(tmp_path):
    """Python 3.12 on 64-bit ARM from this x86-64 Python 3.11: compiled wheels carry the target's tags; what the
    target's freeze has at the pin stays out; the parts stay within 1 MiB."""
    requirements = small_requirements(tmp_path, ["pyyaml", "regex", "tqdm", "six"])
    freeze = tmp_path / "freeze.txt"
    freeze.write_text(f"six=={installed('six')}\ntorch==2.11.0\n")
    out = tmp_path / "house"
    assert wh.main(["build", "--requirements", str(requirements), "--python-version", "3.12", "--platform",
                    "manylinux_2_28_aarch64", "--target-freeze", str(freeze), "--part-mib", "1", "--out", str(out)]) == 0
    names = sorted(path.name for path in (out / "wheels").glob("*.whl"))
    compiled = [name for name in names if name.lower().startswith(("pyyaml", "regex"))]
    assert len(compiled) == 2 and all("cp312" in name and "aarch64" in name for name in compiled), names
    assert not any(name.startswith("six-") for name in names)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["left_out"] == {"six": f"the target has {installed('six')}"}
    assert manifest["target"] == {"python_version": "3.12", "platform": "manylinux_2_28_aarch64", "freeze": True,
                                  "torch": "2.11.0"}
    parts = sorted((out / "parts").glob("*.tar"))
    assert len(parts) >= 2 and all(part.stat().st_size <= MIB for part in parts)
    inside = set()
    for part in parts:
        with tarfile.open(part) as tar:
            inside |= {name for name in tar.getnames() if name.startswith("wheels/")}
    assert inside == {f"wheels/{name}" for name in names}


@pytest.mark.network
def test_a_fresh_venv_installs_from_the_parts_with_no_index(tmp_path):
    """rouge-score is published as source only (built here into a pure-Python wheel); its numpy is 16 MB, so parts of
    8 MiB are refused naming it and parts of 24 MiB work. The install runs with no index reachable."""
    requirements = small_requirements(tmp_path, ["rouge-score", "pyyaml"])
    out = tmp_path / "house"
    assert wh.main(["build", "--requirements", str(requirements), "--part-mib", "8", "--out", str(out)]) == 2
    assert wh.main(["build", "--requirements", str(requirements), "--part-mib", "24", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["wheels"]["rouge_score-0.1.2-py3-none-any.whl"]["how"].startswith("built here")
    assert {"absl_py", "nltk", "numpy", "six", "pyyaml", "setuptools"} <= {
        name.split("-")[0].lower() for name in manifest["wheels"]}

    carried = tmp_path / "carried"  # only the parts travel
    carried.mkdir()
    for part in (out / "parts").glob("*.tar"):
        part.rename(carried / part.name)
    venv = tmp_path / "target-venv"
    result = subprocess.run([sys.executable, "-m", "scripts.instructor.wheelhouse", "install", str(carried), "--venv",
                             str(venv), "--isolated", "--no-torch-check", "--project", str(ROOT)], cwd=ROOT,
                            env=offline_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "wheels verified (SHA-256)" in result.stdout and "with no package index" in result.stdout
    check = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import rouge_score, yaml, utils.machine.hub; from rouge_score import rouge_scorer; "
                            "print(rouge_scorer.RougeScorer(['rougeL']).score('a b', 'a b')['rougeL'].fmeasure)"],
                           cwd=tmp_path, capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout.strip() == "1.0", check.stderr



def test_the_closure_follows_the_extras_a_requirement_asks_for():
    """nbconvert requires bleach[css], and the css extra brings tinycss2: a wheelhouse without it fails to install
    with no index (found by installing a full wheelhouse offline)."""
    from scripts.instructor.stack import closure

    found = closure(["nbconvert"])
    assert {"bleach", "tinycss2"} <= set(found)
    assert "tinycss2" not in closure(["bleach"])  # bleach alone, without the extra
