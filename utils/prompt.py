"""The one prompt template, shared by training, inference and evaluation."""

from __future__ import annotations

PROMPT_TEMPLATE = "### 指示\n{instruction}\n\n### 入力\n{input}\n\n### 応答\n"
HEADER_PREFIX = "###"  # generation is cut where the model starts a new section


def format_prompt(instruction: str, input: str) -> str:
    """The prompt up to and including ``### 応答\\n``; the model writes what follows."""
    if not instruction.strip() or not input.strip():
        raise ValueError("instruction と input はどちらも空にできません (要約する本文と指示が必要です)。")
    return PROMPT_TEMPLATE.format(instruction=instruction.strip(), input=input.strip())


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
    for rec in records:
        try:
            fitted, cut = _fit_input(rec, tokenizer, budget, with_completion)
        except ValueError:
            report["dropped_too_long"] += 1
            continue
        if with_completion and cut > max_cut_fraction:
            report["dropped_cut_too_much"] += 1
            continue
        report["input_truncated" if cut else "kept_as_is"] += 1
        out.append(fitted)
    return out, report


def passage_cut_shares(records: list[dict], tokenizer, budget: int) -> list[float | None]:
    """For each training record, the share of its passage that fitting ``budget`` would cut
    (0.0: fits as it is; None: dropped, the summary alone is too long). 02 shows their distribution."""
    shares: list[float | None] = []
    for rec in records:
        try:
            shares.append(_fit_input(rec, tokenizer, budget, with_completion=True)[1])
        except ValueError:
            shares.append(None)
    return shares
