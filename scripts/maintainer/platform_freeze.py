#!/usr/bin/env python
"""Write the part of a hosted platform's published ``pip freeze`` that the workshop touches (hosted/platforms/*.txt).

tests/test_hosted_replica.py builds a replica of the platform's runtime from that file (its versions of the data
stack, the kernel and the libraries the setup replaces) and runs the all-in-one notebook in it;
tests/test_hosted_setup.py resolves the hosted requirements against it for the platform's Python. "Touches" = the
dependency closure of the hosted requirements (requirements.txt less the torch family and the notebook stack, as
scripts/participant/hosted_setup.py installs them) and of the kernel (ipykernel, ipywidgets), read from the installed pinned stack
(.venv), plus torchao (peft refuses an old one; the setup removes it).

Refresh it when the platform publishes a new freeze (Colab: github.com/googlecolab/backend-info, pip-freeze.gpu.txt
and os-info-gpu.txt), from .venv after `make setup`:

    .venv/bin/python scripts/maintainer/platform_freeze.py pip-freeze.gpu.txt --name "Google Colab (GPU runtime)" \\
        --source https://github.com/googlecolab/backend-info/blob/<commit>/pip-freeze.gpu.txt --date YYYY-MM-DD \\
        --python 3.13 > hosted/platforms/colab.txt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run by its path: the repository root
from scripts.participant import hosted_setup  # noqa: E402
from scripts.instructor.stack import closure  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
KERNEL = ("ipykernel", "ipywidgets")
EXTRA = ("torch", "torchao")


def touched_lines(freeze: list[str]) -> list[str]:
    kept, _ = hosted_setup.split_requirements((ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines())
    names = set(closure([hosted_setup.requirement_name(line) for line in kept] + list(KERNEL))) | set(EXTRA)
    out = []
    for line in freeze:
        line = line.strip()
        if "==" in line and not line.startswith("#") and hosted_setup.canonical(line.split("==", 1)[0]) in names:
            out.append(line)
    return sorted(out, key=str.lower)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("freeze", type=Path, help="the platform's published pip freeze")
    ap.add_argument("--name", required=True)
    ap.add_argument("--source", required=True, help="where the freeze was published (a URL with its commit)")
    ap.add_argument("--date", required=True, help="the date of that freeze")
    ap.add_argument("--python", required=True, help="the platform's Python (major.minor)")
    args = ap.parse_args(argv)
    lines = touched_lines(args.freeze.read_text(encoding="utf-8").splitlines())
    print(f"# {args.name}: the packages the workshop touches, from the platform's published pip freeze.")
    print(f"# source: {args.source}")
    print(f"# date: {args.date}")
    print(f"# python: {args.python}")
    print("# Written by scripts/maintainer/platform_freeze.py (see there how to refresh it); read by tests/test_hosted_replica.py.")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
