"""Speed and memory of the `gpu` profile's QLoRA SFT on the real 7B shape, without downloading 7B weights.

Speed and memory do not depend on the weights' values, so this script builds the base model's
architecture (Japanese Stable LM Base Gamma 7B = the Mistral-7B shape) with random weights, saves it,
loads it back through the profile's own 4-bit loading code (``utils.recipe.modeling``), wraps it with the
profile's own LoRA (``utils.recipe.training.lora_model``) and trains with the profile's own SFTConfig
(``utils.recipe.training.sft_config``: TRL's collator, completion-only loss, max_length, batch x accumulation)
on the dolly-ja training prompts, tokenised with Mistral-7B-v0.1's tokenizer (shipped in
``models/mistral-7b-v0.1-tokenizer``), so sequence lengths are the real ones.

It reports non-padding tokens/s, seconds per optimizer step (after warm-up steps), peak allocated and
reserved GPU memory, and batched vs one-at-a-time generation throughput on the test prompts.
Every variant runs in a fresh process (clean memory statistics) and is appended to
``benchmarks/results/<gpu-name>.json`` as soon as it finishes.

    python benchmarks/gpu_qlora.py                          # the profile as it is, with generation
    python benchmarks/gpu_qlora.py --variants profile,no-gc,8x2,fp16
    python benchmarks/gpu_qlora.py --list                   # what each variant changes

On a machine without CUDA only ``--shape tiny-test --profile cpu`` runs (the unit tests use it to keep
this script working); its figures mean nothing.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from utils.recipe.memory import MISTRAL_7B, qlora_activation_gb  # noqa: E402

RESULTS_DIR = ROOT / "benchmarks" / "results"

# Japanese Stable LM Base Gamma 7B's config (continued pretraining of Mistral-7B-v0.1, same shape).
SHAPES: dict[str, dict] = {
    "gamma-7b": dict(**MISTRAL_7B, max_position_embeddings=32768, rope_theta=10000.0, sliding_window=4096,
                     rms_norm_eps=1e-5),
    # for CPU smoke tests only: same vocabulary and layer types, a toy width
    "tiny-test": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      intermediate_size=128, vocab_size=32000, max_position_embeddings=4096,
                      rope_theta=10000.0, sliding_window=4096, rms_norm_eps=1e-5, tie_word_embeddings=False),
}

# name -> (WorkshopConfig overrides, SFTConfig overrides, what it tests)
VARIANTS: dict[str, tuple[dict, dict, str]] = {
    "profile": ({}, {}, "the gpu profile as shipped"),
    "no-gc": ({"gradient_checkpointing": False}, {}, "gradient checkpointing off: faster, more activation memory"),
    "2x8": ({"per_device_train_batch_size": 2, "gradient_accumulation_steps": 8}, {}, "same effective batch, smaller micro-batch"),
    "8x2": ({"per_device_train_batch_size": 8, "gradient_accumulation_steps": 2}, {}, "same effective batch, larger micro-batch"),
    "16x1": ({"per_device_train_batch_size": 16, "gradient_accumulation_steps": 1}, {}, "same effective batch, no accumulation"),
    "no-gc-8x2": ({"gradient_checkpointing": False, "per_device_train_batch_size": 8, "gradient_accumulation_steps": 2}, {},
                  "checkpointing off with a larger micro-batch"),
    "padding-free": ({}, {"padding_free": True, "max_length": None},
                     "TRL padding-free batches (inputs are pre-fitted to max_length, so nothing is cut)"),
    "packing": ({}, {"packing": True}, "TRL BFD packing into max_length blocks (implies padding-free)"),
    "eager": ({"attn_implementation": "eager"}, {}, "reference attention instead of SDPA"),
    "fp16": ({"compute_dtype": "float16"}, {}, "T4-style: fp16 compute (no bf16 on Turing GPUs)"),
    "liger": ({}, {"use_liger_kernel": True}, "Liger kernels (fused linear cross-entropy); needs liger-kernel"),
}


def gpu_name() -> str:
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(0).lower()).strip("-")


def build_random_model(shape: str, model_dir: Path, tokenizer_dir: Path) -> Path:
    """Save a randomly initialised model of ``shape`` (bf16 on GPU) with the tokenizer beside it."""
    import torch
    from transformers import AutoTokenizer, MistralConfig, MistralForCausalLM

    marker = model_dir / "benchmark_shape.json"
    if marker.is_file() and json.loads(marker.read_text())["shape"] == SHAPES[shape]:
        return model_dir
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = MistralConfig(**SHAPES[shape], bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    t0 = time.time()
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = MistralForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    n_params = sum(p.numel() for p in model.parameters())
    del model
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    marker.write_text(json.dumps({"shape": SHAPES[shape], "parameters": n_params,
                                  "build_seconds": round(time.time() - t0, 1)}))
    print(f"built {shape}: {n_params / 1e9:.2f} B parameters in {time.time() - t0:.0f} s -> {model_dir}", flush=True)
    return model_dir


class StepTimer:
    """Trainer callback: wall time and non-padding tokens at every optimizer step boundary."""

    def __init__(self):
        from transformers import TrainerCallback

        timer = self
        self.marks: list[tuple[float, int]] = []

        class _CB(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                import torch

                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                timer.marks.append((time.perf_counter(), state.num_input_tokens_seen))

            def on_train_begin(self, args, state, control, **kwargs):
                timer.marks.append((time.perf_counter(), 0))

        self.callback = _CB()

    def summary(self, warmup_steps: int) -> dict:
        (t0, n0), (t1, n1) = self.marks[warmup_steps], self.marks[-1]
        steps = len(self.marks) - 1 - warmup_steps
        return {"measured_steps": steps, "seconds_per_step": (t1 - t0) / steps,
                "tokens_per_second": (n1 - n0) / (t1 - t0), "tokens_per_step": (n1 - n0) / steps}


def generation_throughput(model, tokenizer, prompts: list[str], cfg, new_tokens: int, n_single: int) -> dict:
    """Generated tokens per second, batched (the profile's batch) vs one prompt at a time."""
    import torch

    from utils.recipe.generation import generate

    def timed(batch_prompts, batch_size):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        gens = generate(model, tokenizer, batch_prompts, max_new_tokens=new_tokens, batch_size=batch_size,
                        repetition_penalty=cfg.repetition_penalty, desc=f"generate (batch {batch_size})")
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        tokens = sum(g.new_tokens for g in gens)
        return {"prompts": len(batch_prompts), "new_tokens": tokens, "seconds": seconds, "tokens_per_second": tokens / seconds}

    generate(model, tokenizer, prompts[:2], max_new_tokens=4, batch_size=2, desc="warm-up")
    batched = timed(prompts, cfg.gen_batch_size)
    single = timed(prompts[:n_single], 1)
    return {"max_new_tokens": new_tokens, "batch_size": cfg.gen_batch_size, "batched": batched, "single": single,
            "speedup": batched["tokens_per_second"] / single["tokens_per_second"]}


def run_variant(args) -> dict:
    """One variant, in this process: load, (generate), train ``warmup + steps`` optimizer steps, measure."""
    import torch

    from utils.recipe import training
    from utils.recipe.config import get_config
    from utils.recipe.data import select, summarization_splits
    from utils.evaluation.results import eval_prompts
    from utils.recipe.modeling import load_model_and_tokenizer

    cfg_over, sft_over, _ = VARIANTS[args.variant]
    cfg = get_config(args.profile, base_model=str(args.model_dir), **cfg_over, **dict(args.set))
    splits = select(summarization_splits(cfg), cfg)  # as notebook 02 does

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    model, tokenizer = load_model_and_tokenizer(cfg)
    result: dict = {"variant": args.variant, "load_seconds": time.time() - t0}
    if torch.cuda.is_available():
        result["after_load"] = {"allocated_gib": torch.cuda.memory_allocated() / 2**30,
                                "reserved_gib": torch.cuda.memory_reserved() / 2**30}

    skip = memory_skip_reason(cfg, args.shape, result.get("after_load"))
    if skip:
        return {**result, "skipped": skip}

    peft_model = training.lora_model(model, cfg)
    train_ds, val_ds, fit_report = training.sft_datasets(splits, tokenizer, cfg)
    max_steps = args.warmup_steps + args.steps
    sft_args = training.sft_config(cfg, args.work_dir / "trainer", max_steps=max_steps, eval_strategy="no",
                                   logging_steps=1, **{**sft_over, **dict(args.sft)})
    timer = StepTimer()
    trainer = training.sft_trainer(peft_model, sft_args, cfg, train_dataset=train_ds, processing_class=tokenizer,
                                   callbacks=[timer.callback])
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    trainer.train()
    result["train_wall_seconds"] = time.time() - t0
    result["train"] = timer.summary(args.warmup_steps)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    result["train"]["losses"] = losses
    if torch.cuda.is_available():
        result["train"]["peak_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
        result["train"]["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
    if args.generation:
        # as notebook 05 generates: through the PeftModel (LoRA branches on the 4-bit base), in eval mode
        peft_model.eval()
        rows, _ = eval_prompts(splits["test"], tokenizer, cfg)
        prompts = [r["prompt"] for r in rows[: args.gen_prompts]]
        result["generation"] = generation_throughput(peft_model, tokenizer, prompts, cfg, args.gen_new_tokens,
                                                     args.gen_single)
        result["generation"]["model"] = type(peft_model).__name__
        print(json.dumps(result["generation"], indent=1), flush=True)
    full_epoch_tokens = sum(len(x) for x in trainer.train_dataset["input_ids"]) if "input_ids" in trainer.train_dataset.column_names else None
    result["settings"] = {
        "profile": cfg.profile, "shape": args.shape, "dtype": str(cfg.torch_dtype).removeprefix("torch."),
        "load_in_4bit": cfg.load_in_4bit, "attn_implementation": cfg.attn_implementation,
        "max_length": sft_args.max_length, "batch": cfg.per_device_train_batch_size,
        "accumulation": cfg.gradient_accumulation_steps, "gradient_checkpointing": cfg.gradient_checkpointing,
        "padding_free": trainer.padding_free, "packing": sft_args.packing,
        "lora_r": cfg.lora_r, "lora_targets": list(cfg.lora_target_modules),
        "warmup_steps": args.warmup_steps, "train_records": len(train_ds), "fit_report": fit_report["train"],
        "cfg_overrides": {**cfg_over, **dict(args.set)}, "sft_overrides": {**sft_over, **dict(args.sft)},
    }
    if full_epoch_tokens is not None and not sft_args.packing:
        result["settings"]["epoch_tokens"] = full_epoch_tokens
        result["estimate_epoch_minutes"] = full_epoch_tokens / result["train"]["tokens_per_second"] / 60
    return result


def memory_skip_reason(cfg, shape: str, after_load: dict | None) -> str | None:
    """Why a variant would not fit this GPU (estimated activations + what loading took > total memory), or None.

    Without gradient checkpointing every layer keeps ~1.8 GiB of activations at 4 x 1024 tokens
    (utils.recipe.memory, measured per layer by benchmarks/activation_bytes.py): ~60 GB on the 7B shape, more
    than a 40 GB card. Such a variant is recorded as skipped with the figures instead of dying with OOM.
    """
    import torch

    if not torch.cuda.is_available() or shape != "gamma-7b" or after_load is None:
        return None
    act = qlora_activation_gb(MISTRAL_7B, cfg.per_device_train_batch_size, cfg.max_length, cfg.gradient_checkpointing)
    need = act["total_gb"] + after_load["reserved_gib"] * 2**30 / 1e9
    total = torch.cuda.get_device_properties(0).total_memory / 1e9
    if need > total:
        return (f"estimated {need:.0f} GB (activations {act['total_gb']:.0f} GB at {cfg.per_device_train_batch_size} x "
                f"{cfg.max_length} tokens, checkpointing {cfg.gradient_checkpointing}) > {total:.0f} GB on this GPU")
    return None


def environment() -> dict:
    import platform

    import torch
    import transformers
    import trl
    import peft

    env = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
           "trl": trl.__version__, "peft": peft.__version__, "device": gpu_name()}
    try:
        import bitsandbytes

        env["bitsandbytes"] = bitsandbytes.__version__
    except ImportError:
        env["bitsandbytes"] = None
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["gpu_memory_gib"] = torch.cuda.get_device_properties(0).total_memory / 2**30
    return env


def append_result(path: Path, entry: dict) -> None:
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"runs": []}
    data["runs"] = [r for r in data["runs"] if r.get("variant") != entry.get("variant")] + [entry]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def key_values(items: list[str]) -> list[tuple[str, object]]:
    out = []
    for item in items:
        key, _, raw = item.partition("=")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.append((key, value))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default="profile", help="comma-separated names (see --list)")
    ap.add_argument("--list", action="store_true", help="print the variants and exit")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="gamma-7b")
    ap.add_argument("--profile", default="gpu", help="the workshop profile whose settings are measured")
    ap.add_argument("--steps", type=int, default=8, help="measured optimizer steps (after the warm-up steps)")
    ap.add_argument("--warmup-steps", type=int, default=2, help="optimizer steps excluded from the timing")
    ap.add_argument("--gen-prompts", type=int, default=32, help="test prompts for the batched generation run")
    ap.add_argument("--gen-single", type=int, default=4, help="of those, how many also one at a time")
    ap.add_argument("--gen-new-tokens", type=int, default=128, help="new tokens per prompt (random weights rarely stop early)")
    ap.add_argument("--no-generation", dest="generation", action="store_false", help="skip the generation benchmark")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="WorkshopConfig override")
    ap.add_argument("--sft", action="append", default=[], metavar="ARG=VALUE", help="SFTConfig override")
    ap.add_argument("--work-dir", type=Path, default=ROOT / "outputs" / "benchmarks")
    ap.add_argument("--tokenizer", type=Path, default=None, help="default: models/mistral-7b-v0.1-tokenizer")
    ap.add_argument("--out", type=Path, default=None, help="results file (default benchmarks/results/<gpu>.json)")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per variant")
    ap.add_argument("--single", action="store_true", help=argparse.SUPPRESS)  # internal: run one variant here
    args = ap.parse_args(argv)
    args.set, args.sft = key_values(args.set), key_values(args.sft)
    if args.tokenizer is None:
        from utils.recipe.config import MISTRAL_TOKENIZER_DIR

        args.tokenizer = MISTRAL_TOKENIZER_DIR

    if args.list:
        for name, (c, s, why) in VARIANTS.items():
            print(f"{name:<13} {why}\n{'':<13} config {c or '-'}  sft {s or '-'}")
        return 0
    args.model_dir = args.work_dir / f"random-{args.shape}"

    if args.single:
        args.variant = args.variants
        result = run_variant(args)
        print("RESULT " + json.dumps(result, ensure_ascii=False), flush=True)
        return 0

    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variants {unknown}; see --list")
    for name in names:  # a variant is defined by what it changes: --set/--sft may not change the same field
        clash = sorted(set(VARIANTS[name][0]) & {k for k, _ in args.set}) + sorted(set(VARIANTS[name][1]) & {k for k, _ in args.sft})
        if clash:
            ap.error(f"variant {name} sets {clash} itself; drop them from --set/--sft or choose another variant")
    out = args.out or RESULTS_DIR / f"{gpu_name()}.json"
    build_random_model(args.shape, args.model_dir, args.tokenizer)
    env = environment()
    failures = 0
    for i, name in enumerate(names):
        cmd = [sys.executable, __file__, "--single", "--variants", name, "--shape", args.shape,
               "--profile", args.profile, "--steps", str(args.steps), "--warmup-steps", str(args.warmup_steps),
               "--gen-prompts", str(args.gen_prompts), "--gen-single", str(args.gen_single),
               "--gen-new-tokens", str(args.gen_new_tokens), "--work-dir", str(args.work_dir),
               "--tokenizer", str(args.tokenizer)]
        cmd += [] if (args.generation and i == 0) else ["--no-generation"]
        for k, v in args.set:
            cmd += ["--set", f"{k}={json.dumps(v)}"]
        for k, v in args.sft:
            cmd += ["--sft", f"{k}={json.dumps(v)}"]
        print(f"=== variant {name}: {VARIANTS[name][2]}", flush=True)
        t0 = time.time()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout,
                                  env={**os.environ, "PYTHONUNBUFFERED": "1"})
            lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
            if proc.returncode == 0 and lines:
                entry = json.loads(lines[-1].removeprefix("RESULT "))
            else:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
                entry = {"variant": name, "error": "\n".join(tail)}
        except subprocess.TimeoutExpired:
            entry = {"variant": name, "error": f"timed out after {args.timeout} s"}
        entry.update(environment=env, wall_seconds=round(time.time() - t0, 1), date=time.strftime("%Y-%m-%d"))
        append_result(out, entry)
        if "error" in entry:
            failures += 1
            print(f"    FAILED: {entry['error']}", flush=True)
        elif "skipped" in entry:
            print(f"    skipped: {entry['skipped']}", flush=True)
        else:
            tr = entry["train"]
            mem = f", peak reserved {tr['peak_reserved_gib']:.2f} GiB" if "peak_reserved_gib" in tr else ""
            print(f"    {tr['tokens_per_second']:,.0f} tokens/s, {tr['seconds_per_step']:.2f} s/step{mem}", flush=True)
    print(f"results: {out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
