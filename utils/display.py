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


def prompt_completion_html(prompt: str, completion: str, eos: str = "</s>") -> str:
    """The prompt (model input, not learned) and the completion (learned) in two colours."""
    p = html.escape(prompt).replace("\n", "↵<br>")
    c = html.escape(completion).replace("\n", "↵<br>")
    return (f"<div style='font-family:monospace;white-space:normal;border:1px solid #ccc;padding:8px'>"
            f"<span style='background:{_MASKED}'>{p}</span>"
            f"<span style='background:{_TRAINED}'>{c}</span>"
            f"<span style='background:#ffd59e'>{html.escape(eos)}</span></div>"
            f"<div><span style='background:{_MASKED};padding:0 4px'>prompt (損失なし)</span> "
            f"<span style='background:{_TRAINED};padding:0 4px'>completion (学習対象)</span> "
            f"<span style='background:#ffd59e;padding:0 4px'>EOS (TRL が付与・学習対象)</span></div>")


def wrapped_table(df, max_chars: int = 300):
    """A DataFrame with long Japanese text wrapped and clipped, for side-by-side comparisons."""
    def clip(v):
        if isinstance(v, str) and len(v) > max_chars:
            return v[:max_chars] + "…"
        return v

    styled = df.map(clip) if hasattr(df, "map") else df.applymap(clip)
    return styled.style.set_properties(**{"white-space": "pre-wrap", "text-align": "left", "vertical-align": "top"})
