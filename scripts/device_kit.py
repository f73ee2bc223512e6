#!/usr/bin/env python
"""Pack the pinned stack for the lent GPU machine (issue 28), which reaches no package index.

The device machine (``configs/device/<kind>.json``: its Python, its CUDA torch and the packages its image
holds) runs a copy of the working tree plus at most 64 MiB in all, tracked files included. The workshop's
tracked tree is about 31 MiB, the pinned stack that the image lacks about 140 MB as wheels, so this
script carries only what the run needs, in as few bytes as it can:

* the torch family stays the image's (a CUDA torch is gigabytes; it is what a hosted runtime does too,
  ``scripts/hosted_setup.py``);
* every pinned distribution of the closure of ``requirements.txt`` is carried at its pin, unless the image has
  that very version, or it is one of the large compiled libraries the image already holds (``IMAGE_KEEPS``: numpy,
  pandas, pyarrow, matplotlib and its compiled dependencies), which run at the image's version. Pins of the
  image's small packages matter: datasets 5.2 wants fsspec <= 2026.9.0, transformers checks regex on import, so
  they travel rather than trust versions nobody has read. On the machine, ``--check`` prints every requirement of
  the carried distributions that the versions it sees do not meet (CONFLICT lines in machine.txt);
* packages no GPU check imports are left out (``LEFT_OUT``, each with why), and bitsandbytes keeps only the
  native library for the image's CUDA (and its CPU one): 129 MB unpacked -> 4.5 MB;
* the wheels are installed here for the machine's Python and platform (``pip install --target
  --platform``), and each part is one ``.tar.xz`` under ``.whl/`` (git-ignored) that the machine unpacks
  with Python's tarfile. No pip runs there.

MeCab's dictionary (unidic-lite, 250 MB unpacked, 28 MB as xz) cannot share one call with the rest, so
there are two parts, each within the limit together with the tree: ``dict`` (carry it in a first, short
call, which the machine keeps while it stays warm) and ``stack``. ``kit.json`` beside them says what each
holds, why, and how many bytes would travel with each.

    python scripts/device_kit.py --plan           # what would be carried and why, nothing downloaded
    python scripts/device_kit.py                  # build .whl/dict.tar.xz, .whl/stack.tar.xz, .whl/kit.json
    python scripts/device_kit.py --python-version 3.11 --out build/kit-rehearsal   # for a rehearsal here
    python scripts/device_kit.py --check .device-site   # on the machine (device_day.sh): imports, CONFLICT lines

Run it with the workshop's ``.venv`` Python (``make device-kit``): the closure and its versions are read from
that environment, which ``make setup`` installed from the pins.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import importlib.util
import json
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIB = 2**20

_spec = importlib.util.spec_from_file_location("hosted_setup", ROOT / "scripts" / "hosted_setup.py")
hosted_setup = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hosted_setup)
canonical = hosted_setup.canonical

# The image's large compiled libraries: they run at its version rather than travel (numpy's wheel alone is 16 MB),
# and --check reports on the machine any requirement of the carried stack that their versions do not meet.
IMAGE_KEEPS = {
    "numpy": "16 MB wheel", "pandas": "12 MB wheel", "pyarrow": "40 MB wheel", "matplotlib": "9 MB wheel",
    "pillow": "matplotlib's, compiled", "fonttools": "matplotlib's, compiled", "contourpy": "matplotlib's, compiled",
    "kiwisolver": "matplotlib's, compiled", "hf-xet": "the Hub's download backend (3 MB): nothing is downloaded there",
}
# requirements.txt lines the GPU checks do not use: the browser UI, and the test-only browser driver.
NOT_RUN = frozenset({"jupyterlab", "playwright"})
# Distributions in the closure that no GPU check imports, with why (checked against the pinned sources).
LEFT_OUT = {
    "jedi": "IPython imports it only for tab completion (IPython/core/completer.py: find_spec('jedi'))",
    "debugpy": "ipykernel's debugger is optional (ipykernel/debugger.py: try: import debugpy)",
    "widgetsnbextension": "the widgets' browser assets: nothing in a headless kernel loads them",
    "jupyterlab-widgets": "the widgets' browser assets: nothing in a headless kernel loads them",
    "pydantic": "only typer needs it, for huggingface_hub's command line, which no check runs",
    "pydantic-core": "pydantic's",
    "annotated-types": "pydantic's",
    "typing-inspection": "pydantic's",
}
# MeCab's dictionary rides alone: with it the stack would not fit in one call.
PART_OF = {"unidic-lite": "dict"}
PARTS = ("dict", "stack")
# Room kept free under the carry limit (the tree grows a little between a kit's build and its use).
MARGIN_MIB = 2


@dataclass(frozen=True)
class Carried:
    name: str
    version: str
    reason: str
    part: str


def load_image(path: Path) -> dict:
    image = json.loads(path.read_text(encoding="utf-8"))
    image["packages"] = {canonical(name): version for name, version in image["packages"].items()}
    return image


def closure(lines: list[str], python_version: str | None = None) -> tuple[dict[str, str], set[str]]:
    """({name: installed version} of every distribution the requirement lines pull in, names of the lines
    themselves), read from this Python's environment; the torch family and NOT_RUN lines are not followed.
    Markers are evaluated for ``python_version`` (the machine's) when given."""
    from packaging.requirements import Requirement

    marker_env = {"extra": ""}
    if python_version:
        marker_env |= {"python_version": python_version, "python_full_version": python_version + ".0"}

    direct = {canonical(name) for name in map(hosted_setup.requirement_name, lines) if name}
    direct = {name for name in direct if name not in NOT_RUN and not hosted_setup.is_torch_family(name)}
    found: dict[str, str] = {}
    stack = sorted(direct)
    while stack:
        name = stack.pop()
        if name in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise SystemExit(f"{name} is not installed in {sys.prefix}: run this with the workshop's .venv "
                             f"(make device-kit), which make setup installed from requirements.txt") from None
        found[name] = dist.version
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker and not requirement.marker.evaluate(marker_env):
                continue
            dependency = canonical(requirement.name)
            if not hosted_setup.is_torch_family(dependency) and not dependency.startswith("cuda-"):
                stack.append(dependency)
    return dict(sorted(found.items())), direct


def select(found: dict[str, str], direct: set[str], image: dict) -> tuple[list[Carried], dict[str, str]]:
    """(what to carry, {name: why it is not carried}) for every distribution of the closure."""
    carried, kept = [], {}
    packages = image["packages"]
    for name, version in found.items():
        if name in LEFT_OUT:
            kept[name] = "left out: " + LEFT_OUT[name]
            continue
        if name not in packages:
            carried.append(Carried(name, version, "not in the image", PART_OF.get(name, "stack")))
            continue
        known = packages[name]
        if known == version:
            kept[name] = f"the image's ({known}, the pin)"
        elif name in IMAGE_KEEPS:
            kept[name] = (f"the image's ({known if known else 'version read on the machine'}); pinned here {version}; "
                          f"{IMAGE_KEEPS[name]}")
        else:
            reason = f"the image has {known}" if known else "the image's version is unknown"
            carried.append(Carried(name, version, reason, PART_OF.get(name, "stack")))
    return carried, kept


def tree_bytes(root: Path = ROOT) -> int:
    """Bytes of what travels with every call: tracked files plus untracked files git does not ignore."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                            check=True, capture_output=True).stdout.split(b"\0")
    return sum((root / name.decode()).stat().st_size for name in listed if name and (root / name.decode()).is_file())


def check_budget(part_bytes: dict[str, int], tree: int, limit_mib: int, margin_mib: int = MARGIN_MIB) -> list[str]:
    """One line per part that would not travel beside the tree within the carry limit (empty: all fit)."""
    room = (limit_mib - margin_mib) * MIB - tree
    return [f"{part}: {size / MIB:.1f} MiB + the tree {tree / MIB:.1f} MiB > {limit_mib - margin_mib} MiB "
            f"({limit_mib} MiB limit less {margin_mib} MiB margin)" for part, size in part_bytes.items() if size > room]


def platform_args(python_version: str) -> list[str]:
    tags = ["manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64", "manylinux_2_5_x86_64",
            "manylinux_2_24_x86_64", "manylinux_2_27_x86_64", "manylinux_2_28_x86_64", "manylinux_2_31_x86_64",
            "manylinux_2_34_x86_64"]
    args = ["--python-version", python_version, "--implementation", "cp", "--only-binary=:all:"]
    for tag in tags:
        args += ["--platform", tag]
    return args


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args], check=True)


def fetch(items: list[Carried], wheels: Path, python_version: str) -> None:
    """A wheel for every carried pin, for the machine's Python; sdist-only pins (rouge-score, unidic-lite) are
    built here, and must come out pure-Python."""
    wheels.mkdir(parents=True, exist_ok=True)
    for item in items:
        spec = f"{item.name}=={item.version}"
        try:
            pip("download", "--no-deps", "-d", str(wheels), *platform_args(python_version), spec)
        except subprocess.CalledProcessError:
            before = set(wheels.iterdir())
            pip("wheel", "--no-deps", "-w", str(wheels), spec)
            built = [path.name for path in set(wheels.iterdir()) - before]
            if not all(name.endswith("-py3-none-any.whl") or name.endswith("-py2.py3-none-any.whl") for name in built):
                raise SystemExit(f"{spec} has no wheel for Python {python_version} on manylinux x86-64, and the one "
                                 f"built here is not pure Python ({built}): carry it some other way")


def wheel_for(wheels: Path, item: Carried) -> Path:
    stem = canonical(item.name).replace("-", "_")
    for path in wheels.glob("*.whl"):
        name, version = path.name.split("-")[:2]
        if canonical(name).replace("-", "_") == stem and version == item.version:
            return path
    raise SystemExit(f"no wheel for {item.name}=={item.version} under {wheels}")


def trim_bitsandbytes(site: Path, cuda: str) -> list[str]:
    """Remove bitsandbytes' native libraries for other CUDA/ROCm/XPU versions (bitsandbytes/cextension.py loads
    the one matching torch.version.cuda); returns the names removed."""
    keep = {f"libbitsandbytes_cuda{cuda}.so", "libbitsandbytes_cpu.so"}
    removed = []
    for lib in sorted((site / "bitsandbytes").glob("libbitsandbytes_*.so")):
        if lib.name not in keep:
            lib.unlink()
            removed.append(lib.name)
    if not (site / "bitsandbytes" / f"libbitsandbytes_cuda{cuda}.so").is_file():
        raise SystemExit(f"bitsandbytes ships no libbitsandbytes_cuda{cuda}.so: the image's torch needs it")
    return removed


def pack(site: Path, archive: Path) -> int:
    """site/ as one .tar.xz (xz -6 on every core when the xz tool is here, else Python's lzma)."""
    archive.unlink(missing_ok=True)
    if shutil.which("xz"):
        subprocess.run(["tar", "-C", str(site), "-I", "xz -6 -T0", "-cf", str(archive), "."], check=True)
    else:
        with tarfile.open(archive, "w:xz", preset=6) as tar:
            tar.add(site, arcname=".")
    return archive.stat().st_size


# The modules whose import the GPU run depends on: --check prints where each is imported from, so machine.txt
# shows that the kit's copy shadows the image's.
SHADOW_CHECK = ("transformers", "tokenizers", "huggingface_hub", "peft", "trl", "accelerate", "bitsandbytes",
                "datasets", "fugashi", "unidic_lite", "nbmake", "ipykernel", "pytest", "numpy", "pandas")


def conflicts(site: Path) -> list[str]:
    """One line per requirement of a distribution installed under ``site`` that the versions this Python sees
    (first on sys.path wins, as at import) do not satisfy; markers are evaluated for this Python."""
    from packaging.requirements import Requirement

    lines = []
    for dist in sorted(metadata.distributions(path=[str(site)]), key=lambda d: canonical(d.metadata["Name"])):
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue
            name = canonical(requirement.name)
            try:
                seen = metadata.version(name)
            except metadata.PackageNotFoundError:
                if name not in LEFT_OUT:
                    lines.append(f"CONFLICT {dist.metadata['Name']} {dist.version} needs {requirement}: not installed")
                continue
            if requirement.specifier and not requirement.specifier.contains(seen, prereleases=True):
                lines.append(f"CONFLICT {dist.metadata['Name']} {dist.version} needs {requirement}, sees {seen}")
    return lines


def check(site: Path) -> int:
    """On the machine: what runs from where, and every unmet requirement of the carried stack."""
    import importlib

    for module in SHADOW_CHECK:
        try:
            imported = importlib.import_module(module)
            print(f"{module} {getattr(imported, '__version__', '?')} {imported.__file__}")
        except Exception as error:  # the report goes on: one broken import is itself the finding
            print(f"{module} IMPORT FAILED: {error!r}")
    found = conflicts(site)
    print("\n".join(found) if found else f"no conflicts: every requirement of the stack under {site} is met")
    return 1 if found else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", type=Path, default=ROOT / "configs" / "device" / "nvidia-h200.json")
    ap.add_argument("--python-version", default=None, help="the machine's Python (default: the image's)")
    ap.add_argument("--out", type=Path, default=ROOT / ".whl")
    ap.add_argument("--plan", action="store_true", help="print what would be carried and why; build nothing")
    ap.add_argument("--check", type=Path, metavar="SITE", help="on the machine: imports and unmet requirements")
    args = ap.parse_args(argv)
    if args.check:
        return check(args.check)

    image = load_image(args.image)
    python_version = args.python_version or image["python"]
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    found, direct = closure(lines, python_version)
    carried, kept = select(found, direct, image)
    tree = tree_bytes()
    print(f"image {image['kind']} (Python {image['python']}, torch {image['torch']}); kit for Python {python_version}")
    print(f"closure of requirements.txt: {len(found)} distributions; carried {len(carried)}, not carried {len(kept)}")
    for item in carried:
        print(f"  carry [{item.part}] {item.name}=={item.version}: {item.reason}")
    for name, why in kept.items():
        print(f"  not carried {name}=={found[name]}: {why}")
    print(f"the tree that travels with every call: {tree / MIB:.1f} MiB of {image['carry_limit_mib']} MiB")
    if args.plan:
        return 0

    work = args.out / "work"
    shutil.rmtree(work, ignore_errors=True)
    wheels = work / "wheels"
    fetch(carried, wheels, python_version)
    sizes, removed = {}, []
    for part in PARTS:
        items = [item for item in carried if item.part == part]
        site = work / part
        pip("install", "--no-deps", "--no-compile", "--no-index", "--target", str(site),
            *platform_args(python_version), *(str(wheel_for(wheels, item)) for item in items))
        if any(item.name == "bitsandbytes" for item in items):
            removed = trim_bitsandbytes(site, image["torch_cuda"])
        shutil.rmtree(site / "bin", ignore_errors=True)  # console scripts with this machine's shebang
        sizes[part] = pack(site, args.out / f"{part}.tar.xz")
        print(f"{part}.tar.xz: {sizes[part] / MIB:.1f} MiB ({len(items)} distributions)")
    shutil.rmtree(work)
    over = check_budget(sizes, tree, image["carry_limit_mib"])
    manifest = {
        "image": args.image.relative_to(ROOT).as_posix() if args.image.is_relative_to(ROOT) else str(args.image),
        "python_version": python_version,
        "parts": {part: {"bytes": sizes[part], "with_tree_mib": round((sizes[part] + tree) / MIB, 1),
                         "carried": {item.name: {"version": item.version, "why": item.reason}
                                     for item in carried if item.part == part}} for part in PARTS},
        "not_carried": {name: {"version": found[name], "why": why} for name, why in kept.items()},
        "bitsandbytes_libraries_removed": removed,
        "tree_bytes": tree,
        "over_budget": over,
    }
    (args.out / "kit.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    for line in over:
        print("OVER THE CARRY LIMIT:", line, file=sys.stderr)
    print(f"wrote {args.out}/kit.json")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
