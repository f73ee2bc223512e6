"""The participant's code: the notebooks write the library calls literally (each argument commented), and
scripts/participant/train.py, the sweep and the benchmark build the same objects through utils (training, modeling). These tests
find the literal calls and hold the two copies equal, so that a change to one side alone turns them red."""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path

import pytest

from utils.recipe import training
from utils.recipe.config import get_config

ROOT = Path(__file__).resolve().parents[1]

# notebook -> the library calls a participant would write at work, literally in that notebook
LITERAL_CALLS = {
    "03_baseline_inference.ipynb": ["AutoTokenizer.from_pretrained", "BitsAndBytesConfig",
                                    "AutoModelForCausalLM.from_pretrained", "model.generate"],
    "04_lora_sft.ipynb": ["LoraConfig", "get_peft_model", "SFTConfig", "SFTTrainer", "trainer.train"],
    "05_rouge_comparison.ipynb": ["PeftModel.from_pretrained"],
}
# every argument on its own line, with a comment
COMMENTED = {"LoraConfig", "SFTConfig", "SFTTrainer", "BitsAndBytesConfig", "AutoModelForCausalLM.from_pretrained",
             "model.generate", "PeftModel.from_pretrained"}


def cells(name: str) -> dict[str, str]:
    nb = json.loads((ROOT / "notebooks" / name).read_text(encoding="utf-8"))
    return {c["id"]: "".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"}


def call_name(node: ast.Call) -> str:
    return ast.unparse(node.func)


def calls(source: str) -> list[ast.Call]:
    found = [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)]
    return sorted(found, key=lambda node: (node.lineno, node.col_offset))  # source order (ast.walk is breadth-first)


@pytest.fixture
def profile_config(monkeypatch):
    """get_config(profile) here: the gpu profile's values on a machine without CUDA (only the config is built)."""
    from utils.recipe import config

    def make(profile: str):
        monkeypatch.setattr(config, "_cuda_available", lambda: profile == "gpu")
        return get_config(profile)

    return make


def run(source: str, **namespace) -> dict:
    exec(compile(source, "<cell>", "exec"), namespace)  # noqa: S102 - the notebook's own cell
    return namespace


@pytest.mark.parametrize("name", sorted(LITERAL_CALLS))
def test_the_notebook_writes_the_library_calls_literally_with_a_comment_per_argument(name):
    sources = cells(name)
    found = {call_name(node): (cell_id, node) for cell_id, source in sources.items() for node in calls(source)}
    for wanted in LITERAL_CALLS[name]:
        assert wanted in found, f"{name}: no literal {wanted}(...) in any code cell"
    for wanted in COMMENTED & set(LITERAL_CALLS[name]):
        cell_id, node = found[wanted]
        lines = sources[cell_id].splitlines()
        assert node.args or node.keywords
        for argument in [*node.args, *(k.value for k in node.keywords)]:
            line = lines[argument.end_lineno - 1]
            assert "#" in line, f"{name} {cell_id}: {wanted}(...) has an argument without a comment: {line.strip()}"


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_04s_lora_config_is_the_scripts(profile, profile_config):
    cfg = profile_config(profile)
    notebook = run(cells("04_lora_sft.ipynb")["04-04"], cfg=cfg)["lora_config"]
    assert notebook.to_dict() == training.lora_config(cfg).to_dict()


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_04s_sft_config_is_the_scripts(profile, profile_config):
    """In one process (a notebook): scripts/participant/train.py adds only what several processes need (use_cpu for CPU DDP,
    ddp_find_unused_parameters), both None/False here."""
    cfg = profile_config(profile)
    notebook = run(cells("04_lora_sft.ipynb")["04-10"], cfg=cfg, training=training)["args"]
    assert notebook.to_dict() == training.sft_config(cfg, cfg.run_dir / "trainer").to_dict()


def test_04s_lora_model_is_the_scripts():
    """Seeded the same way: the notebook's get_peft_model gives the adapter lora_model gives, weight for weight."""
    import torch

    from utils.recipe.modeling import load_model

    cfg = get_config("cpu")
    ns = run(cells("04_lora_sft.ipynb")["04-06"], cfg=cfg, model=load_model(cfg), lora_config=training.lora_config(cfg))
    notebook = dict(ns["peft_model"].named_parameters())
    scripts = dict(training.lora_model(load_model(cfg), cfg).named_parameters())
    assert notebook.keys() == scripts.keys()
    trained = [n for n, p in notebook.items() if p.requires_grad]
    assert trained and trained == [n for n, p in scripts.items() if p.requires_grad]
    for name in trained:
        assert torch.equal(notebook[name], scripts[name]), name


def helper_steps(function) -> list[str]:
    """The calls a utils wrapper makes, in order (what the notebook must show around the library call)."""
    return [call_name(node) for node in calls(inspect.getsource(function))]


def notebook_steps(source: str) -> list[str]:
    return [call_name(node).removeprefix("training.") for node in calls(source)]


