"""SFT settings and TRL's completion-only masking on the real collator."""

import pytest

from utils.recipe.config import TINY_MODEL_DIR, get_config
from utils.recipe.training import lora_config, optimizer_steps, sft_config, sft_datasets

RECORDS = [
    {"index": str(i), "instruction": "次の文章を要約してください。", "input": "本文" * (5 + 7 * i) + "。",
     "output": f"要約{i}です。", "category": "summarization"}
    for i in range(3)
]


def test_sft_config_is_cpu_safe(clean_env, tmp_path):
    cfg = get_config()
    args = sft_config(cfg, tmp_path)
    assert args.bf16 is False and args.fp16 is False  # SFTConfig would otherwise pick bf16
    assert args.gradient_checkpointing is False
    assert args.completion_only_loss is True and args.max_length == cfg.max_length
    assert args.learning_rate == cfg.learning_rate and args.seed == cfg.seed


def test_lora_config_follows_the_profile(clean_env):
    cfg = get_config()
    lc = lora_config(cfg)
    assert (lc.r, lc.lora_alpha, lc.lora_dropout) == (cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout)
    assert set(lc.target_modules) == set(cfg.lora_target_modules) and "lm_head" not in lc.target_modules


@pytest.mark.parametrize("n,batch,accum,epochs,expected", [(1000, 4, 4, 2, 126), (16, 8, 2, 1, 1), (17, 8, 2, 3, 6)])
def test_optimizer_step_arithmetic(clean_env, n, batch, accum, epochs, expected):
    cfg = get_config(per_device_train_batch_size=batch, gradient_accumulation_steps=accum, num_train_epochs=epochs)
    assert optimizer_steps(n, cfg) == expected


def test_trl_collator_masks_the_prompt_and_trains_eos(clean_env, tmp_path, tiny_tokenizer):
    from transformers import AutoModelForCausalLM
    from trl import SFTTrainer

    cfg = get_config(max_length=64)
    splits = {"train": RECORDS, "validation": RECORDS[:1]}
    train_ds, val_ds, report = sft_datasets(splits, tiny_tokenizer, cfg)
    assert report["train"]["dropped_too_long"] == 0
    model = AutoModelForCausalLM.from_pretrained(TINY_MODEL_DIR)
    trainer = SFTTrainer(model=model, args=sft_config(cfg, tmp_path, max_steps=1), train_dataset=train_ds,
                         eval_dataset=val_ds, processing_class=tiny_tokenizer, peft_config=lora_config(cfg))
    rows = [trainer.train_dataset[i] for i in range(len(trainer.train_dataset))]
    batch = trainer.data_collator(rows)
    for row, ids, labels, example in zip(rows, batch["input_ids"].tolist(), batch["labels"].tolist(), train_ds):
        n_prompt = len(tiny_tokenizer(example["prompt"])["input_ids"])
        n = len(row["input_ids"])
        assert all(label == -100 for label in labels[:n_prompt]), "a prompt position carries a label"
        assert labels[n_prompt:n] == ids[n_prompt:n], "a completion position is masked"
        assert labels[n - 1] == tiny_tokenizer.eos_token_id, "the EOS after the completion is not trained"
        assert all(label == -100 for label in labels[n:]), "padding carries a label"
        decoded = tiny_tokenizer.decode(ids[n_prompt:n], skip_special_tokens=True)
        assert decoded == example["completion"]


@pytest.mark.parametrize("n,batch,accum,procs,expected", [
    (59, 4, 2, 2, 4),  # 15 batches -> 8 per process -> 4 updates (the two-process test's run)
    (59, 4, 4, 1, 4),  # same effective batch in one process
    (1000, 4, 4, 8, 16),  # 250 batches -> 32 per GPU -> 8 updates x 2 epochs
    (10, 8, 1, 4, 1),  # fewer batches than processes: every process still makes one update
])
def test_optimizer_steps_count_the_processes(clean_env, n, batch, accum, procs, expected):
    from utils.recipe.training import effective_batch

    epochs = 2 if n == 1000 else 1
    cfg = get_config(per_device_train_batch_size=batch, gradient_accumulation_steps=accum, num_train_epochs=epochs)
    assert optimizer_steps(n, cfg, n_processes=procs) == expected
    assert effective_batch(cfg, procs) == batch * accum * procs


def test_process_count_comes_from_the_launcher(clean_env, monkeypatch, tmp_path):
    from utils.recipe.training import effective_batch, is_main_process, world_size

    cfg = get_config(per_device_train_batch_size=4, gradient_accumulation_steps=2, num_train_epochs=1)
    assert world_size() == 1 and is_main_process() and effective_batch(cfg) == 8
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert world_size() == 2 and not is_main_process()
    assert effective_batch(cfg) == 16 and optimizer_steps(59, cfg) == 4


def test_several_processes_skip_ddp_s_unused_parameter_search(clean_env, monkeypatch, tmp_path):
    from utils.recipe import training

    cfg = get_config()
    assert sft_config(cfg, tmp_path).ddp_find_unused_parameters is None  # one process: the Trainer's default
    monkeypatch.setattr(training, "world_size", lambda: 2)  # (a real WORLD_SIZE=2 would start a process group)
    assert sft_config(cfg, tmp_path).ddp_find_unused_parameters is False  # every LoRA weight gets a gradient


def test_a_budget_that_leaves_no_training_record_says_what_to_change(tiny_tokenizer):
    """Every record dropped (too long, or cut beyond max_cut_fraction) is a clear error, not TRL's StopIteration."""
    long = [{**RECORDS[0], "index": str(i), "input": "長い本文です。" * 200} for i in range(3)]
    with pytest.raises(ValueError, match="WORKSHOP_MAX_CUT_FRACTION"):
        sft_datasets({"train": long, "validation": long}, tiny_tokenizer, get_config(max_length=64))
    train, _, report = sft_datasets({"train": long, "validation": long}, tiny_tokenizer,
                                    get_config(max_length=64, max_cut_fraction=1.0))
    assert len(train) == 3 and report["train"]["input_truncated"] == 3
