"""The gpu profile's precision, memory and multi-GPU decisions, held on CPU with a faked device.

The test machines have no GPU, so each decision that depends on the device is tested here by
faking what torch reports (compute capability, device count, memory), through the real library code paths.
What only a GPU can confirm (the CUDA GradScaler step, real peak memory) is left to ``make check-gpu`` and
``benchmarks/gpu_qlora.py``.
"""

import dataclasses
import json
import types
import weakref

import pytest
import torch

from utils.recipe import config as config_module
from utils.recipe import training
from utils.recipe.config import PROJECT_ROOT, TINY_MODEL_DIR, get_config, profile_settings


def fake_gpu(monkeypatch, capability=(7, 5), count=1, total_gb=16.0, name="Tesla T4"):
    """torch.cuda as a VM with ``count`` GPUs of this compute capability would report it (no CUDA calls)."""
    props = types.SimpleNamespace(major=capability[0], minor=capability[1], name=name,
                                  total_memory=int(total_gb * 1e9))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: props)
    # On a T4 a bf16 tensor *can* be created (emulation): what is_bf16_supported()'s default checks
    monkeypatch.setattr(torch.cuda, "_check_bf16_tensor_supported", lambda device: True)


@pytest.mark.parametrize("capability, expected", [((7, 5), torch.float16), ((7, 0), torch.float16),
                                                  ((8, 0), torch.bfloat16), ((8, 9), torch.bfloat16),
                                                  ((9, 0), torch.bfloat16)])
def test_gpu_compute_dtype_follows_native_bf16(clean_env, capability, expected):
    """T4 (7.5) / V100 (7.0) compute in fp16; A100 (8.0), L4 (8.9), H100 (9.0) in bf16."""
    fake_gpu(clean_env, capability)
    cfg = get_config("gpu")
    assert cfg.device == "cuda"
    assert cfg.torch_dtype == expected
    # torch's own default answer on a T4 is True (emulated bf16): the trap the profile must not fall into
    assert torch.cuda.is_bf16_supported() is True


@pytest.fixture
def qlora_fp16_on_cpu(clean_env, tmp_path):
    """The gpu profile's QLoRA path on CPU (bitsandbytes' CPU backend) with fp16 compute, as on a T4."""
    clean_env.setattr(config_module, "_cuda_available", lambda: True)
    cfg = get_config("gpu", base_model=str(TINY_MODEL_DIR), output_dir=tmp_path)
    return dataclasses.replace(cfg, compute_dtype="float16", n_train=8, max_length=128, max_cut_fraction=1.0,
                               per_device_train_batch_size=4, gradient_accumulation_steps=1)  # short: keep every record


def _trainer_parts(cfg, tmp_path):
    from utils.recipe.data import select, summarization_splits
    from utils.recipe.modeling import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(cfg)
    peft_model = training.lora_model(model, cfg)
    train_ds, _, _ = training.sft_datasets(select(summarization_splits(cfg), cfg), tokenizer, cfg)
    args = training.sft_config(cfg, tmp_path / "trainer", max_steps=1, eval_strategy="no")
    return peft_model, tokenizer, train_ds, args