def test_04_builds_the_trainer_with_the_steps_scripts_take():
    """training.sft_trainer (scripts/participant/train.py, the sweep, the benchmark) = the notebook's cell: the same helpers
    around SFTTrainer, and the same keyword arguments."""
    steps = [s for s in helper_steps(training.sft_trainer) if s in {"check_triton_toolchain", "quiet_dataset_bars",
                                                                   "SFTTrainer", "fp32_adapter_for_fp16"}]
    assert steps == ["check_triton_toolchain", "quiet_dataset_bars", "SFTTrainer", "fp32_adapter_for_fp16"]
    source = cells("04_lora_sft.ipynb")["04-14"]
    assert [s for s in notebook_steps(source) if s in set(steps)] == steps
    trainer_call = next(node for node in calls(source) if call_name(node) == "SFTTrainer")
    keywords = {k.arg for k in trainer_call.keywords}
    assert keywords == {"model", "args", "train_dataset", "eval_dataset", "processing_class"}
    script = next(node for node in calls((ROOT / "scripts" / "participant" / "train.py").read_text(encoding="utf-8"))
                  if call_name(node) == "training.sft_trainer")
    assert {k.arg for k in script.keywords} == keywords - {"model", "args"}


def test_04_trains_with_the_steps_scripts_take():
    """training.train = resume_point() + out_of_memory_explained() around trainer.train(), as the notebook writes it."""
    wanted = {"resume_point", "out_of_memory_explained", "trainer.train"}
    assert [s for s in helper_steps(training.train) if s in wanted] == ["resume_point", "out_of_memory_explained",
                                                                          "trainer.train"]
    assert [s for s in notebook_steps(cells("04_lora_sft.ipynb")["04-19"]) if s in wanted] == [
        "resume_point", "out_of_memory_explained", "trainer.train"]


# --- 03: loading and one generate; 05: the adapter ------------------------------------------------------------------
def test_03s_model_and_tokenizer_are_the_scripts():
    """The notebook's from_pretrained calls load what utils.recipe.modeling.load_model_and_tokenizer loads (scripts/participant/train.py,
    04, 05): the same weights, dtype, pad token and generation settings (cpu profile, the bundled model)."""
    import time

    import pandas as pd
    import torch

    from utils.recipe.modeling import load_model_and_tokenizer

    cfg = get_config("cpu")
    ns = run(cells("03_baseline_inference.ipynb")["03-04"], cfg=cfg, time=time, pd=pd)
    model, tokenizer = load_model_and_tokenizer(cfg)
    assert ns["tokenizer"].pad_token == tokenizer.pad_token and ns["tokenizer"].eos_token == tokenizer.eos_token
    assert ns["model"].dtype == model.dtype and not ns["model"].training and not model.training
    assert ns["model"].config.to_dict() == model.config.to_dict()
    assert ns["model"].generation_config.to_dict() == model.generation_config.to_dict()
    theirs = model.state_dict()
    for key, value in ns["model"].state_dict().items():
        assert torch.equal(value, theirs[key]), key


def keywords_of(source: str, name: str) -> set[str]:
    return {k.arg for node in calls(source) if call_name(node) == name for k in node.keywords}


def test_03s_from_pretrained_arguments_are_the_scripts():
    from utils.recipe import modeling

    notebook = cells("03_baseline_inference.ipynb")["03-04"]
    scripts = inspect.getsource(modeling.load_model)
    assert keywords_of(notebook, "AutoModelForCausalLM.from_pretrained") == keywords_of(
        scripts, "AutoModelForCausalLM.from_pretrained")
    quantization = inspect.getsource(modeling.quantization_config)
    assert keywords_of(notebook, "BitsAndBytesConfig") == keywords_of(quantization, "BitsAndBytesConfig")


def test_03s_bitsandbytes_config_is_the_scripts(profile_config):
    """The gpu profile's 4-bit settings as the notebook writes them = modeling.quantization_config (the config only:
    no 4-bit weights on this machine)."""
    import torch

    from utils.recipe import modeling

    cfg = profile_config("gpu")
    source = cells("03_baseline_inference.ipynb")["03-04"]
    node = next(node for node in calls(source) if call_name(node) == "BitsAndBytesConfig")
    from transformers import BitsAndBytesConfig

    notebook = eval(compile(ast.Expression(node), "<cell>", "eval"),  # noqa: S307 - the notebook's own expression
                    {"BitsAndBytesConfig": BitsAndBytesConfig, "cfg": cfg, "torch": torch})
    assert notebook.to_dict() == modeling.quantization_config(cfg).to_dict()


def test_05_loads_the_adapter_as_the_scripts_do():
    from utils.recipe import modeling

    notebook = next(node for node in calls(cells("05_rouge_comparison.ipynb")["05-03"])
                    if call_name(node) == "PeftModel.from_pretrained")
    scripts = next(node for node in calls(inspect.getsource(modeling.load_model))
                   if call_name(node) == "PeftModel.from_pretrained")
    assert len(notebook.args) == len(scripts.args) == 2 and not notebook.keywords and not scripts.keywords
    assert "adapter_path(" in ast.unparse(notebook.args[1])  # the same check as load_model (04 must have saved it)
