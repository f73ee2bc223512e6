"""Merging the adapter into the base: the stand-alone model computes what base + adapter computes."""

import torch

from utils.recipe import training
from utils.recipe.config import get_config


def test_merged_model_equals_base_plus_adapter(clean_env, tmp_path, tiny_tokenizer):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from utils.recipe.export import merge_and_save
    from utils.recipe.modeling import load_model

    cfg = get_config("cpu", output_dir=tmp_path)
    peft_model = training.lora_model(load_model(cfg), cfg)
    with torch.no_grad():  # a trained-looking adapter: LoRA's B starts at 0, which would make merging trivial
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.02, generator=torch.Generator().manual_seed(0))
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)

    merged_dir = merge_and_save(cfg, adapter, tmp_path / "merged", tiny_tokenizer)
    assert not (merged_dir / "adapter_config.json").exists()  # a plain transformers model, loads without PEFT
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    reference = PeftModel.from_pretrained(load_model(cfg), adapter).eval()
    base = load_model(cfg)
    ids = tiny_tokenizer(["### 指示\n要約してください。\n\n### 入力\n東京は日本の首都です。\n\n### 応答\n"],
                         return_tensors="pt")["input_ids"]
    with torch.no_grad():
        got, want, plain = (m(ids).logits for m in (merged, reference, base))
    assert (want - plain).abs().max() > 1e-2  # the adapter changes the output ...
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)  # ... and the merged model reproduces it (fp32)


def test_adapter_card_states_the_run_s_own_numbers(clean_env):
    from utils.recipe.export import adapter_card

    cfg = get_config("cpu")
    metric = lambda b, a, lo, hi, lead, sh: {"before": b, "after": a, "ci_low": lo, "ci_high": hi, "lead": lead, "shuffled": sh}  # noqa: E731
    results = {"n_test": 80, "metrics": {"rouge1": metric(20.61, 27.34, 3.1, 9.2, 35.5, 19.0),
                                         "rouge2": metric(4.7, 9.9, 2.2, 7.7, 16.1, 4.4),
                                         "rougeL": metric(13.9, 22.45, 5.5, 11.1, 29.3, 14.2)},
               "behaviour": {"stop_rate": {"before": 0.45, "after": 0.9}, "length_ratio": {"before": 1.7, "after": 0.8}}}
    card = adapter_card(cfg, results, {"optimizer_steps": 62, "train_seconds": 216.4, "final_eval_loss": 3.21})
    for text in ("| rougeL | 13.9 | 22.4 | [+5.5, +11.1] | 29.3 | 14.2 |", "CC BY-SA 3.0", cfg.base_model,
                 "80 held-out test records", "62 optimizer steps", "45% →", "90%", f"r {cfg.lora_r}"):
        assert text in card, text
    assert "push" not in card.lower()
    assert "Prompting baselines" not in card  # results without 05 §7-9 (an older results.json): no empty sections
    results |= {"arms": {"0-shot": {"rougeL": 13.9}, "1-shot": {"rougeL": 9.94}, "lora": {"rougeL": 22.45}},
                "lora_vs": {n: {"rougeL": {"ci_low": lo, "ci_high": hi}} for n, lo, hi in (("0-shot", 5.5, 11.1), ("1-shot", 10.6, 18.3))},
                "faithfulness": {"arms": {"0-shot": {"with_invented": 0.88, "with_invented_number": 0.84, "with_invented_name": 0.31}},
                                 "reference": {"with_invented": 0.56, "with_invented_number": 0.32, "with_invented_name": 0.42},
                                 "planted": {"n": 80, "numbers_flagged": 80, "names_flagged": 79}},
                "forgetting": {"scales": [0.0, 1.0], "n": {"test": 16}, "loss": {"test": [3.25, 3.115]}}}
    card = adapter_card(cfg, results)
    for text in ("| 1-shot (base model, 1 train example in the prompt) | 9.9 | [+10.6, +18.3] |", "| 0-shot | 88% | 84% | 31% |",
                 "| reference summaries (calibration) | 56% |", "80/80 and 79/80", "| test (16) | 3.250 | 3.115 |"):
        assert text in card, text


import pytest  # noqa: E402


# transformers' MLflowCallback.__del__ trips over its own half-built state after the (expected) missing-package error
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_report_to_is_passed_to_the_trainer(clean_env, tmp_path):
    from trl import SFTTrainer

    from utils.recipe.modeling import load_model_and_tokenizer

    assert training.sft_config(get_config("cpu"), tmp_path / "a").report_to in ([], ["none"], "none")
    clean_env.setenv("WORKSHOP_REPORT_TO", "mlflow")
    cfg = get_config("cpu")
    args = training.sft_config(cfg, tmp_path / "b", eval_strategy="no")
    assert args.report_to == ["mlflow"]
    model, tokenizer = load_model_and_tokenizer(cfg)
    from datasets import Dataset

    ds = Dataset.from_list([{"prompt": "### 指示\n要約\n\n### 入力\n本文\n\n### 応答\n", "completion": "要約"}])
    import importlib.util

    if importlib.util.find_spec("mlflow") is None:  # the Trainer really tries to set up the tracker it was given
        import pytest

        with pytest.raises(Exception, match="(?i)mlflow"):
            SFTTrainer(model=training.lora_model(model, cfg), args=args, train_dataset=ds, processing_class=tokenizer)


