"""Japanese ROUGE against values computed by hand."""

import pytest

from utils.evaluation import metrics


def test_mecab_tokens_are_surface_words_after_nfkc():
    assert metrics.tokenize("私は猫が好きです。") == ["私", "は", "猫", "が", "好き", "です", "。"]
    assert metrics.tokenize("ＡＢＣ１２３は猫") == ["ABC", "123", "は", "猫"]


def test_identical_texts_score_100():
    assert metrics.ja_rouge(["私は猫が好きです。"], ["私は猫が好きです。"]) == {"rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0}


def test_disjoint_and_empty_score_0():
    assert metrics.ja_rouge(["東京"], ["大阪"]) == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    assert metrics.ja_rouge([""], ["犬は散歩が好きだ"]) == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}


def test_partial_overlap_by_hand():
    # pred: 私/は/猫/が/好き/です/。 (7)   ref: 犬/は/散歩/が/好き/だ (6)
    # unigrams shared: は, が, 好き -> P=3/7, R=3/6, F=6/13; LCS is the same 3 tokens
    # bigrams shared: が好き -> P=1/6, R=1/5, F=2/11
    s = metrics.ja_rouge(["私は猫が好きです。"], ["犬は散歩が好きだ"])
    assert s["rouge1"] == pytest.approx(100 * 6 / 13)
    assert s["rouge2"] == pytest.approx(100 * 2 / 11)
    assert s["rougeL"] == pytest.approx(100 * 6 / 13)


def test_char_tokenizer_by_hand():
    # あ/い/う vs あ/い/え: unigram F=2/3, bigram (あい) F=1/2, LCS=2 -> 2/3
    s = metrics.ja_rouge(["あいう"], ["あいえ"], tokenizer="char")
    assert s == pytest.approx({"rouge1": 200 / 3, "rouge2": 50.0, "rougeL": 200 / 3})


def test_mean_over_pairs_and_length_mismatch():
    s = metrics.ja_rouge(["東京", "東京"], ["東京", "大阪"])
    assert s["rouge1"] == pytest.approx(50.0)
    with pytest.raises(ValueError, match="一致しません"):
        metrics.ja_rouge(["a"], ["a", "b"])


def test_evaluate_load_offline():
    import evaluate

    rouge = evaluate.load(metrics.ROUGE_JA_PATH)
    s = rouge.compute(predictions=["私は猫が好きです。"], references=["犬は散歩が好きだ"])
    assert s["rouge2"] == pytest.approx(100 * 2 / 11)


def test_bootstrap_ci_brackets_the_mean_gain_and_is_seeded():
    before = [10.0, 20.0, 30.0, 40.0, 50.0] * 4
    after = [b + d for b, d in zip(before, [5, 15, 10, 0, 20] * 4)]
    lo, hi = metrics.paired_bootstrap_ci(before, after, seed=1)
    assert lo < 10.0 < hi and lo > 0
    assert (lo, hi) == metrics.paired_bootstrap_ci(before, after, seed=1)
    same = metrics.paired_bootstrap_ci(before, before)
    assert same == (0.0, 0.0)


def test_lead_sentence():
    assert metrics.lead_sentence("  一文目です。二文目です。") == "一文目です。"
    assert metrics.lead_sentence("句点なしの文") == "句点なしの文"
    assert metrics.lead_sentence("本当？そうです。") == "本当？"


def test_shuffled_is_a_seeded_derangement():
    items = list(range(10))
    out = metrics.shuffled(items, seed=3)
    assert sorted(out) == items and all(a != b for a, b in zip(items, out))
    assert out == metrics.shuffled(items, seed=3)


def test_words_in_passage_is_the_share_of_reference_words_found_in_the_passage():
    from utils.evaluation.metrics import words_in_passage

    shares = words_in_passage(["Lostは6シーズンです。", "全く別の話。", ""], ["Lostは6シーズン、121話のドラマです。", "Lostは6シーズン。", "本文"])
    assert shares[0] == 1.0 and 0 < shares[1] < 0.5 and shares[2] == 0.0
    with pytest.raises(ValueError):
        words_in_passage(["a"], [])
