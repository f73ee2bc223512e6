"""Workshop profiles: every run-time choice of the notebooks lives here, in one place.

Two named profiles share one code path:

* ``gpu`` -- what participants run on a GPU VM: a 7B base model from the Hub in 4-bit (QLoRA).
* ``cpu`` -- offline and CI: the project's bundled tiny Japanese model and bundled data, with
  budgets small enough that all notebooks together run in minutes on 2 CPU cores.

``WORKSHOP_PROFILE`` picks the profile (``auto``: ``gpu`` when CUDA is available, else ``cpu``),
and any field can be overridden with ``WORKSHOP_<FIELD>`` (e.g. ``WORKSHOP_BASE_MODEL``).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TINY_MODEL_DIR = PROJECT_ROOT / "models" / "tiny-ja-mistral"
# Mistral-7B-v0.1's tokenizer (the gpu profile's vocabulary), for offline token counts and the GPU benchmark
MISTRAL_TOKENIZER_DIR = PROJECT_ROOT / "models" / "mistral-7b-v0.1-tokenizer"
PROFILES = ("gpu", "cpu")
ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2")
QUANT_STORAGE_CHOICES = ("uint8", "bfloat16", "float16", "float32")
REPORT_TO_CHOICES = ("none", "trackio", "mlflow", "wandb", "tensorboard")


class ConfigError(ValueError):
    """A profile or override that cannot work; the message says how to fix it."""


@dataclass(frozen=True, repr=False)
class WorkshopConfig:
    # --- which run ---------------------------------------------------------------------------
    profile: str  # "gpu" or "cpu"
    base_model: str  # Hub id or local directory
    data_path: str | None = None  # your own CSV / JSONL / JSONL.gz replacing dolly-ja (None: Hub, else bundled)
    task_category: str = "summarization"  # records of this category are used (all, when the file has no category)
    output_dir: Path = PROJECT_ROOT / "outputs"  # artifacts go to <output_dir>/<profile>/ unless overridden
    adapter: str | None = None  # 05 evaluates this LoRA adapter (folder or Hub id) instead of 04's, e.g. the instructor's

    # --- model loading -----------------------------------------------------------------------
    load_in_4bit: bool = False  # QLoRA: NF4 weights with double quantisation (bitsandbytes, CUDA only)
    compute_dtype: str = "auto"  # "auto": bf16 on GPUs with native bf16 (A100/L4/H100), fp16 on T4, fp32 on CPU
    bnb_4bit_quant_storage: str = "uint8"  # storage of the 4-bit weights; "bfloat16" for FSDP (= the compute dtype)
    attn_implementation: str = "sdpa"  # PyTorch's fused attention; "eager" is the plain reference implementation

    # --- data sizes ----------------------------------------------------------------------------
    max_length: int = 1024  # tokens per training example (prompt + completion); longer ones are truncated
    # a training record whose passage would lose more than this share to fit max_length is dropped, not shortened:
    # its full summary would teach facts the model cannot see (1.0: shorten all). 0.5 measured better on cpu (02)
    max_cut_fraction: float = 0.5
    n_train: int | None = None  # None = every train record
    n_val: int | None = None  # None = every validation record
    n_test: int = 100  # test records scored before and after (first n of the fixed test split)

    # --- generation ----------------------------------------------------------------------------
    max_new_tokens: int = 432  # ~90th percentile of reference summary length (notebook 02 shows the coverage)
    gen_batch_size: int = 16  # prompts per generate() call; left padding
    repetition_penalty: float = 1.0  # 1.0 = plain greedy; >1 discourages repeating tokens it has already generated
    # the k of 08's k-shot prompting baselines, comma-separated ("none": no k-shot arm, e.g. to save a T4's time);
    # shot_counts (below) parses it; utils.evaluation.kshot runs each k only when it fits the model's context
    kshot: str = "1,3"

    # --- LoRA ----------------------------------------------------------------------------------
    lora_r: int = 16  # rank of the update B @ A
    lora_alpha: int = 32  # the update is scaled by alpha / r
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] = (
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
    )  # every linear layer of each block; lm_head stays frozen

    # --- training ------------------------------------------------------------------------------
    learning_rate: float = 2e-4
    num_train_epochs: float = 2.0
    per_device_train_batch_size: int = 4
    gradient_accumulation_steps: int = 4  # effective batch = batch size x accumulation
    warmup_steps: int = 10
    lr_scheduler_type: str = "cosine"
    gradient_checkpointing: bool = True  # trades compute for memory; needed for 7B on a 16 GB GPU
    eval_steps: int = 20  # validation loss every N optimizer steps
    # Trainer checkpoints under <run_dir>/trainer/, resumed automatically when the settings match (a disconnect or a
    # killed kernel loses at most this much work): "steps" every save_steps updates, or "epoch"
    save_strategy: str = "steps"
    save_steps: int = 10  # gpu: 10 updates of 16 sequences, about 5 min on a T4 by 04's estimate
    logging_steps: int = 5
    seed: int = 42
    report_to: str = "none"  # experiment tracking: none / trackio / mlflow / wandb / tensorboard (README: 実験管理)

    # ------------------------------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        """Where this profile's artifacts go (splits, predictions, adapter, results)."""
        return self.output_dir / self.profile

    @property
    def generation_kwargs(self) -> dict:
        """The generation settings of ``utils.recipe.generation.generate``: 03 and 05 must use the same ones."""
        return {"max_new_tokens": self.max_new_tokens, "batch_size": self.gen_batch_size,
                "repetition_penalty": self.repetition_penalty}

    @property
    def device(self) -> str:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    @property
    def torch_dtype(self):
        """The compute dtype actually used on this machine."""
        import torch

        if self.compute_dtype != "auto":
            return getattr(torch, self.compute_dtype)
        if self.device == "cuda":
            return torch.bfloat16 if gpu_has_native_bf16() else torch.float16
        return torch.float32

    def rows(self) -> list[tuple[str, str]]:
        dtype = str(self.torch_dtype).removeprefix("torch.")
        train = "all" if self.n_train is None else str(self.n_train)
        return [
            ("profile", self.profile),
            ("base_model", self.base_model),
            ("device", self.device),
            ("dtype", dtype + (" (4-bit NF4 weights)" if self.load_in_4bit else "")),
            ("data", (f"{self.data_path} (category {self.task_category!r})" if self.data_path
                      else "Hub (オフラインなら同梱のスナップショット)")),
            ("train / test records", f"{train} / {self.n_test}"),
            ("max_length / max_new_tokens", f"{self.max_length} / {self.max_new_tokens}"),
            ("generation", "greedy" + (f", repetition_penalty {self.repetition_penalty:g}" if self.repetition_penalty != 1.0 else "")),
            ("k-shot baselines (08)", self.kshot),
            ("LoRA r / alpha / dropout", f"{self.lora_r} / {self.lora_alpha} / {self.lora_dropout}"),
            ("lr / epochs", f"{self.learning_rate:g} / {self.num_train_epochs:g}"),
            ("batch x accumulation", f"{self.per_device_train_batch_size} x {self.gradient_accumulation_steps}"),
            ("report_to", self.report_to),
            ("settings (設定のセル)", ", ".join(f"{k}={v!r}" for k, v in saved_settings().items()) or "なし"),
            ("adapter (05)", self.adapter or f"{self.run_dir / 'adapter'} (04 で学習したもの)"),
            ("output_dir", str(self.run_dir)),
        ]

    def brief(self) -> str:
        """One line for the settings cell of 02-08 (01 shows the whole table; ``print(cfg)`` prints it anywhere)."""
        model = Path(self.base_model).name if looks_local(self.base_model) else self.base_model
        return (f"プロファイル {self.profile}、モデル {model}、train {'all' if self.n_train is None else self.n_train} / "
                f"test {self.n_test} 件 (全部の設定は print(cfg))")

    def __str__(self) -> str:
        width = max(len(k) for k, _ in self.rows())
        return "\n".join(f"{k:<{width}}  {v}" for k, v in self.rows())

    __repr__ = __str__

    def _repr_html_(self) -> str:
        body = "".join(f"<tr><th style='text-align:left'>{k}</th><td style='text-align:left'>{v}</td></tr>"
                       for k, v in self.rows())
        return f"<table>{body}</table>"