def test_fp16_qlora_keeps_the_adapter_in_fp32(qlora_fp16_on_cpu, tmp_path):
    """TRL casts a quantized model's trainable parameters to bf16; fp16 AMP's GradScaler cannot unscale bf16
    gradients on CUDA, so in fp16 the adapter must be fp32 (master weights) when the Trainer starts."""
    from trl import SFTTrainer

    cfg = qlora_fp16_on_cpu
    peft_model, tokenizer, train_ds, args = _trainer_parts(cfg, tmp_path)
    plain = SFTTrainer(model=peft_model, args=args, train_dataset=train_ds, processing_class=tokenizer)
    trainable = {p.dtype for p in plain.model.parameters() if p.requires_grad}
    assert trainable == {torch.bfloat16}, "TRL no longer casts QLoRA adapters to bf16: revisit sft_trainer"

    trainer = training.sft_trainer(peft_model, args, cfg, train_dataset=train_ds, processing_class=tokenizer)
    trainable = {n: p.dtype for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert trainable and set(trainable.values()) == {torch.float32}
    assert all("lora_" in n for n in trainable)


def test_bf16_qlora_keeps_trl_s_bf16_adapter(clean_env, tmp_path):
    clean_env.setattr(config_module, "_cuda_available", lambda: True)
    cfg = dataclasses.replace(get_config("gpu", base_model=str(TINY_MODEL_DIR), output_dir=tmp_path),
                              compute_dtype="bfloat16", n_train=8, max_length=128, max_cut_fraction=1.0)
    peft_model, tokenizer, train_ds, args = _trainer_parts(cfg, tmp_path)
    trainer = training.sft_trainer(peft_model, args, cfg, train_dataset=train_ds, processing_class=tokenizer)
    assert {p.dtype for p in trainer.model.parameters() if p.requires_grad} == {torch.bfloat16}


def test_multi_gpu_vm_trains_on_one_gpu_instead_of_failing(clean_env, tmp_path, capsys):
    """Two visible GPUs, one process: the Trainer would count both and TRL refuses nn.DataParallel."""
    from trl import SFTConfig, SFTTrainer

    from utils.recipe.modeling import load_model_and_tokenizer

    cfg = get_config("cpu", n_train=8, output_dir=tmp_path)
    model, tokenizer = load_model_and_tokenizer(cfg)
    peft_model = training.lora_model(model, cfg)
    from utils.recipe.data import select, summarization_splits

    train_ds, _, _ = training.sft_datasets(select(summarization_splits(cfg), cfg), tokenizer, cfg)
    clean_env.setattr(torch.cuda, "device_count", lambda: 2)  # what transformers reads for args.n_gpu

    stock = SFTConfig(output_dir=str(tmp_path / "stock"), bf16=False, max_steps=1, report_to="none")
    assert stock.n_gpu == 2
    with pytest.raises(ValueError, match="DataParallel"):
        SFTTrainer(model=peft_model, args=stock, train_dataset=train_ds, processing_class=tokenizer)

    args = training.sft_config(cfg, tmp_path / "ours", max_steps=1, eval_strategy="no")
    assert args.n_gpu == 1
    assert "GPU 0 だけで学習します" in capsys.readouterr().out
    SFTTrainer(model=peft_model, args=args, train_dataset=train_ds, processing_class=tokenizer)  # no error


def test_free_memory_really_releases_the_model(clean_env):
    from utils.recipe.modeling import free_memory, load_model_and_tokenizer

    cfg = get_config("cpu")
    model, tokenizer = load_model_and_tokenizer(cfg)
    namespace = {"model": model, "tokenizer": tokenizer}
    ref = weakref.ref(model)
    del model
    report = free_memory(namespace, "model")
    assert ref() is None and report["still_referenced"] == [] and "model" not in namespace

    model, _ = load_model_and_tokenizer(cfg)
    namespace = {"model": model, "alias": model}
    del model
    report = free_memory(namespace, "model")  # 'alias' still holds it: say so instead of pretending
    assert report["still_referenced"] == ["model"]


def test_free_memory_reports_gpu_memory_before_and_after(clean_env, capsys):
    from utils.recipe.modeling import free_memory

    reserved = iter([9.0 * 2**30, 0.5 * 2**30])
    clean_env.setattr(torch.cuda, "is_available", lambda: True)
    clean_env.setattr(torch.cuda, "memory_reserved", lambda: next(reserved))
    clean_env.setattr(torch.cuda, "empty_cache", lambda: None)
    report = free_memory({"model": torch.nn.Linear(2, 2)}, "model")
    assert report["reserved_before_gib"] == 9.0 and report["reserved_after_gib"] == 0.5
    assert "9.00 GiB → 0.50 GiB" in capsys.readouterr().out


@pytest.mark.parametrize("notebook, names", [("03_baseline_inference", ["model"]),
                                             ("04_lora_sft", ["trainer", "peft_model", "model"])])
def test_notebooks_free_the_gpu_before_the_next_one(notebook, names):
    """03 and 04 each end by releasing their model, so the next notebook fits on a 16 GB T4 in `make lab`."""
    nb = json.loads((PROJECT_ROOT / "notebooks" / f"{notebook}.ipynb").read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    last = code[-1]
    assert "free_memory(globals()" in last
    for name in names:
        assert f'"{name}"' in last


def test_activation_estimate_uses_the_gpu_profile_and_the_measured_bytes(clean_env):
    from utils.recipe.memory import LAYER_BYTES_PER_TOKEN, MISTRAL_7B, gpu_profile_activation_gb, qlora_activation_gb

    measured = json.loads((PROJECT_ROOT / "benchmarks" / "results" / "activation_bytes.json").read_text())
    assert measured["shape"] == MISTRAL_7B
    for key, value in LAYER_BYTES_PER_TOKEN.items():
        assert measured[f"layer_bytes_per_token_{key}"] == pytest.approx(value, rel=0.02)
    # checkpointed inputs are fp32 (4 bytes x hidden), not bf16
    assert LAYER_BYTES_PER_TOKEN["with_checkpointing"] == 4 * MISTRAL_7B["hidden_size"]

    cpu = get_config("cpu")  # the running profile must not change the 7B answer
    est = gpu_profile_activation_gb()
    gpu = profile_settings("gpu")
    assert (est["batch"], est["max_length"]) == (gpu["per_device_train_batch_size"], gpu["max_length"])
    assert (est["batch"], est["max_length"]) != (cpu.per_device_train_batch_size, cpu.max_length)
    tokens = est["batch"] * est["max_length"]
    assert est["kept_for_backward_gb"] == pytest.approx(tokens * 4 * 4096 * 32 / 1e9)
    # no (tokens x vocab) logits term: TRL's fused LM head never builds them
    assert est["total_gb"] < est["kept_for_backward_gb"] + est["recompute_one_layer_gb"] + 1.01
    no_gc = qlora_activation_gb(MISTRAL_7B, 4, 1024, gradient_checkpointing=False)
    assert 55 < no_gc["total_gb"] < 70  # ~1.8 GiB x 32 layers: why the benchmark skips no-gc on <= 40 GB


def test_merge_picks_a_device_with_room_or_says_what_to_do():
    from utils.recipe.export import merge_device

    gib = 2**30
    need = int(14.5e9)
    assert merge_device(need, gpu_free_bytes=60 * gib, ram_free_bytes=8 * gib) == "cuda"
    assert merge_device(need, gpu_free_bytes=6 * gib, ram_free_bytes=30 * gib) == "cpu"
    with pytest.raises(MemoryError, match="14.5 GB.*free_memory"):
        merge_device(need, gpu_free_bytes=6 * gib, ram_free_bytes=12 * gib)  # a 16 GB T4 VM after training


def test_benchmark_skips_variants_that_cannot_fit(clean_env):
    from benchmarks import gpu_qlora
    after_load = {"reserved_gib": 5.0}
    fake_gpu(clean_env, (8, 0), total_gb=42.5, name="A100-SXM4-40GB")
    cfg = get_config("gpu")
    no_gc = dataclasses.replace(cfg, gradient_checkpointing=False)
    assert gpu_qlora.memory_skip_reason(cfg, "gamma-7b", after_load) is None
    assert "> 42 GB" in gpu_qlora.memory_skip_reason(no_gc, "gamma-7b", after_load)
    fake_gpu(clean_env, (9, 0), total_gb=85.0, name="H100")
    assert gpu_qlora.memory_skip_reason(no_gc, "gamma-7b", after_load) is None


def test_fsdp_qlora_needs_the_4bit_storage_dtype_to_match_the_compute_dtype(clean_env, monkeypatch):
    from utils.recipe.config import ConfigError
    from utils.recipe.modeling import quantization_config

    fake_gpu(monkeypatch, capability=(8, 0), total_gb=80.0, name="NVIDIA A100")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # what `accelerate launch` with an FSDP config sets
    with pytest.raises(ConfigError, match="WORKSHOP_BNB_4BIT_QUANT_STORAGE=bfloat16"):
        get_config("gpu")
    cfg = get_config("gpu", bnb_4bit_quant_storage="bfloat16")
    assert quantization_config(cfg).bnb_4bit_quant_storage == torch.bfloat16
    with pytest.raises(ConfigError, match="bnb_4bit_quant_storage"):
        get_config("gpu", bnb_4bit_quant_storage="int4")
    monkeypatch.delenv("ACCELERATE_USE_FSDP")
    assert quantization_config(get_config("gpu")).bnb_4bit_quant_storage == torch.uint8  # bitsandbytes' default


def test_each_process_loads_onto_its_own_gpu_unless_fsdp_or_deepspeed_places_it(clean_env, monkeypatch):
    from utils.recipe.config import sharded_launch
    from utils.recipe.modeling import local_rank

    assert local_rank() == 0 and sharded_launch() is None
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert local_rank() == 3
    for key, engine in (("ACCELERATE_USE_FSDP", "FSDP"), ("ACCELERATE_USE_DEEPSPEED", "DeepSpeed")):
        monkeypatch.setenv(key, "true")
        assert sharded_launch() == engine
        monkeypatch.delenv(key)


def test_deepspeed_qlora_needs_the_same_storage_dtype(clean_env, monkeypatch):
    from utils.recipe.config import ConfigError

    fake_gpu(monkeypatch, capability=(9, 0), total_gb=80.0, name="NVIDIA H100")
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(ConfigError, match="DeepSpeed .*WORKSHOP_BNB_4BIT_QUANT_STORAGE=bfloat16"):
        get_config("gpu")
    assert get_config("gpu", bnb_4bit_quant_storage="bfloat16").load_in_4bit
