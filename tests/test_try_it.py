"""09's try-it view (utils.classroom.try_it): both panels fill from their streams, piece by piece; an empty passage
and a failing side are said in the view, not raised."""

from __future__ import annotations

from utils.classroom.try_it import side_by_side


def pieces(*parts):
    return lambda text: iter(parts)


def test_both_panels_show_their_streams():
    seen = []

    def base(text):
        seen.append(text)
        yield from ("ベース", "の出力")

    view = side_by_side(base, pieces("学習後", "の要約"), example="  今日は晴れ。  ")
    view.summarize()
    assert seen == ["今日は晴れ。"]
    assert "ベースの出力" in view.panels[0].value and "学習後の要約" in view.panels[1].value
    assert "秒" in view.panels[0].value and view.status.value == ""


def test_an_empty_passage_is_said_in_the_view():
    view = side_by_side(pieces("出力A"), pieces("出力B"))
    view.summarize()
    assert "文章が空です" in view.status.value and "出力A" not in view.panels[0].value


def test_a_failing_side_shows_its_error_and_the_other_still_runs():
    def broken(text):
        yield "途中"
        raise ConnectionError("server stopped")

    view = side_by_side(broken, pieces("右は", "動く"), example="本文")
    view.summarize()
    assert "エラー: ConnectionError: server stopped" in view.panels[0].value and "途中" in view.panels[0].value
    assert "右は動く" in view.panels[1].value


def test_html_in_the_output_is_shown_as_text():
    view = side_by_side(pieces("<b>太字</b>"), pieces("ok"), example="本文")
    view.summarize()
    assert "&lt;b&gt;太字&lt;/b&gt;" in view.panels[0].value
