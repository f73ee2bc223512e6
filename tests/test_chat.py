"""Notebook 09's chat format (utils.recipe.chat): the role tokens, the template and its assistant mask, TRL's
assistant-only labels, and training the new rows with PEFT's trainable_token_indices under TRL's fused loss."""

from __future__ import annotations

from pathlib import Path

import pytest

from utils.recipe import chat

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "models" / "tiny-ja-mistral"
RECORD = {"instruction": "次の文章を要約してください。", "input": "今日は朝から雨でした。午後は晴れました。", "output": " 雨のち晴れ。 "}


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(TINY)
    tok.add_tokens(chat.ROLE_TOKENS, special_tokens=True)
    tok.chat_template = chat.CHAT_TEMPLATE
    return tok


def test_role_markers_are_single_special_tokens(tokenizer):
    assert [tokenizer.tokenize(t) for t in chat.ROLE_TOKENS] == [[t] for t in chat.ROLE_TOKENS]
    ids = tokenizer(chat.ASSISTANT + "本文")["input_ids"]
    assert chat.ASSISTANT not in tokenizer.decode(ids, skip_special_tokens=True)


def test_the_template_renders_the_turns_and_marks_only_the_assistant(tokenizer):
    messages = chat.to_messages(RECORD)["messages"]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    assert text == (f"<|system|>\n{chat.SYSTEM_MESSAGE}<|end|>\n<|user|>\n次の文章を要約してください。\n\n"
                    "今日は朝から雨でした。午後は晴れました。<|end|>\n<|assistant|>\n雨のち晴れ。<|end|>\n")
    enc = tokenizer.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
    marked = [i for i, m in zip(enc["input_ids"], enc["assistant_masks"]) if m]
    assert tokenizer.decode(marked) == "雨のち晴れ。<|end|>"


def test_a_test_prompt_becomes_the_same_conversation_up_to_the_assistant_marker(tokenizer):
    from utils.recipe.prompt import format_prompt

    prompt = chat.chat_prompt(tokenizer, format_prompt(RECORD["instruction"], RECORD["input"]))
    assert prompt.endswith("今日は朝から雨でした。午後は晴れました。<|end|>\n<|assistant|>\n")
    assert prompt.startswith("<|system|>\n")


@pytest.mark.slow  # one TRL step on the tiny model: a few seconds
@pytest.mark.parametrize("shim", [True, False])
def test_trainable_token_rows_train_under_trl_s_fused_loss(tokenizer, tmp_path, shim):
    """With tied weights PEFT wraps the output layer too; TRL 1.16's fused loss reads lm_head.bias, which the wrapper
    lacks: without chat.head_bias_for_trl training stops with AttributeError (the control), with it the new rows move
    and only the assistant turn is labelled."""
    import copy

    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    tok = copy.deepcopy(tokenizer)
    model = AutoModelForCausalLM.from_pretrained(TINY)
    model.resize_token_embeddings(len(tok))
    new_ids = tok.convert_tokens_to_ids(chat.ROLE_TOKENS)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM",
                                                  trainable_token_indices=new_ids))
    if shim:
        chat.head_bias_for_trl(peft_model)
    before = peft_model.get_input_embeddings().weight[new_ids].detach().clone()
    args = SFTConfig(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=2, learning_rate=1e-2,
                     assistant_only_loss=True, eos_token=chat.END, report_to="none", save_strategy="no", use_cpu=True)
    trainer = SFTTrainer(model=peft_model, args=args, train_dataset=Dataset.from_list([chat.to_messages(RECORD)] * 4),
                         processing_class=tok)
    labels = trainer.data_collator([trainer.train_dataset[0]])["labels"][0].tolist()
    assert tok.decode([l for l in labels if l != -100]) == "雨のち晴れ。<|end|>"
    if not shim:
        with pytest.raises(AttributeError, match="bias"):
            trainer.train()
        return
    trainer.train()
    after = peft_model.get_input_embeddings().weight[new_ids].detach()
    assert not torch.equal(before, after), "the new token rows did not train"
    head = peft_model.get_output_embeddings().weight[new_ids].detach()
    assert torch.equal(head, after), "the tied output rows differ from the input rows"
    assert peft_model.generation_config.eos_token_id[0] == tok.convert_tokens_to_ids(chat.END)


def test_the_ci_check_of_09_s_table_fails_on_what_the_controls_should_break():
    from scripts.ci.check_results import chat_failures

    measured = {"arms": {"chat": {"stop_rate": 0.82}, "chat_rows_untrained": {"stop_rate": 0.0},
                         "chat_other_template": {"stop_rate": 0.28}},
                "lora_minus_arm": {"chat_other_template": {"rougeL": {"ci_low": 5.2, "ci_high": 12.6}}}}
    assert chat_failures(measured) == []
    broken = {"arms": {"chat": {"stop_rate": 0.3}, "chat_rows_untrained": {"stop_rate": 0.8},
                       "chat_other_template": {"stop_rate": 0.9}},
              "lora_minus_arm": {"chat_other_template": {"rougeL": {"ci_low": -1.0, "ci_high": 2.0}}}}
    assert len(chat_failures(broken)) == 3