def test_unknown_tracker_is_refused(clean_env):
    import pytest

    from utils.recipe.config import ConfigError

    clean_env.setenv("WORKSHOP_REPORT_TO", "neptune")
    with pytest.raises(ConfigError, match="report_to"):
        get_config("cpu")


def test_fallback_adapter_is_validated_and_used(clean_env, tmp_path):
    """WORKSHOP_ADAPTER: 05 can evaluate an adapter trained elsewhere (e.g. the instructor's), checked first."""
    import json

    import pytest

    from utils.recipe.modeling import ModelLoadError, adapter_source, load_model

    cfg = get_config("cpu", output_dir=tmp_path)
    assert adapter_source(cfg) == (str(tmp_path / "cpu" / "adapter"), "04")

    instructor = tmp_path / "instructor_adapter"
    training.lora_model(load_model(cfg), cfg).save_pretrained(instructor)
    clean_env.setenv("WORKSHOP_ADAPTER", str(instructor))
    cfg = get_config("cpu", output_dir=tmp_path)
    assert ("adapter (05)", str(instructor)) in cfg.rows()
    path, source = adapter_source(cfg)
    assert (path, source) == (str(instructor), "WORKSHOP_ADAPTER")
    assert type(load_model(cfg, path)).__name__ == "PeftModelForCausalLM"

    # the same tiny model seen from another machine's checkout still matches (folder name)
    conf = json.loads((instructor / "adapter_config.json").read_text())
    (instructor / "adapter_config.json").write_text(json.dumps({**conf, "base_model_name_or_path": "/other/checkout/models/tiny-ja-mistral"}))
    assert adapter_source(cfg)[1] == "WORKSHOP_ADAPTER"

    (instructor / "adapter_config.json").write_text(json.dumps({**conf, "base_model_name_or_path": "tokyotech-llm/Swallow-MS-7b-v0.1"}))
    with pytest.raises(ModelLoadError, match="Swallow-MS-7b-v0.1.*で学習したアダプタ.*WORKSHOP_BASE_MODEL"):
        adapter_source(cfg)
    for bad, message in [(tmp_path / "missing", "フォルダが見つかりません"), (tmp_path, "adapter_config.json が")]:
        clean_env.setenv("WORKSHOP_ADAPTER", str(bad))
        with pytest.raises(ModelLoadError, match=message):
            adapter_source(get_config("cpu", output_dir=tmp_path))


def hub_cache_with(cache, repo_id: str, files: dict[str, str]) -> None:
    """Files of a Hub repository as huggingface_hub's cache keeps them (refs/main -> snapshots/<commit>/)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    folder = cache / f"models--{repo_id.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, text in files.items():
        (snapshot / name).write_text(text)


def test_hub_adapter_is_checked_against_the_base_like_a_folder(clean_env, tmp_path):
    """WORKSHOP_ADAPTER=<Hub id>: its adapter_config.json is fetched (here from the Hub cache, offline, through
    huggingface_hub's own hf_hub_download) and compared with the profile's base model before anything loads."""
    import json

    import huggingface_hub.constants as hub_constants
    import pytest

    from utils.recipe.modeling import ModelLoadError, adapter_source

    cache = tmp_path / "hub"
    clean_env.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    hub_cache_with(cache, "teacher/tiny-summary-lora",
                   {"adapter_config.json": json.dumps({"base_model_name_or_path": get_config("cpu").base_model, "peft_type": "LORA"})})
    hub_cache_with(cache, "teacher/swallow-summary-lora",
                   {"adapter_config.json": json.dumps({"base_model_name_or_path": "tokyotech-llm/Swallow-MS-7b-v0.1"})})

    clean_env.setenv("WORKSHOP_ADAPTER", "teacher/tiny-summary-lora")
    assert adapter_source(get_config("cpu", output_dir=tmp_path)) == ("teacher/tiny-summary-lora", "WORKSHOP_ADAPTER (Hub)")

    clean_env.setenv("WORKSHOP_ADAPTER", "teacher/swallow-summary-lora")
    with pytest.raises(ModelLoadError, match="Swallow-MS-7b-v0.1.*で学習したアダプタ.*WORKSHOP_BASE_MODEL"):
        adapter_source(get_config("cpu", output_dir=tmp_path))

    clean_env.setenv("WORKSHOP_ADAPTER", "teacher/not-cached-anywhere")
    with pytest.raises(ModelLoadError, match="adapter_config.json\\) を取得できません"):
        adapter_source(get_config("cpu", output_dir=tmp_path))
