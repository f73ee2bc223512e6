"""The one prompt template, shared by training, inference and evaluation."""

from __future__ import annotations

import re
import string
from collections.abc import Iterator

PROMPT_TEMPLATE = "### 指示\n{instruction}\n\n### 入力\n{input}\n\n### 応答\n"
HEADER_PREFIX = "###"  # generation is cut where the model starts a new section


def format_prompt(instruction: str, input: str) -> str:
    """The prompt up to and including ``### 応答\\n``; the model writes what follows."""
    if not instruction.strip() or not input.strip():
        raise ValueError("instruction と input はどちらも空にできません (要約する本文と指示が必要です)。")
    return PROMPT_TEMPLATE.format(instruction=instruction.strip(), input=input.strip())


def _template_pattern(template: str) -> re.Pattern:
    """A regex with one named group per field of ``template``; every field but the last is matched lazily, so a
    passage that itself contains a section header still parses the way the template was filled."""
    parts = list(string.Formatter().parse(template))
    last = max(i for i, (_, field, _, _) in enumerate(parts) if field)
    return re.compile("".join(
        re.escape(literal) + (f"(?P<{field}>.*{'' if i == last else '?'})" if field else "")
        for i, (literal, field, _, _) in enumerate(parts)
    ), re.DOTALL)


_PROMPT_PATTERN = _template_pattern(PROMPT_TEMPLATE)


def parse_prompt(prompt: str) -> dict[str, str]:
    """The instruction and input of a prompt ``format_prompt`` wrote (the inverse, read from the same template).

    Saved predictions keep only the prompt; the reference file shows the instruction and passage separately."""
    match = _PROMPT_PATTERN.fullmatch(prompt)
    if match is None:
        raise ValueError("PROMPT_TEMPLATE の形ではない prompt です (format_prompt で作った prompt を渡してください)。")
    return match.groupdict()


def to_prompt_completion(record: dict) -> dict[str, str]:
    """A dolly record as TRL's prompt/completion pair.

    With this form TRL 1.x masks the prompt tokens out of the loss (completion-only loss) and
    appends the EOS token to the completion, so the model learns where to stop.
    """
    return {
        "prompt": format_prompt(record["instruction"], record["input"]),
        "completion": record["output"].strip(),
    }


def _fit_input(record: dict, tokenizer, budget: int, with_completion: bool) -> tuple[dict, float]:
    """Shorten the *input* (never the summary) until the example fits in ``budget`` tokens.

    Returns the record and the share of its input's characters that was cut (0.0: it fit as it was)."""

    def n_tokens(rec: dict) -> int:
        pair = to_prompt_completion(rec)
        text = pair["prompt"] + (pair["completion"] + tokenizer.eos_token if with_completion else "")
        return len(tokenizer(text, verbose=False)["input_ids"])  # over-long inputs are expected here: no warning

    total = n_tokens(record)
    if total <= budget:
        return record, 0.0
    rec = dict(record)
    text = record["input"]
    while total > budget:
        overflow = total - budget
        keep = len(text) - max(8, int(overflow * len(text) / max(1, total)) + 4)
        if keep < 32:
            raise ValueError("too long to fit")
        text = text[:keep]
        rec["input"] = text + "…"
        total = n_tokens(rec)
    return rec, 1 - len(text) / len(record["input"])


def _fit_each(records: list[dict], tokenizer, budget: int,
              with_completion: bool) -> Iterator[tuple[dict | None, float | None]]:
    """Each record fitted to ``budget`` with the share of its passage cut; (None, None) when even the summary
    does not fit. The one loop behind ``fit_records`` and ``passage_cut_shares``."""
    for rec in records:
        try:
            yield _fit_input(rec, tokenizer, budget, with_completion)
        except ValueError:
            yield None, None


def fit_records(records: list[dict], tokenizer, budget: int, with_completion: bool,
                max_cut_fraction: float = 1.0) -> tuple[list[dict], dict]:
    """Make every record fit ``budget`` tokens by shortening its input; count what happened.

    Training (``with_completion=True``): prompt + summary + EOS must fit ``max_length``; TRL would
    otherwise cut the *end* of the sequence, i.e. the summary and its EOS. Inference: the prompt
    must leave room for ``max_new_tokens``. Records whose summary alone does not fit are dropped.

    A shortened training record keeps its whole summary, so it teaches facts the model cannot see in the
    passage. ``max_cut_fraction`` < 1 drops training records that would lose more than that share of their
    passage instead (02 compares the two policies); inference never drops (every test record is scored).
    """
    out = []
    report = {"kept_as_is": 0, "input_truncated": 0, "dropped_too_long": 0, "dropped_cut_too_much": 0}
    for fitted, cut in _fit_each(records, tokenizer, budget, with_completion):
        if fitted is None:
            report["dropped_too_long"] += 1
        elif with_completion and cut > max_cut_fraction:
            report["dropped_cut_too_much"] += 1
        else:
            report["input_truncated" if cut else "kept_as_is"] += 1
            out.append(fitted)
    return out, report


def passage_cut_shares(records: list[dict], tokenizer, budget: int) -> list[float | None]:
    """For each training record, the share of its passage that fitting ``budget`` would cut
    (0.0: fits as it is; None: dropped, the summary alone is too long). 02 shows their distribution."""
    return [cut for _, cut in _fit_each(records, tokenizer, budget, with_completion=True)]
