"""The pre-registered sweep (utils.sweep.study, scripts/participant/sweep.py): the grid file is checked before any training, a
restarted sweep skips finished runs, selection never sees test, and the verdicts follow the CIs and the noise."""

import json

import pytest

from utils.sweep import study

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "configs" / "sweep" / "cpu_v1.json"


def _grid(tmp_path, **changes):
    raw = json.loads(COMMITTED.read_text(encoding="utf-8"))
    raw.update(changes)
    path = tmp_path / "grid.json"
    path.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    return path


def test_the_committed_grid_is_valid_and_tests_every_registered_claim():
    grid = study.load_grid(COMMITTED)
    assert {c["id"] for c in grid.claims} >= {"lr_ratio", "rank", "all_linear", "epochs", "batch", "seeds"}
    cfg = study.run_config(grid, "attention_only_r43", ROOT / "x")
    assert cfg.lora_target_modules == ("q_proj", "k_proj", "v_proj", "o_proj") and cfg.lora_r == 43


@pytest.mark.parametrize("change, message", [
    ({"typo": 1}, "未知の項目"),
    ({"runs": {"default": {"learning_rat": "1e-3"}}}, "learning_rat"),
    ({"runs": {"default": {"learning_rate": "fast"}}}, "learning_rate"),
    ({"runs": {"default": {"base_model": "x"}}}, "スイープでは変えられません"),
    ({"runs": {"default": {"method": "qlora"}}}, "lora / full / none"),
    ({"runs": {"default": {"lora_dropout": 1.5}}}, "lora_dropout"),
])
def test_a_bad_grid_stops_before_training_with_the_place_to_fix(tmp_path, change, message):
    path = _grid(tmp_path, **change)
    with pytest.raises(study.GridError, match=message) as err:
        study.load_grid(path)
    assert str(path) in str(err.value)


def test_a_claim_naming_a_missing_run_is_refused(tmp_path):
    raw = json.loads(COMMITTED.read_text(encoding="utf-8"))
    raw["claims"][1]["runs"].append("rank_2")
    path = tmp_path / "g.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(study.GridError, match="rank_2"):
        study.load_grid(path)


def test_a_followup_must_say_why_and_when_it_was_added(tmp_path):
    raw = json.loads(COMMITTED.read_text(encoding="utf-8"))
    raw["followups"] = [{"id": "more", "kind": "flat", "runs": ["default", "rank_4"], "claim": "x"}]
    path = tmp_path / "g.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(study.GridError, match="why"):
        study.load_grid(path)
    raw["followups"][0] |= {"why": "seen after the runs", "registered": "2026-12-01"}
    path.write_text(json.dumps(raw))
    assert [c["id"] for c in study.load_grid(path).followups] == ["more"]


def test_the_environment_and_saved_settings_do_not_leak_into_a_run(clean_env):
    clean_env.setenv("WORKSHOP_LEARNING_RATE", "0.5")
    grid = study.load_grid(COMMITTED)
    assert study.run_config(grid, "default", ROOT / "x").learning_rate == 2e-3
    assert study.run_config(grid, "lora_lr_2e-4", ROOT / "x").learning_rate == 2e-4


def test_a_restarted_sweep_skips_finished_runs(tmp_path, monkeypatch):
    grid = study.load_grid(COMMITTED)
    ran, killed = [], []

    def fake_run_one(grid, run_id, root, splits):
        assert "test" not in splits
        ran.append(run_id)
        if run_id == "lora_lr_6e-4" and not killed:
            killed.append(run_id)
            raise RuntimeError("killed")  # the sweep is killed during its third run
        return {"run": run_id, "validation": {"rougeL": 1.0}, "seconds": 1.0}

    monkeypatch.setattr(study, "run_one", fake_run_one)
    splits = {"train": [], "validation": [], "test": ["never"]}
    with pytest.raises(RuntimeError, match="killed"):
        study.run_grid(grid, tmp_path, splits, say=lambda *a, **k: None)
    assert set(study.finished(tmp_path)) == {"default", "lora_lr_2e-4"}
    ran.clear()
    done = study.run_grid(grid, tmp_path, splits, only=["default", "lora_lr_2e-4", "lora_lr_6e-4"], say=lambda *a, **k: None,
                          provenance={"commit": "abc"})
    assert ran == ["lora_lr_6e-4"] and done["lora_lr_6e-4"]["provenance"] == {"commit": "abc"}


