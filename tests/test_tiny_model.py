"""The bundled tiny base model: offline loading, LoRA targets, tokenizer contract, held-out bound, no leak."""

import importlib
import json
import math

import pytest
import torch

from utils.recipe.config import TINY_MODEL_DIR, get_config
from utils.recipe.data import BUNDLED_PATH, read_jsonl
from utils.recipe.prompt import to_prompt_completion

REPORT = json.loads((TINY_MODEL_DIR / "training_report.json").read_text())


def _build_script():
    return importlib.import_module("scripts.maintainer.build_tiny_model")


@pytest.fixture(scope="module")
def tiny_model():
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(TINY_MODEL_DIR).eval()


def test_loads_offline_and_fits_the_size_budget(tiny_model):
    assert tiny_model.config.model_type == "mistral"
    size_mb = sum(f.stat().st_size for f in TINY_MODEL_DIR.iterdir()) / 1e6
    assert size_mb <= 40, f"{size_mb:.1f} MB"
    assert (TINY_MODEL_DIR / "model.safetensors").is_file()
    card = (TINY_MODEL_DIR / "README.md").read_text()
    assert "CC BY-SA 3.0" in card and "bits per character" in card


def test_module_names_match_the_lora_targets(clean_env, tiny_model):
    names = {name.rsplit(".", 1)[-1] for name, _ in tiny_model.named_modules()}
    for profile_targets in (get_config("cpu").lora_target_modules,):
        assert set(profile_targets) <= names


@pytest.mark.parametrize("text", ["𠮷野家で🍣を食べた。", "鬱蒼とした森、齟齬と贔屓。", "ＡＢＣ abc 123\n改行\t タブ", "👨‍👩‍👧 家族"])
def test_tokenizer_round_trips_any_text(tiny_tokenizer, text):
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tiny_tokenizer.decode(ids, skip_special_tokens=True) == text


def test_rare_characters_use_byte_fallback_not_unk(tiny_tokenizer):
    ids = tiny_tokenizer("𠮷🍣", add_special_tokens=False)["input_ids"]
    assert tiny_tokenizer.unk_token_id not in ids
    assert any(tiny_tokenizer.convert_ids_to_tokens(i).startswith("<0x") for i in ids)


def test_special_tokens_are_what_trl_and_the_prompt_expect(tiny_tokenizer):
    tok = tiny_tokenizer
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<s>", "</s>", "<pad>")
    assert len({tok.bos_token_id, tok.eos_token_id, tok.pad_token_id}) == 3
    pair = to_prompt_completion({"instruction": "要約して", "input": "本文です。", "output": "要約です。"})
    prompt_ids = tok(pair["prompt"])["input_ids"]
    full_ids = tok(pair["prompt"] + pair["completion"] + tok.eos_token)["input_ids"]
    assert prompt_ids[0] == tok.bos_token_id and prompt_ids[-1] != tok.eos_token_id
    # '\n' is its own token: the prompt is an exact prefix, so TRL's mask starts right at the summary
    assert full_ids[: len(prompt_ids)] == prompt_ids
    assert full_ids[-1] == tok.eos_token_id and full_ids.count(tok.eos_token_id) == 1


def test_heldout_loss_stays_under_the_recorded_bound(tiny_model, tiny_tokenizer):
    build = _build_script()
    _, heldout, _ = build.build_corpus(read_jsonl(BUNDLED_PATH))
    bound = REPORT["heldout_bound"]
    result = build.bits_per_char(tiny_model, tiny_tokenizer, build.heldout_sample(heldout), torch.device("cpu"),
                                 max_len=bound["max_tokens"])
    assert math.isfinite(result["loss"]) and result["loss"] <= bound["bound"]
    assert f"{bound['bound']}" in (TINY_MODEL_DIR / "README.md").read_text()


