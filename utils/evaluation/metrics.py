"""Japanese ROUGE, bootstrap confidence intervals and the two reference rows (lead, shuffled).

``rouge_score``'s default tokenizer keeps only ``[a-z0-9]``, so Japanese text is scored on its digits and
Latin letters alone (notebook 05 prints that score beside ours), never on its Japanese words.
Here words come from MeCab (fugashi + unidic-lite, ``-Owakati`` surface forms after NFKC), the
way the Stability JP LM harness and swallow-evaluation score XL-Sum ja; ``tokenizer="char"``
scores characters instead.
"""

from __future__ import annotations

import random
import re
import statistics
import unicodedata
from functools import lru_cache
from pathlib import Path

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
ROUGE_JA_PATH = str(Path(__file__).parent / "rouge_ja" / "rouge_ja.py")  # for evaluate.load()


@lru_cache(maxsize=None)
def mecab_tagger(options: str = ""):
    """The one MeCab (fugashi + unidic-lite) every Japanese word in the workshop comes from: ROUGE's tokens
    (``-Owakati``) and faithfulness.py's parts of speech (no options), one tagger per option string."""
    import fugashi

    return fugashi.Tagger(options)  # finds the unidic-lite dictionary


class _MecabTokenizer:
    """The ``tokenize(text) -> list[str]`` interface that ``rouge_score`` accepts."""

    def __init__(self) -> None:
        self._tagger = mecab_tagger("-Owakati")

    def tokenize(self, text: str) -> list[str]:
        text = unicodedata.normalize("NFKC", text)
        return self._tagger.parse(text).split()


class _CharTokenizer:
    def tokenize(self, text: str) -> list[str]:
        return [c for c in unicodedata.normalize("NFKC", text) if not c.isspace()]


@lru_cache(maxsize=None)
def _scorer(tokenizer: str):
    from rouge_score import rouge_scorer

    if tokenizer == "mecab":
        tok = _MecabTokenizer()
    elif tokenizer == "char":
        tok = _CharTokenizer()
    else:
        raise ValueError(f"tokenizer={tokenizer!r}: 'mecab' か 'char' を指定してください。")
    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), tokenizer=tok)


def tokenize(text: str, tokenizer: str = "mecab") -> list[str]:
    """The tokens ROUGE counts (useful to show participants what is being matched)."""
    return _scorer(tokenizer)._tokenizer.tokenize(text)


def ja_rouge_per_example(predictions: list[str], references: list[str], tokenizer: str = "mecab") -> dict[str, list[float]]:
    """F1 x 100 for each (prediction, reference) pair."""
    if len(predictions) != len(references):
        raise ValueError(f"出力 {len(predictions)} 件と参照要約 {len(references)} 件の数が一致しません。")
    scorer = _scorer(tokenizer)
    out: dict[str, list[float]] = {k: [] for k in ROUGE_TYPES}
    for pred, ref in zip(predictions, references):
        scores = scorer.score(ref, pred)  # rouge_score takes (target, prediction)
        for k in ROUGE_TYPES:
            out[k].append(100.0 * scores[k].fmeasure)
    return out


def ja_rouge(predictions: list[str], references: list[str], tokenizer: str = "mecab") -> dict[str, float]:
    """Mean F1 x 100 over pairs: ``{"rouge1": ..., "rouge2": ..., "rougeL": ...}``."""
    per = ja_rouge_per_example(predictions, references, tokenizer)
    n = max(1, len(predictions))
    return {k: sum(v) / n for k, v in per.items()}


def paired_bootstrap_ci(before: list[float], after: list[float], n_resamples: int = 2000,
                        confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile CI of mean(after - before), resampling examples with replacement."""
    if len(before) != len(after) or not before:
        raise ValueError("before と after は同じ長さ (1 件以上) にしてください。")
    diffs = [a - b for a, b in zip(after, before)]
    rng = random.Random(seed)
    n = len(diffs)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(n_resamples))
    lo = means[int((1 - confidence) / 2 * n_resamples)]
    hi = means[min(n_resamples - 1, int((1 + confidence) / 2 * n_resamples))]
    return lo, hi


def paired_difference(before: list[float], after: list[float], seed: int = 0) -> dict:
    """mean(after - before) per example and its paired-bootstrap 95% CI, as ``{"diff", "ci_low", "ci_high"}``
    (05's LoRA − arm and margin rows, 06's sweep differences)."""
    lo, hi = paired_bootstrap_ci(before, after, seed=seed)
    return {"diff": statistics.fmean(a - b for a, b in zip(after, before)), "ci_low": lo, "ci_high": hi}


_SENTENCE_END = re.compile(r"(?<=[。！？!?])")


def lead_sentence(text: str) -> str:
    """The first sentence of a Japanese text: the classic extractive baseline."""
    for sentence in _SENTENCE_END.split(text.strip()):
        if sentence.strip():
            return sentence.strip()
    return ""


def shuffled(items: list, seed: int = 0) -> list:
    """A seeded derangement: every item moves, so each prediction meets another record's reference."""
    n = len(items)
    if n < 2:
        raise ValueError("シャッフル対照には 2 件以上必要です。")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    # rotate by one within the shuffled order: a derangement for any n >= 2
    target = {order[i]: order[(i + 1) % n] for i in range(n)}
    return [items[target[i]] for i in range(n)]


def words_in_passage(references: list[str], passages: list[str]) -> list[float]:
    """For each reference, the share of its words (MeCab tokens, as ROUGE counts them) that also occur in its passage.

    dolly-ja's references are often near-verbatim extracts of the passage (and machine translation can add words of
    its own): a share near 1 means copying the passage scores well, which is why the lead baseline is strong.
    """
    if len(references) != len(passages):
        raise ValueError(f"参照要約 {len(references)} 件と本文 {len(passages)} 件の数が一致しません。")
    scorer = _scorer("mecab")
    shares = []
    for ref, passage in zip(references, passages):
        words = scorer._tokenizer.tokenize(ref)
        vocab = set(scorer._tokenizer.tokenize(passage))
        shares.append(sum(w in vocab for w in words) / len(words) if words else 0.0)
    return shares