def test_run_one_refuses_the_test_split(tmp_path):
    with pytest.raises(ValueError, match="test"):
        study.run_one(study.load_grid(COMMITTED), "default", tmp_path, {"train": [], "validation": [], "test": []})


def _rec(run, per, lr=None):
    return {"run": run, "config": {"learning_rate": float(lr)} if lr else {}, "validation": {
        "rougeL": sum(per) / len(per), "rougeL_per_record": per, "ids": list(range(len(per)))}}


def test_verdicts_follow_the_ci_and_the_seed_spread():
    base = [10.0, 12.0, 11.0, 9.0, 13.0, 10.0, 12.0, 11.0]
    records = {"a": _rec("a", [v + 5 for v in base]), "b": _rec("b", base), "c": _rec("c", [v + 0.3 for v in base]),
               "s1": _rec("s1", base), "s2": _rec("s2", [v + 1.0 for v in base])}
    spread = {"kind": "spread", "runs": ["s1", "s2"]}
    grid = type("G", (), {"claims": [spread]})()
    noise = study.noise_level(grid, records)
    assert noise == pytest.approx(1.0)
    assert study.verdict({"kind": "a_beats_b", "runs": ["a", "b"]}, records, noise)["verdict"] == "支持された"
    assert study.verdict({"kind": "a_beats_b", "runs": ["b", "a"]}, records, noise)["verdict"] == "支持されない (逆)"
    # c - b = +0.3 on every record: its CI excludes 0, but it is smaller than the seed spread
    assert study.verdict({"kind": "a_beats_b", "runs": ["c", "b"]}, records, noise)["verdict"] == "ノイズの範囲"
    assert study.verdict({"kind": "flat", "runs": ["b", "c"]}, records, noise)["verdict"] == study.CONSISTENT  # not "proven"
    assert study.verdict({"kind": "flat", "runs": ["a", "b", "c"]}, records, noise)["beyond_noise"] == ["b", "c"]
    assert study.verdict({"kind": "a_beats_b", "runs": ["a", "zzz"]}, records, noise)["verdict"] == "未実行"


def test_the_lr_ratio_claim():
    records = {"l1": _rec("l1", [10.0, 11.0], "2e-3"), "l2": _rec("l2", [5.0, 6.0], "2e-4"), "l3": _rec("l3", [4.0, 6.0], "2e-2"),
               "f1": _rec("f1", [9.0, 9.0], "2e-4"), "f2": _rec("f2", [4.0, 4.0], "2e-3"), "f3": _rec("f3", [3.0, 4.0], "2e-5")}
    # (noise None: every CI that excludes 0 counts, so each group's near-best set is its best lr alone)
    claim = {"kind": "best_ratio", "runs": {"lora": ["l1", "l2", "l3"], "full": ["f1", "f2", "f3"]}, "expect": [3, 30]}
    out = study.verdict(claim, records, None)
    assert out["ratio"] == pytest.approx(10.0) and out["verdict"] == "支持された"
    claim["expect"] = [20, 30]
    assert study.verdict(claim, records, None)["verdict"] == "支持されない"


