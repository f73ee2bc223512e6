"""Faithfulness to the passage: numbers and names in an output that its passage does not contain.

ROUGE counts shared words with the reference; it does not see a date the passage never gave. Three measures,
each on NFKC-normalised text with MeCab (fugashi + unidic-lite, the tokens ROUGE uses):

* **numbers** (``numbers``): digit runs (full-width digits, ``3,000`` = ``3000``, decimals) and kanji numerals
  (MeCab's 数詞: 二万, 四十, 二〇〇五, 百二十一), with 万/億/兆 multiplied out and their unit (年, 人, %, 円, …).
  ``Y年M月D日`` (or part of it) is one *date*. An output number is supported when its passage has the same value
  (any unit: translation changes counters, 121話 / 121エピソード); a date, when one date of the passage has the
  same year, month and day wherever the output gives them (so 2016年6月17日 is not supported by 2016年6月21日).
* **names** (``names``): MeCab's 固有名詞 (consecutive ones joined), katakana runs of two characters or more
  unless the dictionary knows every word in them as a common noun (テーブル, ルーキーイヤー: loanwords, not names;
  a katakana word it does not know, often a name, counts), and Latin-letter runs (LOST, ABC). Supported when the passage contains it (case-insensitive). ``1 - invented/total`` over all
  names is entity precision against the source (Nan et al. 2021, "prec_s").
* **novel content-word bigrams** (``novel_bigram_share``): pairs of consecutive content words (nouns, verbs,
  adjectives, adverbs, by lemma) of the output that never occur as a pair in the passage: how abstractive it is.

``plant`` inserts a number and a name absent from the passage: the control that the measures see what they claim.
"""

from __future__ import annotations

import re
import statistics
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

