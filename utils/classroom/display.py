"""Small display helpers for the notebooks: a Japanese font for figures, and HTML renderers
(coloured label masks, marked prompts, wrapped tables)."""

from __future__ import annotations

import html


def use_japanese_font() -> str:
    """Make matplotlib draw Japanese text with the bundled IPAexGothic font; returns the font's name.

    The participants' GPU VMs and CI have no Japanese font, and matplotlib's default (DejaVu Sans)
    has no kana or kanji: every Japanese title, axis label and legend would be drawn as empty boxes
    ("tofu") with a "Glyph ... missing from font(s)" warning. ``matplotlib-fontja`` (requirements.txt)
    ships IPAexGothic inside the wheel, so no system package or download is needed. Importing it
    registers the font and sets ``font.family``; calling this again (e.g. after ``plt.rcdefaults()``
    or a style change) sets the family again. Call it once in a notebook's import cell.
    """
    import matplotlib
    from matplotlib_fontja.matplotlib_fontja import FONT_NAME, japanize  # the import itself calls japanize()

    if matplotlib.rcParams["font.family"] != [FONT_NAME]:
        japanize()
    return FONT_NAME


_TRAINED = "#c8f7c5"  # green: position carries a label (learned)
_MASKED = "#eeeeee"  # grey: label -100 (ignored by the loss)


def _token_text(tokenizer, token_id: int) -> str:
    text = tokenizer.decode([token_id], skip_special_tokens=False)
    return text.replace("\n", "↵") or tokenizer.convert_ids_to_tokens(token_id)


def label_mask_html(tokenizer, input_ids: list[int], labels: list[int], max_tokens: int | None = None) -> str:
    """Every token as a chip: green when it is trained on, grey when its label is -100."""
    chips = []
    for i, (tid, lab) in enumerate(zip(input_ids, labels)):
        if max_tokens is not None and i >= max_tokens:
            chips.append("<span>…</span>")
            break
        colour = _MASKED if lab == -100 else _TRAINED
        title = "label = -100 (masked)" if lab == -100 else f"label = {lab}"
        chips.append(f"<span title='{title}' style='background:{colour};border:1px solid #999;border-radius:3px;"
                     f"padding:0 2px;margin:1px;display:inline-block;font-family:monospace'>"
                     f"{html.escape(_token_text(tokenizer, tid))}</span>")
    legend = (f"<div style='margin-bottom:4px'><span style='background:{_TRAINED};padding:0 4px'>学習する (label = token)</span> "
              f"<span style='background:{_MASKED};padding:0 4px'>無視する (label = -100)</span></div>")
    return legend + "<div style='line-height:1.9'>" + "".join(chips) + "</div>"


def prompt_completion_html(prompt: str, completion: str, eos: str = "</s>",
                           labels: tuple[str, str, str] = ("prompt (損失なし)", "completion (学習対象)",
                                                           "EOS (TRL が付与・学習対象)")) -> str:
    """The prompt and what follows it (the completion that is learned, or a model's output) in two colours,
    then the EOS chip (``eos=""``: none, e.g. an output that did not stop); ``labels`` name the three."""
    p = html.escape(prompt).replace("\n", "↵<br>")
    c = html.escape(completion).replace("\n", "↵<br>")
    eos_chip = f"<span style='background:#ffd59e'>{html.escape(eos)}</span>" if eos else ""
    eos_label = f" <span style='background:#ffd59e;padding:0 4px'>{labels[2]}</span>" if eos else ""
    return (f"<div style='font-family:monospace;white-space:normal;border:1px solid #ccc;padding:8px'>"
            f"<span style='background:{_MASKED}'>{p}</span>"
            f"<span style='background:{_TRAINED}'>{c}</span>{eos_chip}</div>"
            f"<div><span style='background:{_MASKED};padding:0 4px'>{labels[0]}</span> "
            f"<span style='background:{_TRAINED};padding:0 4px'>{labels[1]}</span>{eos_label}</div>")