def test_a_best_lr_at_the_grid_edge_is_not_read_as_a_ratio():
    per = {"2e-4": [5.0, 6.0, 5.5], "2e-3": [8.0, 9.0, 8.5], "2e-2": [6.0, 6.5, 6.0]}
    records = {f"l{lr}": _rec(f"l{lr}", v, lr) for lr, v in per.items()}
    records |= {"f2e-5": _rec("f2e-5", [1.0, 2.0, 1.5], "2e-5"), "f2e-4": _rec("f2e-4", [9.0, 9.5, 9.0], "2e-4")}
    claim = {"kind": "best_ratio", "runs": {"lora": ["l2e-4", "l2e-3", "l2e-2"], "full": ["f2e-5", "f2e-4"]}, "expect": [3, 30]}
    out = study.verdict(claim, records, 0.1)
    assert out["ratio"] == pytest.approx(10.0) and out["edge"] == ["full"] and out["verdict"].startswith("判定できない")
    records["f2e-3"] = _rec("f2e-3", [2.0, 2.5, 2.0], "2e-3")
    claim["runs"]["full"].append("f2e-3")
    out = study.verdict(claim, records, 0.1)
    assert out["edge"] == [] and out["verdict"] == "支持された" and out["near_lrs"] == {"lora": [2e-3], "full": [2e-4]}
    # with a seed spread larger than every difference, every lr is "as good as the best": the ratio is a range, open at
    # both ends (the near-best lrs reach the grid's ends), so the claim is only "not contradicted"
    wide = study.verdict(claim, records, 100.0)
    assert wide["ratio_range"] == pytest.approx([2e-4 / 2e-3, 2e-2 / 2e-5]) and wide["open"] == ["low", "high"]
    assert wide["verdict"] == study.CONSISTENT and "格子の外" in study.reading(claim, wide, 100.0)
    claim["expect"] = [20, 30]  # a ratio range (here exactly 10) entirely outside the expected one
    assert study.verdict(claim, records, 0.1)["verdict"] == "支持されない"


@pytest.mark.slow  # trains one sweep run
def test_one_real_tiny_run_trains_and_scores_validation(tmp_path, clean_env):
    """The same utils path as 04 (LoRA and full fine-tuning), shrunk: 16 train records, 1 epoch, 8 validation records."""
    raw = json.loads(COMMITTED.read_text(encoding="utf-8"))
    raw["base"] = {"n_train": 16, "n_val": 8, "num_train_epochs": 1, "max_new_tokens": 16, "eval_steps": 100}
    raw["runs"] = {"default": {}, "full": {"method": "full", "learning_rate": "1e-4", "eval_each_epoch": True},
                   "before": {"method": "none"}}
    raw["claims"] = [{"id": "x", "kind": "a_beats_b", "runs": ["default", "full"], "claim": "x"}]
    raw["followups"] = []
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(raw))
    grid = study.load_grid(path)
    from utils.recipe.data import summarization_splits

    splits = summarization_splits(study.run_config(grid, "default", tmp_path))
    splits.pop("test")
    done = study.run_grid(grid, tmp_path / "runs", splits, say=lambda *a, **k: None)
    lora, full = done["default"], done["full"]
    assert lora["train_records"] <= 16 and len(lora["validation"]["rougeL_per_record"]) == 8
    assert lora["trainable_parameters"] < full["trainable_parameters"]  # LoRA vs every weight
    assert [e["epoch"] for e in full["per_epoch"]] == [1]
    before = done["before"]  # no training: the base model scored on the same validation records
    assert before["optimizer_steps"] == 0 and before["validation"]["ids"] == lora["validation"]["ids"]
    assert study.best_run(grid, done) != "before"
    assert (tmp_path / "runs" / "full" / "cpu" / "adapter" / "config.json").is_file()
    assert study.verdict(grid.claims[0], done, None)["verdict"] in ("支持された", "支持されない (逆)", "ノイズの範囲")


def test_the_script_reports_an_unstarted_sweep_and_refuses_test_before_every_run(tmp_path):
    import subprocess
    import sys

    script = ROOT / "scripts" / "participant" / "sweep.py"
    report = subprocess.run([sys.executable, str(script), str(COMMITTED), "--root", str(tmp_path), "--report"],
                            capture_output=True, text=True)
    n_runs = len(study.load_grid(COMMITTED).runs)
    assert report.returncode == 0 and f"0/{n_runs} runs finished" in report.stdout and "未実行" in report.stdout
    test = subprocess.run([sys.executable, str(script), str(COMMITTED), "--root", str(tmp_path), "--test"],
                          capture_output=True, text=True)
    assert test.returncode != 0 and "全 run が終わってから" in test.stderr


