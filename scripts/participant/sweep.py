#!/usr/bin/env python
"""Run a pre-registered hyper-parameter grid (configs/sweep/*.json) with notebook 04's recipe (utils.sweep.study).

    python scripts/participant/sweep.py configs/sweep/cpu_v1.json --threads 2          # run what is not finished yet
    python scripts/participant/sweep.py configs/sweep/cpu_v1.json --report             # the claims, from validation only
    python scripts/participant/sweep.py configs/sweep/cpu_v1.json --test               # once, at the end: best run vs default on test
    python scripts/participant/sweep.py configs/sweep/cpu_v1.json --export results/sweep/cpu_v1   # the finished results, to commit

Runs live under --root (default ~/workshop-sweeps/<grid name>/, outside the work tree): a killed sweep started again
skips the runs in runs.jsonl and resumes the interrupted one from its Trainer checkpoint. Each record carries its
provenance (date, commit, command, machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def save_figures(grid, records: dict, folder: Path) -> None:
    """One PNG per claim (and follow-up) plus the overview: the same figures 06 draws (utils.sweep.plots)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from utils.sweep import study, plots
    from utils.classroom.display import use_japanese_font

    use_japanese_font()
    folder.mkdir(parents=True, exist_ok=True)
    noise = study.noise_level(grid, records)
    for claim in grid.claims + grid.followups:
        if claim["kind"] != "spread" and all(r in records for r in study.claim_runs(claim)):
            fig = plots.claim_figure(claim, records, grid.default_run, noise, title=plots.title(claim))
            fig.savefig(folder / f"{claim['id']}.png", dpi=110)
            plt.close(fig)
    fig = plots.overview_figure(records, grid.default_run, noise)
    fig.savefig(folder / "overview.png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("grid", type=Path)
    ap.add_argument("--root", type=Path, default=None, help="where runs and checkpoints go (default ~/workshop-sweeps/NAME)")
    ap.add_argument("--only", default=None, help="comma-separated run ids")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (2 on the 2-core machine, nothing beside it)")
    ap.add_argument("--report", action="store_true", help="print each claim's verdict (validation only)")
    ap.add_argument("--test", action="store_true", help="score the test split for the best run and the default")
    ap.add_argument("--again", action="store_true", help="with --test: score the same two runs again (test.json exists)")
    ap.add_argument("--export", type=Path, default=None, help="copy runs.jsonl (+ test.json) and the grid here")
    args = ap.parse_args(argv)

    from utils.sweep import study
    from utils.evaluation.reference import _git_commit

    grid = study.load_grid(args.grid)
    root = args.root or Path.home() / "workshop-sweeps" / grid.name
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.report:
        records = study.load_records(grid, root)
        noise = study.noise_level(grid, records)
        print(f"{len(records)}/{len(grid.runs)} runs finished; seed spread (noise) = "
              f"{'not measured yet' if noise is None else f'{noise:.2f} ROUGE-L'}")
        for claim in grid.claims + grid.followups:
            v = study.verdict(claim, records, noise)
            label = "follow-up " if claim in grid.followups else ""
            print(f"[{label}{claim['id']}] {claim['claim']}\n  {study.reading(claim, v, noise)}")
        return 0
    provenance = {"date": date.today().isoformat(), "commit": _git_commit(), "command": " ".join([sys.argv[0], *sys.argv[1:]]),
                  "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores" + (f", {args.threads} threads" if args.threads else "")}
    if args.test:
        out = study.test_best_and_default(grid, root, provenance=provenance, again=args.again)
        print(json.dumps(out, ensure_ascii=False, indent=1))
        return 0
    if args.export:
        args.export.mkdir(parents=True, exist_ok=True)
        for name in ("runs.jsonl", "test.json"):
            if (root / name).is_file():
                shutil.copy(root / name, args.export / name)
        shutil.copy(args.grid, args.export / "grid.json")
        save_figures(grid, study.load_records(grid, root), args.export / "figures")
        print(f"exported {root} -> {args.export}")
        return 0

    from utils.recipe.data import summarization_splits

    splits = summarization_splits(study.run_config(grid, grid.default_run, root))
    splits.pop("test")  # selection never sees it (run_one refuses it too)
    study.run_grid(grid, root, splits, only=args.only.split(",") if args.only else None, provenance=provenance)
    return 0


if __name__ == "__main__":
    sys.exit(main())
