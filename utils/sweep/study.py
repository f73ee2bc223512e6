"""A pre-registered hyper-parameter sweep: which knob matters, measured on the workshop's own task.

The grid file (``configs/sweep/*.json``) is committed *before* the run: the claims it tests, every run's settings,
the metric, the selection rule and what counts as noise. ``scripts/participant/sweep.py`` runs it with the same ``utils``
functions as notebook 04 (profile, ``lora_model``, ``sft_datasets``, ``sft_config``, ``sft_trainer``, ``train``),
one JSON line per finished run (settings, seconds, loss curve, validation metrics), and skips finished runs when it
is started again (a killed run resumes from its Trainer checkpoint). Selection reads the **validation** split only:
``run_one`` is never given the test split; the test split is scored once, afterwards, for the chosen settings and
the defaults (``scripts/participant/sweep.py --test``).
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from utils.recipe.config import ConfigError, WorkshopConfig, parse_value, profile_settings, validate

GRID_KEYS = {"name", "registered", "profile", "purpose", "metric", "selection", "noise", "base", "runs", "claims", "default_run",
             "followups"}
REQUIRED_GRID_KEYS = {"name", "registered", "profile", "metric", "selection", "noise", "runs", "claims", "default_run"}
RUN_KEYS = {"method", "eval_each_epoch", "added"}  # besides WorkshopConfig fields; "added": why a run came after the results
METHODS = ("lora", "full", "none")  # LoRA (default), every weight, or no training (the "before" line on validation)
NOT_IN_GRID = {"profile", "output_dir", "base_model", "data_path", "adapter"}  # what a sweep may not change
CLAIM_KEYS = {"id", "claim", "source", "kind", "runs", "expect"}
CLAIM_KINDS = {
    "best_ratio": "runs: {'a': [...], 'b': [...]}; expect: [low, high] for best lr of a / best lr of b",
    "flat": "runs: [...]; supported when no run differs from the best beyond noise",
    "a_beats_b": "runs: ['a', 'b']; supported when a - b is above noise",
    "curve": "runs: ['one run with eval_each_epoch']; the best epoch and the earliest within noise of it (expect: its range)",
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
    followups: list[dict] = dataclasses.field(default_factory=list)  # claims added after results were seen, labelled so


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
                   else f"{key!r} は設定項目ではありません (使える項目: utils/recipe/config.py の WorkshopConfig、または {sorted(RUN_KEYS)})")
            raise GridError(f"{where}: {why}。")
        text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        try:
            out[key] = parse_value(key, text, fields[key], where=f"{where}.{key}")
        except ConfigError as err:
            raise GridError(str(err)) from None
    return out


def _check_claims(path: Path, claims: list[dict], runs: dict, key: str, ids: set[str]) -> None:
    """Every claim (or follow-up) names runs that exist, has a known kind and a unique id; a follow-up says why and when
    it was added (it was written after results were seen, and the reading labels it so)."""
    needed = {"id", "claim", "kind", "runs"} | ({"why", "registered"} if key == "followups" else set())
    allowed = CLAIM_KEYS | ({"why", "registered"} if key == "followups" else set())
    for i, claim in enumerate(claims):
        where = f"{path}: {key}[{i}]"
        if set(claim) - allowed or not needed <= set(claim):
            raise GridError(f"{where}: 項目は {sorted(allowed)} です ({', '.join(sorted(needed))} は必須)。")
        if claim["kind"] not in CLAIM_KINDS:
            raise GridError(f"{where}.kind: {claim['kind']!r} は未知です ({', '.join(CLAIM_KINDS)})。")
        missing_runs = [r for r in claim_runs(claim) if r not in runs]
        if missing_runs:
            raise GridError(f"{where}: runs {missing_runs} がグリッドの runs にありません。")
        if claim["id"] in ids:
            raise GridError(f"{where}: id {claim['id']!r} が重複しています。")
        ids.add(claim["id"])


# configs/sweep/cpu_v1.json as committed at 0fddc9e, before any run (git show 0fddc9e:configs/sweep/cpu_v1.json):
# 06 and the tests check that the registered part is still exactly that.
CPU_V1_REGISTERED = "b19e350dc4fc0586de9cfb9fa317d26315be9abfad2638d54bbdc474dc9de111"
REGISTERED_KEYS = ("name", "registered", "profile", "purpose", "metric", "selection", "noise", "default_run", "base")


def registration_hash(raw: dict) -> str:
    """SHA-256 of what was registered before any run: the grid's rules, its claims and every run without an
    ``added`` note. Follow-ups and added runs do not change it; editing a registered claim or run does."""
    import hashlib

    registered = {"top": {k: raw.get(k) for k in REGISTERED_KEYS}, "claims": raw["claims"],
                  "runs": {r: s for r, s in raw["runs"].items() if "added" not in s}}
    return hashlib.sha256(json.dumps(registered, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def claim_runs(claim: dict) -> list[str]:
    """The run ids a claim reads, in order (a best_ratio claim names two groups)."""
    runs = claim["runs"]
    return [r for group in (runs.values() if isinstance(runs, dict) else [runs]) for r in group]


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
    grid = Grid(path, raw["name"], raw["profile"], _values(raw.get("base", {}), f"{path}: base"), raw["runs"],
                raw["claims"], raw["default_run"], raw["noise"], raw, raw.get("followups", []))
    for run_id, settings in grid.runs.items():
        where = f"{path}: runs.{run_id}"
        if settings.get("method", "lora") not in METHODS:
            raise GridError(f"{where}.method: {' / '.join(METHODS)} のどれかにしてください (今は {settings.get('method')!r})。")
        try:
            run_config(grid, run_id, Path("/nonexistent"))
        except ConfigError as err:
            raise GridError(f"{where}: {err}") from None
    if grid.default_run not in grid.runs:
        raise GridError(f"{path}: default_run {grid.default_run!r} が runs にありません。")
    ids: set[str] = set()
    _check_claims(path, grid.claims, grid.runs, "claims", ids)
    _check_claims(path, grid.followups, grid.runs, "followups", ids)
    return grid


def run_config(grid: Grid, run_id: str, root: Path) -> WorkshopConfig:
    """The run's config: the profile's defaults, the grid's base, the run's settings; nothing from the environment or
    the notebooks' saved settings (a sweep must be reproducible from its file). Artifacts under root/run_id/."""
    values = {"profile": grid.profile, **profile_settings(grid.profile), **grid.base,
              **_values(grid.runs[run_id], f"{grid.path}: runs.{run_id}"), "output_dir": Path(root) / run_id}
    cfg = WorkshopConfig(**values)
    validate(cfg)
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