def test_an_epoch_curve_names_the_earliest_epoch_as_good_as_the_best():
    base = [10.0, 12.0, 11.0, 9.0]
    per_epoch = [{"epoch": e, "rougeL": sum(v) / 4, "rougeL_per_record": v, "ids": [0, 1, 2, 3]}
                 for e, v in enumerate([[x - 5 for x in base], base, [x + 0.2 for x in base], [x + 4 for x in base]], start=1)]
    records = {"run": {"per_epoch": per_epoch}}
    claim = {"kind": "curve", "runs": ["run"], "expect": [1, 3]}
    out = study.verdict(claim, records, 1.0)
    assert out["best_epoch"] == 4 and out["enough_epoch"] == 4 and out["verdict"] == "支持されない"
    out = study.verdict(claim, records, 10.0)  # a seed spread larger than every step: epoch 1 is as good as any
    assert out["enough_epoch"] == 1 and out["verdict"] == study.CONSISTENT  # the best (4) is outside 1-3
    # epoch 1 within noise of the best but epoch 3 not: "enough" needs every later epoch too (the shipped curve's case)
    per_epoch[2]["rougeL_per_record"] = [x - 3 for x in base]
    per_epoch[2]["rougeL"] = sum(per_epoch[2]["rougeL_per_record"]) / 4
    per_epoch[0]["rougeL_per_record"] = [x + 3 for x in base]
    per_epoch[0]["rougeL"] = sum(per_epoch[0]["rougeL_per_record"]) / 4
    dip = study.verdict(claim, records, 1.5)
    assert dip["best_epoch"] == 4 and dip["within"][1] and not dip["within"][3] and dip["enough_epoch"] == 4
    assert dip["verdict"] == "支持されない"
    per_epoch[0]["rougeL_per_record"], per_epoch[2]["rougeL_per_record"] = [x - 5 for x in base], [x + 0.2 for x in base]
    per_epoch[0]["rougeL"], per_epoch[2]["rougeL"] = sum(per_epoch[0]["rougeL_per_record"]) / 4, sum(per_epoch[2]["rougeL_per_record"]) / 4
    per_epoch[2]["rougeL"] += 10  # now epoch 3 is the best
    assert study.verdict(claim, records, 10.0)["verdict"] == "支持された"
    assert "4 エポック目" in study.reading(claim, out, 10.0)


def test_the_reading_is_made_from_the_numbers():
    base = [10.0, 12.0, 11.0, 9.0, 13.0, 10.0, 12.0, 11.0]
    records = {"a": _rec("a", [v + 5 for v in base]), "b": _rec("b", base)}
    claim = {"kind": "a_beats_b", "runs": ["a", "b"]}
    text = study.reading(claim, study.verdict(claim, records, 1.0), 1.0, names={"a": "既定"})
    assert text.startswith("既定 − b = +5.0") and "支持された" in text and "1.0" in text
    records["b"] = _rec("b", [v + 4.5 for v in base])
    assert "ノイズの範囲" in study.reading(claim, study.verdict(claim, records, 1.0), 1.0)


def test_a_participant_run_is_checked_like_the_grid_and_named_by_its_settings():
    grid = study.load_grid(COMMITTED)
    new, run_id = study.add_run(grid, {"n_train": 64})
    assert run_id == "mine_n_train-64" and run_id in new.runs and run_id not in grid.runs
    assert study.run_config(new, run_id, ROOT / "x").n_train == 64
    for bad, message in (({"lora_r": 0}, "lora_r"), ({}, "MY_RUN"), ({"base_model": "x"}, "変えられません")):
        with pytest.raises(study.GridError, match=message):
            study.add_run(grid, bad)


def test_the_guess_exercise_follows_the_noise_rule():
    from utils.classroom import exercises

    up = {"diff": 3.0, "ci_low": 1.0, "ci_high": 5.0}
    assert exercises.check_sweep_guess("上がる", up, 1.9).ok
    assert exercises.check_sweep_guess("上がる", up, 3.5).expected == "ノイズの範囲"  # clears 0 but not the seed spread
    assert exercises.check_sweep_guess("ノイズの範囲", {"diff": -3.0, "ci_low": -5.0, "ci_high": 0.5}, 1.0).ok
    assert exercises.check_sweep_guess(None, up, 1.9).status == exercises.UNANSWERED
    assert not exercises.check_sweep_guess("良くなる", up, 1.9).ok


