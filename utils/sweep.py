"""A pre-registered hyper-parameter sweep: which knob matters, measured on the workshop's own task.

The grid file (``configs/sweep/*.json``) is committed *before* the run: the claims it tests, every run's settings,
the metric, the selection rule and what counts as noise. ``scripts/sweep.py`` runs it with the same ``utils``
functions as notebook 04 (profile, ``lora_model``, ``sft_datasets``, ``sft_config``, ``sft_trainer``, ``train``),
one JSON line per finished run (settings, seconds, loss curve, validation metrics), and skips finished runs when it
is started again (a killed run resumes from its Trainer checkpoint). Selection reads the **validation** split only:
``run_one`` is never given the test split; the test split is scored once, afterwards, for the chosen settings and
the defaults (``scripts/sweep.py --test``).
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from .config import ConfigError, WorkshopConfig, _parse, _validate, profile_settings

GRID_KEYS = {"name", "registered", "profile", "purpose", "metric", "selection", "noise", "base", "runs", "claims", "default_run"}
REQUIRED_GRID_KEYS = {"name", "registered", "profile", "metric", "selection", "noise", "runs", "claims", "default_run"}
RUN_KEYS = {"method", "eval_each_epoch"}  # besides WorkshopConfig fields: "lora" (default) or "full"; per-epoch eval
NOT_IN_GRID = {"profile", "output_dir", "base_model", "data_path", "adapter"}  # what a sweep may not change
CLAIM_KEYS = {"id", "claim", "source", "kind", "runs", "expect"}
CLAIM_KINDS = {
    "best_ratio": "runs: {'a': [...], 'b': [...]}; expect: [low, high] for best lr of a / best lr of b",
    "flat": "runs: [...]; supported when no run differs from the best beyond noise",
    "a_beats_b": "runs: ['a', 'b']; supported when a - b is above noise",
    "curve": "runs: ['one run with eval_each_epoch']; reports the best epoch",
    "spread": "runs: [...the same settings at several seeds]; measures the noise",
}


class GridError(ValueError):
    """A grid file that cannot be run; the message names the file, the place and the fix (Japanese)."""


@dataclass
class Grid:
    path: Path
    name: str
    profile: str
    base: dict
    runs: dict[str, dict]
    claims: list[dict]
    default_run: str
    noise: str
    raw: dict


def _fields() -> dict[str, str]:
    return {f.name: str(f.type).replace("typing.", "") for f in dataclasses.fields(WorkshopConfig)}


def _values(settings: dict, where: str) -> dict:
    """A run's (or the base's) settings parsed like SETTINGS / environment values, with the grid file as the place."""
    fields, out = _fields(), {}
    for key, value in settings.items():
        if key in RUN_KEYS:
            continue
        if key not in fields or key in NOT_IN_GRID:
            why = (f"{key!r} はスイープでは変えられません (ベースモデル・データ・出力先は全 run で同じにするため)" if key in NOT_IN_GRID
                   else f"{key!r} は設定項目ではありません (使える項目: utils/config.py の WorkshopConfig、または {sorted(RUN_KEYS)})")
            raise GridError(f"{where}: {why}。")
        text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        try:
            out[key] = _parse(key, text, fields[key], where=f"{where}.{key}")
        except ConfigError as err:
            raise GridError(str(err)) from None
    return out


def load_grid(path: str | Path) -> Grid:
    """Read and check a grid file: known keys only, every value parsed and every run a valid config, every claim
    naming runs that exist. A problem stops here, before any training, with the place to fix."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise GridError(f"{path}: グリッドのファイルを JSON として読めません ({err})。") from None
    unknown, missing = set(raw) - GRID_KEYS, REQUIRED_GRID_KEYS - set(raw)
    if unknown or missing:
        raise GridError(f"{path}: 未知の項目 {sorted(unknown)} / 足りない項目 {sorted(missing)} があります "
                        f"(使える項目: {sorted(GRID_KEYS)})。")
    if raw["profile"] not in ("cpu", "gpu"):
        raise GridError(f"{path}: profile は cpu か gpu にしてください (今は {raw['profile']!r})。")
    base = _values(raw.get("base", {}), f"{path}: base")
    runs = {}
    for run_id, settings in raw["runs"].items():
        where = f"{path}: runs.{run_id}"
        if settings.get("method", "lora") not in ("lora", "full"):
            raise GridError(f"{where}.method: lora か full にしてください (今は {settings.get('method')!r})。")
        runs[run_id] = settings
        try:
            run_config(Grid(path, raw["name"], raw["profile"], base, runs, [], "", "", raw), run_id, Path("/nonexistent"))
        except ConfigError as err:
            raise GridError(f"{where}: {err}") from None
    if raw["default_run"] not in runs:
        raise GridError(f"{path}: default_run {raw['default_run']!r} が runs にありません。")
    ids = set()
    for i, claim in enumerate(raw["claims"]):
        where = f"{path}: claims[{i}]"
        if set(claim) - CLAIM_KEYS or not {"id", "claim", "kind", "runs"} <= set(claim):
            raise GridError(f"{where}: 項目は {sorted(CLAIM_KEYS)} です (id, claim, kind, runs は必須)。")
        if claim["kind"] not in CLAIM_KINDS:
            raise GridError(f"{where}.kind: {claim['kind']!r} は未知です ({', '.join(CLAIM_KINDS)})。")
        named = [r for group in (claim["runs"].values() if isinstance(claim["runs"], dict) else [claim["runs"]]) for r in group]
        missing_runs = [r for r in named if r not in runs]
        if missing_runs:
            raise GridError(f"{where}: runs {missing_runs} がグリッドの runs にありません。")
        if claim["id"] in ids:
            raise GridError(f"{where}: id {claim['id']!r} が重複しています。")
        ids.add(claim["id"])
    return Grid(path, raw["name"], raw["profile"], base, runs, raw["claims"], raw["default_run"], raw["noise"], raw)


