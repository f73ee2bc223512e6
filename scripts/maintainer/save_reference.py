#!/usr/bin/env python
"""Record a finished workshop run as the shipped reference that notebook 01 shows ("the goal of the day").

Run it after ``make workshop`` (or scripts/participant/run_workshop.py) of the profile you want to record; it reads that
run's outputs/<profile>/ files and writes reference_results/<profile>.json with the run's provenance:

    python scripts/maintainer/save_reference.py                      # profile from WORKSHOP_PROFILE (default: auto)
    python scripts/maintainer/save_reference.py --command "make workshop" --machine "NVIDIA L4 24GB"

Commit the file with the code that produced it (its "commit" field then names the commit before it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from utils.recipe.config import get_config  # noqa: E402
from utils.evaluation.results import load_predictions, predictions_path  # noqa: E402
from utils.evaluation.reference import build_reference, reference_path  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--command", default="python scripts/participant/run_workshop.py",
                    help="the command that produced the outputs (recorded as provenance)")
    ap.add_argument("--machine", default=None, help="the machine it ran on (default: this CPU)")
    args = ap.parse_args(argv)

    cfg = get_config()
    run = cfg.run_dir
    results_path = run / "results.json"
    if not results_path.is_file():
        print(f"{results_path} がありません。先にこのプロファイルでワークショップを最後まで実行してください "
              "(make workshop)。", file=sys.stderr)
        return 2
    read = lambda p: json.loads(p.read_text()) if p.is_file() else None  # noqa: E731
    ref = build_reference(read(results_path), load_predictions(predictions_path(cfg, "base"), "03_baseline_inference.ipynb"),
                          load_predictions(predictions_path(cfg, "lora"), "05_rouge_comparison.ipynb"),
                          read(run / "train_metrics.json"), read(run / "timings.json"), args.command, args.machine)
    out = reference_path(cfg.profile)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(ref, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    m = ref["metrics"]["rougeL"]
    print(f"{out}: ROUGE-L {m['before']:.1f} -> {m['after']:.1f} (shuffled {m['shuffled']:.1f}), "
          f"example id {ref['example']['id']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
