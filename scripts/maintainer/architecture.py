#!/usr/bin/env python
"""The import picture of docs/architecture.md, generated from the code (a Mermaid graph GitHub draws).

Every import statement of every module counts, those inside functions too (a function-level import hides a cycle
from Python, not from a reader). ``--check`` exits 1 when the page's picture is not what the code gives now
(tests/test_architecture.py runs it).

    python -m scripts.maintainer.architecture           # rewrite the picture in docs/architecture.md
    python -m scripts.maintainer.architecture --check
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "architecture.md"
BEGIN, END = "<!-- import-graph: begin (python -m scripts.maintainer.architecture) -->", "<!-- import-graph: end -->"
# utils' packages from the bottom layer up: a package imports only packages before it in this list.
LAYERS = ("machine", "recipe", "evaluation", "sweep", "classroom")
SCRIPT_GROUPS = ("participant", "instructor", "maintainer", "ci")


def module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(source: str, package: str) -> set[str]:
    """Every dotted name an import statement of ``source`` could refer to (with its origin for ``from x import y``);
    relative imports are resolved against ``package``, the package the code lives in."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            found |= {origin} | {f"{origin}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def file_imports(path: Path, name: str) -> set[str]:
    """``imported_names`` of a module file named ``name`` (a package's ``__init__`` is its own package)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    return imported_names(path.read_text(encoding="utf-8"), package)


def import_graph(package: Path, known: dict[str, Path] | None = None) -> dict[str, set[str]]:
    """{module of the package: modules of ``known`` (default: the package's own) it imports}."""
    modules = {module_name(p, package): p for p in package.rglob("*.py")}
    known = modules if known is None else known
    return {name: {t for t in file_imports(path, name) if t in known and t != name} for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node], _ = "open", stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        state[node], _ = "done", stack.pop()

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def group(module: str, depth: int = 2) -> str:
    """'utils.recipe.training' -> 'utils.recipe'; 'utils' stays 'utils'."""
    return ".".join(module.split(".")[:depth])


def package_edges(root: Path = ROOT) -> Counter:
    """{(from group, to group): number of module-level import links} for utils' packages and the script groups."""
    utils_modules = {module_name(p, root / "utils"): p for p in (root / "utils").rglob("*.py")
                     if p.name != "__init__.py" or p.parent == root / "utils"}  # a subpackage's __init__ is its docstring
    edges: Counter = Counter()
    for name, targets in import_graph(root / "utils", known=utils_modules).items():
        for target in targets:
            if group(name) != group(target) and target != "utils" and name != "utils":
                edges[(group(name), group(target))] += 1
    script_groups = {f"scripts.{sub}" for sub in SCRIPT_GROUPS}
    scripts = import_graph(root / "scripts", known=utils_modules | {
        module_name(p, root / "scripts"): p for p in (root / "scripts").rglob("*.py")})
    for name, targets in scripts.items():
        if group(name) not in script_groups:
            continue
        for target in targets:
            to = "utils" if target == "utils" else group(target)
            if to != group(name) and to != "scripts":
                edges[(group(name), to)] += 1
    for source, node in (("benchmarks", "benchmarks"), ("notebooks", "notebooks")):
        for target in external_imports(root / source):
            if target in utils_modules:
                edges[(node, "utils" if target == "utils" else group(target))] += 1
    return edges


def external_imports(folder: Path) -> list[str]:
    """The dotted names imported by the benchmark scripts or the notebooks' code cells (one entry per file and name)."""
    import json

    found = []
    for path in sorted(folder.glob("*.py")) + sorted(folder.glob("*.ipynb")):
        if path.suffix == ".ipynb":
            cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
            code = "\n".join("\n".join(line for line in "".join(c["source"]).splitlines()
                                       if not line.lstrip().startswith(("!", "%")))
                             for c in cells if c["cell_type"] == "code")
            names = imported_names(code, folder.name)
        else:
            names = file_imports(path, f"{folder.name}.{path.stem}")
        found += sorted(names)
    return found


def modules_of(package: str, root: Path = ROOT) -> list[str]:
    folder = root / Path(*package.split("."))
    return sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__") + sorted(
        p.name + "/" for p in folder.iterdir() if p.is_dir() and not (p / "__init__.py").exists()
        and p.name != "__pycache__" and any(p.glob("*.py")))


def mermaid(root: Path = ROOT) -> str:
    lines = ["```mermaid", "flowchart BT"]
    for layer in LAYERS:
        lines.append(f'  {layer}["utils.{layer}<br/><small>{", ".join(modules_of("utils." + layer, root))}</small>"]')
    for sub in SCRIPT_GROUPS:
        lines.append(f'  s_{sub}(["scripts.{sub}<br/><small>{", ".join(modules_of("scripts." + sub, root))}</small>"])')
    lines.append('  notebooks[/"notebooks 01–08"/]')
    lines.append('  benchmarks(["benchmarks<br/><small>gpu_qlora, token_budget, activation_bytes</small>"])')
    ids = {f"utils.{layer}": layer for layer in LAYERS} | {f"scripts.{sub}": f"s_{sub}" for sub in SCRIPT_GROUPS}
    ids |= {"notebooks": "notebooks", "benchmarks": "benchmarks"}
    for (a, b), n in sorted(package_edges(root).items()):
        if a in ids and b in ids:
            lines.append(f"  {ids[a]} -->|{n}| {ids[b]}")
    lines.append("```")
    return "\n".join(lines)


def page_with_picture(text: str, picture: str) -> str:
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{picture}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if docs/architecture.md's picture is out of date")
    args = ap.parse_args(argv)
    text = PAGE.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        print(f"{PAGE.relative_to(ROOT)} has no {BEGIN} ... {END} block", file=sys.stderr)
        return 1
    new = page_with_picture(text, mermaid())
    if args.check:
        if new != text:
            print(f"{PAGE.relative_to(ROOT)}'s import picture is out of date: run python -m "
                  "scripts.maintainer.architecture", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(new, encoding="utf-8")
    print(f"wrote the import picture of {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