_KANJI_DIGITS = {"〇": 0, "零": 0, "一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_SMALL_UNITS = {"十": 10, "百": 100, "千": 1000}
_BIG_UNITS = {"万": 10**4, "億": 10**8, "兆": 10**12}
_MONEY = {"円", "ドル", "ユーロ", "ポンド", "元", "$", "¥", "€", "£"}
_PERCENT = {"%", "パーセント", "割"}
_DATE_UNITS = ("年", "月", "日")
# counters MeCab does not tag as 助数詞 (話 is サ変可能): the unit is kept for display; values match regardless
_COUNTERS = {"話", "回", "名", "位", "歳", "点", "部", "枚", "冊", "台", "社", "校", "店", "曲", "作", "戦", "勝", "敗", "倍",
             "世紀", "時間", "分", "秒", "週", "期", "代", "号", "種", "匹", "頭", "羽", "ヶ国", "カ国", "か国", "km", "kg", "m"}
_CONTENT_POS = {"名詞", "動詞", "形容詞", "形状詞", "副詞", "代名詞"}
_KATAKANA_RUN = re.compile(r"[ァ-ヺー][ァ-ヺー・]*[ァ-ヺー]")
_LATIN_RUN = re.compile(r"[A-Za-z][A-Za-z0-9&'\-]*[A-Za-z0-9]")


def normalise(text: str) -> str:
    """NFKC: full-width digits and Latin letters to ASCII, half-width katakana to full-width."""
    return unicodedata.normalize("NFKC", text)


def _tagger():
    from utils.evaluation.metrics import mecab_tagger

    return mecab_tagger()  # the dictionary metrics.py's ROUGE tokens come from, with parts of speech


@dataclass(frozen=True)
class Token:
    surface: str
    pos1: str
    pos2: str
    pos3: str
    lemma: str
    start: int  # character offsets in the normalised text
    end: int
    unknown: bool = False  # not in the dictionary (MeCab guessed its part of speech)


def tokens(text: str) -> list[Token]:
    """MeCab tokens of the normalised ``text`` with their character offsets (for marking spans)."""
    text = normalise(text)
    out, pos = [], 0
    for w in _tagger()(text):
        start = text.find(w.surface, pos)
        if start < 0:  # MeCab never changes the surface, but stay safe
            start = pos
        end = start + len(w.surface)
        f = w.feature
        lemma = getattr(f, "lemma", None) or w.surface
        out.append(Token(w.surface, f.pos1, f.pos2, f.pos3, lemma if lemma != "*" else w.surface, start, end,
                         bool(getattr(w, "is_unk", False))))
        pos = end
    return out


# ---------------------------------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------------------------------
def kanji_number(text: str) -> int | None:
    """二〇〇五 → 2005, 百二十一 → 121, 二万 → 20000, 四十 → 40; None when it is not a kanji numeral."""
    if not text or any(c not in _KANJI_DIGITS and c not in _SMALL_UNITS and c not in _BIG_UNITS for c in text):
        return None
    if all(c in _KANJI_DIGITS for c in text):  # positional: 二〇〇五
        return int("".join(str(_KANJI_DIGITS[c]) for c in text))
    total, section, digit = 0, 0, None
    for c in text:
        if c in _KANJI_DIGITS:
            digit = _KANJI_DIGITS[c] if digit is None else digit * 10 + _KANJI_DIGITS[c]
        elif c in _SMALL_UNITS:
            section += (1 if digit is None else digit) * _SMALL_UNITS[c]
            digit = None
        else:  # big unit
            total += (section + (digit or 0) or 1) * _BIG_UNITS[c]
            section, digit = 0, None
    return total + section + (digit or 0)


def number_value(text: str) -> float | None:
    """The value of a number as written: 3,000 / 3000 / 1.5 / 120億 / 3万5000 / 二万 / 百二十一."""
    text = text.replace(",", "")
    value = kanji_number(text)
    if value is not None:
        return float(value)
    total, rest = 0.0, text
    for unit, mult in _BIG_UNITS.items():  # 3万5000, 120億: digits before each big unit
        m = re.fullmatch(rf"(.*?){unit}(.*)", rest)
        if m and m.group(1):
            head = number_value(m.group(1))
            if head is None:
                return None
            total += head * mult
            rest = m.group(2)
    if not rest:
        return total
    try:
        return total + float(rest)
    except ValueError:
        tail = kanji_number(rest)
        return None if tail is None else total + tail


@dataclass(frozen=True)
class Number:
    text: str  # as it appears in the normalised text, with its unit
    value: float | None  # None for a date
    unit: str
    kind: str  # "date", "percent", "money" or "count"
    date: tuple[int | None, int | None, int | None] | None  # (year, month, day) for a date
    start: int
    end: int


def _is_numeral(tok: Token) -> bool:
    return tok.pos2 == "数詞"


def _number_runs(toks: list[Token]) -> list[tuple[int, int]]:
    """[start, end) token ranges of one written number: 数詞 tokens, with ',' or '.' between digit tokens."""
    runs, i = [], 0
    while i < len(toks):
        if not _is_numeral(toks[i]):
            i += 1
            continue
        j = i + 1
        while j < len(toks):
            if _is_numeral(toks[j]) and toks[j].start == toks[j - 1].end:
                j += 1
            elif (toks[j].surface in {",", "."} and j + 1 < len(toks) and _is_numeral(toks[j + 1])
                  and toks[j + 1].surface[:1].isdigit() and toks[j - 1].surface[-1:].isdigit()
                  and toks[j + 1].start == toks[j].end == toks[j - 1].end + 1):
                j += 2
            else:
                break
        runs.append((i, j))
        i = j
    return runs


def _unit_after(toks: list[Token], j: int) -> str:
    if j >= len(toks) or toks[j].start != toks[j - 1].end:
        return ""
    t = toks[j]
    if t.surface in _PERCENT or t.surface in _MONEY or t.surface in _COUNTERS or t.pos3 in {"助数詞", "助数詞可能"} or t.pos1 == "接尾辞":
        return t.surface
    return ""


def numbers(text: str) -> list[Number]:
    """Every number of ``text`` with its unit; ``Y年M月D日`` and its parts joined into one date."""
    toks = tokens(text)
    norm = normalise(text)
    raw = []  # (value, unit, start, end)
    for i, j in _number_runs(toks):
        written = norm[toks[i].start: toks[j - 1].end]
        value = number_value(written)
        if value is None:
            continue
        unit = _unit_after(toks, j)
        end = toks[j].end if unit else toks[j - 1].end
        money = i > 0 and toks[i - 1].surface in _MONEY and toks[i - 1].end == toks[i].start
        start = toks[i - 1].start if money else toks[i].start
        raw.append((value, "$" if money and not unit else unit, start, end))
    out, k = [], 0
    while k < len(raw):
        value, unit, start, end = raw[k]
        if unit in _DATE_UNITS:  # a date: 年 [月 [日]], or 月 日
            parts = {unit: value}
            m = k + 1
            while (m < len(raw) and raw[m][1] in _DATE_UNITS and raw[m][1] not in parts
                   and _DATE_UNITS.index(raw[m][1]) > _DATE_UNITS.index(list(parts)[-1])
                   and raw[m][2] == raw[m - 1][3]):
                parts[raw[m][1]] = raw[m][0]
                end = raw[m][3]
                m += 1
            date = tuple(int(parts[u]) if u in parts else None for u in _DATE_UNITS)
            out.append(Number(norm[start:end], None, "date", "date", date, start, end))
            k = m
            continue
        kind = "percent" if unit in _PERCENT else "money" if unit in _MONEY else "count"
        out.append(Number(norm[start:end], value, unit, kind, None, start, end))
        k += 1
    return out


def _passage_facts(passage: str) -> tuple[set[float], list[tuple]]:
    values, dates = set(), []
    for n in numbers(passage):
        if n.kind == "date":
            dates.append(n.date)
            values.update(float(v) for v in n.date if v is not None)  # "2005" alone is supported by 2005年
        else:
            values.add(n.value)
    return values, dates


def supported(n: Number, values: set[float], dates: list[tuple]) -> bool:
    if n.kind == "date":
        return any(all(o is None or o == d for o, d in zip(n.date, date)) for date in dates)
    return n.value in values


def invented_numbers(output: str, passage: str) -> list[Number]:
    """The numbers of ``output`` that ``passage`` does not support."""
    values, dates = _passage_facts(passage)
    return [n for n in numbers(output) if not supported(n, values, dates)]


# ---------------------------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Name:
    text: str
    start: int
    end: int


def names(text: str) -> list[Name]:
    """Proper nouns (MeCab 固有名詞, consecutive ones joined, also across '・'), katakana runs that are not
    dictionary common nouns, and Latin runs (≥ 2 characters), deduplicated by span: a run inside a longer one counts once, as the longer one."""
    toks = tokens(text)
    norm = normalise(text)
    spans = []
    i = 0
    while i < len(toks):
        if toks[i].pos2 != "固有名詞":
            i += 1
            continue
        j = i + 1
        while j < len(toks) and (toks[j].pos2 == "固有名詞" or (toks[j].surface == "・" and j + 1 < len(toks)
                                                                  and toks[j + 1].pos2 == "固有名詞")):
            j += 1
        spans.append((toks[i].start, toks[j - 1].end))
        i = j
    def common_loanword(a: int, b: int) -> bool:  # テーブル, ルーキーイヤー: dictionary common nouns only
        inside = [t for t in toks if t.start < b and t.end > a and t.surface != "・"]
        return bool(inside) and all(t.pos2 == "普通名詞" and not t.unknown for t in inside)

    spans += [m.span() for m in _KATAKANA_RUN.finditer(norm) if not common_loanword(*m.span())]
    spans += [m.span() for m in _LATIN_RUN.finditer(norm)]
    spans = [s for s in spans if len(norm[s[0]:s[1]]) >= 2]
    spans.sort(key=lambda s: (s[0], -(s[1] - s[0])))
    kept = []
    for s in spans:
        if kept and s[0] < kept[-1][1]:  # overlaps the previous (longer or earlier) span
            if s[1] > kept[-1][1]:
                kept[-1] = (kept[-1][0], s[1])
            continue
        kept.append(s)
    seen, out = set(), []
    for a, b in kept:
        key = norm[a:b].casefold()
        if key not in seen:
            seen.add(key)
            out.append(Name(norm[a:b], a, b))
    return out


def invented_names(output: str, passage: str) -> list[Name]:
    """The names of ``output`` that ``passage`` does not contain (case-insensitive, after NFKC)."""
    source = normalise(passage).casefold()
    return [n for n in names(output) if n.text.casefold() not in source]


# ---------------------------------------------------------------------------------------------------------------
# Abstractiveness
# ---------------------------------------------------------------------------------------------------------------
def _content_bigrams(text: str) -> list[tuple[str, str]]:
    words = [t.lemma for t in tokens(text) if t.pos1 in _CONTENT_POS]
    return list(zip(words, words[1:]))


def novel_bigram_share(output: str, passage: str) -> float | None:
    """Share of the output's content-word bigrams that never occur in the passage (None: fewer than 2 content words)."""
    pairs = _content_bigrams(output)
    if not pairs:
        return None
    source = set(_content_bigrams(passage))
    return sum(p not in source for p in pairs) / len(pairs)


# ---------------------------------------------------------------------------------------------------------------
# Per-output figures, per-arm summaries, the planted control
# ---------------------------------------------------------------------------------------------------------------
def check(output: str, passage: str) -> dict:
    """Everything 05 reports for one output (counts, the invented items as text, the bigram share)."""
    nums, nams = numbers(output), names(output)
    bad_nums, bad_names = invented_numbers(output, passage), invented_names(output, passage)
    return {
        "numbers": len(nums), "invented_numbers": [n.text for n in bad_nums],
        "names": len(nams), "invented_names": [n.text for n in bad_names],
        "any_invented": bool(bad_nums or bad_names),
        "novel_bigram_share": novel_bigram_share(output, passage),
    }


def summarise(checks: list[dict]) -> dict:
    """One arm's figures: shares of outputs with an invented number / name / either, entity precision
    (micro, over all names), invented numbers per output, and the mean novel-bigram share."""
    n = len(checks)
    names_total = sum(c["names"] for c in checks)
    invented_names_total = sum(len(c["invented_names"]) for c in checks)
    shares = [c["novel_bigram_share"] for c in checks if c["novel_bigram_share"] is not None]
    return {
        "n": n,
        "with_invented_number": sum(bool(c["invented_numbers"]) for c in checks) / n,
        "with_invented_name": sum(bool(c["invented_names"]) for c in checks) / n,
        "with_invented": sum(c["any_invented"] for c in checks) / n,
        "invented_numbers_per_output": sum(len(c["invented_numbers"]) for c in checks) / n,
        "numbers_per_output": sum(c["numbers"] for c in checks) / n,
        "entity_precision": 1 - invented_names_total / names_total if names_total else None,
        "novel_bigram_share": statistics.fmean(shares) if shares else None,
    }


def mark(output: str, passage: str, left: str = "【", right: str = "】") -> str:
    """The normalised output with every invented number and name bracketed (05's example tables)."""
    text = normalise(output)
    spans = sorted({(n.start, n.end) for n in invented_numbers(output, passage)}
                   | {(n.start, n.end) for n in invented_names(output, passage)})
    out, pos = [], 0
    for a, b in spans:
        if a < pos:
            continue
        out += [text[pos:a], left, text[a:b], right]
        pos = b
    out.append(text[pos:])
    return "".join(out)


PLANTED_NAME = "ヴァルトラウテ"  # a katakana name no dolly-ja passage contains (tests/test_faithfulness.py checks)
_NUMBER_STYLES = ("{:,}", "{}", "kanji", "fullwidth")


def _kanji(n: int) -> str:
    digits = "〇一二三四五六七八九"
    out = ""
    for value, unit in ((1000, "千"), (100, "百"), (10, "十")):
        q, n = divmod(n, value)
        if q:
            out += ("" if q == 1 else digits[q]) + unit
    return out + (digits[n] if n else "")


def plant(output: str, passage: str, i: int = 0) -> tuple[str, float, str]:
    """``output`` with one sentence added that holds a number and a name absent from ``passage``.

    The number is written in one of four styles by ``i`` (7,777 / 7777 / 七千七百七十七 / ７７７７), so the control
    also exercises the normalisation. Returns the planted text, the number's value and the name."""
    values, _ = _passage_facts(passage)
    value = 7777
    while value in values:
        value += 1111
    style = _NUMBER_STYLES[i % len(_NUMBER_STYLES)]
    written = (_kanji(value) if style == "kanji" else
               "".join(chr(ord(c) + 0xFEE0) for c in str(value)) if style == "fullwidth" else style.format(value))
    name = PLANTED_NAME if PLANTED_NAME not in normalise(passage) else PLANTED_NAME + "ン"
    return f"{output.rstrip()} {name}によると、参加者は{written}人だった。", float(value), name


def planted_control(outputs: list[str], passages: list[str]) -> dict:
    """Plant a number and a name in every output; count how many the measures flag (must be all)."""
    missed_numbers, missed_names = [], []
    for i, (out, passage) in enumerate(zip(outputs, passages, strict=True)):
        planted, value, name = plant(out, passage, i)
        if not any(n.value == value for n in invented_numbers(planted, passage)):
            missed_numbers.append(i)
        if not any(name in n.text for n in invented_names(planted, passage)):
            missed_names.append(i)
    n = len(outputs)
    return {"n": n, "numbers_flagged": n - len(missed_numbers), "names_flagged": n - len(missed_names),
            "missed_numbers": missed_numbers, "missed_names": missed_names}


def carried_from(outputs: list[str], passages: list[str], sources: list[str]) -> dict:
    """Of the numbers and names the outputs invent (not in their passage), how many are in ``sources`` instead
    (for a k-shot arm: its worked examples): content carried over from the prompt's examples, not made up."""
    names_total = names_in = numbers_total = numbers_in = 0
    for out, passage, source in zip(outputs, passages, sources, strict=True):
        text = normalise(source).casefold()
        for n in invented_names(out, passage):
            names_total += 1
            names_in += n.text.casefold() in text
        values, dates = _passage_facts(source)
        for n in invented_numbers(out, passage):
            numbers_total += 1
            numbers_in += supported(n, values, dates)
    return {"invented_names": names_total, "names_in_examples": names_in,
            "invented_numbers": numbers_total, "numbers_in_examples": numbers_in}


def compare(arms: dict[str, list[str]], passages: list[str], references: list[str], seed: int = 0,
            examples: dict[str, list[str]] | None = None) -> dict:
    """05's faithfulness panel: every arm's figures, the references' (the calibration row: dolly-ja is machine
    translated, so references have novel items too), LoRA − each arm with paired-bootstrap CIs, and the planted
    control on LoRA's outputs. ``examples``: per k-shot arm, the worked examples each output's prompt held
    (``carried_from``)."""
    from utils.evaluation.metrics import paired_bootstrap_ci

    checks = {name: [check(o, p) for o, p in zip(outs, passages, strict=True)] for name, outs in arms.items()}
    ref_checks = [check(r, p) for r, p in zip(references, passages, strict=True)]
    lora_vs = {}
    for name in arms:
        if name == "lora":
            continue
        a, b = checks[name], checks["lora"]
        invented = paired_bootstrap_ci([float(c["any_invented"]) for c in a], [float(c["any_invented"]) for c in b], seed=seed)
        pairs = [(x["novel_bigram_share"], y["novel_bigram_share"]) for x, y in zip(a, b)
                 if x["novel_bigram_share"] is not None and y["novel_bigram_share"] is not None]
        novel = paired_bootstrap_ci([x for x, _ in pairs], [y for _, y in pairs], seed=seed) if pairs else (None, None)
        lora_vs[name] = {"with_invented": {"ci_low": invented[0], "ci_high": invented[1]},
                         "novel_bigram_share": {"ci_low": novel[0], "ci_high": novel[1], "n_pairs": len(pairs)}}
    return {"arms": {name: summarise(c) for name, c in checks.items()}, "reference": summarise(ref_checks),
            "lora_vs": lora_vs, "planted": planted_control(arms["lora"], passages),
            "from_examples": {name: carried_from(arms[name], passages, texts) for name, texts in (examples or {}).items()}}
