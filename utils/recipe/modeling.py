"""Loading the tokenizer and the causal LM (Hub id or local folder), 4-bit when the profile says so."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from utils.recipe.config import WorkshopConfig, looks_local, sharded_launch

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

    with explain_load_errors(model_id):
        tokenizer = AutoTokenizer.from_pretrained(model_id, trust_remote_code=False)
    ensure_pad_token(tokenizer)
    return tokenizer


def quantization_config(cfg: WorkshopConfig):
    """QLoRA: NF4 4-bit weights, double quantisation, matmuls in the compute dtype."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=cfg.torch_dtype,
        # how the packed 4-bit weights are stored: uint8 by default; FSDP shards them only when the
        # storage dtype equals the other parameters' (bf16), PEFT's FSDP-QLoRA recipe
        bnb_4bit_quant_storage=getattr(torch, cfg.bnb_4bit_quant_storage),
    )


def local_rank() -> int:
    """This process's GPU on its machine: set by torchrun / accelerate launch, 0 in a notebook."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def device_map() -> dict | None:
    """Where from_pretrained puts the weights: this process's GPU (0 in a notebook; torchrun's LOCAL_RANK when launched),
    None without CUDA (CPU) or under FSDP / DeepSpeed, which place and shard the weights themselves."""
    import torch

    if not torch.cuda.is_available() or sharded_launch():
        return None
    if local_rank():  # a launched process: bitsandbytes puts 4-bit weights on the *current* device
        torch.cuda.set_device(local_rank())
    return {"": local_rank()}


@contextmanager
def explain_load_errors(model_id: str):
    """A model or tokenizer that cannot be loaded raises ModelLoadError with the fix in Japanese (gated model, wrong
    id, offline) instead of the library's long traceback. Never prints a token."""
    try:
        yield
    except Exception as err:  # noqa: BLE001 - turned into an actionable message
        raise _explain(err, model_id) from None


@contextmanager
def quiet_local_loading(model_id: str):
    """No "Loading weights" bar for a model folder on this disk (the bundled tiny model loads in a second, and 01, 04,
    05 and 08 would each show the bar); a Hub model keeps its download and loading bars (minutes for a 7B).
    Notebook 03 writes from_pretrained itself and shows the bar as a participant's own code would."""
    from transformers.utils import logging as hf_logging

    if not looks_local(model_id) or not hf_logging.is_progress_bar_enabled():
        yield
        return
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars

    hub_bars_were_off = are_progress_bars_disabled()  # e.g. HF_HUB_DISABLE_PROGRESS_BARS: left as it was
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.enable_progress_bar()
        if hub_bars_were_off:
            disable_progress_bars()


def load_model(cfg: WorkshopConfig, adapter_dir: str | Path | None = None, tokenizer=None):
    """The profile's base model, optionally with a trained LoRA adapter on top (for inference): what notebook 03 writes
    literally (tests/test_recipe.py holds the two equal)."""
    from transformers import AutoModelForCausalLM

    with explain_load_errors(cfg.base_model), quiet_local_loading(cfg.base_model):
        model = AutoModelForCausalLM.from_pretrained(
            cfg.base_model,
            dtype=cfg.torch_dtype,
            quantization_config=quantization_config(cfg) if cfg.load_in_4bit else None,
            device_map=device_map(),
            attn_implementation=cfg.attn_implementation,
            trust_remote_code=False,
        )
    if tokenizer is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    if adapter_dir is not None:
        from peft import PeftModel

        adapter_dir = adapter_path(adapter_dir)
        try:
            model = PeftModel.from_pretrained(model, str(adapter_dir))
        except Exception as err:  # noqa: BLE001 - a Hub id that cannot be fetched, a broken file
            raise ModelLoadError(f"LoRA アダプタ {adapter_dir} を読み込めませんでした ({type(err).__name__})。"
                                 "WORKSHOP_ADAPTER の綴り (ローカルのフォルダか Hub の ID) を確認してください。") from None
    model.eval()
    return model


def adapter_path(adapter_dir: str | Path) -> str | Path:
    """A local adapter folder checked (04 must have saved it), or a Hub id as it is."""
    if looks_local(str(adapter_dir)):
        local = Path(str(adapter_dir)).expanduser()
        if not (local / "adapter_config.json").is_file():
            raise FileNotFoundError(f"LoRA アダプタ {local} がありません。先に "
                                    "notebooks/04_lora_sft.ipynb を最後まで実行してください。")
        return local
    return adapter_dir


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


