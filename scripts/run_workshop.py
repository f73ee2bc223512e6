#!/usr/bin/env python
"""Run the five notebooks headless, in order, and print the before/after ROUGE summary.

Executed notebooks (with their outputs) go to outputs/<profile>/executed/, the wall time of each
notebook to outputs/<profile>/timings.json. The profile is WORKSHOP_PROFILE (default: auto).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    from utils.config import get_config

    cfg = get_config()
    print(cfg, "\n", flush=True)
    executed = cfg.run_dir / "executed"
    executed.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        print(f"▶ {path.name} ...", flush=True)
        t0 = time.time()
        client = NotebookClient(nb, timeout=3600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
        try:
            client.execute()
        finally:
            timings[path.name] = round(time.time() - t0, 1)
            nbformat.write(nb, executed / path.name)
        print(f"  done in {timings[path.name]:.0f} s → {executed / path.name}", flush=True)
    timings["total"] = round(sum(timings.values()), 1)
    (cfg.run_dir / "timings.json").write_text(json.dumps(timings, indent=1))
    print(f"\nall notebooks: {timings['total'] / 60:.1f} min")
    print_results(cfg.run_dir / "results.json")
    return 0


def print_results(path: Path) -> None:
    r = json.loads(path.read_text())
    print(f"\n{path}  (profile {r['profile']}, {r['n_test']} test records, base model {r['base_model']})")
    print(f"{'':8}{'before':>9}{'after':>9}{'gain 95% CI':>20}{'lead':>8}{'shuffled':>10}")
    for name, m in r["metrics"].items():
        ci = f"[{m['ci_low']:+.1f}, {m['ci_high']:+.1f}]"
        print(f"{name:8}{m['before']:9.1f}{m['after']:9.1f}{ci:>20}{m['lead']:8.1f}{m['shuffled']:10.1f}")
    for name, b in r["behaviour"].items():
        print(f"{name:12} before {b['before']:.3f}  after {b['after']:.3f}")


if __name__ == "__main__":
    sys.exit(main())