def test_the_shipped_model_copies_from_its_context(tiny_model, tiny_tokenizer):
    """Copying is what lets SFT teach content (the tiny model is built to copy): a span read a second
    time must cost at most half the loss of its first read, for random tokens and for held-out test
    passages, and the figures the model card reports must be what the shipped weights do."""
    build = _build_script()
    _, heldout, _ = build.build_corpus(read_jsonl(BUNDLED_PATH))
    passages = build.encode_passages(tiny_tokenizer, heldout["test"])
    cpu = torch.device("cpu")
    measured = {"random_short": build.copy_test(tiny_model, len(tiny_tokenizer), cpu)["ratio"],
                "natural_short": build.natural_copy_test(tiny_model, passages, cpu)["ratio"]}
    for key, value in measured.items():
        assert value <= 0.5, f"{key}: {value:.2f} (1.0 = no copying)"
        assert value == pytest.approx(REPORT["copy_ratios_test"][key], abs=0.05), key


def test_no_heldout_summarization_text_in_the_pretraining_corpus():
    build = _build_script()
    docs, heldout, _ = build.build_corpus(read_jsonl(BUNDLED_PATH))
    from utils.recipe.data import clean_summarization, split_of

    kept, _ = clean_summarization(read_jsonl(BUNDLED_PATH))
    held = [r for r in kept if split_of(r["index"]) != "train"]
    assert len(held) == len(heldout["validation"]) + len(heldout["test"]) > 100
    corpus = "\x00".join(docs)
    leaked = [r["index"] for r in held for k in ("input", "output") if r[k] in corpus]
    assert leaked == []


def test_no_summary_of_any_summarization_record_in_the_pretraining_corpus():
    """SFT (04) must teach pairs the base model has never read, train split included, as with a real 7B.

    The shipped model was pretrained on exactly this corpus: its report records the same counts."""
    build = _build_script()
    records = read_jsonl(BUNDLED_PATH)
    docs, _, stats = build.build_corpus(records)
    corpus = "\x00".join(docs)
    summ = [r for r in records if r["category"] == "summarization" and len(r["output"].strip()) >= 20]
    assert len(summ) > 1000
    found = [r for r in summ if r["output"].strip() in corpus]
    # The passages stay (a real 7B has read such text too), so an *extractive* summary, a sentence copied from its
    # own passage, is still in the corpus as part of that passage (38 of them); no other summary is.
    assert [r["index"] for r in found if r["output"].strip() not in r["input"]] == []
    assert stats["summaries_left_out"] > 1000
    assert REPORT["corpus"] == stats, "the shipped model was not built from this corpus: rebuild it"


def test_the_committed_stage_file_is_a_valid_recipe_whose_schedule_is_what_each_stage_says(tmp_path):
    """``--stages`` runs the whole recipe in one command: each stage's lr, window length and repeat share
    must be what its line says, from its first step to its last (not annealed from step 0)."""
    build = _build_script()
    path = TINY_MODEL_DIR.parents[1] / "scripts" / "maintainer" / "tiny_model_stages.json"
    stages = build.read_stages(path)
    args = build.parse_args(["--stages", str(path)])
    for i, stage in enumerate(stages):
        first = stages[i - 1]["until"] if i else 0
        last = stage["until"] - 1
        build.apply_stage(args, stages, first)
        assert args.max_steps == stage.get("max_steps", stage["until"])
        assert build.repeat_share_at(first, args) == pytest.approx(stage["repeat_share"])
        assert build.repeat_share_at(stage["until"], args) == pytest.approx(stage["repeat_share_end"])
        want_len = args.short_seq_len if stage["short_fraction"] >= 1 else args.seq_len
        assert build.seq_len_at(first, args) == build.seq_len_at(last, args) == want_len
        if first >= args.warmup and stage["decay_start"] >= stage["until"]:  # constant lr stages
            assert build.lr_at(first, args) == build.lr_at(last, args) == stage["lr"]
    # the last stage anneals to its floor
    assert build.lr_at(stages[-1]["until"], args) == pytest.approx(stages[-1]["lr"] * stages[-1]["min_lr_ratio"])


@pytest.mark.parametrize("text", ['[{"until": 10}, {"until": 10}]', '[{"until": 10, "lr_typo": 1}]', "not json"])
def test_a_broken_stage_file_is_refused_with_its_path(tmp_path, text):
    build = _build_script()
    path = tmp_path / "stages.json"
    path.write_text(text)
    with pytest.raises(SystemExit, match="stages.json"):
        build.read_stages(path)
