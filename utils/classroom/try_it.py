"""09's try-it view: paste a passage, press 要約, and see two models' summaries side by side as they stream."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator

Stream = Callable[[str], Iterator[str]]


def _panel(title: str, text: str, note: str = "") -> str:
    return (f"<div style='border:1px solid #ccc;border-radius:4px;padding:6px 8px;min-height:4em'>"
            f"<b>{html.escape(title)}</b> <span style='color:#888'>{html.escape(note)}</span>"
            f"<div style='white-space:pre-wrap;margin-top:4px'>{html.escape(text)}</div></div>")


def side_by_side(base: Stream, tuned: Stream, example: str = "", titles=("ベースモデル", "学習後 (API)")):
    """An ipywidgets box: a text area, a button, and one panel per model. ``box.summarize()`` does what the button
    does (the tests press it that way); each panel shows its text as the stream yields it, then how long it took."""
    import time

    import ipywidgets as widgets

    text = widgets.Textarea(value=example, placeholder="要約したい日本語の文章を貼ってください",
                            layout=widgets.Layout(width="100%", height="8em"))
    button = widgets.Button(description="要約", button_style="primary")
    panels = [widgets.HTML(_panel(t, "")) for t in titles]
    status = widgets.HTML("")

    def summarize(_=None):
        passage = text.value.strip()
        if not passage:
            status.value = "<span style='color:#b00'>文章が空です: 上の欄に貼ってから押してください。</span>"
            return
        button.disabled, status.value = True, ""
        try:
            for panel, title, stream in zip(panels, titles, (base, tuned)):
                out, t0 = "", time.time()
                panel.value = _panel(title, "", "生成中…")
                try:
                    for piece in stream(passage):
                        out += piece
                        panel.value = _panel(title, out, "生成中…")
                    panel.value = _panel(title, out, f"{time.time() - t0:.1f} 秒")
                except Exception as error:  # one side failing (the server stopped) must not hide the other
                    panel.value = _panel(title, out, f"エラー: {type(error).__name__}: {error}")
        finally:
            button.disabled = False

    button.on_click(summarize)
    box = widgets.VBox([text, button, status, widgets.HBox(panels, layout=widgets.Layout(width="100%"))])
    box.summarize, box.text, box.panels, box.status = summarize, text, panels, status
    return box
