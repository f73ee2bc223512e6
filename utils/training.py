"""LoRA and SFT settings built from the profile: one source for the notebooks, tests and benchmarks."""

from __future__ import annotations

import os
from pathlib import Path

from .config import WorkshopConfig
from .prompt import fit_records, to_prompt_completion


def lora_config(cfg: WorkshopConfig):
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora_r,  # rank of the low-rank update B @ A (trainable parameters grow linearly with r)
        lora_alpha=cfg.lora_alpha,  # the update is scaled by alpha / r
        lora_dropout=cfg.lora_dropout,  # dropout on the LoRA branch's input, a mild regulariser
        target_modules=list(cfg.lora_target_modules),  # attention + MLP projections, not lm_head
        bias="none",
        task_type="CAUSAL_LM",
    )


def lora_model(model, cfg: WorkshopConfig):
    """The base model wrapped with a freshly initialised (seeded) LoRA adapter, ready for the Trainer."""
    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import set_seed

    set_seed(cfg.seed)  # LoRA's A matrices start random: seeded, a re-run trains the same adapter
    if cfg.load_in_4bit:
        # 4-bit weights: norms in fp32, gradients flowing into the frozen embeddings' output, checkpointing on
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    return get_peft_model(model, lora_config(cfg))


def sft_config(cfg: WorkshopConfig, output_dir: str | Path, **overrides):
    """SFTConfig for TRL 1.x: completion-only loss, explicit precision, no checkpoints on disk."""
    import torch
    from trl import SFTConfig

    on_gpu = torch.cuda.is_available()
    dtype = cfg.torch_dtype
    kwargs = dict(
        output_dir=str(output_dir),
        # --- optimisation ---
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.num_train_epochs,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        warmup_steps=cfg.warmup_steps,
        lr_scheduler_type=cfg.lr_scheduler_type,
        seed=cfg.seed,
        data_seed=cfg.seed,
        train_sampling_strategy="group_by_length",  # batches of similar length: far less padding
        # --- sequences and loss ---
        max_length=cfg.max_length,  # inputs were shortened beforehand so that nothing is cut here
        completion_only_loss=True,  # prompt tokens get label -100; the summary and its EOS are learned
        # --- precision and memory (SFTConfig would default to bf16 + checkpointing even on CPU) ---
        bf16=on_gpu and dtype == torch.bfloat16,
        fp16=on_gpu and dtype == torch.float16,
        # transformers 5 calls gradient checkpointing "activation checkpointing" (the old names still work, with a warning)
        activation_checkpointing=cfg.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if cfg.gradient_checkpointing else None,
        # --- evaluation, logging, saving ---
        eval_strategy="steps",
        eval_steps=cfg.eval_steps,
        eval_on_start=True,  # validation loss at step 0: the curve starts from the base model
        per_device_eval_batch_size=cfg.per_device_train_batch_size,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        include_num_input_tokens_seen="non_padding",
        save_strategy="no",  # save_adapter() saves the adapter at the end
        # several processes without a GPU: only with use_cpu does a launch (torchrun) become CPU DDP over
        # gloo (accelerate's MULTI_CPU) instead of independent single-process runs that never meet
        use_cpu=not on_gpu and world_size() > 1,
        dataloader_pin_memory=on_gpu,  # pinned memory only helps copies to a GPU (and warns without one)
        report_to=cfg.report_to,  # experiment tracking (profile field; "none" by default)
        disable_tqdm=False,  # the bar shows on the main process only
        # several processes (DDP): every LoRA parameter gets a gradient each step, so DDP need not search
        # for unused ones (the search fails with gradient checkpointing)
        ddp_find_unused_parameters=False if world_size() > 1 else None,
    )
    kwargs.update(overrides)
    if kwargs["eval_strategy"] == "no":
        kwargs["eval_on_start"] = False
    args = SFTConfig(**kwargs)
    use_one_gpu(args)
    return args