KNOBS = {"learning_rate": "学習率", "lora_r": "ランク r", "n_train": "学習レコード数", "lora_dropout": "lora_dropout",
         "effective_batch": "実効バッチ (1 更新あたりのレコード数)", "num_train_epochs": "エポック数", "seed": "学習 seed",
         "lora_target_modules": "LoRA を付ける層"}


def knob_values(cfg: WorkshopConfig) -> dict:
    """The settings a sweep varies, as a run actually used them (the profile's value where the run did not set one)."""
    return {k: getattr(cfg, k) for k in KNOBS if hasattr(cfg, k)} | {"lora_target_modules": tuple(cfg.lora_target_modules),
        "effective_batch": cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps}


def load_records(grid: Grid, root: Path) -> dict[str, dict]:
    """The finished runs of this grid, each with ``config``: its knob values, derived from the grid file (the one
    source of a run's settings), so that "default" has a learning rate too."""
    return {r: rec | {"config": knob_values(run_config(grid, r, root))} for r, rec in finished(root).items() if r in grid.runs}


def rouge_on(model, tokenizer, cfg: WorkshopConfig, split: list[dict], desc: str = "validation") -> dict:
    """Greedy generation on a split's records (03/05's prompts and settings) scored with 05's Japanese ROUGE-L, per
    record: every validation score of the sweep, and the one test scoring at the end."""
    from utils.evaluation.results import eval_prompts
    from utils.recipe.generation import generate
    from utils.evaluation.metrics import ja_rouge_per_example

    rows, _ = eval_prompts(split, tokenizer, cfg)
    gens = generate(model, tokenizer, [r["prompt"] for r in rows], **cfg.generation_kwargs, desc=desc)
    per = ja_rouge_per_example([g.text for g in gens], [r["reference"] for r in rows])["rougeL"]
    return {"rougeL": statistics.fmean(per), "rougeL_per_record": per, "ids": [r["id"] for r in rows],
            "stop_rate": sum(g.finish_reason == "eos" for g in gens) / len(gens)}


