"""Japanese text in the notebooks' figures is drawn with real glyphs, not empty boxes ("tofu").

matplotlib's default font (DejaVu Sans) has no kana or kanji, and the participants' VMs and CI have no
Japanese system font; ``utils.classroom.display.use_japanese_font()`` switches to the IPAexGothic font bundled in
``matplotlib-fontja``. matplotlib reports every glyph it cannot draw as a "Glyph ... missing from
font(s) ..." warning, so these tests draw figures and fail on any such warning. One test draws the same
figure with DejaVu Sans and requires the warning, so the check itself is known to work.
"""

import ast
import io
import json
import logging
import re
import warnings
from pathlib import Path

import matplotlib
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from utils.classroom.display import use_japanese_font

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
JAPANESE = re.compile(r"[\u3000-\u303f\u3040-\u30ff\u4e00-\u9fff\uff00-\uffef]")  # punctuation, kana, kanji, full-width
MISSING_GLYPH = re.compile(r"Glyph \d+ .*missing from (?:current )?font")
# Calls whose string arguments end up in a figure, and keywords that name a legend entry.
FIGURE_TEXT_CALLS = {"set_title", "set_xlabel", "set_ylabel", "suptitle", "supxlabel", "supylabel", "text",
                     "annotate", "set_xticklabels", "set_yticklabels"}
FIGURE_TEXT_KEYWORDS = {"label", "title", "xlabel", "ylabel"}
# Literal figure texts that may stay without Japanese: technical tokens only.
TECHNICAL = re.compile(r"max_length = ")
# The notebooks' plotting cells had 34 Japanese strings when this test was written; far fewer means labels went back to English.
MIN_JAPANESE_FIGURE_STRINGS = 30

SAMPLE = {  # kanji, hiragana, katakana, full-width punctuation, and the symbols used in the notebooks' labels
    "title": "「学習前」と「学習後」の比較。本文・出力・参照要約（ROUGE-L）",
    "xlabel": "最適化ステップ、トークン数 × 100 ～ 0〜1 −5",
    "ylabel": "損失 (nats/トークン、completion のみ)",
    "suptitle": "公開されている XL-Sum ja のスコア: 出典も設定も違うので、比べてよいのは同じグラフの中だけ",
    "legend": ["学習の損失", "検証の損失", "シャッフル対照", "lead ベースライン"],
}


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def missing_glyph_messages(draw) -> list[str]:
    """Run ``draw`` and return every missing-glyph message, whether warned or logged by matplotlib."""
    handler = _Records()
    logger = logging.getLogger("matplotlib")
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # not once per location: every missing glyph, every time
            draw()
    finally:
        logger.removeHandler(handler)
    messages = [str(w.message) for w in caught] + handler.messages
    return [m for m in messages if MISSING_GLYPH.search(m)]


def render(fig: Figure) -> None:
    """Draw on the Agg canvas and save as PNG: both paths that lay out and rasterise text."""
    fig.canvas.draw()
    fig.savefig(io.BytesIO(), format="png", dpi=50)


def sample_figure() -> Figure:
    fig = Figure(figsize=(6, 3))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, label in enumerate(SAMPLE["legend"]):
        ax.plot([-2, 0, 2], [i - 1, i, i + 1], label=label)  # negative ticks: the minus sign glyph as well
    ax.set_title(SAMPLE["title"])
    ax.set_xlabel(SAMPLE["xlabel"])
    ax.set_ylabel(SAMPLE["ylabel"])
    ax.legend()
    ax.bar_label(ax.bar(["重み", "勾配"], [1, 2]), labels=["約 1 GB", "約 2 GB"])
    fig.suptitle(SAMPLE["suptitle"])
    return fig


@pytest.fixture
def rc():
    """Every test starts from matplotlib's defaults and leaves the global rcParams as they were."""
    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        yield


def test_without_a_japanese_font_the_check_sees_tofu(rc):
    matplotlib.rcParams["font.family"] = ["DejaVu Sans"]
    found = missing_glyph_messages(lambda: render(sample_figure()))
    assert found, "drawing Japanese with DejaVu Sans should warn about missing glyphs; the check would miss tofu"
    assert any("DejaVu Sans" in m for m in found), found


def test_use_japanese_font_draws_every_glyph(rc):
    assert use_japanese_font() == "IPAexGothic"
    assert matplotlib.rcParams["font.family"] == ["IPAexGothic"]
    found = missing_glyph_messages(lambda: render(sample_figure()))
    assert found == [], found[:5]


def test_use_japanese_font_again_after_a_reset(rc):
    use_japanese_font()
    matplotlib.rcdefaults()  # e.g. a participant resets the style in the middle of a notebook
    use_japanese_font()
    assert matplotlib.rcParams["font.family"] == ["IPAexGothic"]


