"""The `gpu` profile's token budget, measured offline with Mistral-7B-v0.1's tokenizer.

How long are the references (-> ``max_new_tokens``), how many training examples fit ``max_length``,
and how many tokens one epoch trains on (-> training time = tokens / measured tokens per second).
Runs on any machine (no GPU, no Hub):

    python benchmarks/token_budget.py        # prints a table, writes benchmarks/results/token_budget_gpu.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[int], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q))


def gpu_config():
    """The gpu profile as a config object, without asking for CUDA (get_config("gpu") would refuse here)."""
    from utils.recipe.config import WorkshopConfig, profile_settings

    return WorkshopConfig(profile="gpu", **profile_settings("gpu"))


# Japanese Stable LM Base Gamma 7B's config.json (Mistral-7B-v0.1's shape): max_position_embeddings 32768,
# sliding_window 4096; utils.evaluation.kshot.context_window takes the smaller, as it would on the GPU.
GPU_CONTEXT = 4096


def kshot_plan(cfg, tokenizer, splits, test_prompts: list[str]) -> dict:
    """Which k of 03's k-shot arms fit the 7B's context (utils.evaluation.kshot.plan_shots, the notebook's own rule), and the
    mean prompt length of each arm: the basis of 03's gpu time estimate."""
    from utils.recipe.data import select
    from utils.evaluation.kshot import kshot_prompt, plan_shots, shot_counts

    plans, chosen = plan_shots(select(splits, cfg)["train"], test_prompts, tokenizer, GPU_CONTEXT, cfg.max_new_tokens,
                               cfg.seed, ks=shot_counts(cfg))
    mean = lambda prompts: sum(len(tokenizer(p)["input_ids"]) for p in prompts) / len(prompts)  # noqa: E731
    return {"context": GPU_CONTEXT, "prompt_tokens_mean": {"0-shot": mean(test_prompts)} | {
                f"{k}-shot": mean([kshot_prompt(shots, p) for p in test_prompts]) for k, shots in chosen.items()},
            "plans": [{"k": p.k, "fits": p.fits, "total": p.total, "shot_ids": p.shot_ids} for p in plans]}


def token_budget(cfg, tokenizer) -> dict:
    """Token statistics of the dolly-ja summarization splits under ``cfg``'s limits, with the training records
    chosen exactly as 04 chooses them (``utils.recipe.training.sft_datasets``: max_length and max_cut_fraction)."""
    from utils.recipe.data import select, summarization_splits
    from utils.recipe.prompt import fit_records, to_prompt_completion
    from utils.recipe.training import sft_datasets

    splits = summarization_splits()
    n_test = cfg.n_test

    def completion_tokens(records):  # the reference summary + EOS, as the model must generate it
        return [len(tokenizer(r["output"].strip(), add_special_tokens=False)["input_ids"]) + 1 for r in records]

    train_refs, test_refs = completion_tokens(splits["train"]), completion_tokens(splits["test"][:n_test])
    train_ds, _, fit_report = sft_datasets(select(splits, cfg), tokenizer, cfg)  # what 04 trains on
    seq = [len(tokenizer(p["prompt"] + p["completion"] + tokenizer.eos_token)["input_ids"]) for p in train_ds]
    test_fitted, test_report = fit_records(splits["test"][:n_test], tokenizer, cfg.max_length, with_completion=False)
    test_prompt_texts = [to_prompt_completion(r)["prompt"] for r in test_fitted]
    test_prompts = [len(tokenizer(p)["input_ids"]) for p in test_prompt_texts]
    chars = sum(len(r["output"].strip()) for r in splits["train"])
    m = cfg.max_new_tokens
    return {
        "tokenizer": "Mistral-7B-v0.1 (models/mistral-7b-v0.1-tokenizer)",
        "max_length": cfg.max_length,
        "max_cut_fraction": cfg.max_cut_fraction,
        "max_new_tokens": m,
        "reference_tokens_train": {"n": len(train_refs), "p50": percentile(train_refs, 50),
                                   "p90": percentile(train_refs, 90), "max": max(train_refs),
                                   "covered_by_max_new_tokens": sum(t <= m for t in train_refs) / len(train_refs)},
        "reference_tokens_test": {"n": len(test_refs), "p50": percentile(test_refs, 50),
                                  "p90": percentile(test_refs, 90), "max": max(test_refs),
                                  "covered_by_max_new_tokens": sum(t <= m for t in test_refs) / len(test_refs)},
        "tokens_per_character_references": sum(train_refs) / chars,
        "train_fit": fit_report["train"],
        "train_records": len(train_ds),
        "train_epoch_tokens": sum(seq),
        "train_mean_sequence": sum(seq) / len(seq),
        "test_fit": test_report,
        "test_prompt_tokens_mean": sum(test_prompts) / len(test_prompts),
        "test_prompt_tokens_max": max(test_prompts),
        "kshot": kshot_plan(cfg, tokenizer, splits, test_prompt_texts),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "token_budget_gpu.json")
    args = ap.parse_args()

    from transformers import AutoTokenizer

    from utils.recipe.config import MISTRAL_TOKENIZER_DIR

    budget = token_budget(gpu_config(), AutoTokenizer.from_pretrained(MISTRAL_TOKENIZER_DIR))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(budget, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    for key, value in budget.items():
        print(f"{key:<34} {value}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
