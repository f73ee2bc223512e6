"""The layout shows the architecture (docs/architecture.md): utils has no import cycles, counting the imports inside
functions too (a function-level import hides a cycle from Python, not from a reader); its packages form layers; the
page's import picture is the code's; scripts are imported as modules, never loaded by file path; README is a front
door."""

from __future__ import annotations

import re
from pathlib import Path

from scripts.maintainer import architecture as arch

ROOT = Path(__file__).resolve().parents[1]


def test_utils_has_no_import_cycles():
    assert arch.cycles(arch.import_graph(ROOT / "utils")) == []


def test_a_cycle_through_a_function_level_import_is_found(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from .b import g\n\ndef f():\n    return g()\n")
    (package / "b.py").write_text("def g():\n    from .a import f  # hidden from Python at import time\n    return f\n")
    (package / "c.py").write_text("from pkg import a\n")
    graph = arch.import_graph(package)
    assert graph["pkg.c"] == {"pkg", "pkg.a"}  # the package itself and its module
    assert arch.cycles(graph) == [["pkg.a", "pkg.b", "pkg.a"]]


def layer_violations(root: Path = ROOT) -> list[str]:
    """Imports from a utils package to a package above it (docs/architecture.md's table)."""
    order = {f"utils.{name}": i for i, name in enumerate(arch.LAYERS)}
    return [f"{a} -> {b}" for (a, b) in arch.package_edges(root) if a in order and b in order and order[b] > order[a]]


def test_utils_packages_are_layers():
    assert sorted(p.name for p in (ROOT / "utils").iterdir() if (p / "__init__.py").is_file()) == sorted(arch.LAYERS)
    assert sorted(p.name for p in (ROOT / "utils").glob("*.py")) == ["__init__.py"], "every module is in a package"
    assert layer_violations() == []
    machine = arch.import_graph(ROOT / "utils")
    assert not {t for m, ts in machine.items() if m.startswith("utils.machine") for t in ts
                if not t.startswith("utils.machine")}, "utils.machine imports nothing else of utils"


def test_a_layer_violation_is_found(tmp_path):
    for layer in arch.LAYERS:
        (tmp_path / "utils" / layer).mkdir(parents=True)
        (tmp_path / "utils" / layer / "__init__.py").write_text("")
        (tmp_path / "utils" / layer / "x.py").write_text("")
    (tmp_path / "utils" / "__init__.py").write_text("")
    (tmp_path / "utils" / "recipe" / "y.py").write_text("def f():\n    from utils.evaluation.x import g\n")
    for group in arch.SCRIPT_GROUPS:
        (tmp_path / "scripts" / group).mkdir(parents=True)
    for folder in ("benchmarks", "notebooks"):
        (tmp_path / folder).mkdir()
    assert layer_violations(tmp_path) == ["utils.recipe -> utils.evaluation"]


def test_script_groups_import_what_the_table_allows():
    allowed = {"scripts.participant": set(), "scripts.instructor": {"scripts.participant"}}
    for (a, b) in arch.package_edges():
        if a in allowed and b.startswith("scripts."):
            assert b in allowed[a], f"{a} imports {b}"


def test_the_import_picture_is_the_codes():
    assert arch.main(["--check"]) == 0, "run: python -m scripts.maintainer.architecture"


def test_no_script_is_loaded_by_its_file_path():
    """Tests and scripts import scripts as modules (scripts.participant.lab); running one as a program is fine."""
    found = []
    script_names = "|".join(sorted(p.stem for p in ROOT.glob("scripts/*/*.py") if p.stem != "__init__"))
    bare = rf"^\s*(from|import) ({script_names})\b"  # works only with a script folder on sys.path
    for path in [*ROOT.glob("tests/*.py"), *ROOT.glob("scripts/**/*.py"), *ROOT.glob("benchmarks/*.py")]:
        text = path.read_text(encoding="utf-8")
        if path.name == "test_architecture.py":
            continue
        for pattern in (r"spec_from_file_location", r"sys\.path\.insert\([^)]*(\"scripts\"|'scripts'|/ \"benchmarks\"|BENCH)",
                        r"runpy\.run_path\([^)]*scripts", bare):
            if re.search(pattern, text, re.M):
                found.append(f"{path.relative_to(ROOT)}: {pattern}")
    assert found == []


def test_the_readme_is_a_front_door():
    """What the workshop is, the notebooks, the commands, the three ways to run it, then pointers to docs/."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 160, f"README.md has {len(lines)} lines: move details to a docs/ page"


SCAFFOLDING = re.compile(r"\bissues? \d+|\(issue|lent (GPU|machine)|borrowed|device[ _-]kit|device_day|nvidia-h200|"
                         r"/work/\.library|development session|this session|carry limit|貸し出", re.IGNORECASE)


def test_the_repository_speaks_of_the_workshop_only():
    """No text about how the project was built (a particular test machine, work sessions, issue numbers)."""
    import subprocess

    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    found = []
    for name in files:
        path = ROOT / name
        if name == "tests/test_architecture.py" or path.suffix in (".safetensors", ".png", ".parquet", ".bin") \
                or name.startswith("hosted/platforms/") or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        found += [f"{name}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}" for m in SCAFFOLDING.finditer(text)]
    assert found == []
