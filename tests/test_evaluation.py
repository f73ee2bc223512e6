import math

import pytest

from utils.config import TINY_MODEL_DIR, get_config
from utils.evaluation import behaviour, build_results, eval_prompts, reference_loss

REFS = ["東京は日本の首都です。", "富士山は日本一高い山です。", "猫は夜行性の動物です。", "大阪は食の街として知られる。"]
INPUTS = ["東京は日本の首都です。人口が多い。", "富士山は日本一高い山です。静岡と山梨にある。",
          "猫は夜行性の動物です。よく眠る。", "大阪は食の街として知られる。たこ焼きが有名。"]


def _rows(preds, reasons):
    return [{"id": str(i), "prompt": f"p{i}", "reference": r, "prediction": p, "finish_reason": f}
            for i, (r, p, f) in enumerate(zip(REFS, preds, reasons))]


def test_results_json_has_the_documented_shape_and_reads_a_real_gain(clean_env):
    before = _rows(["あ"] * 4, ["length"] * 4)
    after = _rows(REFS, ["eos"] * 4)  # perfect summaries
    r = build_results(get_config(), before, after, INPUTS, [3.0] * 4, [1.0] * 4, train_seconds=12.5)
    assert {"profile", "base_model", "n_test", "train_seconds", "metrics", "behaviour"} <= set(r)
    assert r["n_test"] == 4 and r["train_seconds"] == 12.5
    for k in ("rouge1", "rouge2", "rougeL"):
        m = r["metrics"][k]
        assert set(m) == {"before", "after", "ci_low", "ci_high", "lead", "shuffled"}
        assert m["after"] == pytest.approx(100.0) and m["before"] == 0.0
        assert m["ci_low"] <= m["after"] - m["before"] <= m["ci_high"]
        assert m["shuffled"] < m["after"] - 5  # other records' references score much lower
        assert m["lead"] == pytest.approx(100.0)  # each reference is its input's first sentence
    assert r["behaviour"]["stop_rate"] == {"before": 0.0, "after": 1.0}
    assert r["behaviour"]["ref_loss"] == {"before": 3.0, "after": 1.0}
    assert r["behaviour"]["length_ratio"]["after"] == 1.0


def test_mismatched_test_rows_are_refused(clean_env):
    before = _rows(REFS, ["eos"] * 4)
    with pytest.raises(ValueError, match="03"):
        build_results(get_config(), before, before[::-1], INPUTS, [1.0] * 4, [1.0] * 4, None)


def test_behaviour_length_ratio_is_a_median():
    rows = [{"prediction": "ab", "reference": "abcd", "finish_reason": "eos"},
            {"prediction": "abcd", "reference": "abcd", "finish_reason": "length"},
            {"prediction": "abcdabcd", "reference": "abcd", "finish_reason": "eos"}]
    assert behaviour(rows) == {"stop_rate": pytest.approx(2 / 3), "length_ratio": 1.0}


def test_eval_prompts_fit_the_training_budget(clean_env, tiny_tokenizer):
    cfg = get_config(max_length=128, max_new_tokens=32)
    recs = [{"index": "1", "instruction": "要約して", "input": "長い本文。" * 200, "output": "要約。", "category": "summarization"}]
    rows, report = eval_prompts(recs, tiny_tokenizer, cfg)
    assert report["input_truncated"] == 1
    assert 96 < len(tiny_tokenizer(rows[0]["prompt"])["input_ids"]) <= 128
    assert rows[0]["reference"] == "要約。" and rows[0]["prompt"].endswith("### 応答\n")


def test_reference_loss_is_per_example_and_padding_independent(tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(TINY_MODEL_DIR).eval()
    prompts = ["### 指示\n要約して\n\n### 入力\n" + x + "\n\n### 応答\n" for x in INPUTS[:2]]
    batched = reference_loss(model, tiny_tokenizer, prompts, REFS[:2], batch_size=2)
    single = [reference_loss(model, tiny_tokenizer, [p], [r])[0] for p, r in zip(prompts, REFS[:2])]
    assert len(batched) == 2 and all(math.isfinite(x) and x > 0 for x in batched)
    assert batched == pytest.approx(single, abs=1e-4)
