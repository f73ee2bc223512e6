#!/usr/bin/env python
"""CI guard: fail when the cpu workshop's results.json shows that fine-tuning did not work.

`make test` runs it right after the notebooks. Two conditions on ROUGE-L: the gain's 95% CI lies above 0,
and the predictions beat the shuffled-reference control by at least MIN_MARGIN points. The threshold comes
from measurements of the shipped tiny model and recipe, with a safety margin; broken recipes (prompt left
unmasked, adapter not loaded) were run and land below it (figures at MIN_MARGIN).

    python scripts/check_results.py [outputs/cpu/results.json] [--since UNIX_TIME]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from utils.evaluation import content_learning_failures  # noqa: E402

# ROUGE-L after - shuffled, in points: a regression floor for the shipped tiny model. Measured 2026-11-22
# (80 test records): the workshop's recipe 3.6 (17.4 - 13.8, gain CI [+1.8, +5.2]); prompt left unmasked
# 1.7 (gain CI [-6.5, -1.7]); adapter not loaded 1.0 (gain CI [0, 0]). The floor sits between them. It is
# lower than the 5 points 05 asks before it calls a gain "content" (utils.evaluation.CONTENT_MARGIN): the
# shipped model copies from its context only weakly (README). Raise it with a base model that copies.
MIN_MARGIN = 2.5


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path, nargs="?", default=ROOT / "outputs" / "cpu" / "results.json")
    ap.add_argument("--since", type=float, default=None,
                    help="fail if the file is older than this time (a stale results.json from an earlier run)")
    ap.add_argument("--min-margin", type=float, default=MIN_MARGIN)
    args = ap.parse_args(argv)
    if not args.results.is_file():
        print(f"check_results: {args.results} is missing: did notebook 05 run?", file=sys.stderr)
        return 1
    if args.since is not None and args.results.stat().st_mtime < args.since:
        print(f"check_results: {args.results} is older than this run (stale)", file=sys.stderr)
        return 1
    results = json.loads(args.results.read_text(encoding="utf-8"))
    failures = content_learning_failures(results, args.min_margin)
    m = results["metrics"]["rougeL"]
    summary = (f"ROUGE-L {m['before']:.1f} -> {m['after']:.1f} (gain CI [{m['ci_low']:+.1f}, {m['ci_high']:+.1f}]), "
               f"shuffled {m['shuffled']:.1f}, margin {m['after'] - m['shuffled']:.1f} (min {args.min_margin})")
    if failures:
        print("check_results: FAILED: " + "; ".join(failures) + f"\n  {summary}", file=sys.stderr)
        return 1
    print(f"check_results: ok, {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
