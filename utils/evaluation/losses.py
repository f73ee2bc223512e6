"""Per-example loss of a reference completion given its prompt: 05's before/after reference loss and 08's
adapter-scale curve (utils.evaluation.forgetting) both score with it."""

from __future__ import annotations


def reference_loss(model, tokenizer, prompts: list[str], references: list[str], batch_size: int = 8) -> list[float]:
    """Mean loss (nats/token) of each reference summary + EOS given its prompt: how likely the
    model finds the answer we want, independent of what it happens to generate.

    Batches are formed longest first (less padding to compute), results come back in input order; an
    empty prompt scores the whole text (after the BOS token, if the tokenizer adds one)."""
    import torch

    texts = [a + b + tokenizer.eos_token for a, b in zip(prompts, references, strict=True)]
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    losses: list[float | None] = [None] * len(texts)
    side = tokenizer.padding_side
    tokenizer.padding_side = "right"
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start: start + batch_size]
            enc = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True,
                            verbose=False)  # prompt + full reference may exceed model_max_length: measured as is
            labels = enc["input_ids"].clone()
            labels[enc["attention_mask"] == 0] = -100
            for row, i in enumerate(idx):
                labels[row, : len(tokenizer(prompts[i])["input_ids"])] = -100
            enc = enc.to(model.device)
            with torch.inference_mode():
                logits = model(**enc).logits.float()
            shift_logits, shift_labels = logits[:, :-1], labels[:, 1:].to(logits.device)
            tok_loss = torch.nn.functional.cross_entropy(shift_logits.transpose(1, 2), shift_labels,
                                                         ignore_index=-100, reduction="none")
            mask = shift_labels != -100
            for i, value in zip(idx, ((tok_loss * mask).sum(1) / mask.sum(1)).tolist()):
                losses[i] = value
    finally:
        tokenizer.padding_side = side
    return losses  # type: ignore[return-value]
