"""databricks-dolly-15k-ja: loading (Hub or bundled snapshot), cleaning, and the fixed split.

The split is decided by each record's ``index`` hashed with a fixed seed, so it does not depend
on row order, on which source was loaded, or on the profile. The tiny base model's pretraining
script uses the same function to keep validation and test records out of its corpus.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .config import PROJECT_ROOT, WorkshopConfig
from .hub import hub_reachable

HUB_DATASET = "kunishou/databricks-dolly-15k-ja"
BUNDLED_PATH = PROJECT_ROOT / "data" / "databricks-dolly-15k-ja" / "databricks-dolly-15k-ja.jsonl.gz"
FIELDS = ("index", "instruction", "input", "output", "category")
TASK_CATEGORY = "summarization"

# The split: one place, not a profile setting (changing it would leak test records into the
# tiny model's pretraining corpus).
SPLIT_SEED = "dolly-ja-summarization-v1"
VAL_FRACTION = 0.05
TEST_FRACTION = 0.10
SPLITS = ("train", "validation", "test")


class DataFormatError(ValueError):
    """A local data file that cannot be read; the message names the file and line."""


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------
def read_jsonl(path: str | Path) -> list[dict]:
    """Read a JSONL or JSONL.gz file of dolly-style records, failing loudly on a bad line."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    records = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataFormatError(f"{path}:{lineno}: JSON として読めません ({err.msg})。"
                                      "1 行に 1 つの JSON オブジェクトを書いてください。") from None
            if not isinstance(obj, dict):
                raise DataFormatError(f"{path}:{lineno}: JSON オブジェクト ({{...}}) ではありません。")
            missing = [k for k in FIELDS if k not in obj]
            if missing:
                raise DataFormatError(f"{path}:{lineno}: 必須フィールド {missing} がありません "
                                      f"(必要: {list(FIELDS)})。")
            records.append(_normalise(obj))
    return records


def _normalise(obj: dict) -> dict:
    return {k: ("" if obj[k] is None else str(obj[k])) for k in FIELDS}


def load_dolly(cfg: WorkshopConfig | None = None, verbose: bool = True) -> tuple[list[dict], str]:
    """All dolly-ja records and a one-word source: ``local``, ``hub`` or ``bundled``."""
    if cfg is not None and cfg.data_path:
        if verbose:
            print(f"データ: ローカルファイル {cfg.data_path} を読み込みます (WORKSHOP_DATA_PATH)。")
        return read_jsonl(cfg.data_path), "local"
    reachable, note = hub_reachable()
    reason = None if reachable else note
    if reason is None:
        try:
            from datasets import load_dataset

            ds = load_dataset(HUB_DATASET, split="train")
            if verbose:
                print(f"データ: Hugging Face Hub の {HUB_DATASET} を読み込みました ({len(ds):,} 件)。")
            return [_normalise(r) for r in ds], "hub"
        except Exception as err:  # no network, DNS failure, Hub outage...
            reason = f"Hub に接続できません ({type(err).__name__})"
    records = read_jsonl(BUNDLED_PATH)
    if verbose:
        print(f"データ: Hub は使いません ({reason})。同梱スナップショット "
              f"{BUNDLED_PATH.relative_to(PROJECT_ROOT)} を使います ({len(records):,} 件)。")
    return records, "bundled"


# ---------------------------------------------------------------------------------------------
# Cleaning
# ---------------------------------------------------------------------------------------------
@dataclass
class CleaningReport:
    """What was kept and what was dropped, with reasons: nothing is dropped silently."""

    total: int = 0
    in_category: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    dropped_ids: dict[str, list[str]] = field(default_factory=dict)

    def drop(self, reason: str, record_id: str) -> None:
        self.dropped[reason] += 1
        self.dropped_ids.setdefault(reason, []).append(record_id)

    def rows(self) -> list[tuple[str, int]]:
        rows = [("all records", self.total), (f"category == {TASK_CATEGORY!r}", self.in_category)]
        rows += [(f"dropped: {reason}", n) for reason, n in sorted(self.dropped.items())]
        if not self.dropped:
            rows.append(("dropped (any reason)", 0))
        rows.append(("kept", self.kept))
        return rows

    def __str__(self) -> str:
        return "\n".join(f"{k:<46} {v:>6,}" for k, v in self.rows())