def test_the_gpu_grid_is_valid_and_its_estimate_is_training_time_only():
    from utils.recipe.memory import MISTRAL_7B, count_lora_params

    grid = study.load_grid(ROOT / "configs" / "sweep" / "gpu_v1.json")
    assert all(s.get("method", "lora") == "lora" for s in grid.runs.values())  # no 7B full fine-tuning
    all_linear = study.run_config(grid, "default", ROOT / "x")
    attention = study.run_config(grid, "attention_only_r49", ROOT / "x")
    a = count_lora_params(MISTRAL_7B, all_linear.lora_r, all_linear.lora_target_modules)
    b = count_lora_params(MISTRAL_7B, attention.lora_r, attention.lora_target_modules)
    assert abs(a - b) / a < 0.01  # "about equal trainable parameters", as the claim says
    est = study.estimated_minutes(grid, "A100")
    assert est["per_run"]["n_train_256"] < est["per_run"]["default"] and est["total"] == pytest.approx(sum(est["per_run"].values()))
    with pytest.raises(study.GridError, match="gpu"):
        study.estimated_minutes(study.load_grid(COMMITTED), "A100")


SHIPPED = ROOT / "results" / "sweep" / "cpu_v1"


def test_the_shipped_sweep_is_the_committed_grid_run_whole_with_provenance():
    grid = study.load_grid(COMMITTED)
    assert json.loads((SHIPPED / "grid.json").read_text(encoding="utf-8")) == grid.raw
    records = study.load_records(grid, SHIPPED)
    assert set(records) == set(grid.runs)
    for rec in records.values():
        prov = rec["provenance"]
        assert prov["commit"] and prov["date"] and prov["machine"] and "sweep.py" in prov["command"]
        assert rec["validation"]["ids"] == records[grid.default_run]["validation"]["ids"]  # the same 48 records
    assert records["before"]["trainable_parameters"] == 0 and records["before"]["optimizer_steps"] == 0
    test = json.loads((SHIPPED / "test.json").read_text(encoding="utf-8"))
    assert test["best"] == study.best_run(grid, records) and test["default"] == grid.default_run
    figures = {p.stem for p in (SHIPPED / "figures").glob("*.png")}
    assert figures >= {c["id"] for c in grid.claims + grid.followups if c["kind"] != "spread"} | {"overview"}


def test_the_shipped_default_run_reproduces_05s_reference_on_test():
    """The control: the sweep's default run is 04's recipe, so its test ROUGE-L is 05's "after" of the reference run."""
    test = json.loads((SHIPPED / "test.json").read_text(encoding="utf-8"))
    reference = json.loads((ROOT / "reference_results" / "cpu.json").read_text(encoding="utf-8"))
    assert test["n_test"] == reference["provenance"]["n_test"]
    assert test["rougeL"]["default"] == pytest.approx(reference["metrics"]["rougeL"]["after"], abs=0.05)


def test_a_plot_axis_is_the_one_knob_a_claims_runs_differ_in():
    from utils.sweep import plots

    grid = study.load_grid(COMMITTED)
    records = study.load_records(grid, SHIPPED)
    axes = {c["id"]: plots.axis_of(c, records, grid.default_run) for c in grid.claims}
    assert axes["rank"] == "lora_r" and axes["data_size"] == "n_train" and axes["all_linear"] is None
    assert plots.on_axis(records, grid.default_run, "n_train") == ["n_train_128", "n_train_256", "default"]


def _num(x: float, sign: bool = False) -> str:
    """A number as README writes it: one decimal, a real minus sign (U+2212), "+" when asked."""
    return (f"{x:+.1f}" if sign else f"{x:.1f}").replace("-", "−")


def _ci(d: dict) -> str:
    return f"{_num(d['diff'], True)} (CI [{_num(d['ci_low'], True)}, {_num(d['ci_high'], True)}])"


