"""The gpu profile's QLoRA code path, run for real on CPU with the tiny model.

bitsandbytes 0.50 also quantises to NF4 on CPU, so the path participants take on a GPU (4-bit loading,
prepare_model_for_kbit_training, LoRA on Linear4bit layers, TRL training with gradient checkpointing,
adapter saved and reloaded onto a fresh 4-bit base, batched generation) is exercised here without CUDA.
Only the device differs; speed and memory on a GPU are benchmarks/gpu_qlora.py's job.
"""

import dataclasses

import pytest
import torch

from utils.recipe import config as config_module
from utils.recipe import training
from utils.recipe.config import TINY_MODEL_DIR, get_config
from utils.recipe.data import select, summarization_splits
from utils.recipe.generation import generate
from utils.recipe.modeling import load_model, load_model_and_tokenizer
from utils.recipe.prompt import to_prompt_completion


@pytest.fixture
def gpu_profile_on_cpu(clean_env, tmp_path):
    """The gpu profile's settings with the tiny model, sized down to seconds, bf16 compute as on a GPU."""
    clean_env.setattr(config_module, "_cuda_available", lambda: True)
    cfg = get_config("gpu", base_model=str(TINY_MODEL_DIR), output_dir=tmp_path)
    return dataclasses.replace(cfg, compute_dtype="bfloat16", n_train=12, n_test=2, max_length=256,
                               per_device_train_batch_size=4, gradient_accumulation_steps=1)


@pytest.mark.slow  # trains
def test_qlora_trains_saves_and_reloads(gpu_profile_on_cpu, tmp_path):
    cfg = gpu_profile_on_cpu
    assert cfg.load_in_4bit and cfg.gradient_checkpointing  # what the gpu profile ships
    model, tokenizer = load_model_and_tokenizer(cfg)
    import bitsandbytes as bnb

    q_proj = model.model.layers[0].self_attn.q_proj
    assert isinstance(q_proj, bnb.nn.Linear4bit) and q_proj.weight.quant_type == "nf4"
    assert model.get_memory_footprint() < 0.5 * sum(p.numel() for p in model.parameters()) * 4  # well below fp32

    peft_model = training.lora_model(model, cfg)
    lora_names = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert lora_names and all("lora_" in n for n in lora_names)  # only the adapter trains; 4-bit weights stay frozen

    splits = select(summarization_splits(cfg), cfg)
    train_ds, _, _ = training.sft_datasets(splits, tokenizer, cfg)
    from trl import SFTTrainer

    args = training.sft_config(cfg, tmp_path / "trainer", max_steps=3, eval_strategy="no", logging_steps=1)
    assert args.gradient_checkpointing
    before = {n: p.detach().clone() for n, p in peft_model.named_parameters() if "lora_B" in n}
    trainer = SFTTrainer(model=peft_model, args=args, train_dataset=train_ds, processing_class=tokenizer)
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    changed = [n for n, p in peft_model.named_parameters() if n in before and not torch.equal(p, before[n])]
    assert changed, "LoRA B matrices did not move"

    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    reloaded = load_model(cfg, adapter, tokenizer)  # notebook 05's path: a fresh 4-bit base + the saved adapter
    assert isinstance(reloaded.base_model.model.model.layers[0].self_attn.q_proj.base_layer, bnb.nn.Linear4bit)
    prompts = [to_prompt_completion(r)["prompt"] for r in splits["test"]]
    gens = generate(reloaded, tokenizer, prompts, max_new_tokens=6, batch_size=2)
    assert len(gens) == 2 and all(0 < g.new_tokens <= 6 for g in gens)