def _trainable(model, cfg: WorkshopConfig, method: str):
    from transformers import set_seed

    from utils.recipe.training import lora_model

    if method == "lora":
        return lora_model(model, cfg)
    set_seed(cfg.seed)
    for param in model.parameters():  # full fine-tuning: every weight learns (the tiny model: 5 M parameters)
        param.requires_grad_(True)
    return model


def run_one(grid: Grid, run_id: str, root: Path, splits: dict[str, list[dict]]) -> dict:
    """Train one run and score it on validation. ``splits`` holds train and validation only (never test)."""
    from transformers import TrainerCallback

    from utils.recipe import training
    from utils.recipe.data import select
    from utils.recipe.modeling import load_model_and_tokenizer

    if "test" in splits:
        raise ValueError("run_one は test 分割を受け取りません (選択は validation だけで行います)。")
    cfg = run_config(grid, run_id, root)
    settings = grid.runs[run_id]
    selected = select({**splits, "test": []}, cfg)
    model, tokenizer = load_model_and_tokenizer(cfg)
    method = settings.get("method", "lora")
    if method == "none":  # the base model as it is: the "before" score every run is read against
        t0 = time.time()
        scores = rouge_on(model.eval(), tokenizer, cfg, selected["validation"])
        return {"run": run_id, "settings": settings, "method": method, "seconds": time.time() - t0, "trainable_parameters": 0,
                "train_records": 0, "optimizer_steps": 0, "fit": None, "train_loss": [], "eval_loss": [],
                "validation": scores, "per_epoch": [], "resumed_from": None}
    model = _trainable(model, cfg, method)
    train_ds, val_ds, fit = training.sft_datasets(selected, tokenizer, cfg)
    args = training.sft_config(cfg, cfg.run_dir / "trainer")
    trainer = training.sft_trainer(model, args, cfg, train_dataset=train_ds, eval_dataset=val_ds, processing_class=tokenizer)
    per_epoch = []
    if settings.get("eval_each_epoch"):
        class EpochEval(TrainerCallback):
            def on_epoch_end(self, args, state, control, model=None, **kwargs):
                model.eval()
                per_epoch.append({"epoch": round(state.epoch), **rouge_on(model, tokenizer, cfg, selected["validation"])})
                model.train()
                return control

        trainer.add_callback(EpochEval())
    t0 = time.time()
    training.train(trainer, cfg)
    seconds = time.time() - t0
    trainer.save_model(str(cfg.run_dir / "adapter"))  # LoRA weights (or the whole model for "full"), for --test
    model.eval()
    scores = rouge_on(model, tokenizer, cfg, selected["validation"])
    history = trainer.state.log_history
    return {
        "run": run_id, "settings": settings, "method": method, "seconds": seconds,
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


def add_run(grid: Grid, settings: dict, prefix: str = "mine") -> tuple[Grid, str]:
    """The grid with one more run (06's exercise: the participant's point), checked like the file's runs; its id
    says its settings (e.g. ``mine_n_train-64``)."""
    if not isinstance(settings, dict) or not settings:
        raise GridError("MY_RUN は設定の辞書にしてください (例: {\"learning_rate\": \"1e-2\"} や {\"lora_r\": 8})。")
    run_id = prefix + "_" + "_".join(f"{k}-{v}" for k, v in settings.items())
    runs = {**grid.runs, run_id: settings}
    new = dataclasses.replace(grid, runs=runs)
    try:
        run_config(new, run_id, Path("/nonexistent"))
    except ConfigError as err:
        raise GridError(f"MY_RUN: {err}") from None
    return new, run_id


def check_same_validation(records: dict[str, dict], grid: Grid, run_id: str, splits: dict[str, list[dict]]) -> None:
    """Before training: the shipped runs were scored on certain validation records, and a new run is comparable only
    on the same ones (not, e.g., with WORKSHOP_DATA_PATH pointing at other data)."""
    from utils.recipe.data import select

    ids = [r["index"] for r in select({**splits, "test": []}, run_config(grid, run_id, Path("/nonexistent")))["validation"]]
    if records[grid.default_run]["validation"]["ids"] != ids:
        raise GridError("同梱のスイープ結果は、同梱の dolly-ja の validation (cpu プロファイル) で測ったものです。"
                        "いまの validation はそれと違うので比べられません。WORKSHOP_DATA_PATH などデータを変える設定を外して実行してください。")


def estimated_minutes(grid: Grid, gpu: str) -> dict:
    """Training minutes of every run of a gpu grid on ``gpu`` (utils.recipe.memory' assumptions: compute-bound at 30%
    of peak; validation generation, evaluation and loading are not counted): an estimate, not a measurement."""
    from utils.recipe.memory import gpu_training_tokens, training_minutes

    if grid.profile != "gpu":
        raise GridError(f"{grid.path}: 推定は gpu のグリッドだけです (profile={grid.profile!r})。")
    per_run = {}
    for run_id in grid.runs:
        cfg = run_config(grid, run_id, Path("/nonexistent"))
        per_run[run_id] = training_minutes(gpu_training_tokens(cfg.num_train_epochs, cfg.n_train)["tokens"], gpu)
    return {"per_run": per_run, "total": sum(per_run.values()), "gpu": gpu}


# ---------------------------------------------------------------------------------------------------------------
# Reading the claims (validation only)
# ---------------------------------------------------------------------------------------------------------------
def trained(records: dict[str, dict]) -> list[str]:
    """The runs that trained something (not the untrained "before" line)."""
    return [r for r, rec in records.items() if rec.get("method", "lora") != "none"]


def noise_level(grid: Grid, records: dict[str, dict]) -> float | None:
    """The seed spread: max - min validation ROUGE-L of the runs of the grid's "spread" claim (None before they ran)."""
    for claim in grid.claims:
        if claim["kind"] == "spread" and all(r in records for r in claim["runs"]):
            values = [records[r]["validation"]["rougeL"] for r in claim["runs"]]
            return max(values) - min(values)
    return None


def difference(records: dict[str, dict], a: str, b: str, seed: int = 0) -> dict:
    """Validation ROUGE-L of a - b on the same records, with its paired-bootstrap 95% CI."""
    va, vb = records[a]["validation"], records[b]["validation"]
    if va["ids"] != vb["ids"]:
        raise ValueError(f"{a} と {b} の validation のレコードが違います。")
    return dict(_paired_difference(tuple(vb["rougeL_per_record"]), tuple(va["rougeL_per_record"]), seed))


@lru_cache(maxsize=None)
def _paired_difference(before: tuple[float, ...], after: tuple[float, ...], seed: int) -> dict:
    """The bootstrap (about 40 ms here) once per pair of runs: 06's verdicts, readings, figures and summary table ask for
    the same differences several times."""
    from utils.evaluation.metrics import paired_difference

    return paired_difference(list(before), list(after), seed=seed)


# A claim that says "this knob does not matter" is never proven by a sweep: no difference beyond noise is only
# consistent with it (a larger validation set could still find one; see resolution()).
CONSISTENT = "ノイズの範囲 (主張と矛盾しない)"


def resolution(records: dict[str, dict], reference: str) -> float:
    """The median half-width of the paired 95% CIs of every trained run against ``reference``: differences much
    smaller than this cannot be told apart on these validation records, whatever the seeds do."""
    runs = [r for r in trained(records) if r != reference]
    return statistics.median((row["ci_high"] - row["ci_low"]) / 2 for row in versus(records, runs, reference))


def beyond_default(records: dict[str, dict], default: str, noise: float | None, exclude=()) -> list[dict]:
    """The trained runs whose difference from the default passes the noise rule (06's summary line); ``exclude``: runs
    that change no setting (the seed runs that define the noise)."""
    runs = [r for r in trained(records) if r != default and r not in exclude]
    return [row for row in versus(records, runs, default) if beyond_noise(row, noise)]


def beyond_noise(d: dict, noise: float | None) -> bool:
    """A difference counts when its CI excludes 0 and it is larger than the seed spread (the pre-registered rule)."""
    return (d["ci_low"] > 0 or d["ci_high"] < 0) and (noise is None or abs(d["diff"]) > noise)


def epoch_records(record: dict) -> dict[int, dict]:
    """A run evaluated each epoch, as one record per epoch (keyed by the epoch), so that ``difference`` and ``versus``
    compare epochs as they compare runs."""
    return {e["epoch"]: {"run": e["epoch"], "validation": e} for e in record["per_epoch"]}


def verdict(claim: dict, records: dict[str, dict], noise: float | None) -> dict:
    """supported / not supported / within noise (Japanese label) for one claim, with the numbers it rests on."""
    kind, runs = claim["kind"], claim["runs"]
    named = claim_runs(claim)
    if not all(r in records for r in named):
        return {"verdict": "未実行", "missing": [r for r in named if r not in records]}
    score = lambda r: records[r]["validation"]["rougeL"]  # noqa: E731
    if kind == "spread":
        values = [score(r) for r in runs]
        return {"verdict": "ノイズの大きさ", "spread": max(values) - min(values), "values": values}
    if kind == "curve":
        epochs = epoch_records(records[runs[0]])
        best = max(epochs, key=lambda e: epochs[e]["validation"]["rougeL"])
        within = {e: e == best or not beyond_noise(difference(epochs, best, e), noise) for e in epochs}
        # "enough" epochs: from here on, every epoch is as good as the best within noise (a later dip counts against it)
        enough = min(e for e in epochs if all(within[later] for later in epochs if later >= e))
        out = {"best_epoch": best, "enough_epoch": enough, "last_epoch": max(epochs), "within": within,
               "values": {e: r["validation"]["rougeL"] for e, r in epochs.items()}}
        if "expect" not in claim:
            return {"verdict": "曲線", **out}
        low, high = claim["expect"]
        label = "支持されない" if not low <= enough <= high else "支持された" if low <= best <= high else CONSISTENT
        return {"verdict": label, **out}
    if kind == "a_beats_b":
        d = difference(records, runs[0], runs[1])
        label = ("支持された" if d["diff"] > 0 else "支持されない (逆)") if beyond_noise(d, noise) else "ノイズの範囲"
        return {"verdict": label, **d}
    if kind == "flat":
        best = max(runs, key=score)
        diffs = {r: difference(records, best, r) for r in runs if r != best}
        worse = [r for r, d in diffs.items() if beyond_noise(d, noise)]
        return {"verdict": CONSISTENT if not worse else "支持されない", "best": best,
                "beyond_noise": worse, "diffs": diffs}
    if kind == "best_ratio":
        lr = lambda r: float(records[r]["config"]["learning_rate"])  # noqa: E731
        (name_a, group_a), (name_b, group_b) = list(runs.items())
        best, near, edge, open_ends = {}, {}, [], {}
        for name, group in ((name_a, group_a), (name_b, group_b)):
            best[name] = max(group, key=score)
            near[name] = sorted(lr(r) for r in group
                                if r == best[name] or not beyond_noise(difference(records, best[name], r), noise))
            ends = (min(map(lr, group)), max(map(lr, group)))
            if lr(best[name]) in ends:
                edge.append(name)  # the best is the grid's smallest or largest lr: the optimum may lie outside it
            open_ends[name] = [side for side, end in zip(("low", "high"), ends) if end in near[name]]
        ratio = lr(best[name_a]) / lr(best[name_b])
        low, high = claim["expect"]
        span = [near[name_a][0] / near[name_b][-1], near[name_a][-1] / near[name_b][0]]
        # the ratio's range is open where a group's near-best lrs reach the grid's end (the ratio could go further)
        open_span = ["low"] * ("low" in open_ends[name_a] or "high" in open_ends[name_b]) + \
                    ["high"] * ("high" in open_ends[name_a] or "low" in open_ends[name_b])
        if edge:
            label = "判定できない (最良が格子の端)"
        elif low <= span[0] and span[1] <= high and not open_span:
            label = "支持された"  # every lr pair as good as the best lies in the expected range
        elif span[1] < low or span[0] > high:
            label = "支持されない"
        else:
            label = CONSISTENT
        return {"verdict": label, "ratio": ratio, "best": best, "edge": edge, "near_lrs": near, "open": open_span,
                "best_lr": {n: lr(r) for n, r in best.items()}, "ratio_range": span,
                "tried_lrs": {n: sorted(map(lr, g)) for n, g in ((name_a, group_a), (name_b, group_b))}}
    raise GridError(f"claim {claim['id']}: 未知の kind {kind!r}")


def ci_text(d: dict) -> str:
    """A difference as the readings write it: +2.4 (95% CI [-0.3, +5.4])."""
    return f"{d['diff']:+.1f} (95% CI [{d['ci_low']:+.1f}, {d['ci_high']:+.1f}])"


def _times(x: float) -> str:
    return f"{x:.0f}" if x >= 10 else f"{x:.2g}"


def _lr(value: float) -> str:
    return f"{value:.0e}".replace("e-0", "e-")


def reading(claim: dict, v: dict, noise: float | None, names: dict[str, str] | None = None) -> str:
    """One claim's verdict in Japanese with the numbers it rests on (06 prints it; nothing in it is hand-written)."""
    names = names or {}
    name = lambda r: names.get(r, r)  # noqa: E731
    rule = "" if noise is None else f" (ノイズ = seed による幅 {noise:.1f})"
    if v["verdict"] == "未実行":
        return f"未実行の run があります: {', '.join(v['missing'])}"
    kind = claim["kind"]
    if kind == "spread":
        values = " / ".join(f"{x:.1f}" for x in v["values"])
        return (f"同じ設定を学習 seed だけ変えて {len(v['values'])} 回: validation ROUGE-L {values}、幅 {v['spread']:.1f} ポイント。"
                f"これより小さい差は「ノイズの範囲」と読みます。")
    if kind == "curve":
        values = "、".join(f"{e} エポック目 {x:.1f}" for e, x in v["values"].items())
        last = "最良は試した最後のエポックなので、もっと学習すると伸びるかもしれません。" if v["best_epoch"] == v["last_epoch"] else ""
        return (f"{values}。最良は {v['best_epoch']} エポック目。そこから後のエポックがすべて最良とノイズの範囲で同じになるのは "
                f"{v['enough_epoch']} エポック目から{rule}。{last}→ {v['verdict']}")
    if kind == "a_beats_b":
        a, b = claim["runs"]
        return f"{name(a)} − {name(b)} = {ci_text(v)}{rule} → {v['verdict']}"
    if kind == "flat":
        worse_runs = [f"{name(r)} {ci_text(v['diffs'][r])}" for r in v["beyond_noise"]]
        far = max(v["diffs"], key=lambda r: v["diffs"][r]["diff"])
        worse = (f"ノイズを超えて劣るのは {', '.join(worse_runs)}" if worse_runs else
                 f"他はすべてノイズの範囲 (いちばん大きい差: {name(v['best'])} − {name(far)} = {ci_text(v['diffs'][far])})")
        return f"最良は {name(v['best'])}。{worse}{rule} → {v['verdict']}"
    if kind == "best_ratio":
        (na, ba), (nb, bb) = v["best"].items()
        spans = {n: _lr_span(v["near_lrs"][n], v["tried_lrs"][n]) for n in (na, nb)}
        near = "、".join(f"{name(n)} {span}" for n, span in spans.items())
        low, high = v["ratio_range"]
        edge = (f"{'・'.join(map(name, v['edge']))} の最良は試した lr の端なので、本当の最良は格子の外かもしれません。"
                if v["edge"] else "")
        sides = {"low": "下限", "high": "上限"}
        still = f" ({'・'.join(sides[o] for o in v['open'])}は格子の外まで続くかもしれません)" if v["open"] else ""
        return (f"最良の lr: {name(na)} {_lr(v['best_lr'][na])}、{name(nb)} {_lr(v['best_lr'][nb])} → 比 {_times(v['ratio'])} 倍 "
                f"(予想 {claim['expect'][0]}〜{claim['expect'][1]} 倍)。ノイズの範囲で最良と同じくらいの lr: {near} → 比は "
                f"{_times(low)}〜{_times(high)} 倍{still}。{edge}→ {v['verdict']}")
    raise GridError(f"claim {claim.get('id')}: 未知の kind {kind!r}")


def _lr_span(near: list[float], tried: list[float]) -> str:
    """"6e-3〜2e-2" when the near-best lrs are every lr tried between their ends, else each one ("2e-4, 2e-3"):
    a gap means an lr in between was beyond noise, which "a〜b" would hide."""
    near = sorted(set(near))  # runs that share an lr (seeds) count once
    inside = sorted({lr for lr in tried if near[0] <= lr <= near[-1]})
    if inside == near:
        return "〜".join(dict.fromkeys([_lr(near[0]), _lr(near[-1])]))
    return ", ".join(map(_lr, near))


def facts(records: dict[str, dict], runs: list[str]) -> dict[str, dict]:
    """What each run actually did (06 shows it under each figure instead of writing it by hand): the records that fit
    and were trained, the optimizer steps, the trainable parameters, the training seconds."""
    return {r: {"学習したレコード": records[r]["train_records"], "更新の回数": records[r]["optimizer_steps"],
                "学習するパラメータ": records[r]["trainable_parameters"], "学習の秒数": round(records[r]["seconds"]),
                "validation ROUGE-L": round(records[r]["validation"]["rougeL"], 1)} for r in runs}


def versus(records: dict[str, dict], runs: list[str], reference: str) -> list[dict]:
    """Each run's validation ROUGE-L minus the reference run's on the same records, with the paired 95% CI, and its last
    validation loss: the points 06 plots (a point counts when its CI excludes 0 and it lies outside the seed band)."""
    rows = []
    for r in runs:
        d = difference(records, r, reference) if r != reference else {"diff": 0.0, "ci_low": 0.0, "ci_high": 0.0}
        losses = records[r].get("eval_loss") or []
        rows.append({"run": r, "rougeL": records[r]["validation"]["rougeL"], **d,
                     "eval_loss": losses[-1]["eval_loss"] if losses else None})
    return rows


def best_run(grid: Grid, records: dict[str, dict]) -> str:
    """The run with the highest validation ROUGE-L (the selection rule; test is not read)."""
    return max(trained(records), key=lambda r: records[r]["validation"]["rougeL"])


def test_best_and_default(grid: Grid, root: Path, seed: int = 0, provenance: dict | None = None, again: bool = False) -> dict:
    """Once, after every run: the test split for the best run and the default, ROUGE-L with the paired CI of
    best - default (05's scorer). Written to root/test.json; a second call refuses unless ``again`` (scripts/participant/sweep.py
    --test --again), which re-scores the same two runs (the choice is made from validation before test is read)."""
    from utils.recipe.data import select, summarization_splits
    from utils.evaluation.metrics import paired_difference
    from utils.recipe.modeling import load_model_and_tokenizer

    records = load_records(grid, root)
    missing = [r for r in grid.runs if r not in records]
    if missing:
        raise GridError(f"test は全 run が終わってから 1 度だけ使います。未実行: {missing}")
    out_path = Path(root) / "test.json"
    if out_path.is_file() and not again:
        raise GridError(f"{out_path} があります: test は 1 度だけ使います。同じ 2 run を採点し直すだけなら --again を付けてください。")
    chosen = best_run(grid, records)
    scores = {}
    for run_id in dict.fromkeys([chosen, grid.default_run]):
        cfg = run_config(grid, run_id, root)
        folder = cfg.run_dir / "adapter"
        if records[run_id]["method"] == "full":
            model, tokenizer = load_model_and_tokenizer(dataclasses.replace(cfg, base_model=str(folder)))
        else:
            model, tokenizer = load_model_and_tokenizer(cfg, adapter_dir=folder)
        test = select(summarization_splits(cfg), cfg)["test"]
        scores[run_id] = rouge_on(model, tokenizer, cfg, test, desc=f"test {run_id}")["rougeL_per_record"]
    out = {"best": chosen, "default": grid.default_run, "n_test": len(scores[chosen]), "provenance": provenance,
           "validation_rougeL": {r: records[r]["validation"]["rougeL"] for r in scores},
           "registration_sha256": registration_hash(grid.raw),
           "rougeL": {r: statistics.fmean(v) for r, v in scores.items()}}
    if chosen != grid.default_run:
        out["best_minus_default"] = paired_difference(scores[grid.default_run], scores[chosen], seed=seed)
    out_path.write_text(json.dumps(out, ensure_ascii=False, indent=1), encoding="utf-8")
    return out
