"""LoRA and SFT settings built from the profile: one source for the notebooks, tests and benchmarks."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from utils.recipe.config import WorkshopConfig, looks_local
from utils.recipe.prompt import fit_records, to_prompt_completion


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
    """SFTConfig for TRL 1.x: completion-only loss, explicit precision, checkpoints as the profile says."""
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
        # checkpoints to resume from after a disconnect (train() resumes them); save_adapter() saves the final adapter
        save_strategy=cfg.save_strategy,
        save_steps=cfg.save_steps,
        save_total_limit=2,
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


def check_triton_toolchain() -> None:
    """On CUDA with Triton, stop before the Trainer is built when the C toolchain Triton compiles with is missing.

    TRL's loss runs Triton kernels on CUDA (the same test as trl/kernels/chunked_logprob.py's ``_use_triton``), and
    Triton compiles a C module at the first step: fail here, with the apt command, not at step 0 with gcc's error."""
    import torch
    from transformers.utils import is_triton_available

    from utils.machine.gpu_env import require_build_tools

    if torch.cuda.is_available() and is_triton_available():
        require_build_tools()


@contextmanager
def quiet_dataset_bars():
    """Hide datasets' progress bars while TRL tokenizes ("Tokenizing train dataset", "Truncating …").

    sft_datasets already fitted every record to max_length, so nothing is cut, and ten bars right after "summaries are
    never cut" only confuse. The Trainer's own progress bar is not affected."""
    import datasets

    bars_were_on = not datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if bars_were_on:
            datasets.enable_progress_bars()


def fp32_adapter_for_fp16(trainer, cfg: WorkshopConfig) -> None:
    """QLoRA in fp16 (T4: no native bf16): the LoRA weights back to fp32 master weights.

    For a quantized base, TRL 1.16 casts every trainable (LoRA) parameter to bf16, whatever the AMP
    mode (trl/trainer/sft_trainer.py: "the PEFT adapter weights are converted to bf16"). In fp16 AMP
    the GradScaler then meets bf16 gradients and the first optimizer step fails on CUDA
    (``_amp_foreach_non_finite_check_and_unscale_cuda`` has no BFloat16 kernel). So in fp16 the
    adapter goes back to fp32, as fp16 mixed precision expects; autocast still runs its matmuls in
    fp16. Confirmed on CPU (dtypes); the CUDA step itself needs a GPU run. Does nothing otherwise.
    """
    import torch

    if cfg.load_in_4bit and cfg.torch_dtype == torch.float16:
        for param in trainer.model.parameters():
            if param.requires_grad and param.dtype != torch.float32:
                param.data = param.data.float()


def sft_trainer(model, args, cfg: WorkshopConfig, **kwargs):
    """TRL's ``SFTTrainer(model=..., args=..., **kwargs)`` with the steps notebook 04 shows around it:
    ``check_triton_toolchain()``, ``quiet_dataset_bars()``, ``fp32_adapter_for_fp16()``."""
    from trl import SFTTrainer

    check_triton_toolchain()
    with quiet_dataset_bars():
        trainer = SFTTrainer(model=model, args=args, **kwargs)
    fp32_adapter_for_fp16(trainer, cfg)
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
    (``scripts/participant/train.py`` gathers them, so a two-process run shows that both ranks trained).
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


class TrainingOutOfMemory(RuntimeError):
    """The GPU ran out of memory during training; the message gives the figures and the overrides that keep the
    effective batch."""


def out_of_memory_message(cfg: WorkshopConfig, args, error: Exception) -> str:
    """Japanese: what ran out (the GPU's total / reserved / peak), the settings, and the exact overrides that halve
    the memory per step while keeping the effective batch (batch / 2, accumulation x 2)."""
    import torch

    batch, accumulation = args.per_device_train_batch_size, args.gradient_accumulation_steps
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        gib = 2**30
        where = (f"GPU: {props.name} {props.total_memory / gib:.1f} GiB、確保済み {torch.cuda.memory_reserved() / gib:.1f} GiB "
                 f"(ピーク {torch.cuda.max_memory_reserved() / gib:.1f} GiB)")
    else:
        where = "GPU なし"
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    lines = [f"学習中にメモリが足りなくなりました ({type(error).__name__}: {first[:160]})。",
             f"{where}。設定: バッチ {batch} × 勾配累積 {accumulation} = 実効バッチ {batch * accumulation} 件/更新 "
             f"(プロセスあたり)、max_length {cfg.max_length}、gradient checkpointing {'あり' if cfg.gradient_checkpointing else 'なし'}。"]
    if batch > 1:
        lines += ["実効バッチ (学習の結果を左右する値) を変えずに、1 回に GPU に載せる量を半分にするには、04 の 1 節の設定のセルを "
                  f"SETTINGS = {{\"per_device_train_batch_size\": {batch // 2}, \"gradient_accumulation_steps\": {accumulation * 2}}} "
                  "にするか、JupyterLab を起動する前のターミナルで:",
                  f"  export WORKSHOP_PER_DEVICE_TRAIN_BATCH_SIZE={batch // 2}",
                  f"  export WORKSHOP_GRADIENT_ACCUMULATION_STEPS={accumulation * 2}",
                  f"  ({batch // 2} × {accumulation * 2} = {batch // 2 * accumulation * 2} 件/更新"
                  + ("" if batch % 2 == 0 else f"。バッチ {batch} は奇数なので、実効バッチは {batch * accumulation} から少し変わります") + ")"]
    else:
        lines += [f"バッチはもう 1 です。1 件のトークン数を減らしてください: export WORKSHOP_MAX_LENGTH={max(128, cfg.max_length * 3 // 4)}"
                  + ("" if cfg.gradient_checkpointing else "、または export WORKSHOP_GRADIENT_CHECKPOINTING=true")]
    lines.append("設定を変えたら、カーネルを再起動して 04 を最初から実行してください (学習を自動でやり直すことはしません: "
                 "途中まで学習した LoRA の重みが残っているかもしれず、やり直しの結果が設定どおりか分からなくなるため)。"
                 "間に合わないときは講師のアダプタで 05 に進めます (WORKSHOP_ADAPTER)。")
    return "\n".join(lines)