def use_one_gpu(args) -> None:
    """On a VM with several GPUs, train this (single) process on GPU 0 instead of failing.

    Without a distributed launcher the Trainer counts every visible GPU (``args.n_gpu``) and would
    wrap the model in ``nn.DataParallel``, which TRL's SFTTrainer refuses; our model sits on GPU 0
    anyway (``device_map={"": 0}``). The Trainer itself sets ``args._n_gpu = 1`` for models it
    treats as model-parallel (transformers/trainer.py, "Force n_gpu to 1"); we do the same, and say
    how to use all GPUs (one process per GPU with ``accelerate launch``).
    """
    distributed = world_size() > 1 or "LOCAL_RANK" in os.environ
    if args.n_gpu > 1 and not distributed:
        print(f"GPU が {args.n_gpu} 枚見えていますが、ノートブックは 1 プロセスなので GPU 0 だけで学習します。"
              "すべての GPU を使うには、GPU ごとに 1 プロセスを起動する分散学習 (`accelerate launch` や `torchrun`) "
              "が必要です。")
        args._n_gpu = 1


def sft_trainer(model, args, cfg: WorkshopConfig, **kwargs):
    """TRL's ``SFTTrainer(model=..., args=..., **kwargs)``, after checking the C toolchain Triton needs on CUDA,
    plus the one precision fix QLoRA in fp16 needs.

    For a quantized base, TRL 1.16 casts every trainable (LoRA) parameter to bf16, whatever the AMP
    mode (trl/trainer/sft_trainer.py: "the PEFT adapter weights are converted to bf16"). In fp16 AMP
    (T4: no native bf16) the GradScaler then meets bf16 gradients and the first optimizer step
    fails on CUDA (``_amp_foreach_non_finite_check_and_unscale_cuda`` has no BFloat16 kernel). So in
    fp16 the adapter goes back to fp32 master weights, as fp16 mixed precision expects; autocast
    still runs its matmuls in fp16. Confirmed on CPU (dtypes); the CUDA step itself needs a GPU run.
    """
    import torch
    from transformers.utils import is_triton_available
    from trl import SFTTrainer

    from .gpu_env import require_build_tools

    if torch.cuda.is_available() and is_triton_available():
        # TRL's loss runs Triton kernels on CUDA (the same test as trl/kernels/chunked_logprob.py's _use_triton),
        # and Triton compiles a C module at the first step: fail here, with the apt command, not at step 0
        require_build_tools()
    import datasets

    # TRL tokenizes and truncates the datasets with datasets.map, each with a progress bar ("Truncating train
    # dataset" ...): sft_datasets already fitted every record to max_length, so nothing is cut, and ten bars right
    # after "summaries are never cut" only confuse. The Trainer's own progress bar is not affected.
    bars_were_on = not datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        trainer = SFTTrainer(model=model, args=args, **kwargs)
    finally:
        if bars_were_on:
            datasets.enable_progress_bars()
    if cfg.load_in_4bit and cfg.torch_dtype == torch.float16:
        for param in trainer.model.parameters():
            if param.requires_grad and param.dtype != torch.float32:
                param.data = param.data.float()
    return trainer


def sft_datasets(splits: dict[str, list[dict]], tokenizer, cfg: WorkshopConfig):
    """Train/validation prompt-completion datasets that fit ``max_length``, and what fitting did."""
    from datasets import Dataset

    out, report = {}, {}
    for name in ("train", "validation"):
        fitted, report[name] = fit_records(splits[name], tokenizer, cfg.max_length, with_completion=True,
                                           max_cut_fraction=cfg.max_cut_fraction)
        if not fitted:
            raise ValueError(f"{name} のレコードが 1 件も残りません ({len(splits[name])} 件すべてが max_length={cfg.max_length} に"
                             f"収まらないか、本文を {cfg.max_cut_fraction:.0%} より多く削る必要があります: {report[name]})。"
                             "WORKSHOP_MAX_LENGTH を大きくするか、WORKSHOP_MAX_CUT_FRACTION=1.0 (本文を短くしてすべて残す) にしてください。")
        out[name] = Dataset.from_list([{"id": r["index"], **to_prompt_completion(r)} for r in fitted])
    return out["train"], out["validation"], report


