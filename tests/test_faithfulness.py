"""Numbers, names and novel bigrams against the passage (utils.evaluation.faithfulness), on hand-written Japanese cases."""

import gzip
import json
import re

import pytest

from utils.evaluation import faithfulness as F
from utils.recipe.data import BUNDLED_PATH


@pytest.mark.parametrize("text, value", [
    ("3,000人", 3000), ("3000人", 3000), ("３，０００人", 3000), ("約30%", 30), ("３０％", 30), ("1.5倍", 1.5),
    ("二万人", 20000), ("四十人", 40), ("百二十一話", 121), ("三千五百円", 3500), ("120億円", 120e8), ("3万5000人", 35000),
    ("一つ", 1),
])
def test_a_number_is_its_value_however_it_is_written(text, value):
    found = F.numbers(text)
    assert len(found) == 1 and found[0].value == value, found


def test_units_and_kinds():
    kinds = {n.text: n.kind for n in F.numbers("約30%増え、120億円と$5.5、参加者は3000人。")}
    assert kinds == {"30%": "percent", "120億円": "money", "$5.5": "money", "3000人": "count"}


def test_a_date_is_one_item_and_is_matched_as_a_whole():
    dates = F.numbers("2005年8月17日と2016年6月21日、二〇〇五年、6月17日")
    assert [n.date for n in dates] == [(2005, 8, 17), (2016, 6, 21), (2005, None, None), (None, 6, 17)]
    passage = "彼は2005年8月17日に生まれ、2016年6月21日にデビューした。"
    # the typical case: every part (2016年, 6月, 17日) is in the passage, the date is not
    assert [n.text for n in F.invented_numbers("2016年6月17日にデビューした。", passage)] == ["2016年6月17日"]
    assert F.invented_numbers("2016年6月にデビューし、2005年生まれ。", passage) == []  # parts of a passage date
    assert F.invented_numbers("8月17日生まれ", passage) == []


def test_kanji_words_that_are_not_numbers_are_not_counted():
    assert F.numbers("一般に、唯一の方法で統一した。") == []


def test_numbers_match_by_value_whatever_the_counter():
    passage = "全6シーズン、121エピソードで、三日間に二万人が訪れた。"
    assert F.invented_numbers("6シーズン121話。3日間で20,000人。", passage) == []
    assert [n.text for n in F.invented_numbers("全7シーズン", passage)] == ["7"]


def test_names_proper_nouns_unknown_katakana_and_latin_but_not_common_loanwords():
    found = [n.text for n in F.names("ジョン・スミスはテーブルの上でヴァルトラウテとLOSTを見た。東京へ行った。")]
    assert found == ["ジョン・スミス", "ヴァルトラウテ", "LOST", "東京"]
    passage = "ジョン・スミスは東京で生まれた。"
    assert [n.text for n in F.invented_names("ジョン・スミスはlostを東京で見た。", passage)] == ["lost"]
    assert F.invented_names("ジョン・スミスはlostを見た", passage + "LOST") == []  # case-insensitive


def test_novel_bigram_share():
    passage = "市立図書館は来月から開館時間を延長する。"
    assert F.novel_bigram_share("市立図書館は開館時間を延長する。", passage) < F.novel_bigram_share("図書館が夜も開くことになった。", passage)
    assert F.novel_bigram_share("はい。", passage) is None


def test_mark_brackets_exactly_the_invented_items():
    passage = "ジョン・スミスは2005年8月17日に東京で生まれた。"
    assert F.mark("ジョン・スミスは2016年6月17日にパリで生まれた。", passage) == "ジョン・スミスは【2016年6月17日】に【パリ】で生まれた。"


@pytest.mark.parametrize("i", range(4))
def test_the_planted_control_is_flagged_in_every_style(i):
    passage = "ジョン・スミスは2005年8月17日に東京で生まれ、7777人の前で歌った。"  # 7777 taken: another value is planted
    planted, value, name = F.plant("スミスは東京で生まれた。", passage, i)
    assert value != 7777 and name in planted
    assert any(n.value == value for n in F.invented_numbers(planted, passage))
    assert any(name in n.text for n in F.invented_names(planted, passage))
    control = F.planted_control(["スミスは東京で生まれた。"] * 4, [passage] * 4)
    assert control["numbers_flagged"] == control["names_flagged"] == 4


def test_the_planted_control_goes_red_when_a_measure_is_blind(monkeypatch):
    """The control is only worth showing if it can fail: a number extractor that ignores kanji numerals misses the
    planted 七千七百七十七 (every fourth record), and a name extractor without katakana runs misses the name."""
    monkeypatch.setattr(F, "kanji_number", lambda text: None)
    control = F.planted_control(["スミスは東京で生まれた。"] * 4, ["東京"] * 4)
    assert control["missed_numbers"] == [2]
    monkeypatch.undo()
    monkeypatch.setattr(F, "_KATAKANA_RUN", re.compile(r"(?!x)x"))  # MeCab tags the planted name 普通名詞 (unknown)
    assert F.planted_control(["スミスは東京で生まれた。"] * 2, ["東京"] * 2)["missed_names"] == [0, 1]


def test_the_planted_name_is_in_no_dolly_passage():
    with gzip.open(BUNDLED_PATH, "rt", encoding="utf-8") as fh:
        assert not any(F.PLANTED_NAME in json.loads(line)["input"] for line in fh)


def test_compare_has_every_arm_the_references_and_paired_cis():
    passages = ["ジョン・スミスは2005年8月17日に東京で生まれた。"] * 6
    refs = ["スミスは2005年に東京で生まれた。"] * 6
    arms = {"0-shot": ["スミスは2016年6月17日にパリで生まれた。"] * 6, "1-shot": ["スミスは東京で生まれた。"] * 6,
            "lora": ["スミスは東京で生まれた。"] * 6}
    out = F.compare(arms, passages, refs)
    assert set(out["arms"]) == {"0-shot", "1-shot", "lora"} and out["reference"]["with_invented"] == 0
    assert out["arms"]["0-shot"]["with_invented"] == 1 and out["arms"]["lora"]["with_invented"] == 0
    assert out["lora_vs"]["0-shot"]["with_invented"] == {"ci_low": -1.0, "ci_high": -1.0}
    assert out["lora_vs"]["1-shot"]["with_invented"] == {"ci_low": 0.0, "ci_high": 0.0}
    assert out["planted"]["numbers_flagged"] == out["planted"]["names_flagged"] == 6


def test_carried_from_counts_what_a_k_shot_output_took_from_its_examples():
    from utils.evaluation.results import shot_examples
    from utils.evaluation.kshot import kshot_prompt

    shot = {"instruction": "要約してください。", "input": "ロシュはバーゼルにある。", "output": "ロシュは1896年創業。"}
    prompt = "### 指示\n要約してください。\n\n### 入力\n東京の話。\n\n### 応答\n"
    examples = shot_examples(kshot_prompt([shot], prompt), prompt)
    assert "ロシュ" in examples and "東京の話" not in examples
    out = F.carried_from(["ロシュはパリで1896年に創業。"], ["東京の話。"], [examples])
    assert out == {"invented_names": 2, "names_in_examples": 1, "invented_numbers": 1, "numbers_in_examples": 1}
    assert shot_examples("unrelated", prompt) == ""