# The settings a checkpoint must share with the current run to be resumed (the rest -- n_test, generation, report_to --
# does not change what the training steps compute).
RESUME_FIELDS = ("base_model", "data_path", "task_category", "load_in_4bit", "compute_dtype", "max_length", "max_cut_fraction",
                 "n_train", "n_val", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules", "learning_rate",
                 "num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps", "warmup_steps",
                 "lr_scheduler_type", "gradient_checkpointing", "seed")
SETTINGS_FILE = "workshop_settings.json"


class CheckpointMismatch(RuntimeError):
    """A checkpoint from other settings: resuming it would train a mix of two recipes."""


def resume_settings(cfg: WorkshopConfig) -> dict:
    values = {}
    for name in RESUME_FIELDS:
        value = getattr(cfg, name)
        if isinstance(value, tuple):
            value = list(value)
        elif name == "base_model" and looks_local(value):
            value = Path(value).name  # the same bundled model from another checkout (e.g. a hosted runtime's clone)
        values[name] = value
    values["world_size"] = world_size()
    return values


def checkpoint_to_resume(trainer, cfg: WorkshopConfig) -> str | None:
    """The latest checkpoint under the Trainer's output_dir if its settings are this run's; None when there is none.
    A checkpoint from other settings stops with the fields that differ and how to start over."""
    import json

    from transformers.trainer_utils import get_last_checkpoint

    folder = Path(trainer.args.output_dir)
    last = get_last_checkpoint(str(folder)) if folder.is_dir() else None
    if last is None:
        return None
    saved_file = Path(last) / SETTINGS_FILE
    saved = json.loads(saved_file.read_text(encoding="utf-8")) if saved_file.is_file() else {}
    now = resume_settings(cfg)
    differ = [name for name in now if saved.get(name) != now[name]]
    if differ:
        details = "、".join(f"{name}: チェックポイント {saved.get(name, '記録なし')!r} → 今 {now[name]!r}" for name in differ)
        raise CheckpointMismatch(
            f"{last} は別の設定で学習した途中経過なので、続きから再開できません ({details})。\n"
            f"前の設定のまま続けるなら設定を元に戻してください。今の設定で最初から学習し直すなら、チェックポイントを消してから "
            f"もう一度実行してください: rm -rf {folder}/checkpoint-*")
    return last


def settings_callback(cfg: WorkshopConfig):
    """A TrainerCallback that writes the run's RESUME_FIELDS next to each checkpoint (what checkpoint_to_resume compares)."""
    import json

    from transformers import TrainerCallback

    settings = resume_settings(cfg)

    class SaveSettings(TrainerCallback):
        workshop_settings = True

        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if state.is_world_process_zero and folder.is_dir():
                (folder / SETTINGS_FILE).write_text(json.dumps(settings, ensure_ascii=False, indent=1), encoding="utf-8")
            return control

    return SaveSettings()


def write_settings_with_checkpoints(trainer, cfg: WorkshopConfig) -> None:
    """Add, once, the callback that writes the run's settings next to each checkpoint (what a resume compares)."""
    if not any(getattr(cb, "workshop_settings", False) for cb in trainer.callback_handler.callbacks):
        trainer.add_callback(settings_callback(cfg))


def resume_point(trainer, cfg: WorkshopConfig) -> str | None:
    """Make the run resumable and say where it resumes: adds the callback that writes the settings next to each
    checkpoint, and returns the latest checkpoint of the same settings (after a disconnect, a killed kernel or a
    preempted VM; the Trainer then restores the weights, optimizer, scheduler, RNG states and the position in the data),
    or None. A checkpoint from other settings stops with CheckpointMismatch."""
    write_settings_with_checkpoints(trainer, cfg)
    last = checkpoint_to_resume(trainer, cfg)
    if last is not None and is_main_process():
        print(f"前回の途中経過 {last} から学習を再開します (同じ設定のチェックポイント)。最初からやり直すには、"
              f"止めてから rm -rf {Path(trainer.args.output_dir)}/checkpoint-* を実行してください。", flush=True)
    return last


@contextmanager
def out_of_memory_explained(cfg: WorkshopConfig, args):
    """An out-of-memory error inside becomes ``TrainingOutOfMemory`` with the figures and the fix (a raw
    ``torch.OutOfMemoryError`` names neither the settings nor the overrides that keep the effective batch)."""
    import torch

    try:
        yield
    except torch.OutOfMemoryError as err:
        message = out_of_memory_message(cfg, args, err)
        del err  # drop the frames that hold the activations
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise TrainingOutOfMemory(message) from None


def train(trainer, cfg: WorkshopConfig, **kwargs):
    """``trainer.train(**kwargs)`` as notebook 04 runs it: from ``resume_point()`` unless the caller names a
    checkpoint, inside ``out_of_memory_explained()``. Sets ``trainer.resumed_from``."""
    if "resume_from_checkpoint" not in kwargs:
        kwargs["resume_from_checkpoint"] = resume_point(trainer, cfg)
    else:
        write_settings_with_checkpoints(trainer, cfg)
    trainer.resumed_from = kwargs["resume_from_checkpoint"]
    with out_of_memory_explained(cfg, trainer.args):
        return trainer.train(**kwargs)
