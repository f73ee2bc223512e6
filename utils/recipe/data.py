"""databricks-dolly-15k-ja: loading (Hub or bundled snapshot), cleaning, and the fixed split.

The split is decided by each record's ``index`` hashed with a fixed seed, so it does not depend
on row order, on which source was loaded, or on the profile. The tiny base model's pretraining
script uses the same function to keep validation and test records out of its corpus.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from utils.recipe.config import PROJECT_ROOT, WorkshopConfig
from utils.machine.hub import hub_reachable

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
REQUIRED_FIELDS = ("instruction", "input", "output")
OPTIONAL_FIELDS = ("index", "category")
OWN_DATA_SUFFIXES = (".csv", ".jsonl", ".jsonl.gz")
MIN_RECORDS_HINT = 60  # with 5 % validation and 10 % test, fewer records often leave a split empty


def read_jsonl(path: str | Path, allow_empty: bool = False) -> list[dict]:
    """Read a JSONL or JSONL.gz file of dolly-style records, failing loudly on a bad line."""
    return read_records(path, allow_empty=allow_empty)


def read_records(path: str | Path, allow_empty: bool = False) -> list[dict]:
    """Records from a local CSV, JSONL or JSONL.gz file with ``instruction``, ``input``, ``output``
    (optional ``index`` and ``category``), every problem reported with the file, the line and the fix.

    Without ``index``, each record gets a stable one from its instruction and input (so the split does
    not depend on row order); without ``category``, the field stays empty.
    """
    path = Path(path)
    name = path.name.lower()
    if not name.endswith(OWN_DATA_SUFFIXES):
        raise DataFormatError(f"{path}: 対応していない形式です。{' / '.join(OWN_DATA_SUFFIXES)} のファイルを指定してください。")
    raw = _read_bytes(path)
    text = _decode_utf8(raw, path)
    rows = _csv_rows(text, path) if name.endswith(".csv") else _jsonl_rows(text, path)
    if not rows and not allow_empty:
        raise DataFormatError(f"{path}: レコードが 1 件もありません。1 行に 1 レコードを書いてください "
                              f"(必須: {', '.join(REQUIRED_FIELDS)})。")
    records = _unique_derived_indices([_normalise(obj) for _, obj in rows])
    seen: dict[str, int] = {}
    for (lineno, _), rec in zip(rows, records):
        if rec["index"] in seen:
            raise DataFormatError(f"{path}:{lineno}: index {rec['index']!r} が {seen[rec['index']]} 行目と重複しています。"
                                  "index は分割 (train/validation/test) を決めるので、レコードごとに一意にしてください "
                                  "(index 列を消すと、本文から一意な index を自動で作ります)。")
        seen[rec["index"]] = lineno
    return records


def _normalise(obj: dict) -> dict:
    rec = {k: ("" if obj.get(k) is None else str(obj[k])) for k in FIELDS}
    if not rec["index"].strip():
        rec["index"] = _passage_index(rec)
    return rec


# A derived index: "h" + 12 hex digits of the instruction + passage, and "~..." when that passage occurs more than once.
_DERIVED = re.compile(r"^(h[0-9a-f]{12})(?:~[0-9a-f]+(?:~\d+)?)?$")


def _passage_index(rec: dict) -> str:
    return "h" + hashlib.sha256(f"{rec['instruction']}\x00{rec['input']}".encode()).hexdigest()[:12]


def _unique_derived_indices(records: list[dict]) -> list[dict]:
    """A file without an ``index`` column may hold the same instruction + passage twice (two references for one
    passage, or a pasted duplicate). Each such row gets the passage's index plus a suffix from its own summary
    (plus a counter for identical rows), so every index is unique and none depends on the row order; the split
    hashes the passage part only (``split_of``), so all rows of one passage land in the same split, and the
    duplicate rule of ``clean_summarization`` then keeps one of them and reports the others."""
    derived = [r for r in records if r["index"] == _passage_index(r)]
    counts = Counter(r["index"] for r in derived)
    used: Counter = Counter()
    for rec in derived:
        if counts[rec["index"]] > 1:
            index = f"{rec['index']}~{hashlib.sha256(rec['output'].encode()).hexdigest()[:8]}"
            used[index] += 1
            rec["index"] = index if used[index] == 1 else f"{index}~{used[index]}"
    return records


def _read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.lower().endswith(".gz") else data


def _decode_utf8(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8-sig")  # a BOM (Excel's "CSV UTF-8") is fine
    except UnicodeDecodeError as err:
        lineno = raw[: err.start].count(b"\n") + 1
        raise DataFormatError(f"{path}:{lineno}: UTF-8 として読めないバイト {raw[err.start:err.start + 1]!r} があります "
                              "(Shift_JIS などで保存されたファイル)。UTF-8 で保存し直してください "
                              "(Excel なら「CSV UTF-8 (コンマ区切り)」、または iconv -f SHIFT_JIS -t UTF-8)。") from None


def _missing_message(path: Path, where: str, missing: list[str]) -> str:
    return (f"{path}:{where}: 必須の列 {missing} がありません (必須: {', '.join(REQUIRED_FIELDS)}; "
            f"任意: {', '.join(OPTIONAL_FIELDS)})。列名を直してください。")


def _jsonl_rows(text: str, path: Path) -> list[tuple[int, dict]]:
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataFormatError(f"{path}:{lineno}: JSON として読めません ({err.msg})。"
                                  "1 行に 1 つの JSON オブジェクトを書いてください。") from None
        if not isinstance(obj, dict):
            raise DataFormatError(f"{path}:{lineno}: JSON オブジェクト ({{...}}) ではありません。")
        missing = [k for k in REQUIRED_FIELDS if k not in obj]
        if missing:
            raise DataFormatError(_missing_message(path, str(lineno), missing))
        rows.append((lineno, obj))
    return rows


def _csv_rows(text: str, path: Path) -> list[tuple[int, dict]]:
    import csv
    import io

    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        return []
    missing = [k for k in REQUIRED_FIELDS if k not in header]
    if missing:
        raise DataFormatError(_missing_message(path, "1 (ヘッダー行)", missing))
    reader.fieldnames = header
    rows = []
    for row in reader:
        if None in row:  # more cells than header columns: usually an unquoted comma
            raise DataFormatError(f"{path}:{reader.line_num}: 列の数がヘッダーより多い行です。"
                                  "コンマや改行を含むセルは \"...\" で囲んでください。")
        if not any((v or "").strip() for v in row.values()):
            continue
        rows.append((reader.line_num, row))
    return rows


def load_dolly(cfg: WorkshopConfig | None = None, verbose: bool = True) -> tuple[list[dict], str]:
    """All dolly-ja records and a one-word source: ``local``, ``hub`` or ``bundled``."""
    if cfg is not None and cfg.data_path:
        records = read_records(cfg.data_path)
        if not any(r["category"].strip() for r in records):
            for rec in records:
                rec["category"] = cfg.task_category
            note = f"category 列がないので、全 {len(records):,} 件を {cfg.task_category!r} のデータとして使います"
        else:
            n = sum(r["category"].strip() == cfg.task_category for r in records)
            note = (f"category 列があるので、category == {cfg.task_category!r} の {n:,} 件を使います "
                    f"(全 {len(records):,} 件。別のカテゴリを使うには WORKSHOP_TASK_CATEGORY)")
        if verbose:
            print(f"データ: ローカルファイル {cfg.data_path} を読み込みました (WORKSHOP_DATA_PATH)。{note}。")
        return records, "local"
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
    category: str = TASK_CATEGORY
    in_category: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    dropped_ids: dict[str, list[str]] = field(default_factory=dict)

    def drop(self, reason: str, record_id: str) -> None:
        self.dropped[reason] += 1
        self.dropped_ids.setdefault(reason, []).append(record_id)

    def rows(self) -> list[tuple[str, int]]:
        rows = [("all records", self.total), (f"category == {self.category!r}", self.in_category)]
        rows += [(f"dropped: {reason}", n) for reason, n in sorted(self.dropped.items())]
        if not self.dropped:
            rows.append(("dropped (any reason)", 0))
        rows.append(("kept", self.kept))
        return rows

    def __str__(self) -> str:
        return "\n".join(f"{k:<46} {v:>6,}" for k, v in self.rows())


def clean_summarization(records: list[dict], category: str = TASK_CATEGORY) -> tuple[list[dict], CleaningReport]:
    """Keep summarization records with non-empty input and output, whitespace stripped.

    Records whose input repeats, contains or is contained in an earlier record's input (lowest
    ``index`` wins, whatever the row order) are dropped too: the same passage, or a longer excerpt
    around it, must not end up in both train and test.
    """
    report = CleaningReport(total=len(records), category=category)
    kept, seen = [], set()
    candidates = [r for r in records if r["category"].strip() == category]
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
    """The split of one record, from its stable ``index`` alone (a derived index by its passage part: the rows of one
    repeated passage share a split)."""
    derived = _DERIVED.match(index)
    digest = hashlib.sha256(f"{SPLIT_SEED}:{derived.group(1) if derived else index}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < TEST_FRACTION:
        return "test"
    if u < TEST_FRACTION + VAL_FRACTION:
        return "validation"
    return "train"


def _order_key(index: str) -> tuple[int, str]:
    return (int(index), index) if index.isdigit() else (10**12, index)


def split_records(records: list[dict], source: str | Path | None = None) -> dict[str, list[dict]]:
    """train / validation / test, each sorted by ``index`` so that 'the first n' is stable.

    An empty split is an error (with your own small data): training, validation loss and the test
    comparison each need records.
    """
    out: dict[str, list[dict]] = {name: [] for name in SPLITS}
    for rec in records:
        out[split_of(rec["index"])].append(rec)
    for name in SPLITS:
        out[name].sort(key=lambda r: _order_key(r["index"]))
    empty = [name for name in SPLITS if not out[name]]
    if empty:
        sizes = " / ".join(f"{name} {len(out[name])}" for name in SPLITS)
        where = f"{source}: " if source else ""
        raise DataFormatError(f"{where}クリーニング後の {len(records)} 件を分割すると {sizes} 件になり、{empty} が空です "
                              f"(validation {VAL_FRACTION:.0%}, test {TEST_FRACTION:.0%})。"
                              f"レコードを増やしてください (目安: {MIN_RECORDS_HINT} 件以上)。")
    return out


def summarization_splits(cfg: WorkshopConfig | None = None) -> dict[str, list[dict]]:
    """Load, clean and split quietly: the steps notebook 02 walks through, for scripts and tests."""
    records, _ = load_dolly(cfg, verbose=False)
    category = cfg.task_category if cfg is not None else TASK_CATEGORY
    return split_records(clean_summarization(records, category)[0], cfg.data_path if cfg is not None else None)


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
    return {name: read_jsonl(out / f"{name}.jsonl", allow_empty=True) for name in SPLITS}
