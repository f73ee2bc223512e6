#!/usr/bin/env python
"""Notebook 04's LoRA SFT recipe, headless, for one process or many (README: ワークショップの後で).

Every step is the same ``utils`` function the notebook calls (profile + ``WORKSHOP_*`` overrides,
``lora_model``, ``sft_datasets``, ``sft_config``, ``sft_trainer``, ``save_adapter``), so the adapter
and ``train_metrics.json`` land where notebook 05 reads them and 05 runs unchanged afterwards.

    python scripts/participant/train.py                                        # one process (like the notebook)
    torchrun --nproc_per_node 2 scripts/participant/train.py                   # two processes on one machine (CPU: gloo)
    accelerate launch --config_file configs/accelerate/ddp.yaml scripts/participant/train.py   # several GPUs

The splits come from notebook 02 (``outputs/<profile>/splits``); without them the script makes
the same splits itself (seeded by record index) and the main process saves them. Only the main
process prints, shows the progress bar and writes files.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # also runs before `pip install -e .`


def load_or_make_splits(cfg, main: bool) -> tuple[dict, str]:
    """02's saved splits, or the same splits made here (identical on every process)."""
    from utils.recipe import data

    try:
        return data.load_splits(cfg), f"{data.splits_dir(cfg)} (notebook 02)"
    except FileNotFoundError:
        selected = data.select(data.summarization_splits(cfg), cfg)
        if main:
            data.save_splits(selected, cfg)
        return selected, f"{data.splits_dir(cfg)} (made by this script)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)  # no options: the profile and WORKSHOP_* environment variables configure the run

    from accelerate.utils import gather_object

    from utils.recipe import training
    from utils.recipe.config import get_config
    from utils.recipe.modeling import load_model_and_tokenizer, memory_report

    main_process = training.is_main_process()
    say = print if main_process else (lambda *a, **k: None)

    cfg = get_config()
    say(cfg, "\n", flush=True)
    splits, source = load_or_make_splits(cfg, main_process)
    model, tokenizer = load_model_and_tokenizer(cfg)
    peft_model = training.lora_model(model, cfg)
    train_ds, val_ds, fit_report = training.sft_datasets(splits, tokenizer, cfg)
    args = training.sft_config(cfg, cfg.run_dir / "trainer")

    n_proc = training.world_size()
    steps = training.optimizer_steps(len(train_ds), cfg, n_proc)
    say(f"splits                : {source}")
    say(f"train / validation    : {len(train_ds)} / {len(val_ds)} records")
    say(f"processes             : world_size={n_proc}")
    say(f"effective batch       : {cfg.per_device_train_batch_size} (per device) x "
        f"{cfg.gradient_accumulation_steps} (accumulation) x {n_proc} (processes) = "
        f"{training.effective_batch(cfg, n_proc)} records / update")
    say(f"optimizer steps       : {steps} ({cfg.num_train_epochs:g} epochs)", flush=True)

    trainer = training.sft_trainer(peft_model, args, cfg, train_dataset=train_ds, eval_dataset=val_ds,
                                   processing_class=tokenizer)
    counts = training.count_train_examples(trainer)
    t0 = time.time()
    training.train(trainer, cfg)  # an out-of-memory error explains itself (figures + overrides)
    train_seconds = time.time() - t0
    per_rank = gather_object([counts["examples"]])  # every process takes part; rank order
    adapter_dir, metrics = training.save_adapter(
        trainer, cfg, train_seconds, memory_report(peft_model),
        train_examples_per_rank=per_rank, expected_optimizer_steps=steps)
    say(f"\noptimizer steps: {metrics['optimizer_steps']} (arithmetic: {steps})")
    say(f"examples trained per rank: {per_rank}")
    say(f"wall time {train_seconds:.0f} s, {metrics['tokens_per_second']:,.0f} tokens/s (all processes), "
        f"final validation loss {metrics['final_eval_loss']:.3f}")
    say(f"adapter: {adapter_dir}\nmetrics: {cfg.run_dir / 'train_metrics.json'}")
    # accelerate's end-of-script call: destroys the process group (gloo here, NCCL on GPUs) before the interpreter
    # exits; left to the exit, a rank once aborted there ("terminate called without an active exception", exit -6)
    # after training and saving had finished.
    trainer.accelerator.end_training()
    return 0


if __name__ == "__main__":
    sys.exit(main())
