import math

import pytest

from utils.recipe.config import TINY_MODEL_DIR, get_config
from utils.evaluation.results import behaviour, build_results, eval_prompts, reference_loss

REFS = ["東京は日本の首都です。", "富士山は日本一高い山です。", "猫は夜行性の動物です。", "大阪は食の街として知られる。"]
INPUTS = ["東京は日本の首都です。人口が多い。", "富士山は日本一高い山です。静岡と山梨にある。",
          "猫は夜行性の動物です。よく眠る。", "大阪は食の街として知られる。たこ焼きが有名。"]


def _rows(preds, reasons):
    from utils.recipe.prompt import format_prompt

    return [{"id": str(i), "prompt": format_prompt("要約してください。", INPUTS[i]), "reference": r, "prediction": p,
             "finish_reason": f} for i, (r, p, f) in enumerate(zip(REFS, preds, reasons))]


def test_results_json_has_the_documented_shape_and_reads_a_real_gain(clean_env):
    before = _rows(["あ"] * 4, ["length"] * 4)
    after = _rows(REFS, ["eos"] * 4)  # perfect summaries
    r = build_results(get_config(), before, after, INPUTS, [3.0] * 4, [1.0] * 4, train_seconds=12.5)
    assert {"profile", "base_model", "n_test", "train_seconds", "metrics", "behaviour"} <= set(r)
    assert r["n_test"] == 4 and r["train_seconds"] == 12.5
    for k in ("rouge1", "rouge2", "rougeL"):
        m = r["metrics"][k]
        assert {"before", "after", "ci_low", "ci_high", "lead", "shuffled"} <= set(m)
        assert m["after"] == pytest.approx(100.0) and m["before"] == 0.0
        assert m["ci_low"] <= m["after"] - m["before"] <= m["ci_high"]
        assert m["shuffled"] < m["after"] - 5  # other records' references score much lower
        assert m["lead"] == pytest.approx(100.0)  # each reference is its input's first sentence
    assert r["behaviour"]["stop_rate"] == {"before": 0.0, "after": 1.0}
    assert r["behaviour"]["ref_loss"] == {"before": 3.0, "after": 1.0}
    assert r["behaviour"]["length_ratio"]["after"] == 1.0
    m = r["metrics"]["rougeL"]  # the after - shuffled margin has its own paired CI
    assert m["margin_ci_low"] <= m["after"] - m["shuffled"] <= m["margin_ci_high"] and m["margin_ci_low"] > 0
    assert set(r["arms"]) == {"0-shot", "lora"} and r["arms"]["lora"]["rougeL"] == pytest.approx(100.0)
    assert r["faithfulness"]["planted"]["numbers_flagged"] == 4


def test_kshot_arms_are_scored_on_the_same_records_and_compared_with_lora(clean_env):
    before = _rows(["あ"] * 4, ["length"] * 4)
    after = _rows(REFS, ["eos"] * 4)
    one_shot = _rows(["東京は日本の首都です。", "富士山。", "猫。", "大阪。"], ["header"] * 4)
    r = build_results(get_config(), before, after, INPUTS, [3.0] * 4, [1.0] * 4, None, kshot={"1-shot": one_shot})
    assert list(r["arms"]) == ["0-shot", "1-shot", "lora"]
    assert 0 < r["arms"]["1-shot"]["rougeL"] < r["arms"]["lora"]["rougeL"]
    d = r["lora_vs"]["1-shot"]["rougeL"]
    assert d["ci_low"] <= d["diff"] <= d["ci_high"] and d["diff"] == pytest.approx(100 - r["arms"]["1-shot"]["rougeL"])
    assert set(r["faithfulness"]["lora_vs"]) == {"0-shot", "1-shot"}
    with pytest.raises(ValueError, match="1-shot"):
        build_results(get_config(), before, after, INPUTS, [1.0] * 4, [1.0] * 4, None, kshot={"1-shot": one_shot[::-1]})


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


def _results(after, shuffled, ci_low, ci_high=9.0, before=10.0, stop_rate=0.8):
    return {"metrics": {"rougeL": {"before": before, "after": after, "shuffled": shuffled,
                                   "ci_low": ci_low, "ci_high": ci_high}},
            "behaviour": {"stop_rate": {"before": 0.3, "after": stop_rate}}}


def test_content_guard_passes_content_and_fails_format_only():
    from utils.evaluation.results import content_learning_failures

    assert content_learning_failures(_results(after=25.0, shuffled=14.0, ci_low=3.0), 5.0) == []
    # format only: better than before, but as good against other records' references
    format_only = content_learning_failures(_results(after=16.8, shuffled=13.5, ci_low=1.0), 5.0)
    assert len(format_only) == 1 and "format, not content" in format_only[0]
    no_gain = content_learning_failures(_results(after=25.0, shuffled=14.0, ci_low=-0.5), 5.0)
    assert len(no_gain) == 1 and "above 0" in no_gain[0]


