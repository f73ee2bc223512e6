#!/usr/bin/env python
"""An offline install of the workshop for a GPU machine without internet access (a closed corporate network, a
university cluster): a wheelhouse built on a machine with access, carried over, installed with no package index.

Build it here, from the workshop's ``.venv`` (``make setup``: the versions it holds are the pins), for the target's
Python and platform::

    make wheelhouse WHEELHOUSE_PYTHON=3.12                                   # -> wheelhouse/
    make wheelhouse WHEELHOUSE_PYTHON=3.12 WHEELHOUSE_FREEZE=target-freeze.txt WHEELHOUSE_PART_MIB=500

* Every distribution of the closure of requirements.txt at its pin, as a wheel for the target (``pip download
  --no-deps --only-binary=:all: --python-version --platform``); a pin published only as source (rouge-score,
  unidic-lite) is built into a wheel here and must come out pure Python.
* **The target keeps its own torch** (torch, triton, nvidia-*: a CUDA build is gigabytes and must match the target's
  driver), as the hosted setup does; the install checks that the target has one the pinned packages accept.
* With the target's ``pip freeze`` (``WHEELHOUSE_FREEZE``), what it already has at the pinned version stays out.
* With ``WHEELHOUSE_PART_MIB``, the wheels are also packed into ``parts/wheelhouse-NN-of-MM.tar``, each at most that
  size, for a transfer that limits file size (each part also holds ``requirements.txt`` and ``manifest.json``).

Carry the folder (or the parts) and the repository to the target, then there::

    make install-offline WHEELHOUSE=wheelhouse          # or the folder holding the .tar parts

which creates ``.venv`` with ``--system-site-packages`` (so that it sees the target's torch), verifies every wheel
against ``manifest.json`` (SHA-256), and runs ``pip install --no-index --find-links``. ``install`` uses the standard
library only: the target's bare Python runs it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if __package__ in (None, ""):  # run by its path: the repository root, for scripts.*
    sys.path.insert(0, str(ROOT))
from scripts.participant.hosted_setup import (  # noqa: E402
    MIN_TORCH, canonical, installed_version, is_torch_family, release_tuple)

MIB = 2**20
TAR_BLOCK = 512
TAR_RECORD = 20 * TAR_BLOCK
# pip builds the editable install of utils (pyproject.toml: setuptools.build_meta) in an isolated environment
# from the same --find-links folder.
BUILD_BACKEND = "setuptools"
# In the workshop's venv: the site-packages of the machine's own virtual environment (see_machine_environment)
MACHINE_PTH = "_machine_environment.pth"


class WheelhouseError(RuntimeError):
    """A problem with the inputs or the folder, with what to do about it."""


# ---------------------------------------------------------------------------------------------- the plan (build side)
def parse_freeze(text: str) -> dict[str, str]:
    """{canonical name: version} of ``name==version`` lines of a ``pip freeze`` (other lines: editable installs,
    ``name @ file://...``, comments, are not pins and are ignored)."""
    pins = {}
    for line in text.splitlines():
        line = line.strip()
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)", line)
        if match:
            pins[canonical(match.group(1))] = match.group(2)
    return pins


def plan(pins: dict[str, str], target: dict[str, str] | None) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """(to carry {name: version}, left out {name: why}, replaced {name: "old -> new"}) for the closure's pins and the
    target's freeze (None: carry everything)."""
    carry, left_out, replaced = {}, {}, {}
    for name, version in pins.items():
        have = (target or {}).get(name)
        if have == version:
            left_out[name] = f"the target has {version}"
            continue
        carry[name] = version
        if have:
            replaced[name] = f"{have} -> {version}"
    return carry, left_out, replaced


def torch_note(target: dict[str, str] | None) -> str:
    if target is None:
        return "torch: the target's own (no freeze given; install-offline checks it)"
    version = target.get("torch")
    if not version:
        return "torch: NOT in the target's freeze: install the target's CUDA torch first (install-offline stops without it)"
    ok = release_tuple(version)[:2] >= MIN_TORCH
    return f"torch: the target's {version}" + ("" if ok else f" is older than {'.'.join(map(str, MIN_TORCH))}: "
                                              "the pinned transformers will not use it; upgrade it first")


