"""Batched greedy generation for evaluation: deterministic, left-padded, cut at EOS or the next '###'."""

from __future__ import annotations

from dataclasses import dataclass

from utils.recipe.prompt import HEADER_PREFIX


@dataclass(frozen=True)
class Generation:
    text: str  # the newly generated text only, cut at EOS or at the next '###' header
    finish_reason: str  # "eos" (the model stopped), "header" (it began a new section), "length"
    new_tokens: int  # tokens generated before the cut


def generate(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int = 16,
             repetition_penalty: float = 1.0, desc: str = "generate") -> list[Generation]:
    """Greedy decoding of many prompts, longest first (less padding), results in input order.

    ``repetition_penalty`` applies to the *generated* tokens only. transformers' own
    ``generate(repetition_penalty=...)`` also penalises every prompt token, which discourages exactly
    what a summary does: reusing words of the passage.
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import LogitsProcessorList, RepetitionPenaltyLogitsProcessor

    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    results: list[Generation | None] = [None] * len(prompts)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation continues from the right end of every row
    try:
        with torch.inference_mode(), tqdm(total=len(prompts), desc=desc, unit="prompt") as bar:
            for start in range(0, len(order), batch_size):
                idx = order[start: start + batch_size]
                enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True).to(model.device)
                processors = LogitsProcessorList()
                if repetition_penalty != 1.0:  # left padding: every row's generated tokens start at the same column
                    processors.append(RepetitionPenaltyLogitsProcessor(
                        float(repetition_penalty), prompt_ignore_length=enc["input_ids"].shape[1]))
                out = model.generate(
                    **enc, max_new_tokens=max_new_tokens, do_sample=False, logits_processor=processors,
                    pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                    stop_strings=[HEADER_PREFIX], tokenizer=tokenizer,
                )
                new = out[:, enc["input_ids"].shape[1]:].tolist()
                for i, ids in zip(idx, new):
                    results[i] = _finish(ids, tokenizer)
                bar.update(len(idx))
    finally:
        tokenizer.padding_side = side
    return results  # type: ignore[return-value]


def _finish(ids: list[int], tokenizer) -> Generation:
    reason = "length"
    if tokenizer.eos_token_id in ids:
        ids = ids[: ids.index(tokenizer.eos_token_id)]
        reason = "eos"
    ids = [t for t in ids if t != tokenizer.pad_token_id]
    text = tokenizer.decode(ids, skip_special_tokens=True)
    if HEADER_PREFIX in text:
        text = text[: text.index(HEADER_PREFIX)]
        reason = "header"
    return Generation(text=text.strip(), finish_reason=reason, new_tokens=len(ids))


def stream_local(model, tokenizer, prompt: str, max_new_tokens: int):
    """Greedy generation of one prompt in this process, yielding the text as it is generated (09's try-it view)."""
    from threading import Thread

    import torch
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    enc = tokenizer(prompt, return_tensors="pt").to(model.device)

    def run():
        with torch.inference_mode():
            model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, streamer=streamer,
                           pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                           stop_strings=[HEADER_PREFIX], tokenizer=tokenizer)

    thread = Thread(target=run, daemon=True)
    thread.start()
    text = ""
    for piece in streamer:
        text += piece
        if HEADER_PREFIX in text:  # the model began a new '###' section: the summary ended before it
            yield piece[: max(0, len(piece) - (len(text) - text.index(HEADER_PREFIX)))]
            break
        yield piece
    thread.join()