def test_the_documented_sweep_figures_are_the_shipped_results():
    """docs/measurements.md's sweep paragraph is hand-written: every figure in it is recomputed here from
    results/sweep/cpu_v1."""
    readme = (ROOT / "docs" / "measurements.md").read_text(encoding="utf-8")
    section = readme.split("**ハイパーパラメータのスイープ (06、任意)**", 1)[1].split("同梱の小型モデルは", 1)[0]
    grid = study.load_grid(COMMITTED)
    records = study.load_records(grid, SHIPPED)
    noise = study.noise_level(grid, records)
    seeds = [records[r]["validation"]["rougeL"] for r in ("default", "seed_43", "seed_44")]
    assert f"{' / '.join(_num(v) for v in seeds)}、幅 {_num(noise)}" in section
    assert f"±{study.resolution(records, 'default'):.1f}" in section
    verdicts = {c["id"]: study.verdict(c, records, noise) for c in grid.claims + grid.followups}
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    row = lambda start: next(line for line in rows if line.split("|")[1].strip().startswith(start))  # noqa: E731
    for start, ids in {"LoRA の最良の lr": ["lr_ratio", "lr_ratio_wider"], "ランク": ["rank"], "全線形層": ["all_linear"],
                       "1〜3 エポック": ["epochs"], "大きなバッチ": ["batch"], "データは多いほど": ["data_size"],
                       "lora_dropout": ["dropout"]}.items():
        for cid in ids:
            assert verdicts[cid]["verdict"] in row(start), (cid, verdicts[cid]["verdict"], row(start))
    for start, cid in {"全線形層": "all_linear", "大きなバッチ": "batch", "データは多いほど": "data_size"}.items():
        assert _ci(verdicts[cid]) in row(start), (cid, _ci(verdicts[cid]))
    rank = verdicts["rank"]["diffs"]["rank_1"]
    assert _ci(rank) in row("ランク")
    far = study.beyond_default(records, "default", noise, exclude=("seed_43", "seed_44"))
    assert f"{len(far)} run だけ" in section and all(_ci(r) in section for r in far), [_ci(r) for r in far]
    registered_runs = [r for r, settings in grid.runs.items() if "added" not in settings]
    assert f"{len(grid.claims)} つの主張、{len(registered_runs)} run" in section
    timed = [r for r in records.values() if r["method"] != "none" and not r["resumed_from"]]
    assert f"学習 1 回 {min(r['seconds'] for r in timed):.0f}〜{max(r['seconds'] for r in timed):.0f} 秒" in section
    assert f"合計 {sum(r['seconds'] for r in records.values()) / 3600:.1f} 時間" in section
    ratio = verdicts["lr_ratio_wider"]
    assert (f"最良 LoRA {records[ratio['best']['lora']]['settings']['learning_rate']}、全パラメータ "
            f"{records[ratio['best']['full']]['settings']['learning_rate']} → {ratio['ratio']:.0f} 倍") in section
    assert f"{ratio['ratio_range'][0]:.0f}〜{ratio['ratio_range'][1]:.0f} 倍" in section and ratio["open"] == ["high"]
    epochs = verdicts["epochs"]["values"]
    assert " / ".join(_num(epochs[e]) for e in sorted(epochs)) in row("1〜3 エポック")
    per_epoch = {e["epoch"]: {"validation": e} for e in records["epochs_4"]["per_epoch"]}
    assert f"4 − 3 エポック目 = {_ci(study.difference(per_epoch, 4, 3))}" in row("1〜3 エポック")
    dropout = verdicts["dropout"]
    assert _ci(max(dropout["diffs"].values(), key=lambda d: d["diff"])) in row("lora_dropout")
    trained = {r: records[r]["train_records"] for r in ("default", "n_train_128")}
    assert f"学習したのは {trained['default']} 対 {trained['n_train_128']} 件" in row("データは多いほど")
    assert all(f"lr {records[r['run']]['settings']['learning_rate']}: {_ci(r)}" in section for r in far)
    a100 = study.estimated_minutes(study.load_grid(ROOT / "configs" / "sweep" / "gpu_v1.json"), "A100")["total"] / 60
    assert f"A100 で約 {a100:.0f} 時間" in section
    test = json.loads((SHIPPED / "test.json").read_text(encoding="utf-8"))
    assert f"test ({test['n_test']} 件" in section
    reference = json.loads((ROOT / "reference_results" / "cpu.json").read_text(encoding="utf-8"))
    assert f"05 の学習後 ({reference['metrics']['rougeL']['after']:.1f})" in section
    best, default = test["rougeL"][test["best"]], test["rougeL"]["default"]
    d = test["best_minus_default"]
    assert (f"既定 {_num(default)} に対して {_num(best)} (差 {_num(d['diff'], True)}、CI [{_num(d['ci_low'], True)}, "
            f"{_num(d['ci_high'], True)}]、{'ノイズを超える差' if study.beyond_noise(d, noise) else 'ノイズの範囲'})") in section


