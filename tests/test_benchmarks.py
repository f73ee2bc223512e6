"""The gpu profile's offline measurements: the shipped Mistral tokenizer, the token budget, the GPU benchmark.

The benchmark itself needs a GPU for meaningful figures; here it runs on the toy shape on CPU so that
its code path (random model -> save -> profile loading -> LoRA -> TRL -> timing -> results file) keeps working.
"""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from utils.recipe.config import MISTRAL_TOKENIZER_DIR as MISTRAL
from utils.recipe.config import PROJECT_ROOT, WorkshopConfig, _PROFILE_DEFAULTS
from utils.recipe.modeling import load_tokenizer

BENCH = PROJECT_ROOT / "benchmarks"


def run(args: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=PROJECT_ROOT, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin",
                                                 "HOME": str(Path.home())})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def test_mistral_tokenizer_loads_offline_with_the_profile_code():
    tok = load_tokenizer(str(MISTRAL))
    assert len(tok) == 32000
    assert (tok.unk_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
    assert tok.pad_token_id == tok.unk_token_id != tok.eos_token_id  # ensure_pad_token: never EOS
    text = "### 指示\n以下の文章を要約してください。\n\n### 入力\n𠮷野家で🍣を食べた。"
    ids = tok(text)["input_ids"]
    assert ids[0] == tok.bos_token_id and tok.unk_token_id not in ids  # byte fallback, never <unk>
    assert tok.decode(ids, skip_special_tokens=True) == text


def test_mistral_tokenizer_conversion_was_checked_against_sentencepiece():
    check = json.loads((MISTRAL / "conversion_check.json").read_text())
    assert check["source_sha256"].startswith("dadfd56d")
    assert check["texts_identical"] / check["texts_compared"] > 0.99
    assert abs(check["tokens_converted"] - check["tokens_sentencepiece"]) / check["tokens_sentencepiece"] < 1e-4
    assert (MISTRAL / "LICENSE").read_text().lstrip().startswith("Apache License")


def test_gpu_profile_limits_fit_the_data(tmp_path):
    """max_new_tokens covers ~90% of the references (the rule 02 states); max_length loses few examples."""
    out = tmp_path / "budget.json"
    run([str(BENCH / "token_budget.py"), "--out", str(out)])
    budget = json.loads(out.read_text())
    assert budget["max_new_tokens"] == _PROFILE_DEFAULTS["gpu"]["max_new_tokens"]
    assert budget["reference_tokens_train"]["covered_by_max_new_tokens"] >= 0.90
    assert budget["reference_tokens_test"]["covered_by_max_new_tokens"] >= 0.90
    fit = budget["train_fit"]
    assert fit["dropped_too_long"] <= 0.05 * sum(fit.values())
    assert budget["test_fit"]["dropped_too_long"] == 0
    assert budget["test_prompt_tokens_max"] <= budget["max_length"]
    # the same selection as 04 (max_cut_fraction) and the committed figures the prose cites are this run's
    assert budget["max_cut_fraction"] == _PROFILE_DEFAULTS["gpu"].get("max_cut_fraction", 0.5)
    assert budget["train_records"] == fit["kept_as_is"] + fit["input_truncated"]
    committed = json.loads((BENCH / "results" / "token_budget_gpu.json").read_text())
    assert budget == committed, "benchmarks/results/token_budget_gpu.json is stale: rerun benchmarks/token_budget.py"


def test_benchmark_variants_name_real_settings():
    from benchmarks import gpu_qlora
    from trl import SFTConfig

    cfg_fields = {f.name for f in dataclasses.fields(WorkshopConfig)}
    sft_fields = {f.name for f in dataclasses.fields(SFTConfig)}
    for name, (cfg_over, sft_over, why) in gpu_qlora.VARIANTS.items():
        assert set(cfg_over) <= cfg_fields, name
        assert set(sft_over) <= sft_fields, name
        assert why
    batch = _PROFILE_DEFAULTS["gpu"]["per_device_train_batch_size"] * _PROFILE_DEFAULTS["gpu"]["gradient_accumulation_steps"]
    for name in ("2x8", "8x2", "16x1"):  # batch-shape variants keep the effective batch
        c = gpu_qlora.VARIANTS[name][0]
        assert c["per_device_train_batch_size"] * c["gradient_accumulation_steps"] == batch


@pytest.mark.slow  # trains the benchmark's steps
def test_benchmark_runs_end_to_end_on_cpu_and_padding_free_matches_padded(tmp_path):
    out = tmp_path / "results.json"
    proc = run([str(BENCH / "gpu_qlora.py"), "--shape", "tiny-test", "--profile", "cpu",
                "--variants", "profile,padding-free", "--steps", "2", "--warmup-steps", "1",
                "--gen-prompts", "4", "--gen-single", "2", "--gen-new-tokens", "8",
                "--set", "n_train=24", "--set", "max_length=256",
                "--set", "per_device_train_batch_size=4", "--set", "gradient_accumulation_steps=1",
                "--work-dir", str(tmp_path / "work"), "--out", str(out)])
    runs = {r["variant"]: r for r in json.loads(out.read_text())["runs"]}
    assert set(runs) == {"profile", "padding-free"}, proc.stdout
    for r in runs.values():
        assert "error" not in r, r.get("error")
        assert r["train"]["measured_steps"] == 2
        assert r["train"]["tokens_per_second"] > 0 and len(r["train"]["losses"]) == 3
    assert runs["padding-free"]["settings"]["padding_free"] and not runs["profile"]["settings"]["padding_free"]
    # the same batches without padding must give the same loss (no attention across packed sequences)
    assert runs["padding-free"]["train"]["losses"][0] == pytest.approx(runs["profile"]["train"]["losses"][0], abs=1e-4)
    gen = runs["profile"]["generation"]
    assert 0 < gen["batched"]["new_tokens"] <= 4 * 8 and 0 < gen["single"]["new_tokens"] <= 2 * 8
    assert gen["batched"]["prompts"] == 4 and gen["single"]["prompts"] == 2
    assert "generation" not in runs["padding-free"]


def test_a_set_that_changes_a_variants_own_field_is_refused():
    """--set per_device_train_batch_size=4 with variant 8x2 used to end in a TypeError inside the variant's process."""
    proc = subprocess.run([sys.executable, str(BENCH / "gpu_qlora.py"), "--shape", "tiny-test", "--profile", "cpu",
                           "--variants", "profile,8x2", "--set", "per_device_train_batch_size=4"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "variant 8x2 sets ['per_device_train_batch_size'] itself" in proc.stderr
