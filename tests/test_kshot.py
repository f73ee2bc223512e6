"""k-shot baselines (utils.evaluation.kshot): shots from train only, a fixed seeded rule, and the context check."""

import pytest

from utils.evaluation import kshot
from utils.recipe.config import ConfigError, get_config
from utils.recipe.prompt import format_prompt


def _records(n, split="train", length=40):
    return [{"index": f"{split}-{i}", "instruction": "次の文章を要約してください。", "input": "本文" * length + str(i),
             "output": f"要約{i}です。", "category": "summarization"} for i in range(n)]


def test_shots_are_train_records_in_a_fixed_order_whatever_the_file_order(tiny_tokenizer):
    train = _records(30)
    a = kshot.select_shots(train, 3, tiny_tokenizer, 10_000, seed=42)
    b = kshot.select_shots(train[::-1], 3, tiny_tokenizer, 10_000, seed=42)
    assert [s["index"] for s in a] == [s["index"] for s in b] and len(a) == 3
    assert all(s in train for s in a)
    assert [s["index"] for s in kshot.select_shots(train, 3, tiny_tokenizer, 10_000, seed=7)] != [s["index"] for s in a]


def test_the_plan_uses_only_train_and_never_a_test_or_validation_record(tiny_tokenizer):
    train, test = _records(20), _records(5, "test")
    prompts = [format_prompt(r["instruction"], r["input"]) for r in test]
    plans, chosen = kshot.plan_shots(train, prompts, tiny_tokenizer, 4096, 64, seed=42)
    ids = {i for p in plans for i in p.shot_ids}
    assert ids and all(i.startswith("train-") for i in ids)
    assert all(p.fits for p in plans) and set(chosen) == {1, 3}


def test_a_k_that_does_not_fit_the_context_is_reported_not_run(tiny_tokenizer):
    train, test = _records(10, length=60), _records(3, "test", length=60)
    prompts = [format_prompt(r["instruction"], r["input"]) for r in test]
    longest = max(len(tiny_tokenizer(p)["input_ids"]) for p in prompts)
    one = len(tiny_tokenizer(kshot.example_text(train[0]) + kshot.SHOT_SEPARATOR)["input_ids"])
    context = longest + 32 + one + 8  # room for one example, not three
    plans, chosen = kshot.plan_shots(train, prompts, tiny_tokenizer, context, 32, seed=42)
    by_k = {p.k: p for p in plans}
    assert by_k[1].fits and by_k[1].total <= context and set(chosen) == {1}
    assert not by_k[3].fits and "入りません" in by_k[3].reason and by_k[3].shot_ids == []
    # the k-shot prompt really is what was counted: shots + the test prompt
    full = kshot.kshot_prompt(chosen[1], prompts[0])
    assert full.endswith(prompts[0]) and full.startswith("### 指示")


def test_context_window_takes_the_sliding_window_when_smaller():
    class Cfg:
        max_position_embeddings, sliding_window = 32768, 4096

    class Model:
        config = Cfg()

    assert kshot.context_window(Model()) == 4096
    Cfg.sliding_window = None
    assert kshot.context_window(Model()) == 32768


def test_kshot_setting(clean_env, monkeypatch):
    assert kshot.shot_counts(get_config()) == (1, 3)
    monkeypatch.setenv("WORKSHOP_KSHOT", "none")
    assert kshot.shot_counts(get_config()) == ()
    monkeypatch.setenv("WORKSHOP_KSHOT", "2,x")
    with pytest.raises(ConfigError, match="kshot"):
        kshot.shot_counts(get_config())


def test_the_plan_round_trips_and_its_absence_names_notebook_03(clean_env, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKSHOP_OUTPUT_DIR", str(tmp_path))
    cfg = get_config()
    with pytest.raises(FileNotFoundError, match="03_baseline_inference"):
        kshot.load_plan(cfg)
    plan = kshot.ShotPlan(k=1, fits=True, context=1024, longest_prompt=300, max_new_tokens=200, total=700,
                              shot_ids=["7"], reason="入ります")
    kshot.save_plan([plan], cfg)
    assert kshot.load_plan(cfg) == [plan.to_dict()]