def _code_cells(path: Path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            src = "".join(cell["source"])
            # IPython magics and shell lines are not Python
            yield i, "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in src.splitlines())


def _is_plotting(src: str) -> bool:
    return bool(re.search(r"\bplt\.|\bax\.|\baxes\b|\.plot\.", src))


def _text(node: ast.AST) -> str | None:
    """A string literal's text; for an f-string, its literal parts only (the formatted values are skipped)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value for v in node.values if isinstance(v, ast.Constant))
    return None


def _figure_strings(src: str) -> tuple[list[str], list[str]]:
    """(all non-ASCII string literals outside print(), literal arguments of figure-text calls and label=...)."""
    tree = ast.parse(src)
    in_print = {id(n) for call in ast.walk(tree)
                if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "print"
                for n in ast.walk(call)}
    inside_fstring = {id(n) for js in ast.walk(tree) if isinstance(js, ast.JoinedStr)
                      for n in ast.walk(js) if n is not js}  # an f-string counts once, as a whole
    non_ascii, figure_args = [], []
    for node in ast.walk(tree):
        text = _text(node)
        if text is not None and id(node) not in in_print | inside_fstring and not text.isascii():
            non_ascii.append(text)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            args = list(node.args) if node.func.attr in FIGURE_TEXT_CALLS else []
            args += [k.value for k in node.keywords if k.arg in FIGURE_TEXT_KEYWORDS]
            figure_args += [t for t in map(_text, args) if t is not None]
    return non_ascii, figure_args


def _notebook_figure_strings():
    found = {}
    for path in NOTEBOOKS:
        for i, src in _code_cells(path):
            if _is_plotting(src):
                found[f"{path.name}[{i}]"] = _figure_strings(src)
    return found


FIGURE_STRINGS = _notebook_figure_strings()


def test_the_notebooks_figures_are_labelled_in_japanese():
    japanese = [s for non_ascii, _ in FIGURE_STRINGS.values() for s in non_ascii if JAPANESE.search(s)]
    assert len(japanese) >= MIN_JAPANESE_FIGURE_STRINGS, (
        f"only {len(japanese)} Japanese strings in the notebooks' plotting cells: {japanese}")
    english = [(cell, s) for cell, (_, args) in FIGURE_STRINGS.items() for s in args
               if re.search("[A-Za-z]", s) and not JAPANESE.search(s) and not TECHNICAL.search(s)]
    assert english == [], f"figure titles / labels still in English (participants read Japanese): {english}"


def test_every_notebook_that_plots_sets_the_japanese_font_first():
    for path in NOTEBOOKS:
        cells = list(_code_cells(path))
        plotting = [i for i, src in cells if _is_plotting(src)]
        if not plotting:
            continue
        font = [i for i, src in cells if re.search(r"^use_japanese_font\(\)", src, re.M)]
        assert font and font[0] < plotting[0], f"{path.name}: call use_japanese_font() in the import cell"


def test_the_notebooks_figure_strings_draw_without_missing_glyphs(rc):
    use_japanese_font()
    strings = sorted({s for non_ascii, _ in FIGURE_STRINGS.values() for s in non_ascii})
    assert strings

    def draw():
        fig = Figure(figsize=(8, 0.3 * len(strings)))
        FigureCanvasAgg(fig)
        for k, s in enumerate(strings):
            fig.text(0.01, 1 - (k + 0.5) / len(strings), s, fontsize=8)
        render(fig)

    found = missing_glyph_messages(draw)
    assert found == [], found[:5]


def test_tables_participants_read_get_japanese_labels_for_every_key_utils_returns(tiny_tokenizer):
    """ja_labels covers every key of the reports the notebooks tabulate: a new key without a Japanese label fails here."""
    import pandas as pd

    from utils.classroom.display import ja_labels
    from utils.evaluation.results import behaviour
    from utils.recipe.modeling import memory_report
    from utils.recipe.prompt import fit_records

    rec = {"index": "1", "instruction": "要約して", "input": "本文です。", "output": "要約。", "category": "summarization"}
    _, fit = fit_records([rec], tiny_tokenizer, 64, with_completion=True)
    rows = [{"finish_reason": "eos", "prediction": "要約。", "reference": "要約です。"}]
    metric = {"before": 1.0, "after": 2.0, "ci_low": 0.5, "ci_high": 1.5, "lead": 3.0, "shuffled": 0.5}
    tables = [pd.Series(fit), pd.Series(memory_report()), pd.DataFrame({"rouge1": metric, "rouge2": metric, "rougeL": metric}).T,
              pd.Series({**behaviour(rows), "ref_loss": 1.0}),
              pd.DataFrame({"prompt": [1, 2], "completion": [3, 4], "total": [4, 6]}).describe().T]
    for table in tables:
        shown = ja_labels(table)
        labels = list(shown.index) + list(getattr(shown, "columns", []))
        english = [k for k in labels if isinstance(k, str) and k.isascii() and not k.startswith("ROUGE")]
        assert english == [], english