def platform_tags(platform: str) -> list[str]:
    """pip --platform values for a manylinux target: the tag asked and every older manylinux tag of the same
    architecture (a wheel for glibc 2.17 runs on 2.28); other platforms as given."""
    match = re.fullmatch(r"manylinux_(\d+)_(\d+)_(\w+)", platform)
    if not match:
        return [platform]
    major, minor, arch = int(match.group(1)), int(match.group(2)), match.group(3)
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}  # PEP 599/571/513 names of 2_17, 2_12, 2_5
    return [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 4, -1)] + [
        f"{name}_{arch}" for m, name in legacy.items() if m <= minor]


def pip(*args: str, quiet: bool = True) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *(["-q"] if quiet else []), *args],
                   check=True)


def target_args(python_version: str | None, platform: str | None) -> list[str]:
    args = ["--only-binary=:all:"]
    if python_version:
        args += ["--python-version", python_version, "--implementation", "cp"]
    for tag in platform_tags(platform) if platform else []:
        args += ["--platform", tag]
    return args


def wheel_name(path: Path) -> tuple[str, str]:
    name, version = path.name.split("-")[:2]
    return canonical(name), version


def download(carry: dict[str, str], wheels: Path, python_version: str | None, platform: str | None) -> dict[str, str]:
    """A wheel for every pin, for the target, in one pip call; a pin pip finds no wheel for is left out of that call
    (pip names it) and built here instead, which must give a pure-Python wheel. Returns {name: how}."""
    wheels.mkdir(parents=True, exist_ok=True)
    wanted = dict(carry)
    source_only: dict[str, str] = {}
    while wanted:
        cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "download", "--no-deps", "-d", str(wheels),
               *target_args(python_version, platform), *(f"{name}=={version}" for name, version in wanted.items())]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode == 0:
            break
        missing = re.search(r"No matching distribution found for ([A-Za-z0-9._-]+)==", proc.stderr)
        if not missing or canonical(missing.group(1)) not in wanted:
            raise WheelhouseError("pip download failed:\n" + proc.stderr.strip()[-2000:])
        name = canonical(missing.group(1))
        source_only[name] = wanted.pop(name)
    how = {name: "downloaded" for name in wanted}
    for name, version in source_only.items():
        before = set(wheels.iterdir())
        try:
            pip("wheel", "--no-deps", "-w", str(wheels), f"{name}=={version}")
        except subprocess.CalledProcessError as error:
            raise WheelhouseError(f"{name}=={version}: no wheel for the target and none could be built here") from error
        built = [path.name for path in set(wheels.iterdir()) - before]
        if not built or not all(b.endswith(("-py3-none-any.whl", "-py2.py3-none-any.whl")) for b in built):
            raise WheelhouseError(f"{name}=={version} has no wheel for the target, and the one built here ({built}) is "
                                  "not pure Python: build it on a machine like the target (pip wheel) and add it")
        how[name] = "built here (pure Python; published as source only)"
    return how


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(MIB), b""):
            digest.update(block)
    return digest.hexdigest()


