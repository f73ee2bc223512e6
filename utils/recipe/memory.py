"""Back-of-the-envelope GPU memory for 7B QLoRA training: the inputs 01 uses to pick a GPU.

Estimates, not GPU measurements (``benchmarks/gpu_qlora.py`` measures peak memory on a real GPU). The
activation figures come from ``benchmarks/activation_bytes.py``, which runs the ``gpu`` profile's own path
(NF4 4-bit, ``prepare_model_for_kbit_training``, LoRA on every projection, bf16 autocast) on the CPU and
counts the bytes autograd saves per token per decoder layer (``benchmarks/results/activation_bytes.json``):

* with gradient checkpointing: 16,384 B = 4 B x hidden 4096: each layer's input, in **fp32**, because
  k-bit preparation casts the embeddings and norms to fp32, so the residual stream is fp32;
* without checkpointing: ~469,000 B (~1.8 GiB per layer at 4 x 1024 tokens): every intermediate of the
  layer (projections, MLP activations, the norms' and LoRA branches' copies). With checkpointing one
  layer at a time holds this while it is recomputed in the backward pass.

Not counted: the logits. TRL 1.16's SFTTrainer computes the loss through a fused LM head in tiles,
only at completion positions (trl/trainer/utils.py ``add_fused_lm_head``), never the full
(tokens x vocab) tensor. Added: 1 GB for the CUDA context, cuBLAS workspaces and fragmentation (a guess).
"""

from __future__ import annotations

GB = 1e9

# Mistral-7B-v0.1's shape: Japanese Stable LM Base Gamma 7B (the gpu profile's model) keeps it, vocabulary included.
MISTRAL_7B = dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                  intermediate_size=14336, vocab_size=32000, tie_word_embeddings=False)