def test_the_registered_part_of_the_cpu_grid_is_what_was_committed_before_any_run():
    raw = json.loads(COMMITTED.read_text(encoding="utf-8"))
    assert study.registration_hash(raw) == study.CPU_V1_REGISTERED
    raw["followups"] = []  # follow-ups and added runs are outside the registration
    raw["runs"] = {r: s for r, s in raw["runs"].items() if "added" not in s}
    assert study.registration_hash(raw) == study.CPU_V1_REGISTERED
    raw["claims"][3]["expect"] = [1, 3]  # what an unlabelled post-hoc rule would look like
    assert study.registration_hash(raw) != study.CPU_V1_REGISTERED


def test_test_is_scored_once_unless_asked_again(tmp_path):
    grid = study.load_grid(COMMITTED)
    for run_id in grid.runs:  # every run "finished", so only the test.json guard can refuse
        with open(study.results_path(tmp_path), "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"run": run_id, "method": "lora", "validation": {"rougeL": 1.0}}) + "\n")
    (tmp_path / "test.json").write_text("{}")
    with pytest.raises(study.GridError, match="1 度だけ"):
        study.test_best_and_default(grid, tmp_path)


def test_what_each_run_did_and_which_runs_passed_the_noise_rule():
    grid = study.load_grid(COMMITTED)
    records = study.load_records(grid, SHIPPED)
    facts = study.facts(records, ["default", "n_train_128"])
    assert facts["n_train_128"]["学習したレコード"] < facts["default"]["学習したレコード"] <= 512
    noise = study.noise_level(grid, records)
    far = {r["run"] for r in study.beyond_default(records, "default", noise, exclude=("seed_43", "seed_44"))}
    assert far and not far & {"seed_43", "seed_44", "before", "default"}


def test_the_near_best_lrs_are_written_as_a_span_only_without_a_gap():
    """"a〜b" reads as "every lr from a to b"; where an lr in between is beyond noise, the reading lists the lrs."""
    assert study._lr_span([6e-3, 2e-2], [2e-4, 2e-3, 6e-3, 2e-2]) == "6e-3〜2e-2"
    assert study._lr_span([2e-3], [2e-4, 2e-3, 6e-3]) == "2e-3"
    assert study._lr_span([2e-4, 2e-2], [2e-4, 2e-3, 2e-2]) == "2e-4, 2e-2"  # 2e-3 was beyond noise
    assert study._lr_span([2e-3, 2e-3, 2e-2], [2e-3, 2e-3, 2e-3, 2e-2]) == "2e-3〜2e-2"  # three seeds at 2e-3
    per = {"2e-4": [8.0, 8.4, 8.2], "2e-3": [2.0, 2.2, 2.1], "2e-2": [8.2, 8.6, 8.4]}
    records = {f"l{lr}": _rec(f"l{lr}", v, lr) for lr, v in per.items()}
    records |= {"f2e-5": _rec("f2e-5", [1.0, 2.0, 1.5], "2e-5"), "f2e-4": _rec("f2e-4", [9.0, 9.5, 9.0], "2e-4"),
                "f2e-3": _rec("f2e-3", [2.0, 2.5, 2.0], "2e-3")}
    claim = {"kind": "best_ratio", "runs": {"lora": list(records)[:3], "full": list(records)[3:]}, "expect": [3, 30]}
    out = study.verdict(claim, records, 1.0)
    assert out["near_lrs"]["lora"] == [2e-4, 2e-2]
    assert "2e-4, 2e-2" in study.reading(claim, out, 1.0) and "2e-4〜2e-2" not in study.reading(claim, out, 1.0)
