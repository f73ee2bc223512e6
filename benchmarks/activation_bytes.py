"""Measure the activation memory that ``utils.recipe.memory`` uses: bytes autograd keeps per token per decoder layer.

Builds the Mistral-7B shape with 1 and 2 decoder layers (random bf16 weights), loads each through the gpu
profile's own code (4-bit NF4 via bitsandbytes' CPU backend, ``prepare_model_for_kbit_training``, LoRA on
every projection), runs the backbone forward under bf16 autocast with ``torch.autograd.graph.saved_tensors_hooks``
counting the storage of every tensor saved for backward, and takes the 2-layer minus 1-layer difference.
Gradient checkpointing on and off. TRL's fused LM head never builds the full logits, so the LM head is left out.

It runs on the CPU (no GPU needed; ~2 minutes): CUDA kernels may save slightly different tensors (e.g. the SDPA
backend's statistics), so treat the figures as the CPU reading of the same code path; the GPU benchmark's peak
memory is the check.

    python benchmarks/activation_bytes.py        # writes benchmarks/results/activation_bytes.json
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from utils.recipe import config as config_module  # noqa: E402
from utils.recipe import training  # noqa: E402
from utils.recipe.memory import MISTRAL_7B  # noqa: E402
from utils.recipe.modeling import load_model  # noqa: E402

TOKENS = 256


def saved_bytes_per_token(model_dir: Path, checkpointing: bool) -> float:
    config_module._cuda_available = lambda: True  # the gpu profile's settings, on the CPU
    cfg = config_module.get_config("gpu", base_model=str(model_dir))
    cfg = dataclasses.replace(cfg, compute_dtype="bfloat16", gradient_checkpointing=checkpointing)
    model = training.lora_model(load_model(cfg), cfg)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    storages: dict[tuple, int] = {}

    def pack(t):
        key = (t.untyped_storage().data_ptr(), t.dtype)
        storages[key] = max(storages.get(key, 0), t.untyped_storage().nbytes())
        return t

    ids = torch.randint(3, MISTRAL_7B["vocab_size"], (1, TOKENS), generator=torch.Generator().manual_seed(0))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.autocast("cpu", dtype=torch.bfloat16):
        model.base_model.model.model(input_ids=ids)  # the decoder backbone; no LM head
    return sum(storages.values()) / TOKENS


def main() -> None:
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(0)
    result = {"shape": MISTRAL_7B, "tokens": TOKENS, "path": "gpu profile on CPU: NF4 + k-bit prep + LoRA, bf16 autocast"}
    with tempfile.TemporaryDirectory() as tmp:
        measured = {}
        for layers in (1, 2):
            model_dir = Path(tmp) / f"layers{layers}"
            MistralForCausalLM(MistralConfig(**{**MISTRAL_7B, "num_hidden_layers": layers})).to(torch.bfloat16).save_pretrained(model_dir)
            for checkpointing in (True, False):
                measured[(layers, checkpointing)] = saved_bytes_per_token(model_dir, checkpointing)
    for checkpointing in (True, False):
        key = "with_checkpointing" if checkpointing else "without_checkpointing"
        result[f"layer_bytes_per_token_{key}"] = measured[(2, checkpointing)] - measured[(1, checkpointing)]
    out = ROOT / "benchmarks" / "results" / "activation_bytes.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
