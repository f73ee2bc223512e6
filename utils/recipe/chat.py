"""The chat format of notebook 09: the summarization records as messages, role markers as new special tokens, and a
Jinja chat template (kept in the tokenizer) whose assistant turn is marked for TRL's ``assistant_only_loss``.

A base model has no chat template; an instruct model has its own (keep it and its tokens: ``chat_template`` and
``additional_special_tokens`` come with its tokenizer). This module builds one for the base model so that the same
recipe shows every piece: the tokens, the template, the grown embedding and the loss mask.
"""

from __future__ import annotations

from utils.recipe.config import WorkshopConfig
from utils.recipe.prompt import fit_records, parse_prompt

SYSTEM, USER, ASSISTANT, END = "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"
ROLE_TOKENS = [SYSTEM, USER, ASSISTANT, END]
SYSTEM_MESSAGE = "あなたは日本語の文章を要約するアシスタントです。"

# One turn = <|role|>\n content <|end|>\n. The assistant's content and its <|end|> sit inside {% generation %}:
# apply_chat_template(..., return_assistant_tokens_mask=True) marks exactly those tokens, and TRL trains on them only.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{ '<|assistant|>\n' }}{% generation %}{{ message['content'] }}{{ '<|end|>' }}{% endgeneration %}{{ '\n' }}"
    "{%- else -%}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|assistant|>\n' }}{%- endif -%}"
)


def to_messages(record: dict) -> dict:
    """A dolly-ja record as one conversation: system, user (instruction + passage), assistant (the summary)."""
    return {"messages": [
        {"role": "system", "content": SYSTEM_MESSAGE},
        {"role": "user", "content": f"{record['instruction']}\n\n{record['input']}"},
        {"role": "assistant", "content": record["output"].strip()},
    ]}


def request_messages(instruction: str, passage: str) -> list[dict]:
    """The conversation up to the assistant's turn (system and user, as in training): what a request sends."""
    return to_messages({"instruction": instruction, "input": passage, "output": ""})["messages"][:2]


def chat_prompt(tokenizer, prompt: str) -> str:
    """The chat-format prompt for a test prompt of 03 / 05 (the same instruction and, shortened alike, passage)."""
    parts = parse_prompt(prompt)
    messages = request_messages(parts["instruction"], parts["input"])
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def chat_datasets(splits: dict[str, list[dict]], tokenizer, cfg: WorkshopConfig):
    """Train/validation ``messages`` datasets of the records 04 trains on (fitted to ``max_length`` the same way)."""
    from datasets import Dataset

    out = {}
    for name in ("train", "validation"):
        fitted, _ = fit_records(splits[name], tokenizer, cfg.max_length, with_completion=True,
                                max_cut_fraction=cfg.max_cut_fraction)
        out[name] = Dataset.from_list([to_messages(r) for r in fitted])
    return out["train"], out["validation"]


def head_bias_for_trl(peft_model) -> None:
    """Let TRL's fused LM-head loss read ``lm_head.bias`` through PEFT's trainable-tokens wrapper.

    With ``trainable_token_indices`` on a model whose output layer shares the embedding (tied weights), PEFT wraps the
    output layer too; the wrapper gives ``.weight`` (the merged rows, trained ones included) but not ``.bias``, and
    TRL 1.16's fused loss reads both (``trl/trainer/utils.py``: ``weight, bias = lm_head.weight, lm_head.bias``), so
    training stops with ``AttributeError: 'TrainableTokensWrapper' object has no attribute 'bias'``. The wrapped
    layer's own bias (None for Mistral) is exposed on the wrapper; nothing else changes.
    """
    head = peft_model.get_output_embeddings()
    if hasattr(head, "token_adapter") and not hasattr(head, "bias"):
        head.bias = head.token_adapter.base_layer.bias