_PROFILE_DEFAULTS: dict[str, dict[str, object]] = {
    "gpu": dict(
        base_model="stabilityai/japanese-stablelm-base-gamma-7b",
        load_in_4bit=True,
        max_length=1024,
        n_test=100,
        # covers 90.8% of the train references (+EOS; p90 = 422 tokens) in Mistral-7B-v0.1's tokenizer,
        # measured offline by benchmarks/token_budget.py; 02 prints the coverage with the model's own tokenizer
        max_new_tokens=432,
        gen_batch_size=16,
        learning_rate=2e-4,
        num_train_epochs=2.0,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=4,
        gradient_checkpointing=True,
        eval_steps=20,
    ),
    "cpu": dict(
        base_model=str(TINY_MODEL_DIR),
        load_in_4bit=False,
        compute_dtype="float32",
        # Budgets sized so that all five notebooks run in a few minutes on 2 CPU cores.
        max_length=384,
        n_train=512,
        n_val=48,
        n_test=80,
        max_new_tokens=224,  # covers 91% of the train reference summaries (+EOS) in the tiny tokenizer (p90 = 214 tokens)
        gen_batch_size=16,
        # The tiny model falls into greedy loops ("金融、金融、…") and never reaches EOS; a mild penalty on
        # its own generated tokens (not the prompt's) lets it leave them. Same for the base and the
        # fine-tuned model (03 and 05).
        repetition_penalty=1.2,
        # A tiny model trained from scratch tolerates (and needs) a much larger LoRA learning rate.
        learning_rate=2e-3,
        num_train_epochs=2.0,
        per_device_train_batch_size=8,
        gradient_accumulation_steps=2,
        warmup_steps=6,
        gradient_checkpointing=False,
        eval_steps=16,
        logging_steps=4,
        save_strategy="epoch",  # two checkpoints in the cpu run (the resume drill in tests/test_resume.py uses them)
    ),
}