def free_memory(namespace: dict, *names: str) -> dict:
    """Delete these notebook variables and give their memory back, so the next notebook can load a model.

    Each notebook runs in its own kernel; a kernel that stays open (Jupyter keeps it) holds its
    model on the GPU: after 03 a 7B in 4-bit keeps ~8-9 GiB reserved, and 04 then runs out of memory
    on a 16 GB T4. Deleting the variables alone is not enough: PyTorch keeps freed blocks in its
    cache until ``torch.cuda.empty_cache()``. Returns GPU reserved memory before/after (GiB) on a GPU,
    and says if an object is still referenced elsewhere (then nothing was freed).
    """
    import gc
    import weakref

    import torch

    def reserved() -> float:
        return torch.cuda.memory_reserved() / 2**30 if torch.cuda.is_available() else 0.0

    before = reserved()
    watched = []
    for name in names:
        obj = namespace.pop(name, None)
        if obj is not None:
            try:
                watched.append((name, weakref.ref(obj)))
            except TypeError:
                pass
            del obj
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    still_alive = [name for name, ref in watched if ref() is not None]
    after = reserved()
    if torch.cuda.is_available():
        print(f"GPU メモリ (reserved): {before:.2f} GiB → {after:.2f} GiB")
    else:
        print(f"変数 {', '.join(names)} を削除しました (GPU なし: 解放されるのは CPU のメモリです)。")
    if still_alive:
        print(f"注意: {', '.join(still_alive)} はまだ別の変数から参照されているため解放されていません。"
              "Kernel → Shut Down Kernel でカーネルを終了してください。")
    return {"reserved_before_gib": before, "reserved_after_gib": after, "still_referenced": still_alive}


def adapter_source(cfg: WorkshopConfig) -> tuple[str, str]:
    """The adapter 05 evaluates and where it comes from: 04's own (``<run_dir>/adapter``) or ``WORKSHOP_ADAPTER``.

    A given adapter is checked before any model is loaded: it must hold ``adapter_config.json`` (PEFT's
    marker) -- a local folder directly, a Hub id by fetching just that file (the Hub cache; offline it is read
    from there) -- and the base model it was trained on must be the profile's (an adapter's matrices only fit
    the base whose layers they were trained next to).
    """
    import json

    if not cfg.adapter:
        return str(cfg.run_dir / "adapter"), "04"
    given = cfg.adapter
    if looks_local(given):
        local = Path(given).expanduser()
        if not local.is_dir():
            raise ModelLoadError(f"WORKSHOP_ADAPTER={given!r}: フォルダが見つかりません。講師から受け取ったアダプタのフォルダ "
                                 "(adapter_config.json と adapter_model.safetensors を含む) のパスを指定してください。")
        config_file, source, where = local / "adapter_config.json", "WORKSHOP_ADAPTER", str(local)
        if not config_file.is_file():
            raise ModelLoadError(f"WORKSHOP_ADAPTER={given!r}: LoRA アダプタのフォルダではありません (adapter_config.json が"
                                 "ありません)。PEFT の save_pretrained で保存したフォルダを指定してください。")
    else:
        config_file, source, where = _hub_adapter_config(given), "WORKSHOP_ADAPTER (Hub)", given
    trained_on = json.loads(Path(config_file).read_text(encoding="utf-8")).get("base_model_name_or_path") or ""
    if not _same_base(trained_on, cfg.base_model):
        raise ModelLoadError(f"WORKSHOP_ADAPTER={given!r} は {trained_on!r} で学習したアダプタですが、このプロファイルの"
                             f"ベースモデルは {cfg.base_model!r} です。同じベースモデルのアダプタを使うか、"
                             f"WORKSHOP_BASE_MODEL={trained_on} を設定してください。")
    return where, source


def _hub_adapter_config(repo_id: str) -> str:
    """The local path of a Hub adapter's ``adapter_config.json`` (downloaded, or from the cache when offline)."""
    from huggingface_hub import hf_hub_download

    try:
        return hf_hub_download(repo_id, "adapter_config.json")
    except Exception as err:  # noqa: BLE001 - turned into an actionable message
        names = {type(e).__name__ for e in (err, err.__cause__, err.__context__) if e is not None}
        if names & {"EntryNotFoundError", "RemoteEntryNotFoundError"}:
            msg = (f"WORKSHOP_ADAPTER={repo_id!r}: Hub のこのリポジトリに adapter_config.json がありません "
                   "(LoRA アダプタではありません)。PEFT の push_to_hub / save_pretrained で作ったリポジトリを指定してください。")
        else:
            msg = (f"WORKSHOP_ADAPTER={repo_id!r}: Hub からアダプタの設定 (adapter_config.json) を取得できません "
                   f"({type(err).__name__})。ID の綴り、ネットワーク (HF_HUB_OFFLINE)、非公開なら `hf auth login` を確認するか、"
                   "講師から受け取ったアダプタのフォルダのパスを指定してください。")
        raise ModelLoadError(msg) from None


def _same_base(a: str, b: str) -> bool:
    """Same model id, or the same local model folder seen from two machines (compared by folder name)."""
    return a == b or (looks_local(a) and looks_local(b) and Path(a).name == Path(b).name)
