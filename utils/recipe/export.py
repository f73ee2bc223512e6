"""Sharing the result: merging the LoRA adapter into its base model, with the memory it needs checked first."""

from __future__ import annotations

from pathlib import Path

from utils.recipe.config import WorkshopConfig

GIB = 2**30


def merge_dtype(cfg: WorkshopConfig):
    """A 4-bit base is merged from a fresh bf16 copy (never into NF4 weights: rounding the update into
    4-bit would lose most of it); an unquantized base keeps its own dtype."""
    import torch

    return torch.bfloat16 if cfg.load_in_4bit else cfg.torch_dtype


def parameter_count(model_id: str) -> int:
    """Parameters of ``model_id`` from its config alone (meta device: no weights downloaded or allocated)."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_id, trust_remote_code=False)
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=False)
    return sum(p.numel() for p in model.parameters())


def available_ram_bytes() -> int:
    """MemAvailable of /proc/meminfo (Linux): what a new allocation can use without swapping."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def merge_device(need_bytes: int, gpu_free_bytes: int | None, ram_free_bytes: int) -> str:
    """Where to load the base for merging: the GPU if it has room (fast, no host RAM), else the CPU if
    the host has room; otherwise a Japanese error with the figures and the fixes. 10 % headroom."""
    if gpu_free_bytes is not None and gpu_free_bytes >= 1.1 * need_bytes:
        return "cuda"
    if ram_free_bytes >= 1.1 * need_bytes:
        return "cpu"
    gpu = f"GPU の空き {gpu_free_bytes / GIB:.1f} GiB、" if gpu_free_bytes is not None else ""
    raise MemoryError(
        f"マージには {merge_need_text(need_bytes)} のメモリが必要ですが、{gpu}CPU の空きメモリ (MemAvailable) は "
        f"{ram_free_bytes / GIB:.1f} GiB です。学習に使ったモデルを解放してから (utils.recipe.modeling.free_memory)、"
        "カーネルを再起動して実行し直すか、メモリの多い VM で実行してください。マージしなくても、アダプタ "
        "(outputs/<profile>/adapter) をベースモデルに重ねれば同じ出力になります。")


def merge_need_text(need_bytes: int) -> str:
    return f"約 {need_bytes / GIB:.1f} GiB (ベースモデルの重み, {need_bytes / 1e9:.1f} GB)"


def merge_and_save(cfg: WorkshopConfig, adapter_dir: str | Path, out_dir: str | Path, tokenizer=None) -> Path:
    """Load the base in ``merge_dtype`` where it fits, add the adapter's update into its weights
    (``merge_and_unload``), and save a stand-alone model that loads without PEFT."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    dtype = merge_dtype(cfg)
    need = parameter_count(cfg.base_model) * torch.finfo(dtype).bits // 8
    gpu_free = torch.cuda.mem_get_info()[0] if torch.cuda.is_available() else None
    device = merge_device(need, gpu_free, available_ram_bytes())
    print(f"マージ: ベースを {str(dtype).removeprefix('torch.')} で {device} に読み込みます ({merge_need_text(need)})。")
    base = AutoModelForCausalLM.from_pretrained(cfg.base_model, dtype=dtype, trust_remote_code=False,
                                                device_map={"": 0} if device == "cuda" else None)
    if tokenizer is not None and len(tokenizer) > base.get_input_embeddings().num_embeddings:
        base.resize_token_embeddings(len(tokenizer))  # an adapter trained with added tokens (09) has rows for them
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    if tokenizer is not None:  # stop where the tokenizer's end token is (09: the template's <|end|>)
        stops = merged.generation_config.eos_token_id
        stops = [] if stops is None else [stops] if isinstance(stops, int) else list(stops)
        if tokenizer.eos_token_id not in stops:
            merged.generation_config.eos_token_id = [tokenizer.eos_token_id, *stops]
    out_dir = Path(out_dir)
    merged.save_pretrained(out_dir)
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)
    return out_dir


def _extra_sections(results: dict) -> str:
    """The card's k-shot, faithfulness and adapter-scale sections (05 §7-9), when results.json has them."""
    out = []
    arms, lora_vs = results.get("arms") or {}, results.get("lora_vs") or {}
    kshot = [n for n in arms if n not in ("0-shot", "lora")]
    if kshot:
        rows = "\n".join(f"| {n} (base model, {n.split('-')[0]} train example{'s' if n != '1-shot' else ''} in the prompt) | {arms[n]['rougeL']:.1f} | "
                         f"[{lora_vs[n]['rougeL']['ci_low']:+.1f}, {lora_vs[n]['rougeL']['ci_high']:+.1f}] |" for n in kshot)
        out.append(f"""
## Prompting baselines (same test records, same scorer)
| arm | ROUGE-L | 95% CI of this adapter − arm |
|---|---|---|
| 0-shot (base model) | {arms['0-shot']['rougeL']:.1f} | [{lora_vs['0-shot']['rougeL']['ci_low']:+.1f}, {lora_vs['0-shot']['rougeL']['ci_high']:+.1f}] |
{rows}
| this adapter | {arms['lora']['rougeL']:.1f} | — |
""")
    f = results.get("faithfulness")
    if f:
        rows = "\n".join(f"| {n} | {v['with_invented']:.0%} | {v['with_invented_number']:.0%} | {v['with_invented_name']:.0%} |"
                         for n, v in list(f["arms"].items()) + [("reference summaries (calibration)", f["reference"])])
        p = f["planted"]
        out.append(f"""
## Faithfulness: numbers and names not in the passage
Share of outputs with at least one number / name that the passage does not contain (utils/evaluation/faithfulness.py; a planted
number and name were flagged in {p['numbers_flagged']}/{p['n']} and {p['names_flagged']}/{p['n']} outputs).

| outputs | any invented | invented number | invented name |
|---|---|---|---|
{rows}
""")
    curve = results.get("forgetting")
    if curve:
        rows = "\n".join(f"| {name} ({curve['n'][name]}) | " + " | ".join(f"{v:.3f}" for v in values) + " |"
                         for name, values in curve["loss"].items())
        out.append(f"""
## Adapter scale (PEFT rescale_adapter_scale): mean loss, nats/token
| text (n) | {' | '.join(f'm = {m:g}' for m in curve['scales'])} |
|---|{'---|' * len(curve['scales'])}
{rows}
""")
    return "".join(out)