def linear_shapes(s: dict) -> dict[str, tuple[int, int]]:
    """(in_features, out_features) of each linear layer in one decoder block."""
    h, i = s["hidden_size"], s["intermediate_size"]
    kv = s["num_key_value_heads"] * h // s["num_attention_heads"]  # GQA: k/v are narrower
    return {"q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h),
            "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}


def count_params(s: dict) -> dict[str, int]:
    """Parameters of a Mistral-shaped model by part (01 checks it against transformers on the meta device)."""
    h, n_layers = s["hidden_size"], s["num_hidden_layers"]
    per_layer = sum(a * b for a, b in linear_shapes(s).values()) + 2 * h  # + two RMSNorm weights
    embed = s["vocab_size"] * h
    parts = {"embed_tokens": embed, "decoder layers": n_layers * per_layer, "final norm": h,
             "lm_head": 0 if s["tie_word_embeddings"] else embed}
    parts["total"] = sum(parts.values())
    return parts


def count_lora_params(s: dict, r: int, target_modules) -> int:
    """LoRA adds A (r x in) and B (out x r) to each target linear layer: r * (in + out) parameters."""
    shapes = linear_shapes(s)
    unknown = set(target_modules) - set(shapes)
    if unknown:
        raise ValueError(f"lora_target_modules に Mistral にない層があります: {sorted(unknown)}")
    return s["num_hidden_layers"] * sum(r * sum(shapes[m]) for m in target_modules)


CUDA_OVERHEAD_GB = 1.0
# Measured by benchmarks/activation_bytes.py for MISTRAL_7B (tests/test_gpu_faults.py checks they match its results file).
LAYER_BYTES_PER_TOKEN = {"with_checkpointing": 16_384, "without_checkpointing": 469_480}


def qlora_activation_gb(shape: dict, batch: int, max_length: int, gradient_checkpointing: bool = True) -> dict[str, float]:
    """Activation memory of one micro-batch (GB) and what it is made of; padding to ``max_length`` is the worst case."""
    if shape != MISTRAL_7B:
        raise ValueError("the per-layer figures were measured for MISTRAL_7B only; rerun benchmarks/activation_bytes.py")
    tokens = batch * max_length
    layers = shape["num_hidden_layers"]
    per_layer = tokens * LAYER_BYTES_PER_TOKEN["without_checkpointing"]
    if gradient_checkpointing:
        kept = tokens * LAYER_BYTES_PER_TOKEN["with_checkpointing"] * layers  # each layer's fp32 input
        recompute = per_layer  # one layer at a time, during the backward pass
    else:
        kept = per_layer * layers  # every layer keeps all its intermediates
        recompute = 0
    parts = {"tokens": tokens, "kept_for_backward_gb": kept / GB, "recompute_one_layer_gb": recompute / GB,
             "cuda_overhead_gb": CUDA_OVERHEAD_GB}
    parts["total_gb"] = parts["kept_for_backward_gb"] + parts["recompute_one_layer_gb"] + CUDA_OVERHEAD_GB
    return parts


def gpu_profile_activation_gb() -> dict[str, float]:
    """The activation estimate for the ``gpu`` profile's own batch and ``max_length``, whichever profile runs
    (01 on the cpu profile still answers "which GPU does the 7B need?")."""
    from utils.recipe.config import profile_settings

    gpu = profile_settings("gpu")
    out = qlora_activation_gb(MISTRAL_7B, gpu["per_device_train_batch_size"], gpu["max_length"],
                              gpu["gradient_checkpointing"])
    return {"batch": gpu["per_device_train_batch_size"], "max_length": gpu["max_length"], **out}


# --- training time of the gpu profile (an estimate: the 7B has not been trained on a GPU in this repository yet) -
# Dense bf16/fp16 tensor-core peak (vendor datasheets, without sparsity) of the GPUs the timetable plans for.
GPU_PEAK_TFLOPS = {"T4": 65, "L4": 121, "A100": 312, "H100": 989}
ASSUMED_UTILIZATION = 0.3  # share of peak a 7B QLoRA step reaches: an assumption, not a measurement
FLOP_PER_TOKEN_PER_PARAM = 8  # forward 2N + backward 4N + gradient-checkpointing recompute 2N
N_PARAMS_7B = 7.2e9
TOKEN_BUDGET_FILE = "benchmarks/results/token_budget_gpu.json"  # measured offline by benchmarks/token_budget.py


def gpu_training_tokens(epochs: float | None = None, n_train: int | None = None) -> dict:
    """Training tokens of the gpu profile (prompt + completion, no padding) from the measured token budget:
    04's own record selection (max_length, max_cut_fraction) with Mistral-7B-v0.1's tokenizer. ``n_train`` takes
    the first n records of the train split before fitting, so the share that fits (940 of 1,052) and the mean
    tokens per kept record scale it."""
    import json

    from utils.recipe.config import PROJECT_ROOT, profile_settings

    budget = json.loads((PROJECT_ROOT / TOKEN_BUDGET_FILE).read_text(encoding="utf-8"))
    epochs = profile_settings("gpu")["num_train_epochs"] if epochs is None else epochs
    split = budget["reference_tokens_train"]["n"]  # train records before fitting
    records = budget["train_records"] * (1 if n_train is None else min(n_train, split) / split)
    per_epoch = budget["train_epoch_tokens"] * records / budget["train_records"]
    return {"records": records, "epochs": epochs, "tokens_per_epoch": per_epoch, "tokens": per_epoch * epochs}


def training_minutes(tokens: float, gpu: str) -> float:
    """Minutes for ``tokens`` training tokens on ``gpu`` under the assumptions above (compute-bound; padding, 4-bit
    dequantisation, evaluation and data loading are not counted)."""
    flop = tokens * FLOP_PER_TOKEN_PER_PARAM * N_PARAMS_7B
    return flop / (GPU_PEAK_TFLOPS[gpu] * 1e12 * ASSUMED_UTILIZATION) / 60


def about_minutes(minutes: float) -> str:
    """How the prose writes an estimate: "約 57 分" (whole minutes; "約 1 分未満" below one)."""
    return "約 1 分未満" if minutes < 1 else f"約 {round(minutes)} 分"
