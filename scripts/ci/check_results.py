#!/usr/bin/env python
"""CI guard: fail when the cpu workshop's results.json shows that fine-tuning did not work.

`make test` runs it right after the notebooks. Three conditions: the ROUGE-L gain's 95% CI lies above 0; the
outputs beat the shuffled-reference control by at least MIN_MARGIN ROUGE-L points (content, not only format);
and at least MIN_STOP_RATE of them end with EOS (what completion-only SFT teaches). The thresholds come from
measurements of the shipped tiny model and recipe, with a safety margin; broken recipes (prompt left unmasked,
adapter not trained) were run and each fails at least one condition (figures below).

    python scripts/ci/check_results.py [outputs/cpu/results.json] [--since UNIX_TIME]
    python scripts/ci/check_results.py --chat outputs/cpu/chat/results.json [--since UNIX_TIME]   (notebook 09)

With ``--chat`` it reads notebook 09's table instead: the chat-format adapter stops at its end token (EOS stop rate at
least MIN_STOP_RATE), and each controlled mistake shows what it breaks: with the new token rows untrained the model
stops at most CHAT_MISTAKE_STOP_RATE of the time, and with another template than training's, ROUGE-L is below 04's
adapter (the upper end of the paired 95% CI of arm - 04 below 0). Measured 2026-12-07 (80 test records): chat 0.82,
rows untrained 0.00, other template ROUGE-L - 04 [-12.6, -5.2] (stop rate 0.28).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from utils.evaluation.results import CONTENT_MARGIN, content_learning_failures, stopping_failures  # noqa: E402

# Measured 2026-11-29 (80 test records, the shipped tiny model that copies from its context, max_cut_fraction 0.5):
#   the workshop's recipe        margin 10.5 (24.2 - 13.8), gain CI [+9.0, +17.6], EOS stop rate 0.89
#   prompt left unmasked         margin 11.0 (23.2 - 12.2), gain CI [+8.1, +16.2], EOS stop rate 0.34
#   adapter not trained (B = 0)  margin 2.7 (11.1 - 8.5),   gain CI [0, 0],        EOS stop rate 0.31 (= the base)
# A model that copies learns content even with the prompt unmasked; what masking changes is stopping. So the
# margin floor is 05's own "content" threshold (utils.evaluation.results.CONTENT_MARGIN, 5 points: 5.5 below the
# recipe, 2.3 above the untrained adapter) and the stop-rate floor sits between 0.89 and 0.34.
MIN_MARGIN = CONTENT_MARGIN
MIN_STOP_RATE = 0.6
CHAT_MISTAKE_STOP_RATE = 0.3


def chat_failures(chat: dict, min_stop_rate: float = MIN_STOP_RATE) -> list[str]:
    """What notebook 09's table (chat/results.json) shows that it should not."""
    arms, vs = chat["arms"], chat["lora_minus_arm"]
    failures = []
    if arms["chat"]["stop_rate"] < min_stop_rate:
        failures.append(f"the chat-format adapter stops at <|end|> {arms['chat']['stop_rate']:.2f} of the time (min {min_stop_rate})")
    if arms["chat_rows_untrained"]["stop_rate"] > CHAT_MISTAKE_STOP_RATE:
        failures.append(f"with the new token rows untrained it still stops {arms['chat_rows_untrained']['stop_rate']:.2f} "
                        f"of the time (the control should break stopping: max {CHAT_MISTAKE_STOP_RATE})")
    if vs["chat_other_template"]["rougeL"]["ci_low"] <= 0:  # 04 - arm: above 0 means the arm is below 04
        failures.append("another template at inference is not measurably below 04's adapter")
    return failures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path, nargs="?", default=ROOT / "outputs" / "cpu" / "results.json")
    ap.add_argument("--since", type=float, default=None,
                    help="fail if the file is older than this time (a stale results.json from an earlier run)")
    ap.add_argument("--min-margin", type=float, default=MIN_MARGIN)
    ap.add_argument("--min-stop-rate", type=float, default=MIN_STOP_RATE)
    ap.add_argument("--chat", action="store_true", help="check notebook 09's chat/results.json instead")
    args = ap.parse_args(argv)
    if args.chat:
        path = args.results if args.results.name == "results.json" and args.results.parent.name == "chat" else \
            args.results.parent / "chat" / "results.json"
        if not path.is_file() or (args.since is not None and path.stat().st_mtime < args.since):
            print(f"check_results: {path} is missing or older than this run: did notebook 09 run?", file=sys.stderr)
            return 1
        chat = json.loads(path.read_text(encoding="utf-8"))
        failures = chat_failures(chat, args.min_stop_rate)
        arms = chat["arms"]
        line = ", ".join(f"{name} ROUGE-L {arms[name]['rougeL']:.1f} stop {arms[name]['stop_rate']:.2f}" for name in arms)
        if failures:
            print("check_results: FAILED: " + "; ".join(failures) + f"\n  {line}", file=sys.stderr)
            return 1
        print(f"check_results: ok (09), {line}")
        return 0
    if not args.results.is_file():
        print(f"check_results: {args.results} is missing: did notebook 05 run?", file=sys.stderr)
        return 1
    if args.since is not None and args.results.stat().st_mtime < args.since:
        print(f"check_results: {args.results} is older than this run (stale)", file=sys.stderr)
        return 1
    results = json.loads(args.results.read_text(encoding="utf-8"))
    failures = content_learning_failures(results, args.min_margin) + stopping_failures(results, args.min_stop_rate)
    m = results["metrics"]["rougeL"]
    summary = (f"ROUGE-L {m['before']:.1f} -> {m['after']:.1f} (gain CI [{m['ci_low']:+.1f}, {m['ci_high']:+.1f}]), "
               f"shuffled {m['shuffled']:.1f}, margin {m['after'] - m['shuffled']:.1f} (min {args.min_margin}), "
               f"EOS stop rate {results['behaviour']['stop_rate']['after']:.2f} (min {args.min_stop_rate})")
    if failures:
        print("check_results: FAILED: " + "; ".join(failures) + f"\n  {summary}", file=sys.stderr)
        return 1
    print(f"check_results: ok, {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
