import pytest

from utils.recipe.config import TINY_MODEL_DIR
from utils.recipe.generation import Generation, _finish, generate


class _Tok:
    eos_token_id, pad_token_id = 2, 3

    def decode(self, ids, skip_special_tokens=True):
        return "".join({10: "要約", 11: "です", 12: "###", 13: " 指示"}[i] for i in ids)


@pytest.mark.parametrize("ids,expected", [
    ([10, 11, 2, 3, 3], Generation("要約です", "eos", 2)),
    ([10, 12, 13, 3], Generation("要約", "header", 3)),
    ([10, 11, 10], Generation("要約です要約", "length", 3)),
])
def test_cut_at_eos_or_header(ids, expected):
    assert _finish(ids, _Tok()) == expected


def test_batched_generation_is_deterministic_and_in_input_order(tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(TINY_MODEL_DIR).eval()
    prompts = ["### 指示\n要約して\n\n### 入力\n" + "東京は日本の首都である。" * k + "\n\n### 応答\n" for k in (1, 3, 2)]
    a = generate(model, tiny_tokenizer, prompts, max_new_tokens=12, batch_size=2)
    b = generate(model, tiny_tokenizer, prompts[::-1], max_new_tokens=12, batch_size=2)
    assert a == b[::-1]
    assert all(g.finish_reason in ("eos", "header", "length") and g.new_tokens <= 12 for g in a)
    assert all("###" not in g.text for g in a)
    assert tiny_tokenizer.padding_side == "right"  # restored for training


def test_repetition_penalty_spares_the_prompt(tiny_tokenizer):
    """Copying a word of the passage must not be penalised; repeating a generated one is."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(TINY_MODEL_DIR).eval()
    prompt = "### 指示\n要約して\n\n### 入力\n" + "東京は日本の首都である。" * 3 + "\n\n### 応答\n"
    calls = []
    original = model.generate

    def spy(**kwargs):
        calls.append(kwargs)
        return original(**kwargs)

    model.generate = spy
    plain = generate(model, tiny_tokenizer, [prompt], max_new_tokens=16, batch_size=1)
    penalised = generate(model, tiny_tokenizer, [prompt], max_new_tokens=16, batch_size=1, repetition_penalty=1.2)
    assert "repetition_penalty" not in calls[1]  # not transformers' prompt-wide penalty
    (proc,) = calls[1]["logits_processor"]
    n_prompt = len(tiny_tokenizer(prompt)["input_ids"])
    assert proc.penalty == 1.2 and proc.prompt_ignore_length == n_prompt
    # the processor leaves a prompt token's score alone when it has not been generated yet
    ids = torch.tensor([tiny_tokenizer(prompt)["input_ids"]])
    scores = torch.zeros(1, len(tiny_tokenizer)) + 1.0
    assert torch.equal(proc(ids, scores.clone()), scores)
    assert len(plain) == len(penalised) == 1