def clean_summarization(records: list[dict]) -> tuple[list[dict], CleaningReport]:
    """Keep summarization records with non-empty input and output, whitespace stripped.

    Records whose input repeats, contains or is contained in an earlier record's input (lowest
    ``index`` wins, whatever the row order) are dropped too: the same passage, or a longer excerpt
    around it, must not end up in both train and test.
    """
    report = CleaningReport(total=len(records))
    kept, seen = [], set()
    candidates = [r for r in records if r["category"].strip() == TASK_CATEGORY]
    for rec in sorted(candidates, key=lambda r: _order_key(r["index"])):
        report.in_category += 1
        rec = {k: v.strip() for k, v in rec.items()}
        if not rec["input"]:
            report.drop("empty input", rec["index"])
        elif not rec["output"]:
            report.drop("empty output", rec["index"])
        elif rec["input"] in seen:
            report.drop("duplicate input text", rec["index"])
        elif any(rec["input"] in other or other in rec["input"] for other in seen):
            report.drop("input overlaps another record's input", rec["index"])
        else:
            seen.add(rec["input"])
            kept.append(rec)
    report.kept = len(kept)
    return kept, report


# ---------------------------------------------------------------------------------------------
# Split
# ---------------------------------------------------------------------------------------------
def split_of(index: str) -> str:
    """The split of one record, from its stable ``index`` alone."""
    digest = hashlib.sha256(f"{SPLIT_SEED}:{index}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < TEST_FRACTION:
        return "test"
    if u < TEST_FRACTION + VAL_FRACTION:
        return "validation"
    return "train"


def _order_key(index: str) -> tuple[int, str]:
    return (int(index), index) if index.isdigit() else (10**12, index)


def split_records(records: list[dict]) -> dict[str, list[dict]]:
    """train / validation / test, each sorted by ``index`` so that 'the first n' is stable."""
    out: dict[str, list[dict]] = {name: [] for name in SPLITS}
    for rec in records:
        out[split_of(rec["index"])].append(rec)
    for name in SPLITS:
        out[name].sort(key=lambda r: _order_key(r["index"]))
    return out


def summarization_splits(cfg: WorkshopConfig | None = None) -> dict[str, list[dict]]:
    """Load, clean and split quietly: the steps notebook 02 walks through, for scripts and tests."""
    records, _ = load_dolly(cfg, verbose=False)
    return split_records(clean_summarization(records)[0])


def select(splits: dict[str, list[dict]], cfg: WorkshopConfig) -> dict[str, list[dict]]:
    """The profile's subset: the first n of each split (None = all)."""
    limits = {"train": cfg.n_train, "validation": cfg.n_val, "test": cfg.n_test}
    return {name: recs if limits[name] is None else recs[: limits[name]] for name, recs in splits.items()}


def heldout_index_set(records: list[dict]) -> set[str]:
    """Indices of validation and test summarization records (never pretrained or trained on)."""
    kept, _ = clean_summarization(records)
    return {r["index"] for r in kept if split_of(r["index"]) != "train"}


# ---------------------------------------------------------------------------------------------
# Hand-over between notebooks
# ---------------------------------------------------------------------------------------------
def splits_dir(cfg: WorkshopConfig) -> Path:
    return cfg.run_dir / "splits"


def save_splits(splits: dict[str, list[dict]], cfg: WorkshopConfig) -> Path:
    out = splits_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    for name, recs in splits.items():
        with open(out / f"{name}.jsonl", "w", encoding="utf-8") as fh:
            for rec in recs:
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return out


def load_splits(cfg: WorkshopConfig) -> dict[str, list[dict]]:
    """The splits that notebook 02 saved for this profile."""
    out = splits_dir(cfg)
    missing = [name for name in SPLITS if not (out / f"{name}.jsonl").is_file()]
    if missing:
        raise FileNotFoundError(f"{out} に分割データ {missing} がありません。先に "
                                "notebooks/02_dataset_formatting.ipynb を最後まで実行してください "
                                f"(プロファイル: {cfg.profile})。")
    return {name: read_jsonl(out / f"{name}.jsonl") for name in SPLITS}