def world_size() -> int:
    """Number of training processes: set by the launcher (``torchrun``, ``accelerate launch``), else 1."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Rank 0 (or the only process): the one that prints, shows the bar and writes files."""
    return int(os.environ.get("RANK", "0")) == 0


def effective_batch(cfg: WorkshopConfig, n_processes: int | None = None) -> int:
    """Records per optimizer update: per-device batch x accumulation x processes."""
    n_processes = world_size() if n_processes is None else n_processes
    return cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * n_processes


def optimizer_steps(n_records: int, cfg: WorkshopConfig, n_processes: int | None = None) -> int:
    """Optimizer steps for the whole run, as the Trainer counts them.

    The batches of one epoch are dealt round-robin to the processes (accelerate's
    ``BatchSamplerShard``; the last round is filled from the start), so each process sees
    ceil(batches / processes) of them, and every ``gradient_accumulation_steps`` of those make
    one update. ``n_processes`` defaults to the launcher's ``WORLD_SIZE`` (1 in a notebook).
    """
    import math

    n_processes = world_size() if n_processes is None else n_processes
    batches_per_epoch = math.ceil(n_records / cfg.per_device_train_batch_size)
    batches_per_process = math.ceil(batches_per_epoch / n_processes)
    updates_per_epoch = math.ceil(batches_per_process / cfg.gradient_accumulation_steps)
    return math.ceil(updates_per_epoch * cfg.num_train_epochs)


def count_train_examples(trainer) -> dict:
    """Count, in this process, the examples its training steps really received.

    Wraps the Trainer's ``get_batch_samples`` (called only by the training loop, once per update, with
    this process's batches); evaluation batches are not counted. After ``train()`` the dict holds
    ``examples`` and ``batches``; with several processes each rank counts its own share
    (``scripts/train.py`` gathers them, so a two-process run shows that both ranks trained).
    """
    counts = {"examples": 0, "batches": 0}
    fetch = trainer.get_batch_samples

    def counting_fetch(*args, **kwargs):
        batches, n_items = fetch(*args, **kwargs)
        counts["batches"] += len(batches)
        counts["examples"] += sum(len(b["input_ids"]) for b in batches)
        return batches, n_items

    trainer.get_batch_samples = counting_fetch
    return counts


def save_adapter(trainer, cfg: WorkshopConfig, train_seconds: float, peak_memory: dict | None = None,
                 **extra) -> tuple[Path, dict]:
    """Save the adapter (+ tokenizer) and ``train_metrics.json`` where notebook 05 reads them.

    ``trainer.save_model`` writes only the LoRA weights of a PEFT model, from the main process,
    and gathers sharded weights under FSDP/DeepSpeed first. Every process must call it.
    """
    import json

    adapter_dir = cfg.run_dir / "adapter"
    trainer.save_model(str(adapter_dir))
    evals = [row["eval_loss"] for row in trainer.state.log_history if "eval_loss" in row]
    tokens = int(trainer.state.num_input_tokens_seen)
    metrics = {
        "train_seconds": train_seconds, "optimizer_steps": trainer.state.global_step,
        "tokens_seen": tokens, "tokens_per_second": tokens / train_seconds if train_seconds else None,
        "final_eval_loss": float(evals[-1]) if evals else None, "peak_memory_gib": peak_memory or {},
        "world_size": trainer.args.world_size, **extra,
    }
    if trainer.is_world_process_zero():
        (cfg.run_dir / "train_metrics.json").write_text(json.dumps(metrics, indent=1))
    return adapter_dir, metrics
