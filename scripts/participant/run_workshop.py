#!/usr/bin/env python
"""Run the five notebooks headless, in order, and print the before/after ROUGE summary.

Executed notebooks (with their outputs) go to outputs/<profile>/executed/, the wall time of each
notebook to outputs/<profile>/timings.json. The profile is WORKSHOP_PROFILE (default: auto).

Progress bars (tqdm's Jupyter widgets: "Loading weights", datasets' map, generation) are widgets whose
saved output shows their *first* state (an empty "0 %" bar) outside a live kernel; the executed notebooks
get them as text lines with the final state instead (``progress_widgets_as_text``).
"""

from __future__ import annotations

import html
import json
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def _text(value: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", value or "")).replace("\xa0", " ")


def progress_widgets_as_text(nb) -> int:
    """Replace each tqdm widget output (HBox of HTML label, progress bar, HTML counts) by a text line drawn from
    the widget's final state saved by nbclient, e.g. ``Loading weights: 100% |##########| 50/50 [00:00<00:00]``.
    Other widget outputs are left alone. Returns how many were replaced."""
    states = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    replaced = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            box = states.get(view["model_id"], {}).get("state", {}) if view else {}
            children = [states.get(c.removeprefix("IPY_MODEL_"), {}) for c in box.get("children", [])]
            if len(children) != 3 or children[1].get("model_name") != "FloatProgressModel":
                continue
            left, bar, right = (c.get("state", {}) for c in children)
            filled = round(10 * bar.get("value", 0) / bar["max"]) if bar.get("max") else 0
            line = f"{_text(left.get('value'))} |{'#' * filled}{' ' * (10 - filled)}| {_text(right.get('value')).strip()}".strip()
            output["data"] = {"text/plain": line}
            replaced += 1
    return replaced


def main() -> int:
    from utils.recipe.config import get_config

    cfg = get_config()
    print(cfg, "\n", flush=True)
    executed = cfg.run_dir / "executed"
    executed.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    for path in sorted((ROOT / "notebooks").glob("0[1-5]_*.ipynb")):  # the workshop; 06 is optional (run it in JupyterLab)
        nb = nbformat.read(path, as_version=4)
        print(f"▶ {path.name} ...", flush=True)
        t0 = time.time()
        # the kernel app's own log at ERROR: ipykernel 7 warns "Kernel is running over TCP without encryption" on every
        # start (a local kernel on 127.0.0.1); the notebooks' warnings still reach the cell outputs
        client = NotebookClient(nb, timeout=3600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
                                extra_arguments=["--IPKernelApp.log_level=ERROR"])
        try:
            client.execute()
        finally:
            timings[path.name] = round(time.time() - t0, 1)
            progress_widgets_as_text(nb)
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