def wrapped_table(df, max_chars: int = 300):
    """A DataFrame with long Japanese text wrapped and clipped (line breaks shown as ↵), for side-by-side comparisons."""
    def clip(v):
        if isinstance(v, str):
            v = v.replace("\n", " ↵ ")  # a looping output ("20.\n--\n--…") stays one wrapped paragraph, not a tall column
            return v[:max_chars] + "…" if len(v) > max_chars else v
        return v

    styled = df.map(clip) if hasattr(df, "map") else df.applymap(clip)
    # overflow-wrap: a run without break points (a model's "0.0.0.0…" or a URL) wraps instead of widening its column
    return styled.style.set_properties(**{"white-space": "pre-wrap", "overflow-wrap": "anywhere", "text-align": "left",
                                          "vertical-align": "top"})


# Japanese names for the English keys that utils returns (describe(), fit reports, results.json, memory reports):
# the keys stay English in files and code; what a participant reads in a table is Japanese (01's glossary).
JA_LABELS = {
    "count": "件数", "mean": "平均", "std": "標準偏差", "min": "最小", "25%": "25% 点", "50%": "中央値", "75%": "75% 点",
    "max": "最大", "prompt": "プロンプト", "completion": "completion (要約 + EOS)", "total": "合計",
    "kept_as_is": "そのまま", "input_truncated": "本文を短くして収めた", "dropped_too_long": "除外: 要約だけで上限を超える",
    "dropped_cut_too_much": "除外: 本文を削りすぎる", "before": "学習前", "after": "学習後", "ci_low": "改善の 95% CI 下限",
    "ci_high": "改善の 95% CI 上限", "lead": "lead ベースライン", "shuffled": "シャッフル対照", "rouge1": "ROUGE-1",
    "rouge2": "ROUGE-2", "rougeL": "ROUGE-L", "stop_rate": "EOS で止まった割合", "length_ratio": "出力長 / 参照要約長 (中央値)",
    "ref_loss": "参照要約の損失 (nats/トークン)", "weights_gib": "重み (GiB)", "gpu_allocated_gib": "GPU 使用中 (GiB)",
    "gpu_peak_reserved_gib": "GPU 確保のピーク (GiB)", "process_peak_rss_gib": "プロセスのメモリのピーク (GiB)",
    "Full fine-tuning": "フルファインチューニング", "LoRA (bf16 base)": "LoRA (ベースは bf16)",
    "QLoRA (4-bit base)": "QLoRA (ベースは 4-bit)", "weights": "重み (GB)", "gradients": "勾配 (GB)",
    "optimizer states": "オプティマイザの状態 (GB)", "total (no activations)": "合計 (活性化を除く、GB)",
    "eval_loss": "検証の損失", "step": "ステップ", "all records": "全レコード", "kept": "残ったレコード",
    "dropped: empty input": "除外: 本文が空", "dropped: empty output": "除外: 要約が空",
    "dropped: duplicate input text": "除外: 同じ本文が別のレコードにもある",
    "dropped: input overlaps another record's input": "除外: 本文が別のレコードの本文と重なる",
    "dropped (any reason)": "除外 (理由を問わず)", "train": "train (学習)", "validation": "validation (検証)", "test": "test (評価)",
    "embed_tokens": "埋め込み (embed_tokens)", "decoder layers": "デコーダ層 (全層)", "final norm": "最後の層正規化 (norm)",
    "lm_head": "出力層 (lm_head)", "reserved_before_gib": "解放前の GPU 確保量 (GiB)", "reserved_after_gib": "解放後の GPU 確保量 (GiB)",
}


def ja_labels(table):
    """The same DataFrame / Series with its English index and column keys shown in Japanese (JA_LABELS)."""
    rename = lambda key: JA_LABELS.get(key, key) if isinstance(key, str) else key  # noqa: E731
    if hasattr(table, "columns"):
        return table.rename(index=rename, columns=rename)
    return table.rename(index=rename)
