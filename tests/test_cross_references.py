"""Every cross-reference in the lessons resolves: "N 節" (in the same notebook, or "0X の N 節" in another),
README「…」 section names, notebook file names; sections are numbered without gaps; no "セル N" (cells have no
numbers a participant can see). Prose goes stale when a section moves; this catches it before a participant does."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = {p.name[:2]: p for p in sorted((ROOT / "notebooks").glob("0[1-9]_*.ipynb"))}
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SECTION = re.compile(r"^## (\d+)\. ", re.M)
# "7 節", "7〜9 節", "01 の 7 節", "04 の 7〜9 節" (full-width or ASCII digits are not mixed in this project)
REFERENCE = re.compile(r"(?:(0[1-9]) ?[の・] ?)?(\d+)(?: ?[〜~-] ?(\d+))? ?節")
ROW_NOTEBOOK = re.compile(r"\*\*(0[1-9])\*\*")  # a timetable row "| 1:10 | **04** 1〜5 節 …" is about notebook 04
README_REF = re.compile(r"README ?(?:の ?)?「([^」]+)」")
DOC_REF = re.compile(r"`?(docs/[\w-]+\.md)`? ?(?:の ?)?「([^」]+)」")  # `docs/measurements.md`「CI の結果チェック」


def notebook_texts(path: Path) -> tuple[str, str]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    markdown = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    return markdown, code


def sections(number: str) -> list[int]:
    markdown, _ = notebook_texts(NOTEBOOKS[number])
    return [int(n) for n in SECTION.findall(markdown)]


def readme_headings(path: Path = ROOT / "README.md") -> list[str]:
    """A page's headings and its bold paragraph labels ("**CI の結果チェック**:"), without markup."""
    text = path.read_text(encoding="utf-8")
    names = [line.lstrip("#") for line in text.splitlines() if line.startswith("#")]
    names += re.findall(r"^\*\*([^*]+)\*\*", text, re.M)
    return [re.sub(r"[`*]", "", name).strip() for name in names]


def unresolved(text: str, here: str | None) -> list[str]:
    bad = []
    for match in REFERENCE.finditer(text):
        notebook, first, last = match.group(1) or here, int(match.group(2)), match.group(3)
        if notebook is None:
            line = text[text.rfind("\n", 0, match.start()) + 1:match.start()]
            rows = ROW_NOTEBOOK.findall(line)
            notebook = rows[-1] if rows else None
        if notebook is None:
            bad.append(f"{match.group(0)!r} (which notebook?)")
            continue
        have = set(sections(notebook))
        wanted = range(first, int(last) + 1) if last else [first]
        if not set(wanted) <= have:
            context = text[max(0, match.start() - 30):match.end() + 10].replace("\n", " ")
            bad.append(f"{notebook}: {match.group(0)!r} but sections are {sorted(have)}: …{context}…")
    return bad


@pytest.mark.parametrize("number", sorted(NOTEBOOKS))
def test_sections_are_numbered_without_gaps(number):
    numbers = sections(number)
    assert numbers, f"{number}: no numbered sections"
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))) and numbers[0] in (0, 1), \
        f"{NOTEBOOKS[number].name}: sections {numbers}"


@pytest.mark.parametrize("number", sorted(NOTEBOOKS))
def test_section_references_in_a_notebook_resolve(number):
    markdown, code = notebook_texts(NOTEBOOKS[number])
    assert unresolved(markdown + "\n" + code, number) == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_section_references_in_the_docs_resolve(doc):
    assert unresolved(doc.read_text(encoding="utf-8"), None) == []


@pytest.mark.parametrize("source", [*NOTEBOOKS.values(), *DOCS], ids=lambda p: p.name)
def test_readme_section_names_and_files_exist(source):
    text = "\n".join(notebook_texts(source)) if source.suffix == ".ipynb" else source.read_text(encoding="utf-8")
    headings = readme_headings()
    missing = [name for name in README_REF.findall(text) if not any(re.sub(r"[`*]", "", name) in h for h in headings)]
    assert missing == [], f"README has no section named {missing}"
    for page, name in DOC_REF.findall(text):
        assert (ROOT / page).is_file(), page
        assert any(re.sub(r"[`*]", "", name) in h for h in readme_headings(ROOT / page)), f"{page} has no section named {name}"
    for name in re.findall(r"\b(0[1-9]_[a-z_]+\.ipynb)", text):
        assert (ROOT / "notebooks" / name).is_file(), name
    for path in re.findall(r"`((?:docs|scripts|utils|benchmarks|configs|hosted)/[\w./-]+\.\w+)`", text):
        assert (ROOT / path).is_file(), path


@pytest.mark.parametrize("number", sorted(NOTEBOOKS))
def test_no_cell_numbers(number):
    markdown, _ = notebook_texts(NOTEBOOKS[number])
    assert not re.search(r"セル ?\d+", markdown), "cells have no visible numbers: name the section instead"
