"""Evaluation plumbing shared by notebooks 03 and 05: test prompts, predictions on disk, results.json."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from . import metrics
from .config import WorkshopConfig
from .generation import Generation
from .prompt import fit_records, to_prompt_completion


def eval_prompts(test_records: list[dict], tokenizer, cfg: WorkshopConfig) -> tuple[list[dict], dict]:
    """One row per test record: id, input, prompt, reference. Long inputs are shortened so that the
    prompt fits ``max_length`` (the training budget); generation then adds up to ``max_new_tokens``."""
    fitted, report = fit_records(test_records, tokenizer, cfg.max_length, with_completion=False)
    rows = [{"id": r["index"], "input": r["input"], **to_prompt_completion(r)} for r in fitted]
    for row in rows:
        row["reference"] = row.pop("completion")
    return rows, report


def predictions_path(cfg: WorkshopConfig, which: str) -> Path:
    """``which``: "base" (notebook 03) or "lora" (notebook 05)."""
    return cfg.run_dir / f"predictions_{which}.jsonl"


def save_predictions(rows: list[dict], generations: list[Generation], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for row, gen in zip(rows, generations, strict=True):
            out = {"id": row["id"], "prompt": row["prompt"], "reference": row["reference"], "prediction": gen.text,
                   "finish_reason": gen.finish_reason, "new_tokens": gen.new_tokens}
            fh.write(json.dumps(out, ensure_ascii=False) + "\n")


def load_predictions(path: Path, notebook: str) -> list[dict]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} がありません。先に notebooks/{notebook} を最後まで実行してください。")
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def reference_loss(model, tokenizer, prompts: list[str], references: list[str], batch_size: int = 8) -> list[float]:
    """Mean loss (nats/token) of each reference summary + EOS given its prompt: how likely the
    model finds the answer we want, independent of what it happens to generate."""
    import torch

    losses: list[float] = []
    side = tokenizer.padding_side
    tokenizer.padding_side = "right"
    try:
        for start in range(0, len(prompts), batch_size):
            p = prompts[start: start + batch_size]
            r = references[start: start + batch_size]
            enc = tokenizer([a + b + tokenizer.eos_token for a, b in zip(p, r)], return_tensors="pt", padding=True,
                            verbose=False)  # prompt + full reference may exceed model_max_length: measured as is
            labels = enc["input_ids"].clone()
            labels[enc["attention_mask"] == 0] = -100
            for i, prompt in enumerate(p):
                labels[i, : len(tokenizer(prompt)["input_ids"])] = -100
            enc = enc.to(model.device)
            with torch.inference_mode():
                logits = model(**enc).logits.float()
            shift_logits, shift_labels = logits[:, :-1], labels[:, 1:].to(logits.device)
            tok_loss = torch.nn.functional.cross_entropy(shift_logits.transpose(1, 2), shift_labels,
                                                         ignore_index=-100, reduction="none")
            mask = shift_labels != -100
            losses.extend(((tok_loss * mask).sum(1) / mask.sum(1)).tolist())
    finally:
        tokenizer.padding_side = side
    return losses


def behaviour(rows: list[dict]) -> dict[str, float]:
    """stop_rate: share that ended with EOS; length_ratio: median chars(prediction) / chars(reference)."""
    return {
        "stop_rate": sum(r["finish_reason"] == "eos" for r in rows) / len(rows),
        "length_ratio": statistics.median(len(r["prediction"]) / max(1, len(r["reference"])) for r in rows),
    }


def build_results(cfg: WorkshopConfig, before: list[dict], after: list[dict], inputs: list[str],
                  ref_loss_before: list[float], ref_loss_after: list[float], train_seconds: float | None,
                  seed: int = 0) -> dict:
    """The results.json of notebook 05 (ROUGE F1 x 100, MeCab tokens; CI bounds the gain after - before)."""
    if [r["id"] for r in before] != [r["id"] for r in after]:
        raise ValueError("03 と 05 の予測が同じテスト例の並びではありません。03 をもう一度実行してください。")
    refs = [r["reference"] for r in after]
    per_before = metrics.ja_rouge_per_example([r["prediction"] for r in before], refs)
    per_after = metrics.ja_rouge_per_example([r["prediction"] for r in after], refs)
    lead = metrics.ja_rouge([metrics.lead_sentence(x) for x in inputs], refs)
    shuffled = metrics.ja_rouge([r["prediction"] for r in after], metrics.shuffled(refs, seed=seed))
    out_metrics = {}
    for k in metrics.ROUGE_TYPES:
        lo, hi = metrics.paired_bootstrap_ci(per_before[k], per_after[k], seed=seed)
        out_metrics[k] = {"before": statistics.fmean(per_before[k]), "after": statistics.fmean(per_after[k]),
                          "ci_low": lo, "ci_high": hi, "lead": lead[k], "shuffled": shuffled[k]}
    b, a = behaviour(before), behaviour(after)
    return {
        "profile": cfg.profile,
        "base_model": cfg.base_model,
        "n_test": len(after),
        "train_seconds": train_seconds,
        "metrics": out_metrics,
        "behaviour": {
            "stop_rate": {"before": b["stop_rate"], "after": a["stop_rate"]},
            "length_ratio": {"before": b["length_ratio"], "after": a["length_ratio"]},
            "ref_loss": {"before": statistics.fmean(ref_loss_before), "after": statistics.fmean(ref_loss_after)},
        },
        "per_example": {"rougeL_before": per_before["rougeL"], "rougeL_after": per_after["rougeL"]},
    }