# The shorter run for a T4 (or any GPU whose training would not fit the session): one place for the advice that
# docs/timetable.md ("T4 の短縮設定"), notebook 04 (6 節 and its 講師メモ) give; tests/test_prose_figures.py
# checks that the timetable's commands are these values.
SHORTER_RUN = {"num_train_epochs": 1, "n_train": 600, "n_test": 50, "kshot": "1"}


def shorter_run_exports() -> list[str]:
    """The shorter run as shell lines: ``export WORKSHOP_NUM_TRAIN_EPOCHS=1`` ..."""
    return [f"export WORKSHOP_{key.upper()}={value}" for key, value in SHORTER_RUN.items()]


def looks_local(model_id: str) -> bool:
    """A local folder rather than a Hub id: it exists, or it is written as a path (./x, /x, ~/x)."""
    return str(model_id).startswith((".", "/", "~")) or Path(model_id).expanduser().exists()


def profile_settings(profile: str) -> dict[str, object]:
    """A profile's own settings without building it (e.g. the gpu profile's batch on a machine without CUDA)."""
    return dict(_PROFILE_DEFAULTS[profile])


def parse_value(name: str, raw: str, annotation: str, where: str | None = None):
    """Convert an environment string (or a settings value, as text) to the field's type, or say clearly what is wrong."""
    env = where or f"環境変数 WORKSHOP_{name.upper()}"
    try:
        if "bool" in annotation:
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true/false")
        if "None" in annotation and raw.strip().lower() in ("", "none", "all"):
            return None
        if annotation.startswith("int"):
            value = int(raw)
            if value <= 0:
                raise ValueError("must be positive")
            return value
        if annotation.startswith("float"):
            value = float(raw)
            if value < 0:
                raise ValueError("must not be negative")
            return value
        if annotation.startswith("tuple"):
            items = tuple(s.strip() for s in raw.split(",") if s.strip())
            if not items:
                raise ValueError("expected a comma-separated list")
            return items
        if annotation == "Path":
            return Path(raw).expanduser().resolve()
        return raw
    except ValueError as err:
        undo = f"unset WORKSHOP_{name.upper()}" if where is None else "その項目を SETTINGS から消す"
        raise ConfigError(f"{env}={raw!r} を解釈できません ({annotation}: {err})。"
                          f"値を直すか、{undo}と既定値に戻ります。") from None