def run_config(grid: Grid, run_id: str, root: Path) -> WorkshopConfig:
    """The run's config: the profile's defaults, the grid's base, the run's settings; nothing from the environment or
    the notebooks' saved settings (a sweep must be reproducible from its file). Artifacts under root/run_id/."""
    values = {"profile": grid.profile, **profile_settings(grid.profile), **grid.base,
              **_values(grid.runs[run_id], f"{grid.path}: runs.{run_id}"), "output_dir": Path(root) / run_id}
    cfg = WorkshopConfig(**values)
    _validate(cfg)
    return cfg


# ---------------------------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------------------------
def results_path(root: Path) -> Path:
    return Path(root) / "runs.jsonl"


def finished(root: Path) -> dict[str, dict]:
    """The runs already recorded (a restarted sweep skips them)."""
    path = results_path(root)
    if not path.is_file():
        return {}
    return {rec["run"]: rec for rec in (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line)}


def validation_scores(model, tokenizer, cfg: WorkshopConfig, validation: list[dict]) -> dict:
    """Greedy generation on the validation records (03/05's settings) scored with 05's Japanese ROUGE-L, per record."""
    from .evaluation import eval_prompts
    from .generation import generate
    from .metrics import ja_rouge_per_example

    rows, _ = eval_prompts(validation, tokenizer, cfg)
    gens = generate(model, tokenizer, [r["prompt"] for r in rows], **cfg.generation_kwargs, desc="validation")
    per = ja_rouge_per_example([g.text for g in gens], [r["reference"] for r in rows])["rougeL"]
    return {"rougeL": statistics.fmean(per), "rougeL_per_record": per, "ids": [r["id"] for r in rows],
            "stop_rate": sum(g.finish_reason == "eos" for g in gens) / len(gens)}


def _trainable(model, cfg: WorkshopConfig, method: str):
    from transformers import set_seed

    from .training import lora_model

    if method == "lora":
        return lora_model(model, cfg)
    set_seed(cfg.seed)
    for param in model.parameters():  # full fine-tuning: every weight learns (the tiny model: 5 M parameters)
        param.requires_grad_(True)
    return model