def tar_bytes(sizes: list[int]) -> int:
    """An upper bound on the size of an uncompressed PAX tar holding files of these sizes: per file a header block, a
    PAX header with its data for a long name (wheel names pass ustar's 100 characters), the data padded to blocks;
    two end blocks; the whole padded to a record."""
    raw = sum(3 * TAR_BLOCK + -(-size // TAR_BLOCK) * TAR_BLOCK for size in sizes) + 2 * TAR_BLOCK
    return -(-raw // TAR_RECORD) * TAR_RECORD


def split(files: list[Path], limit: int, shared: list[Path]) -> list[list[Path]]:
    """First-fit decreasing: groups of files whose tar (with the shared files in each) is at most ``limit`` bytes."""
    shared_sizes = [path.stat().st_size for path in shared]
    groups: list[list[Path]] = []
    for path in sorted(files, key=lambda p: (-p.stat().st_size, p.name)):
        if tar_bytes(shared_sizes + [path.stat().st_size]) > limit:
            raise WheelhouseError(f"{path.name} is {path.stat().st_size / MIB:.1f} MiB: it does not fit in a part of "
                                  f"{limit / MIB:g} MiB; ask for larger parts")
        for group in groups:
            if tar_bytes(shared_sizes + [p.stat().st_size for p in group] + [path.stat().st_size]) <= limit:
                group.append(path)
                break
        else:
            groups.append([path])
    return groups


def pack(out: Path, limit: int) -> list[Path]:
    shared = [out / "requirements.txt", out / "manifest.json"]
    groups = split(sorted((out / "wheels").glob("*.whl")), limit, shared)
    parts_dir = out / "parts"
    shutil.rmtree(parts_dir, ignore_errors=True)
    parts_dir.mkdir()
    parts = []
    for number, group in enumerate(groups, 1):
        part = parts_dir / f"wheelhouse-{number:02d}-of-{len(groups):02d}.tar"
        with tarfile.open(part, "w", format=tarfile.PAX_FORMAT) as tar:
            for path in shared:
                tar.add(path, arcname=path.name)
            for path in group:
                tar.add(path, arcname=f"wheels/{path.name}")
        if part.stat().st_size > limit:  # tar_bytes is an upper bound: a guard, not an expectation
            raise WheelhouseError(f"{part.name} came out at {part.stat().st_size} bytes, over {limit}")
        parts.append(part)
    return parts


def build(args) -> int:
    from scripts.instructor.stack import closure, requirement_names

    lines = Path(args.requirements).read_text(encoding="utf-8").splitlines()
    roots = [name for name in requirement_names(lines) if not is_torch_family(name)]
    try:
        pins = closure(roots, args.python_version, follow_torch=False)
    except LookupError as error:
        raise WheelhouseError(f"{error.args[0]} is not installed in {sys.prefix}: run this with the workshop's .venv "
                              "(make wheelhouse), which make setup installed from requirements.txt") from None
    target = parse_freeze(Path(args.target_freeze).read_text(encoding="utf-8")) if args.target_freeze else None
    carry, left_out, replaced = plan(pins, target)
    build_backend = installed_version(BUILD_BACKEND)
    if build_backend and not (target and target.get(BUILD_BACKEND) == build_backend):
        carry.setdefault(BUILD_BACKEND, build_backend)
    python_version = args.python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
    print(f"target: Python {python_version}, platform {args.platform or 'this machine'}; "
          f"closure of {args.requirements}: {len(pins)} distributions, torch family left to the target")
    print(torch_note(target))
    print(f"carried: {len(carry)}; left out: {len(left_out)} (the target has them at the pin)")
    for name, why in left_out.items():
        print(f"  left out {name}: {why}")
    for name, change in replaced.items():
        print(f"  replaced on the target: {name} {change}")
    if args.plan:
        for name, version in carry.items():
            print(f"  carry {name}=={version}")
        return 0

    out = Path(args.out)
    shutil.rmtree(out / "wheels", ignore_errors=True)
    how = download(carry, out / "wheels", args.python_version, args.platform)
    wheels = sorted((out / "wheels").glob("*.whl"))
    (out / "requirements.txt").write_text(
        "# The pinned stack for the offline target, less the torch family (the target's own) and what it already has.\n"
        + "".join(f"{name}=={version}\n" for name, version in carry.items() if name != BUILD_BACKEND), encoding="utf-8")
    manifest = {
        "target": {"python_version": python_version, "platform": args.platform or "this machine's",
                   "freeze": bool(target), "torch": (target or {}).get("torch")},
        "requirements": Path(args.requirements).name,
        "wheels": {path.name: {"bytes": path.stat().st_size, "sha256": sha256(path),
                               "how": how.get(wheel_name(path)[0], "")}
                   for path in wheels},
        "left_out": left_out,
        "replaced": replaced,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    parts = pack(out, int(args.part_mib * MIB)) if args.part_mib else []
    for part in parts:
        print(f"{part.relative_to(out)}: {part.stat().st_size / MIB:.1f} MiB")
    total = sum(path.stat().st_size for path in wheels)
    print(f"wrote {out}/: {len(wheels)} wheels, {total / MIB:.1f} MiB"
          + (f", in {len(parts)} parts of at most {args.part_mib:g} MiB" if parts else ""))
    print(f"on the target: make install-offline WHEELHOUSE={out}" + ("/parts" if args.part_mib else ""))
    return 0


# ------------------------------------------------------------------------------------ the install (target side)
def gather(folder: Path, work: Path) -> Path:
    """The folder holding requirements.txt, manifest.json and wheels/: ``folder`` itself, or the parts in it unpacked
    into ``work`` after checking that all of them are there."""
    if (folder / "manifest.json").is_file() and (folder / "wheels").is_dir():
        return folder
    parts = sorted(folder.glob("wheelhouse-*-of-*.tar"))
    if not parts:
        raise WheelhouseError(f"{folder} holds neither manifest.json + wheels/ nor wheelhouse-NN-of-MM.tar parts: "
                              "point WHEELHOUSE at the folder make wheelhouse wrote (or at its parts/)")
    expected = int(re.search(r"-of-(\d+)\.tar$", parts[0].name).group(1))
    numbers = {int(re.search(r"wheelhouse-(\d+)-of-", part.name).group(1)) for part in parts}
    missing = sorted(set(range(1, expected + 1)) - numbers)
    if missing:
        raise WheelhouseError(f"parts missing from {folder}: " + ", ".join(f"{n:02d}-of-{expected:02d}" for n in missing))
    for part in parts:
        with tarfile.open(part) as tar:
            tar.extractall(work, filter="data")
    return work


def verify(folder: Path) -> dict:
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    for name, entry in manifest["wheels"].items():
        path = folder / "wheels" / name
        if not path.is_file():
            raise WheelhouseError(f"{name} is listed in manifest.json but not in {folder / 'wheels'}: copy it again")
        if sha256(path) != entry["sha256"]:
            raise WheelhouseError(f"{name}: its SHA-256 differs from manifest.json (a damaged copy): copy it again")
    return manifest


def pip_offline(python: str, args: list[str]) -> None:
    proc = subprocess.run([python, "-m", "pip", "--disable-pip-version-check", "install", "-q", *args],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        errors = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("ERROR")] or \
            (proc.stdout + proc.stderr).strip().splitlines()[-5:]
        raise WheelhouseError("pip could not install from the wheelhouse alone (no package index):\n  "
                              + "\n  ".join(errors) + "\nthe wheelhouse lacks what is named above: build it again "
                              "with the current make wheelhouse (from a .venv that make setup installed)")


def create_venv(python: str, venv: Path, system_site: bool) -> None:
    """``python -m venv``; where this Python's venv module cannot install pip (Debian and Ubuntu without the
    python3.X-venv package: "ensurepip is not available"), a venv without pip of its own, which then uses the pip
    it sees (the machine's environment, through the system's packages or see_machine_environment)."""
    command = [python, "-m", "venv", *(["--system-site-packages"] if system_site else []), str(venv)]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode == 0:
        return
    output = proc.stdout + proc.stderr
    if "ensurepip" not in output:
        raise WheelhouseError(f"could not create {venv} ({' '.join(command)}):\n{output.strip()}")
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([*command[:-1], "--without-pip", str(venv)], check=True)
    print(f"{venv}: this Python cannot install pip into a venv (no ensurepip); created without pip, using the pip "
          "it sees")


def machine_site_paths() -> list[str]:
    """The site-packages of the virtual environment this Python runs in, if it runs in one (many GPU images install
    torch into a venv, e.g. /opt/torch/.venv); [] for a Python of its own (system, pyenv, conda).

    ``python -m venv --system-site-packages`` from a venv's Python sees the *base* interpreter's packages, not that
    venv's: without these paths the workshop's venv would not see the machine's torch."""
    if sys.prefix == sys.base_prefix:
        return []
    paths = sysconfig.get_paths()
    return list(dict.fromkeys(path for path in (paths["purelib"], paths["platlib"]) if Path(path).is_dir()))


def see_machine_environment(python: str, paths: list[str]) -> list[str]:
    """Make the venv of ``python`` see ``paths`` after its own site-packages (a .pth file: what the venv installs, at
    the pins, comes first; what it lacks, torch included, comes from the machine's environment). Returns the paths
    added (none when they are the venv's own)."""
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    own = Path(purelib).resolve()
    paths = [path for path in paths if Path(path).resolve() != own]
    pth = Path(purelib) / MACHINE_PTH
    if paths:
        pth.write_text("".join(f"{path}\n" for path in paths), encoding="utf-8")
    return paths


def install(args) -> int:
    folder = Path(args.folder)
    venv = Path(args.venv)
    with tempfile.TemporaryDirectory() as tmp:
        house = gather(folder, Path(tmp))
        manifest = verify(house)
        print(f"{len(manifest['wheels'])} wheels verified (SHA-256), built for Python "
              f"{manifest['target']['python_version']}")
        here = f"{sys.version_info.major}.{sys.version_info.minor}"
        if manifest["target"]["python_version"] != here:
            raise WheelhouseError(f"the wheelhouse is for Python {manifest['target']['python_version']}, this is {here}: "
                                  f"run make install-offline PYTHON=python{manifest['target']['python_version']}, or "
                                  f"build it again with WHEELHOUSE_PYTHON={here}")
        if not (venv / "bin" / "python").exists():
            # --system-site-packages: the venv sees the machine's own torch (and what the freeze left out)
            create_venv(sys.executable, venv, system_site=not args.isolated)
        python = str(venv / "bin" / "python")
        if not args.isolated:
            linked = see_machine_environment(python, machine_site_paths())
            if linked:
                print(f"{venv} also sees this Python's virtual environment (its torch): {', '.join(linked)}")
        if subprocess.run([python, "-m", "pip", "--version"], capture_output=True).returncode != 0:
            raise WheelhouseError(f"{venv} has no pip and sees none: install the venv module of this Python "
                                  f"(Debian/Ubuntu: sudo apt install python{here}-venv), delete {venv} and run "
                                  "make install-offline again")
        if not args.no_torch_check:
            probe = subprocess.run([python, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True)
            if probe.returncode != 0:
                raise WheelhouseError(f"torch is not importable from {venv}: the wheelhouse leaves torch to the "
                                      "machine (its CUDA build must match the driver). Run make install-offline "
                                      "PYTHON=<the python that imports torch>, or install torch first")
            print(f"torch {probe.stdout.strip()} (this machine's)")
        offline = ["--no-index", "--find-links", str(house / "wheels")]
        pip_offline(python, [*offline, "-r", str(house / "requirements.txt")])
        if args.project:
            pip_offline(python, [*offline, "--no-deps", "-e", str(args.project)])
    print(f"installed into {venv} with no package index")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command")
    b = sub.add_parser("build", help="download the wheels for the target (the default command)")
    b.add_argument("--python-version", help="the target's Python, e.g. 3.12 (default: this Python's)")
    b.add_argument("--platform", help="the target's platform tag, e.g. manylinux_2_28_x86_64 (default: this machine's)")
    b.add_argument("--target-freeze", help="the target's `pip freeze` output: what it has at the pin stays out")
    b.add_argument("--part-mib", type=float, default=0, help="also pack into parts of at most this many MiB")
    b.add_argument("--requirements", default=str(ROOT / "requirements.txt"))
    b.add_argument("--out", default=str(ROOT / "wheelhouse"))
    b.add_argument("--plan", action="store_true", help="print what would be carried and why; download nothing")
    i = sub.add_parser("install", help="on the target: verify and install with no package index")
    i.add_argument("folder", help="the wheelhouse folder, or the folder holding its .tar parts")
    i.add_argument("--venv", default=str(ROOT / ".venv"))
    i.add_argument("--project", default=str(ROOT), help="also install this project (editable); '' for none")
    i.add_argument("--isolated", action="store_true", help="a venv without the system's packages (torch included)")
    i.add_argument("--no-torch-check", action="store_true", help="do not require an importable torch")
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("build", "install", "-h", "--help"):
        argv = ["build", *argv]
    args = ap.parse_args(argv)
    try:
        return build(args) if args.command == "build" else install(args)
    except WheelhouseError as error:
        print(f"wheelhouse: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
