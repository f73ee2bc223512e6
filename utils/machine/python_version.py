"""Is this Python new enough for the pinned libraries? Checked before ``make setup`` creates the venv.

transformers 5.23 and TRL 1.16 require Python >= 3.11; on an older interpreter pip only says "No matching
distribution found for transformers==5.23.0", which does not name the real cause. Ubuntu 22.04, a common GPU VM
image, ships 3.10. The minimum is read from ``requires-python`` in pyproject.toml (the one place it is written).

Runs as a script with any Python 3 (``python3 utils/machine/python_version.py``, as the Makefile does) and is importable
as ``utils.machine.python_version`` (the preflight's first row). Standard library only, no syntax newer than 3.6.
"""

import re
import sys
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"

UBUNTU_FIX = (
    "Ubuntu 22.04 では deadsnakes の PPA から Python 3.11 を入れ、venv をその Python で作り直してください:\n"
    "  sudo add-apt-repository -y ppa:deadsnakes/ppa && sudo apt update\n"
    "  sudo apt install -y python3.11 python3.11-venv python3.11-dev\n"
    "  make setup PYTHON=python3.11\n"
    "apt を使えない環境では uv でも入れられます: `uv python install 3.11` の後、"
    "`make setup PYTHON=$(uv python find 3.11)`。"
)


def minimum_python(pyproject=PYPROJECT):
    """(major, minor) from pyproject.toml's ``requires-python = ">=X.Y"``."""
    text = Path(pyproject).read_text(encoding="utf-8")
    match = re.search(r'^requires-python\s*=\s*">=\s*(\d+)\.(\d+)"', text, re.MULTILINE)
    if not match:
        raise ValueError(f"{pyproject}: requires-python = \">=X.Y\" が見つかりません")
    return int(match.group(1)), int(match.group(2))


def check(version_info=None, executable=None):
    """(ok, message): whether this interpreter satisfies the minimum, in Japanese."""
    version_info = tuple(sys.version_info[:3] if version_info is None else version_info[:3])
    executable = executable or sys.executable
    need = minimum_python()
    found = ".".join(str(part) for part in version_info)
    wanted = "%d.%d" % need
    if tuple(version_info[:2]) >= need:
        return True, "Python %s (%s) は %s 以上です" % (found, executable, wanted)
    return False, ("Python %s (%s) が見つかりましたが、このワークショップの固定版 (transformers, TRL) には Python %s 以上が"
                   "必要です (古い Python では pip が「No matching distribution」とだけ表示して止まります)。\n%s"
                   % (found, executable, wanted, UBUNTU_FIX))


def main():
    ok, message = check()
    print(("python ok: " if ok else "エラー: ") + message, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
