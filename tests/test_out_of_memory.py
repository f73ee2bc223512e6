"""An out-of-memory error during training explains itself: the figures (batch, accumulation, max_length) and the exact
overrides that keep the effective batch. Held on CPU with a faked OOM raised from the model's forward whenever a
batch holds more than 2 examples -- and following the advice then trains, with the same effective batch."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from utils.recipe import training
from utils.recipe.config import get_config


def too_big(limit: int):
    """A forward pre-hook: what CUDA would raise when a batch above ``limit`` examples does not fit."""
    def hook(module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None and ids.shape[0] > limit:
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate 2.00 GiB (batch {ids.shape[0]}; faked)")
    return hook


def tiny_trainer(cfg, tmp_path):
    from utils.recipe.data import select, summarization_splits
    from utils.recipe.modeling import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(cfg)
    peft_model = training.lora_model(model, cfg)
    peft_model.register_forward_pre_hook(too_big(2), with_kwargs=True)
    train_ds, val_ds, _ = training.sft_datasets(select(summarization_splits(cfg), cfg), tokenizer, cfg)
    args = training.sft_config(cfg, tmp_path / "trainer", max_steps=2, eval_strategy="no", logging_steps=1)
    return training.sft_trainer(peft_model, args, cfg, train_dataset=train_ds, processing_class=tokenizer)


@pytest.mark.slow  # runs trainer.train
def test_oom_names_the_settings_and_the_overrides_that_keep_the_effective_batch(clean_env, tmp_path):
    cfg = dataclasses.replace(get_config("cpu", output_dir=tmp_path), n_train=16, n_val=4, max_length=256,
                              per_device_train_batch_size=4, gradient_accumulation_steps=2)
    with pytest.raises(training.TrainingOutOfMemory) as err:
        training.train(tiny_trainer(cfg, tmp_path), cfg)
    text = str(err.value)
    assert "メモリが足りなくなりました" in text and "OutOfMemoryError" in text
    assert "バッチ 4 × 勾配累積 2 = 実効バッチ 8" in text and "max_length 256" in text
    assert "export WORKSHOP_PER_DEVICE_TRAIN_BATCH_SIZE=2" in text and "export WORKSHOP_GRADIENT_ACCUMULATION_STEPS=4" in text
    assert "2 × 4 = 8 件/更新" in text
    assert 'SETTINGS = {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 4}' in text  # inside JupyterLab
    assert err.value.__cause__ is None  # short: no chained CUDA traceback in the notebook

    # the advice works: batch 2 x accumulation 4 fits under the faked limit and trains the same effective batch
    clean_env.setenv("WORKSHOP_PER_DEVICE_TRAIN_BATCH_SIZE", "2")
    clean_env.setenv("WORKSHOP_GRADIENT_ACCUMULATION_STEPS", "4")
    advised = dataclasses.replace(get_config("cpu", output_dir=tmp_path), n_train=16, n_val=4, max_length=256)
    assert training.effective_batch(advised) == training.effective_batch(cfg)
    trainer = tiny_trainer(advised, tmp_path)
    training.train(trainer, advised)
    assert trainer.state.global_step == 2


def test_at_batch_one_the_advice_is_a_shorter_max_length():
    cfg = dataclasses.replace(get_config("cpu"), per_device_train_batch_size=1, gradient_accumulation_steps=16)
    args = type("Args", (), {"per_device_train_batch_size": 1, "gradient_accumulation_steps": 16})()
    text = training.out_of_memory_message(cfg, args, torch.OutOfMemoryError("CUDA out of memory."))
    assert "バッチはもう 1 です" in text and f"WORKSHOP_MAX_LENGTH={cfg.max_length * 3 // 4}" in text
    assert "PER_DEVICE_TRAIN_BATCH_SIZE" not in text
