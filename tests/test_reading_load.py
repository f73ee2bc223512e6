"""The core path (01-05) is a hands-on, not a reading assignment: its prose outside the 講師メモ stays within a budget,
and each notebook's time in its header and in docs/timetable.md covers what it asks of a participant, computed from the
measured reading load (characters at a reading speed), its exercises and the notebook's own run time.

Deep dives live in the optional notebooks (06, 07, 08), which these limits do not bind."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = {p.name[:2]: p for p in sorted((ROOT / "notebooks").glob("0[1-5]_*.ipynb"))}
BUDGET = 25_000  # non-whitespace markdown characters outside the 講師メモ, 01-05 together
READING_SPEED = 500  # Japanese characters per minute (technical prose, read once)
EXERCISE_MINUTES = 5  # each やってみよう: read, write, check
INSTRUCTOR = "## 講師メモ"  # the instructor's notes: a markdown cell of their own, not read by participants
TIMETABLE = (ROOT / "docs" / "timetable.md").read_text(encoding="utf-8")


def prose(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    texts = ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]
    return "\n".join(text for text in texts if not text.startswith(INSTRUCTOR))


def load(path: Path) -> int:
    return len(re.sub(r"\s", "", prose(path)))


def exercises(path: Path) -> int:
    return len(re.findall(r"^### やってみよう", prose(path), re.M))


def header_minutes(path: Path) -> int:
    """The cpu row's 'with explanation' minutes in the notebook's 所要時間 table."""
    header = "".join(json.loads(path.read_text(encoding="utf-8"))["cells"][0]["source"])
    row = next(line for line in header.splitlines() if line.startswith("| `cpu`"))
    return int(re.match(r"\s*(\d+) 分", row.split("|")[-2]).group(1))


def slots() -> list[tuple[int, int, str]]:
    """(start, minutes, row) of the 180-minute plan: each row runs until the next one starts, the last for the
    minutes its cpu column gives."""
    rows = [line for line in TIMETABLE.splitlines() if re.match(r"^\| \d:\d\d \|", line)]
    starts = [int(line[2]) * 60 + int(line[4:6]) for line in rows]
    last = int(re.match(r"\s*(\d+) 分", rows[-1].rstrip("|").split("|")[-1]).group(1))
    ends = starts[1:] + [starts[-1] + last]
    return [(a, b - a, row) for a, b, row in zip(starts, ends, rows)]


def timetable_minutes(number: str) -> int:
    """Minutes the timetable gives the notebook: its rows ('**0N** …') added up."""
    return sum(minutes for _, minutes, row in slots() if f"**{number}**" in row)


def needed_minutes(path: Path) -> float:
    return load(path) / READING_SPEED + EXERCISE_MINUTES * exercises(path)


def test_the_core_path_reads_within_its_budget():
    loads = {number: load(path) for number, path in CORE.items()}
    assert sum(loads.values()) <= BUDGET, f"01-05 carry {sum(loads.values()):,} characters of prose (budget {BUDGET:,}): {loads}"


@pytest.mark.parametrize("number", sorted(CORE))
def test_the_instructors_notes_are_a_cell_of_their_own(number):
    """Otherwise a 講師メモ heading inside a lesson cell would hide where the participant's text ends."""
    cells = json.loads(CORE[number].read_text(encoding="utf-8"))["cells"]
    for cell in cells:
        text = "".join(cell["source"])
        assert INSTRUCTOR not in text or text.startswith(INSTRUCTOR), f"{CORE[number].name} {cell.get('id')}"


def test_the_budget_counts_what_a_participant_reads():
    """The measure itself: the 講師メモ is left out, everything else in a markdown cell counts, code does not."""
    cell = {"cell_type": "markdown", "source": ["## 3. 節\n本文 です\n## まとめ\nおわり"]}
    notes = {"cell_type": "markdown", "source": ["## 講師メモ\n- 止まる"]}
    code = {"cell_type": "code", "source": ["print('長いコード')"]}
    path = ROOT / "build" / "reading_load_probe.ipynb"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"cells": [cell, notes, code]}), encoding="utf-8")
    try:
        assert load(path) == len("##3.節本文です##まとめおわり")
    finally:
        path.unlink()


@pytest.mark.parametrize("number", sorted(CORE))
def test_each_notebooks_time_covers_its_reading_and_exercises(number):
    path = CORE[number]
    need = needed_minutes(path)
    assert math.ceil(need) <= header_minutes(path), (
        f"{path.name}: {load(path):,} characters ({load(path) / READING_SPEED:.1f} min at {READING_SPEED}/min) + "
        f"{exercises(path)} exercise(s) = {need:.1f} min, but its header gives {header_minutes(path)} min")
    assert header_minutes(path) <= timetable_minutes(number), (
        f"{path.name}: the header gives {header_minutes(path)} min, docs/timetable.md only {timetable_minutes(number)}")


def test_the_timetable_fills_three_hours():
    plan = slots()
    assert plan[0][0] == 0 and all(minutes > 0 for _, minutes, _ in plan)
    assert plan[-1][0] + plan[-1][1] == 180
    for _, minutes, row in plan:
        if "**" not in row:  # a row that is not a notebook (start, sharing, questions) states its minutes
            assert row.rstrip("|").split("|")[-1].strip().startswith(f"{minutes} 分"), row[:50]