def adapter_card(cfg: WorkshopConfig, results: dict, train_metrics: dict | None = None) -> str:
    """A model card (README.md) for the trained LoRA adapter, from the run's own results.json.

    Replaces PEFT's template card: base model, data and its licence, LoRA and training settings, the
    before/after metrics with their controls, and how to load it. Every figure comes from ``results``.
    """
    m = results["metrics"]
    b = results["behaviour"]
    rows = "\n".join(
        f"| {name} | {v['before']:.1f} | {v['after']:.1f} | [{v['ci_low']:+.1f}, {v['ci_high']:+.1f}] | {v['lead']:.1f} | {v['shuffled']:.1f} |"
        for name, v in m.items())
    data = cfg.data_path or "kunishou/databricks-dolly-15k-ja (summarization records)"
    licence = ("CC BY-SA 3.0 (databricks-dolly-15k by Databricks, Inc.; Japanese translation by kunishou): the adapter "
               "is a derivative of that data and carries the same licence." if not cfg.data_path else
               "Your own data: state its licence here before sharing the adapter.")
    train = ""
    if train_metrics:
        train = (f"- Trained for {train_metrics.get('optimizer_steps')} optimizer steps in "
                 f"{train_metrics.get('train_seconds', 0):.0f} s; final validation loss "
                 f"{train_metrics.get('final_eval_loss', float('nan')):.3f} nats/token\n")
    return f"""---
library_name: peft
base_model: {cfg.base_model}
license: {"cc-by-sa-3.0" if not cfg.data_path else "other"}
language: ja
tags: [lora, sft, trl, summarization]
---
# LoRA adapter: Japanese summarisation ({cfg.profile} profile)

Trained in the workshop "日本語 LLM の LoRA SFT ハンズオン" with TRL's SFTTrainer (loss on the completion only).

## Base model and data
- Base model: `{cfg.base_model}`{" (loaded in 4-bit NF4 for training: QLoRA)" if cfg.load_in_4bit else ""}
- Data: {data}; prompt `### 指示` / `### 入力` / `### 応答`
- Licence: {licence}

## Settings
- LoRA r {cfg.lora_r}, alpha {cfg.lora_alpha}, dropout {cfg.lora_dropout}, targets {', '.join(cfg.lora_target_modules)}
- lr {cfg.learning_rate:g}, {cfg.num_train_epochs:g} epochs, batch {cfg.per_device_train_batch_size} x accumulation
  {cfg.gradient_accumulation_steps}, max_length {cfg.max_length}, seed {cfg.seed}
{train}
## Results on {results['n_test']} held-out test records (ROUGE F1 x 100, MeCab tokens)
| metric | before (base) | after (base + this adapter) | gain 95% CI | lead-sentence baseline | shuffled-reference control |
|---|---|---|---|---|---|
{rows}

Shuffled-reference control: the adapter's outputs scored against *other* records' references; the gap to
"after" is what the outputs owe to their own passage (content), not to style. Stopped with EOS: {b['stop_rate']['before']:.0%} →
{b['stop_rate']['after']:.0%}; output / reference length (median): {b['length_ratio']['before']:.2f} → {b['length_ratio']['after']:.2f}.
{_extra_sections(results)}
## How to load
```python
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

base = AutoModelForCausalLM.from_pretrained("{cfg.base_model}")
model = PeftModel.from_pretrained(base, "<this folder or Hub id>")
tokenizer = AutoTokenizer.from_pretrained("<this folder or Hub id>")
```
"""