def sharded_launch() -> str | None:
    """"FSDP" or "DeepSpeed" when ``accelerate launch`` runs this process with one of them (they
    place and shard the weights themselves, and a 4-bit base then needs a matching storage dtype)."""
    for engine, key in (("FSDP", "ACCELERATE_USE_FSDP"), ("DeepSpeed", "ACCELERATE_USE_DEEPSPEED")):
        if os.environ.get(key, "").lower() in ("1", "true"):
            return engine
    return None


def gpu_has_native_bf16() -> bool:
    """True on GPUs with bf16 tensor cores (compute capability >= 8.0: A100, L4, H100, RTX 30xx+).

    ``torch.cuda.is_bf16_supported()`` defaults to ``including_emulation=True`` and then answers True
    on a T4 (7.5) too, because a bf16 tensor *can* be created there; but its matmuls run on slow
    emulated paths. A T4 must compute in fp16, so emulation does not count here. (A V100, 7.0, has no kernels in
    the pinned CUDA 13 torch at all: utils.classroom.preflight says so.)
    """
    import torch

    return torch.cuda.is_bf16_supported(including_emulation=False)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _cuda_unusable() -> str | None:
    """When an NVIDIA driver is installed but torch cannot use CUDA: why, and the ways out (else None).

    ``auto`` must not quietly fall back to the cpu profile on a GPU VM: on a driver older than the one torch's
    CUDA needs, ``torch.cuda.is_available()`` is False with only a warning, and the participant would train the
    bundled tiny model without knowing why.
    """
    import torch

    from utils.machine.gpu_env import cuda_unusable_message, nvidia_driver_version

    driver = nvidia_driver_version()
    if driver is None:
        return None
    return cuda_unusable_message(driver, torch.__version__, torch.version.cuda)


# --- settings changed from inside JupyterLab ------------------------------------------------------------------
# Each notebook's 設定のセル calls use_settings(SETTINGS): one JSON file that every notebook, scripts/participant/train.py and
# make workshop read, so that 03 and 05 use the n_test that 04 trained beside, without a terminal or a restart.
NOT_IN_SETTINGS = ("profile", "output_dir")  # the profile picks the defaults; the file lives in the output folder
SETTINGS_PATH_FOR_TESTS: Path | None = None  # tests point this elsewhere (a developer's own file must not leak in)


def settings_path() -> Path:
    """<output folder>/settings.json; the output folder from WORKSHOP_OUTPUT_DIR (hosted runtimes: Drive) or outputs/."""
    if SETTINGS_PATH_FOR_TESTS is not None:
        return SETTINGS_PATH_FOR_TESTS
    root = os.environ.get("WORKSHOP_OUTPUT_DIR")
    return (Path(root).expanduser() if root else PROJECT_ROOT / "outputs") / "settings.json"


def _settings_values(settings: dict) -> dict:
    """The settings as field values, each parsed and checked like an environment variable (one validation path)."""
    fields = {f.name: str(f.type).replace("typing.", "") for f in dataclasses.fields(WorkshopConfig)}
    out = {}
    for name, value in settings.items():
        if name not in fields or name in NOT_IN_SETTINGS:
            why = ("プロファイルと出力先は環境変数 (WORKSHOP_PROFILE, WORKSHOP_OUTPUT_DIR) で選びます" if name in NOT_IN_SETTINGS
                   else f"使える項目: {', '.join(n for n in fields if n not in NOT_IN_SETTINGS)}")
            raise ConfigError(f"SETTINGS の {name!r} は設定できる項目ではありません ({why})。")
        text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else ("none" if value is None else str(value))
        out[name] = parse_value(name, text, fields[name], where=f"SETTINGS[{name!r}]")
    return out


def saved_settings() -> dict:
    """The settings saved by a notebook's 設定のセル ({} when there are none)."""
    import json

    path = settings_path()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ConfigError(f"{path} を JSON として読めません ({err})。ノートブックの設定のセルを SETTINGS = {{}} で実行すると消せます。") from None
    return data if isinstance(data, dict) else {}


