"""The adapter-scale curve (utils.evaluation.forgetting): m = 0 is the base model, m = 1 the adapter, exactly."""

import statistics

import pytest

from utils.evaluation import forgetting
from utils.recipe.config import TINY_MODEL_DIR, get_config
from utils.evaluation.results import reference_loss


@pytest.fixture(scope="module")
def lora_model():
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(TINY_MODEL_DIR).eval()
    # init_lora_weights=False: B is not zero, so the adapter changes the outputs (a fresh LoRA would not)
    return get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                           init_lora_weights=False)).eval()


def test_scale_zero_is_the_base_model_and_scale_one_the_adapter(lora_model, tiny_tokenizer):
    prompts = ["### 指示\n要約してください。\n\n### 入力\n市立図書館は来月から開館時間を延長する。\n\n### 応答\n", ""]
    texts = ["図書館が開館時間を延長する。", "駅前の商店街で夏祭りが開かれた。"]
    curve = forgetting.scale_curve(lora_model, tiny_tokenizer, {"a": (prompts, texts)}, scales=(0.0, 0.5, 1.0))
    with lora_model.disable_adapter():
        base = statistics.fmean(reference_loss(lora_model, tiny_tokenizer, prompts, texts))
    adapter = statistics.fmean(reference_loss(lora_model, tiny_tokenizer, prompts, texts))
    assert curve["loss"]["a"][0] == pytest.approx(base, abs=1e-6)
    assert curve["loss"]["a"][-1] == pytest.approx(adapter, abs=1e-6)
    assert abs(adapter - base) > 1e-3  # the equalities above are not trivially true
    assert curve["loss"]["a"][1] != pytest.approx(base, abs=1e-6)
    # the scale is restored after the curve
    assert statistics.fmean(reference_loss(lora_model, tiny_tokenizer, prompts, texts)) == pytest.approx(adapter, abs=1e-6)


def test_the_text_sets_are_fixed_and_never_the_summarization_data(clean_env, tiny_tokenizer):
    cfg = get_config()
    sets, report = forgetting.text_sets(["p"] * 50, ["r"] * 50, tiny_tokenizer, cfg)
    again, _ = forgetting.text_sets(["p"] * 50, ["r"] * 50, tiny_tokenizer, cfg)
    assert sets == again
    assert len(sets["test"][1]) == forgetting.N_TEST_CURVE
    prompts, responses = sets["other_tasks"]
    assert len(responses) + report["dropped_too_long"] == forgetting.N_OTHER  # nothing dropped silently
    assert all(p.startswith("### 指示") for p in prompts)
    assert set(sets["new_text"][0]) == {""} and len(sets["new_text"][1]) == 64


def test_curve_lines_say_when_untrained_text_got_worse():
    curve = {"scales": [0, 1], "n": {"test": 3, "other_tasks": 3, "new_text": 3},
             "loss": {"test": [3.0, 2.5], "other_tasks": [2.0, 2.3], "new_text": [5.0, 5.0]}}
    text = "\n".join(forgetting.curve_lines(curve))
    assert "-0.50" in text and "+0.30" in text and "忘れさせています" in text
    curve["loss"]["other_tasks"] = [2.0, 1.9]
    assert "忘却は見えません" in "\n".join(forgetting.curve_lines(curve))
    curve = {"scales": [0, 0.5, 1], "n": {"other_tasks": 3}, "loss": {"other_tasks": [2.75, 2.65, 2.67]}}
    assert "途中の m = 0.5 がいちばん低く (2.65)" in "\n".join(forgetting.curve_lines(curve))


def test_the_new_text_set_is_left_out_when_it_is_the_training_data(clean_env, tiny_tokenizer):
    """With WORKSHOP_DATA_PATH=data/own_data_example/example_summaries.csv the adapter trained on those passages:
    they are no longer text that neither model saw."""
    clean_env.setenv("WORKSHOP_DATA_PATH", str(forgetting.NEW_TEXT_PATH))
    sets, report = forgetting.text_sets(["p"], ["r"], tiny_tokenizer, get_config())
    assert "new_text" not in sets and "new_text_left_out" in report