def test_check_results_script_exit_codes(tmp_path):
    import json
    import subprocess
    import sys
    import time

    from utils.recipe.config import PROJECT_ROOT

    script = PROJECT_ROOT / "scripts" / "ci" / "check_results.py"
    path = tmp_path / "results.json"
    path.write_text(json.dumps(_results(after=14.9, shuffled=13.9, ci_low=0.0)))  # like the adapter-not-loaded run
    red = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True)
    assert red.returncode == 1 and "FAILED" in red.stderr
    # like the prompt-left-unmasked run: content learned, but the model did not learn to stop
    path.write_text(json.dumps(_results(after=23.2, shuffled=12.2, ci_low=8.1, stop_rate=0.34)))
    unmasked = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True)
    assert unmasked.returncode == 1 and "stop rate" in unmasked.stderr
    path.write_text(json.dumps(_results(after=25.0, shuffled=14.0, ci_low=3.0)))
    green = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True)
    assert green.returncode == 0 and "ok" in green.stdout
    stale = subprocess.run([sys.executable, str(script), str(path), "--since", str(time.time() + 60)],
                           capture_output=True, text=True)
    assert stale.returncode == 1 and "stale" in stale.stderr
    missing = subprocess.run([sys.executable, str(script), str(tmp_path / "none.json")], capture_output=True, text=True)
    assert missing.returncode == 1


def _full_results(**rouge_l):
    m = lambda b, a, lo, hi, lead, sh: {"before": b, "after": a, "ci_low": lo, "ci_high": hi, "lead": lead, "shuffled": sh}  # noqa: E731
    return {"metrics": {"rouge1": m(20.6, 22.5, -1.2, 4.7, 35.0, 21.0), "rouge2": m(4.7, 6.2, 0.4, 2.8, 16.0, 4.0),
                        "rougeL": m(**rouge_l)},
            "behaviour": {"stop_rate": {"before": 0.45, "after": 0.88}, "length_ratio": {"before": 1.69, "after": 0.46},
                          "ref_loss": {"before": 4.117, "after": 3.818}}}


def test_reading_covers_all_three_rouge_variants_and_agrees_with_the_table():
    from utils.evaluation.results import reading_lines

    text = "\n".join(reading_lines(_full_results(b=13.9, a=16.84, lo=1.0, hi=4.8, lead=29.3, sh=13.46)))
    assert "ROUGE-1: 20.6 → 22.5" in text and "0 を含み" in text.split("ROUGE-2")[0]  # ROUGE-1's CI contains 0
    assert "ROUGE-2: 4.7 → 6.2" in text and "改善したと言えます" in text.split("ROUGE-L")[0].split("ROUGE-2")[1]
    # margin from the rounded table values: 16.8 - 13.5 = 3.3 (not 16.84 - 13.46 = 3.38 -> "3.4")
    assert "+3.3 点" in text and "**形式**" in text
    assert "12.5 点届きません" in text and "短すぎます" in text
    content = "\n".join(reading_lines(_full_results(b=13.9, a=24.0, lo=5.0, hi=12.0, lead=29.3, sh=14.0)))
    assert "10.0 点高く" in content and "**自分の本文に固有の語**" in content


def test_kshot_reading_follows_the_ci():
    from utils.evaluation.results import kshot_lines

    arms = {"0-shot": {"rougeL": 11.1}, "1-shot": {"rougeL": 9.9}, "3-shot": {"rougeL": 23.0}, "lora": {"rougeL": 24.2}}
    results = {"arms": arms, "lora_vs": {"1-shot": {"rougeL": {"ci_low": 10.6, "ci_high": 18.3}},
                                         "3-shot": {"rougeL": {"ci_low": -1.0, "ci_high": 3.0}}},
               "kshot_plans": [{"k": 5, "fits": False, "reason": "入りません: 例 5 件 + … > 1024 トークン。"}]}
    text = "\n".join(kshot_lines(results))
    assert "LoRA − 1-shot の 95% 信頼区間 [+10.6, +18.3] は 0 を含まず、LoRA が上回ります" in text
    assert "3-shot の 95% 信頼区間 [-1.0, +3.0] は 0 を含み、この件数では差があるとは言えません" in text
    assert "5-shot は実行していません。入りません" in text
    results["lora_vs"]["3-shot"]["rougeL"] = {"ci_low": -6.0, "ci_high": -1.0}
    assert "0 より下で、3-shot が上回ります" in "\n".join(kshot_lines(results))


def test_loops_flags_a_model_going_round_not_a_summary():
    from utils.evaluation.results import loops

    assert loops("金融市場は、金融市場は、金融市場は、")
    assert not loops("CAC40指数の構成は、独立した指数運営委員会によって四半期ごとに見直されます。")
    assert not loops("ああああ")  # too short to hold a 6-character piece three times