def use_settings(settings: dict | None) -> dict:
    """A notebook's 設定のセル: None keeps what is saved; a dict is checked, then saved for every notebook (``{}``
    removes the file). Returns what get_config() will now apply. Precedence: profile < this file < WORKSHOP_* < keywords."""
    import json

    path = settings_path()
    if settings is None:
        current = saved_settings()
    elif not settings:
        path.unlink(missing_ok=True)
        current = {}
    else:
        _settings_values(settings)  # refuse unknown fields and unparsable values before writing anything
        before = path.read_text(encoding="utf-8") if path.is_file() else None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings, ensure_ascii=False, indent=1), encoding="utf-8")
        try:
            get_config()  # the whole config must still be valid (e.g. max_cut_fraction within (0, 1])
        except ConfigError:
            if before is None:
                path.unlink()
            else:
                path.write_text(before, encoding="utf-8")
            raise
        current = dict(settings)
    shown = ", ".join(f"{k}={v!r}" for k, v in current.items()) or "なし (プロファイルの既定値と環境変数)"
    print(f"変更した設定: {shown}" + (f"  ({path} に保存。01〜05 と make workshop が同じ値を使います)" if current else ""))
    return current


def get_config(profile: str | None = None, **overrides) -> WorkshopConfig:
    """The profile's config with the notebooks' saved settings (``use_settings``), then ``WORKSHOP_*`` environment
    overrides, then keyword overrides."""
    requested = (profile or os.environ.get("WORKSHOP_PROFILE", "auto")).strip().lower()
    if requested not in PROFILES + ("auto",):
        raise ConfigError(f"WORKSHOP_PROFILE={requested!r} は未知のプロファイルです。"
                          f"{', '.join(PROFILES)} か auto を指定してください。")
    if requested in ("auto", "gpu") and not _cuda_available():
        unusable = _cuda_unusable()
        if unusable:
            raise ConfigError(f"プロファイル {requested}: {unusable}")
        if requested == "gpu":
            raise ConfigError("gpu プロファイルが指定されましたが CUDA の GPU が見つかりません (NVIDIA ドライバも"
                              "見つかりません: /proc/driver/nvidia/version も nvidia-smi もありません)。"
                              "GPU VM で実行するか (nvidia-smi で確認)、WORKSHOP_PROFILE=cpu "
                              "(または auto) を指定してください。")
        requested = "cpu"
    elif requested == "auto":
        requested = "gpu"

    values: dict[str, object] = {"profile": requested, **_PROFILE_DEFAULTS[requested], **_settings_values(saved_settings())}
    for f in dataclasses.fields(WorkshopConfig):
        if f.name == "profile":
            continue
        raw = os.environ.get(f"WORKSHOP_{f.name.upper()}")
        if raw is not None:
            annotation = str(f.type).replace("typing.", "")
            values[f.name] = parse_value(f.name, raw, annotation)
    unknown = set(overrides) - {f.name for f in dataclasses.fields(WorkshopConfig)}
    if unknown:
        raise ConfigError(f"未知の設定項目: {sorted(unknown)}")
    values.update(overrides)
    if values.get("output_dir") is not None:
        values["output_dir"] = Path(values["output_dir"])
    cfg = WorkshopConfig(**values)  # type: ignore[arg-type]
    validate(cfg)
    return cfg


def shot_counts(cfg) -> tuple[int, ...]:
    """The k to try, from the config field ``kshot`` ("1,3"; "none" or "" for no k-shot arm)."""
    raw = str(cfg.kshot).strip().lower()
    if raw in ("", "none", "0"):
        return ()
    try:
        ks = tuple(int(part) for part in raw.split(",") if part.strip())
    except ValueError:
        ks = ()
    if not ks or any(k <= 0 for k in ks) or len(set(ks)) != len(ks):
        raise ConfigError(f"kshot={cfg.kshot!r} を解釈できません。正の整数をカンマ区切りで指定してください "
                          "(例: \"1,3\"、k-shot を実行しないなら \"none\")。")
    return ks