def run_one(grid: Grid, run_id: str, root: Path, splits: dict[str, list[dict]]) -> dict:
    """Train one run and score it on validation. ``splits`` holds train and validation only (never test)."""
    from transformers import TrainerCallback

    from . import training
    from .data import select
    from .modeling import load_model_and_tokenizer

    if "test" in splits:
        raise ValueError("run_one は test 分割を受け取りません (選択は validation だけで行います)。")
    cfg = run_config(grid, run_id, root)
    settings = grid.runs[run_id]
    selected = select({**splits, "test": []}, cfg)
    model, tokenizer = load_model_and_tokenizer(cfg)
    model = _trainable(model, cfg, settings.get("method", "lora"))
    train_ds, val_ds, fit = training.sft_datasets(selected, tokenizer, cfg)
    args = training.sft_config(cfg, cfg.run_dir / "trainer")
    trainer = training.sft_trainer(model, args, cfg, train_dataset=train_ds, eval_dataset=val_ds, processing_class=tokenizer)
    per_epoch = []
    if settings.get("eval_each_epoch"):
        class EpochEval(TrainerCallback):
            def on_epoch_end(self, args, state, control, model=None, **kwargs):
                model.eval()
                per_epoch.append({"epoch": round(state.epoch), **validation_scores(model, tokenizer, cfg, selected["validation"])})
                model.train()
                return control

        trainer.add_callback(EpochEval())
    t0 = time.time()
    training.train(trainer, cfg)
    seconds = time.time() - t0
    trainer.save_model(str(cfg.run_dir / "adapter"))  # LoRA weights (or the whole model for "full"), for --test
    model.eval()
    scores = validation_scores(model, tokenizer, cfg, selected["validation"])
    history = trainer.state.log_history
    return {
        "run": run_id, "settings": settings, "method": settings.get("method", "lora"), "seconds": seconds,
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "train_records": len(train_ds), "optimizer_steps": trainer.state.global_step, "fit": fit["train"],
        "train_loss": [{"step": h["step"], "loss": h["loss"]} for h in history if "loss" in h],
        "eval_loss": [{"step": h["step"], "eval_loss": h["eval_loss"]} for h in history if "eval_loss" in h],
        "validation": scores, "per_epoch": per_epoch, "resumed_from": trainer.resumed_from,
    }


def run_grid(grid: Grid, root: Path, splits: dict[str, list[dict]], only: list[str] | None = None, say=print,
             provenance: dict | None = None) -> dict:
    """Every run not yet in runs.jsonl, in file order; each finished run appended at once (kill-safe), with
    ``provenance`` (date, commit, command, machine) in its record."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    done = finished(root)
    for run_id in grid.runs:
        if (only and run_id not in only) or run_id in done:
            continue
        say(f"▶ {run_id}: {grid.runs[run_id]}", flush=True)
        record = run_one(grid, run_id, root, {k: v for k, v in splits.items() if k != "test"}) | {"provenance": provenance}
        with open(results_path(root), "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        done[run_id] = record
        say(f"  validation ROUGE-L {record['validation']['rougeL']:.1f}, {record['seconds']:.0f} s", flush=True)
    return done


# ---------------------------------------------------------------------------------------------------------------
# Reading the claims (validation only)
# ---------------------------------------------------------------------------------------------------------------
def noise_level(grid: Grid, records: dict[str, dict]) -> float | None:
    """The seed spread: max - min validation ROUGE-L of the runs of the grid's "spread" claim (None before they ran)."""
    for claim in grid.claims:
        if claim["kind"] == "spread" and all(r in records for r in claim["runs"]):
            values = [records[r]["validation"]["rougeL"] for r in claim["runs"]]
            return max(values) - min(values)
    return None


def difference(records: dict[str, dict], a: str, b: str, seed: int = 0) -> dict:
    """Validation ROUGE-L of a - b on the same records, with its paired-bootstrap 95% CI."""
    from .metrics import paired_bootstrap_ci

    va, vb = records[a]["validation"], records[b]["validation"]
    if va["ids"] != vb["ids"]:
        raise ValueError(f"{a} と {b} の validation のレコードが違います。")
    lo, hi = paired_bootstrap_ci(vb["rougeL_per_record"], va["rougeL_per_record"], seed=seed)
    return {"diff": va["rougeL"] - vb["rougeL"], "ci_low": lo, "ci_high": hi}


def beyond_noise(d: dict, noise: float | None) -> bool:
    """A difference counts when its CI excludes 0 and it is larger than the seed spread (the pre-registered rule)."""
    return (d["ci_low"] > 0 or d["ci_high"] < 0) and (noise is None or abs(d["diff"]) > noise)


