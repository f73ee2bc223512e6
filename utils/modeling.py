"""Loading the tokenizer and the causal LM (Hub id or local folder), 4-bit when the profile says so."""

from __future__ import annotations

import os
from pathlib import Path

from .config import WorkshopConfig

FALLBACK_MODEL = "tokyotech-llm/Swallow-MS-7b-v0.1"


class ModelLoadError(RuntimeError):
    """A model that cannot be loaded, with the fix in Japanese (never the token)."""


def _explain(err: Exception, model_id: str) -> ModelLoadError:
    text = f"{type(err).__name__}: {err}"
    chain = [err]
    while chain[-1].__cause__ is not None or chain[-1].__context__ is not None:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)
    names = {type(e).__name__ for e in chain}
    fix_login = ("Hugging Face でモデルページの利用規約に同意したアカウントで `hf auth login` を実行するか、"
                 "環境変数 HF_TOKEN にそのアカウントのトークンを設定してください。")
    fix_other = f"または別のモデルを使う場合は WORKSHOP_BASE_MODEL={FALLBACK_MODEL} を設定してください。"
    if "GatedRepoError" in names or "gated" in text.lower():
        msg = f"モデル {model_id} はゲート付き (利用規約への同意が必要) です。{fix_login}{fix_other}"
    elif "RepositoryNotFoundError" in names or "not a valid model identifier" in text:
        msg = (f"モデル {model_id} が見つかりません。ID の綴りを確認し、非公開モデルなら {fix_login}"
               f"{fix_other}")
    elif os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "yes") or "LocalEntryNotFoundError" in names \
            or "couldn't connect" in text.lower() or "offline" in text.lower():
        msg = (f"モデル {model_id} をダウンロードできません (オフライン、または Hub に接続できません)。"
               "ネットワークを確認するか、HF_HUB_OFFLINE を外してください。オフラインで試すには "
               "WORKSHOP_PROFILE=cpu (同梱の小型モデル) を使ってください。")
    else:
        msg = f"モデル {model_id} を読み込めませんでした ({type(err).__name__})。{fix_other}"
    return ModelLoadError(msg)


def ensure_pad_token(tokenizer) -> None:
    """Give the tokenizer a pad token that is *not* EOS.

    TRL 1.x masks padding by position, but collators that mask every ``pad_token_id`` in the labels
    (transformers' DataCollatorForLanguageModeling, older TRL) would then also hide the real EOS after
    each completion, and the model would never learn to stop; pad = EOS also blurs 'stopped with EOS'
    in generation. Mistral-style tokenizers have ``<unk>``, which never appears in real text.
    """
    if tokenizer.pad_token is not None and tokenizer.pad_token_id != tokenizer.eos_token_id:
        return
    if tokenizer.unk_token is not None and tokenizer.unk_token_id != tokenizer.eos_token_id:
        tokenizer.pad_token = tokenizer.unk_token
        return
    raise ModelLoadError("このトークナイザーには EOS 以外に pad に使えるトークン (<unk> など) がありません。"
                         "tokenizer.add_special_tokens({'pad_token': '<pad>'}) で追加し、"
                         "model.resize_token_embeddings(len(tokenizer)) を実行してください。")


def load_tokenizer(model_id: str):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_id, trust_remote_code=False)
    except Exception as err:  # noqa: BLE001 - turned into an actionable message
        raise _explain(err, model_id) from None
    ensure_pad_token(tokenizer)
    return tokenizer


def quantization_config(cfg: WorkshopConfig):
    """QLoRA: NF4 4-bit weights, double quantisation, matmuls in the compute dtype."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=cfg.torch_dtype,
    )


def load_model(cfg: WorkshopConfig, adapter_dir: str | Path | None = None, tokenizer=None):
    """The profile's base model, optionally with a trained LoRA adapter on top (for inference)."""
    import torch
    from transformers import AutoModelForCausalLM

    kwargs = dict(dtype=cfg.torch_dtype, attn_implementation=cfg.attn_implementation, trust_remote_code=False)
    if cfg.load_in_4bit:
        kwargs["quantization_config"] = quantization_config(cfg)
    if torch.cuda.is_available():
        kwargs["device_map"] = {"": 0}
    try:
        model = AutoModelForCausalLM.from_pretrained(cfg.base_model, **kwargs)
    except Exception as err:  # noqa: BLE001
        raise _explain(err, cfg.base_model) from None
    if tokenizer is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    if adapter_dir is not None:
        from peft import PeftModel

        adapter_dir = Path(adapter_dir)
        if not (adapter_dir / "adapter_config.json").is_file():
            raise FileNotFoundError(f"LoRA アダプタ {adapter_dir} がありません。先に "
                                    "notebooks/04_lora_sft.ipynb を最後まで実行してください。")
        model = PeftModel.from_pretrained(model, adapter_dir)
    model.eval()
    return model


def load_model_and_tokenizer(cfg: WorkshopConfig, adapter_dir: str | Path | None = None):
    tokenizer = load_tokenizer(cfg.base_model)
    return load_model(cfg, adapter_dir, tokenizer), tokenizer


def memory_report(model=None) -> dict[str, float]:
    """GiB figures: model weights, GPU allocated/peak reserved, or the process's peak RSS on CPU."""
    import resource

    import torch

    out: dict[str, float] = {}
    if model is not None:
        out["weights_gib"] = model.get_memory_footprint() / 2**30
    if torch.cuda.is_available():
        out["gpu_allocated_gib"] = torch.cuda.memory_allocated() / 2**30
        out["gpu_peak_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
    out["process_peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return out