def validate(cfg: WorkshopConfig) -> None:
    """The checks every config passes (get_config and a sweep's runs): values a run cannot use, said in Japanese."""
    if cfg.compute_dtype not in ("auto", "bfloat16", "float16", "float32"):
        raise ConfigError(f"compute_dtype={cfg.compute_dtype!r}: auto / bfloat16 / float16 / float32 のいずれかにしてください。")
    if cfg.attn_implementation not in ATTN_IMPLEMENTATIONS:
        raise ConfigError(f"attn_implementation={cfg.attn_implementation!r}: {' / '.join(ATTN_IMPLEMENTATIONS)} "
                          "のいずれかにしてください (flash_attention_2 は flash-attn パッケージが必要です)。")
    shot_counts(cfg)  # a bad kshot fails here, in the settings cell, not after 03's first generation
    if not 0.0 < cfg.max_cut_fraction <= 1.0:
        raise ConfigError(f"max_cut_fraction={cfg.max_cut_fraction!r}: 0 より大きく 1 以下にしてください (1.0 = 本文を短くして"
                          "すべて残す、0.5 = 本文の半分より多く削るレコードは学習に使わない)。")
    if cfg.load_in_4bit and cfg.profile == "cpu":
        raise ConfigError("4-bit 量子化 (QLoRA) は gpu プロファイル用の設定です (CPU では速くならず、小型モデルには"
                          "不要です)。cpu プロファイルでは WORKSHOP_LOAD_IN_4BIT=false のままにしてください。")
    if cfg.data_path is not None:
        if not Path(cfg.data_path).is_file():
            raise ConfigError(f"WORKSHOP_DATA_PATH={cfg.data_path!r} が見つかりません。"
                              "既存の .csv / .jsonl / .jsonl.gz ファイルのパスを指定してください。")
        if not str(cfg.data_path).lower().endswith((".csv", ".jsonl", ".jsonl.gz")):
            raise ConfigError(f"WORKSHOP_DATA_PATH={cfg.data_path!r}: .csv / .jsonl / .jsonl.gz のファイルを指定してください。")
    if looks_local(cfg.base_model) and not (Path(cfg.base_model).expanduser() / "config.json").is_file():
        raise ConfigError(f"WORKSHOP_BASE_MODEL={cfg.base_model!r} はローカルのモデルフォルダではありません "
                          "(config.json がありません)。Hub の ID (例: tokyotech-llm/Swallow-MS-7b-v0.1) か、"
                          "save_pretrained したフォルダを指定してください。")
    if cfg.bnb_4bit_quant_storage not in QUANT_STORAGE_CHOICES:
        raise ConfigError(f"bnb_4bit_quant_storage={cfg.bnb_4bit_quant_storage!r}: {' / '.join(QUANT_STORAGE_CHOICES)} "
                          "のいずれかにしてください。")
    engine = sharded_launch()
    dtype = str(cfg.torch_dtype).removeprefix("torch.")
    if engine and cfg.load_in_4bit and cfg.bnb_4bit_quant_storage != dtype:
        raise ConfigError(f"{engine} で 4-bit (QLoRA) のモデルを分散するには、4-bit の重みの格納型を計算の型 ({dtype}) に"
                          f"揃える必要があります (今は bnb_4bit_quant_storage={cfg.bnb_4bit_quant_storage!r})。"
                          f"WORKSHOP_BNB_4BIT_QUANT_STORAGE={dtype} を指定してください "
                          "(configs/accelerate/ の fsdp2_qlora.yaml / zero3.yaml の説明を参照)。")
    if cfg.report_to not in REPORT_TO_CHOICES:
        raise ConfigError(f"report_to={cfg.report_to!r}: {' / '.join(REPORT_TO_CHOICES)} のいずれかにしてください "
                          "(none 以外は別途パッケージが必要です。`docs/after-the-workshop.md`「実験管理」)。")
    if cfg.save_strategy not in ("steps", "epoch", "no"):
        raise ConfigError(f"save_strategy={cfg.save_strategy!r}: steps / epoch / no のいずれかにしてください "
                          "(no にすると、切断や停止のあとに途中から再開できません)。")
    if cfg.lora_alpha <= 0 or cfg.lora_r <= 0:
        raise ConfigError("lora_r と lora_alpha は正の整数にしてください。")
    if not 0 <= cfg.lora_dropout < 1:
        raise ConfigError("lora_dropout は 0 以上 1 未満にしてください。")