def verdict(claim: dict, records: dict[str, dict], noise: float | None) -> dict:
    """supported / not supported / within noise (Japanese label) for one claim, with the numbers it rests on."""
    kind, runs = claim["kind"], claim["runs"]
    named = [r for group in (runs.values() if isinstance(runs, dict) else [runs]) for r in group]
    if not all(r in records for r in named):
        return {"verdict": "未実行", "missing": [r for r in named if r not in records]}
    score = lambda r: records[r]["validation"]["rougeL"]  # noqa: E731
    if kind == "spread":
        values = [score(r) for r in runs]
        return {"verdict": "ノイズの大きさ", "spread": max(values) - min(values), "values": values}
    if kind == "curve":
        epochs = records[runs[0]]["per_epoch"]
        best = max(epochs, key=lambda e: e["rougeL"])
        return {"verdict": "曲線", "best_epoch": best["epoch"], "values": {e["epoch"]: e["rougeL"] for e in epochs}}
    if kind == "a_beats_b":
        d = difference(records, runs[0], runs[1])
        label = ("支持された" if d["diff"] > 0 else "支持されない (逆)") if beyond_noise(d, noise) else "ノイズの範囲"
        return {"verdict": label, **d}
    if kind == "flat":
        best = max(runs, key=score)
        diffs = {r: difference(records, best, r) for r in runs if r != best}
        worse = [r for r, d in diffs.items() if beyond_noise(d, noise)]
        return {"verdict": "支持された (差はノイズの範囲)" if not worse else "支持されない", "best": best,
                "beyond_noise": worse, "diffs": diffs}
    if kind == "best_ratio":
        (name_a, group_a), (name_b, group_b) = list(runs.items())
        best_a, best_b = max(group_a, key=score), max(group_b, key=score)
        lr = lambda r: float(records[r]["settings"]["learning_rate"])  # noqa: E731
        ratio = lr(best_a) / lr(best_b)
        low, high = claim["expect"]
        return {"verdict": "支持された" if low <= ratio <= high else "支持されない", "ratio": ratio,
                "best": {name_a: best_a, name_b: best_b}}
    raise GridError(f"claim {claim['id']}: 未知の kind {kind!r}")


def best_run(grid: Grid, records: dict[str, dict]) -> str:
    """The run with the highest validation ROUGE-L (the selection rule; test is not read)."""
    return max(records, key=lambda r: records[r]["validation"]["rougeL"])


def test_best_and_default(grid: Grid, root: Path, seed: int = 0) -> dict:
    """Once, after every run: the test split for the best run and the default, ROUGE-L with the paired CI of
    best - default (05's scorer). Written to root/test.json."""
    from .data import select, summarization_splits
    from .evaluation import eval_prompts
    from .generation import generate
    from .metrics import ja_rouge_per_example, paired_bootstrap_ci
    from .modeling import load_model_and_tokenizer

    records = finished(root)
    missing = [r for r in grid.runs if r not in records]
    if missing:
        raise GridError(f"test は全 run が終わってから 1 度だけ使います。未実行: {missing}")
    chosen = best_run(grid, records)
    scores = {}
    for run_id in dict.fromkeys([chosen, grid.default_run]):
        cfg = run_config(grid, run_id, root)
        folder = cfg.run_dir / "adapter"
        if records[run_id]["method"] == "full":
            model, tokenizer = load_model_and_tokenizer(dataclasses.replace(cfg, base_model=str(folder)))
        else:
            model, tokenizer = load_model_and_tokenizer(cfg, adapter_dir=folder)
        rows, _ = eval_prompts(select(summarization_splits(cfg), cfg)["test"], tokenizer, cfg)
        gens = generate(model, tokenizer, [r["prompt"] for r in rows], **cfg.generation_kwargs, desc=f"test {run_id}")
        scores[run_id] = ja_rouge_per_example([g.text for g in gens], [r["reference"] for r in rows])["rougeL"]
    out = {"best": chosen, "default": grid.default_run, "n_test": len(scores[chosen]),
           "rougeL": {r: statistics.fmean(v) for r, v in scores.items()}}
    if chosen != grid.default_run:
        lo, hi = paired_bootstrap_ci(scores[grid.default_run], scores[chosen], seed=seed)
        out["best_minus_default"] = {"diff": out["rougeL"][chosen] - out["rougeL"][grid.default_run], "ci_low": lo, "ci_high": hi}
    (Path(root) / "test.json").write_text(json.dumps(out, ensure_ascii=False, indent=1), encoding="utf-8")
    return out
