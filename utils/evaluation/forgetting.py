"""What did the adapter cost? Losses on text it did and did not train on, along the adapter scale.

PEFT's ``rescale_adapter_scale(model, m)`` multiplies every LoRA update by ``m`` for the duration of a ``with``
block: m = 0 is the base model, m = 1 the trained adapter, and m in between the weight-space interpolation of the
two (PEFT's docs: equivalent to WiSE-FT). Three text sets, each as a mean per-text loss (nats/token):

* ``test summaries``: the first ``N_TEST_CURVE`` test references given their prompts (what the adapter learned;
  at m = 0 and m = 1 the same figures as 05's reference loss for those records);
* ``other tasks``: dolly-ja records of other categories (closed_qa, information_extraction) with their context,
  response given the same template (what it may forget: another task in the same format);
* ``new text``: the 64 fictional news passages of ``data/own_data_example`` as plain text, no template
  (written for this project: neither the base model nor the adapter trained on them).
"""

from __future__ import annotations

import csv
import random
import statistics
from pathlib import Path

from utils.recipe.config import PROJECT_ROOT, WorkshopConfig
from utils.recipe.data import BUNDLED_PATH, TASK_CATEGORY, read_jsonl
from utils.evaluation.losses import reference_loss
from utils.recipe.prompt import fit_records, to_prompt_completion

SCALES = (0.0, 0.25, 0.5, 0.75, 1.0)
OTHER_CATEGORIES = ("closed_qa", "information_extraction")  # dolly-ja categories with a context passage
N_OTHER = 16
N_TEST_CURVE = 16  # test records on the curve (the first 16 of 05's: 5 scales x all 80 would add about 25 s on cpu)
NEW_TEXT_PATH = PROJECT_ROOT / "data" / "own_data_example" / "example_summaries.csv"
SET_NAMES = {"test": "test の要約 (学習したタスク)", "other_tasks": "別のタスク (dolly-ja の質問応答・抽出)",
             "new_text": "新しい文章 (どのモデルも学習していない架空のニュース)"}


def other_task_examples(tokenizer, cfg: WorkshopConfig, n: int = N_OTHER) -> tuple[list[str], list[str], dict]:
    """Prompts and responses of ``n`` dolly-ja records of ``OTHER_CATEGORIES`` (seeded, from the bundled snapshot,
    so every machine measures the same records), fitted to ``max_length`` like training records; with the fit report."""
    records = [r for r in read_jsonl(BUNDLED_PATH) if r["category"] in OTHER_CATEGORIES and r["category"] != TASK_CATEGORY
               and r["input"].strip() and r["output"].strip() and r["instruction"].strip()]
    records.sort(key=lambda r: str(r["index"]))
    picked = random.Random(f"forgetting-{cfg.seed}").sample(records, min(n, len(records)))
    fitted, report = fit_records(picked, tokenizer, cfg.max_length, with_completion=True)
    pairs = [to_prompt_completion(r) for r in fitted]
    return [p["prompt"] for p in pairs], [p["completion"] for p in pairs], report


def new_texts() -> list[str]:
    """The fictional news passages of ``data/own_data_example/example_summaries.csv`` (CC0, written for the workshop)."""
    with open(NEW_TEXT_PATH, encoding="utf-8", newline="") as fh:
        return [row["input"].strip() for row in csv.DictReader(fh) if row["input"].strip()]


def text_sets(test_prompts: list[str], test_references: list[str], tokenizer, cfg: WorkshopConfig) -> tuple[dict, dict]:
    """{set name: (prompts, texts)} (plain text has empty prompts: the loss covers the whole text + EOS), and the fit
    report of the other-task records (a record whose response alone exceeds ``max_length`` is left out and counted)."""
    prompts, responses, report = other_task_examples(tokenizer, cfg)
    sets = {"test": (test_prompts[:N_TEST_CURVE], test_references[:N_TEST_CURVE]), "other_tasks": (prompts, responses)}
    if cfg.data_path and Path(cfg.data_path).resolve() == NEW_TEXT_PATH.resolve():
        report["new_text_left_out"] = "WORKSHOP_DATA_PATH is this file: the adapter trained on it"  # not unseen text
    else:
        plain = new_texts()
        sets["new_text"] = ([""] * len(plain), plain)
    return sets, report


def scale_curve(model, tokenizer, sets: dict, scales: tuple[float, ...] = SCALES, batch_size: int = 8) -> dict:
    """Mean loss of each text set at each adapter scale: ``{"scales": [...], "loss": {set: [...]}}``."""
    from peft.helpers import rescale_adapter_scale

    loss = {name: [] for name in sets}
    for m in scales:
        with rescale_adapter_scale(model, float(m)):
            for name, (prompts, texts) in sets.items():
                loss[name].append(statistics.fmean(reference_loss(model, tokenizer, prompts, texts, batch_size)))
    return {"scales": list(scales), "loss": loss, "n": {name: len(texts) for name, (_, texts) in sets.items()}}


def curve_lines(curve: dict) -> list[str]:
    """05's reading of the curve, in Japanese, from its end points (m = 0: base, m = 1: adapter)."""
    lines = []
    for name, values in curve["loss"].items():
        first, last = values[0], values[-1]
        change = last - first
        trend = "下がりました" if change < -0.005 else "上がりました" if change > 0.005 else "ほとんど変わりません"
        best = min(range(len(values)), key=values.__getitem__)
        middle = (f"途中の m = {curve['scales'][best]:g} がいちばん低く ({values[best]:.2f})、アダプタを弱めたほうが自然です。"
                  if 0 < best < len(values) - 1 and values[-1] - values[best] > 0.005 else "")
        lines.append(f"{SET_NAMES[name]} ({curve['n'][name]} 件): 損失 {first:.2f} (m = 0、ベースモデル) → {last:.2f} "
                     f"(m = 1、アダプタ) で、{change:+.2f} nats/トークン {trend}。{middle}")
    rose = [SET_NAMES[n] for n, v in curve["loss"].items() if n != "test" and v[-1] - v[0] > 0.005]
    if rose:
        lines.append(f"学習していない文章のうち {'、'.join(rose)} で損失が上がりました: アダプタがその分を忘れさせています "
                     "(m を 1 より小さくすると、学んだ分と引き換えに減らせます。上のグラフで、どの m で釣り合うかを読んでください)。")
    else:
        lines.append("学習していない文章の損失は m = 1 でも上がっていません: この測り方では、アダプタによる忘却は見えません "
                     "(同じテンプレートの別のタスクは、形式を学んだ分だけ自然になることもあります)。")
    return lines
