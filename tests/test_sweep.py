"""The pre-registered sweep (utils.sweep, scripts/sweep.py): the grid file is checked before any training, a
restarted sweep skips finished runs, selection never sees test, and the verdicts follow the CIs and the noise."""

import json

import pytest

from utils import sweep

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "configs" / "sweep" / "cpu_v1.json"


def _grid(tmp_path, **changes):
    raw = json.loads(COMMITTED.read_text(encoding="utf-8"))
    raw.update(changes)
    path = tmp_path / "grid.json"
    path.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    return path


def test_the_committed_grid_is_valid_and_tests_every_claim_of_the_issue():
    grid = sweep.load_grid(COMMITTED)
    assert {c["id"] for c in grid.claims} >= {"lr_ratio", "rank", "all_linear", "epochs", "batch", "seeds"}
    cfg = sweep.run_config(grid, "attention_only_r43", ROOT / "x")
    assert cfg.lora_target_modules == ("q_proj", "k_proj", "v_proj", "o_proj") and cfg.lora_r == 43


@pytest.mark.parametrize("change, message", [
    ({"typo": 1}, "未知の項目"),
    ({"runs": {"default": {"learning_rat": "1e-3"}}}, "learning_rat"),
    ({"runs": {"default": {"learning_rate": "fast"}}}, "learning_rate"),
    ({"runs": {"default": {"base_model": "x"}}}, "スイープでは変えられません"),
    ({"runs": {"default": {"method": "qlora"}}}, "lora か full"),
    ({"runs": {"default": {"lora_dropout": 1.5}}}, "lora_dropout"),
])
def test_a_bad_grid_stops_before_training_with_the_place_to_fix(tmp_path, change, message):
    path = _grid(tmp_path, **change)
    with pytest.raises(sweep.GridError, match=message) as err:
        sweep.load_grid(path)
    assert str(path) in str(err.value)


def test_a_claim_naming_a_missing_run_is_refused(tmp_path):
    raw = json.loads(COMMITTED.read_text(encoding="utf-8"))
    raw["claims"][1]["runs"].append("rank_2")
    path = tmp_path / "g.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(sweep.GridError, match="rank_2"):
        sweep.load_grid(path)


def test_the_environment_and_saved_settings_do_not_leak_into_a_run(clean_env):
    clean_env.setenv("WORKSHOP_LEARNING_RATE", "0.5")
    grid = sweep.load_grid(COMMITTED)
    assert sweep.run_config(grid, "default", ROOT / "x").learning_rate == 2e-3
    assert sweep.run_config(grid, "lora_lr_2e-4", ROOT / "x").learning_rate == 2e-4


def test_a_restarted_sweep_skips_finished_runs(tmp_path, monkeypatch):
    grid = sweep.load_grid(COMMITTED)
    ran, killed = [], []

    def fake_run_one(grid, run_id, root, splits):
        assert "test" not in splits
        ran.append(run_id)
        if run_id == "lora_lr_6e-4" and not killed:
            killed.append(run_id)
            raise RuntimeError("killed")  # the sweep is killed during its third run
        return {"run": run_id, "validation": {"rougeL": 1.0}, "seconds": 1.0}

    monkeypatch.setattr(sweep, "run_one", fake_run_one)
    splits = {"train": [], "validation": [], "test": ["never"]}
    with pytest.raises(RuntimeError, match="killed"):
        sweep.run_grid(grid, tmp_path, splits, say=lambda *a, **k: None)
    assert set(sweep.finished(tmp_path)) == {"default", "lora_lr_2e-4"}
    ran.clear()
    done = sweep.run_grid(grid, tmp_path, splits, only=["default", "lora_lr_2e-4", "lora_lr_6e-4"], say=lambda *a, **k: None,
                          provenance={"commit": "abc"})
    assert ran == ["lora_lr_6e-4"] and done["lora_lr_6e-4"]["provenance"] == {"commit": "abc"}


def test_run_one_refuses_the_test_split(tmp_path):
    with pytest.raises(ValueError, match="test"):
        sweep.run_one(sweep.load_grid(COMMITTED), "default", tmp_path, {"train": [], "validation": [], "test": []})


def _rec(run, per, lr=None):
    return {"run": run, "settings": {"learning_rate": lr} if lr else {}, "validation": {
        "rougeL": sum(per) / len(per), "rougeL_per_record": per, "ids": list(range(len(per)))}}


def test_verdicts_follow_the_ci_and_the_seed_spread():
    base = [10.0, 12.0, 11.0, 9.0, 13.0, 10.0, 12.0, 11.0]
    records = {"a": _rec("a", [v + 5 for v in base]), "b": _rec("b", base), "c": _rec("c", [v + 0.3 for v in base]),
               "s1": _rec("s1", base), "s2": _rec("s2", [v + 1.0 for v in base])}
    spread = {"kind": "spread", "runs": ["s1", "s2"]}
    grid = type("G", (), {"claims": [spread]})()
    noise = sweep.noise_level(grid, records)
    assert noise == pytest.approx(1.0)
    assert sweep.verdict({"kind": "a_beats_b", "runs": ["a", "b"]}, records, noise)["verdict"] == "支持された"
    assert sweep.verdict({"kind": "a_beats_b", "runs": ["b", "a"]}, records, noise)["verdict"] == "支持されない (逆)"
    # c - b = +0.3 on every record: its CI excludes 0, but it is smaller than the seed spread
    assert sweep.verdict({"kind": "a_beats_b", "runs": ["c", "b"]}, records, noise)["verdict"] == "ノイズの範囲"
    assert sweep.verdict({"kind": "flat", "runs": ["b", "c"]}, records, noise)["verdict"].startswith("支持された")
    assert sweep.verdict({"kind": "flat", "runs": ["a", "b", "c"]}, records, noise)["beyond_noise"] == ["b", "c"]
    assert sweep.verdict({"kind": "a_beats_b", "runs": ["a", "zzz"]}, records, noise)["verdict"] == "未実行"


def test_the_lr_ratio_claim():
    records = {"l1": _rec("l1", [10.0, 11.0], "2e-3"), "l2": _rec("l2", [5.0, 6.0], "2e-4"),
               "f1": _rec("f1", [9.0, 9.0], "2e-4"), "f2": _rec("f2", [4.0, 4.0], "2e-3")}
    claim = {"kind": "best_ratio", "runs": {"lora": ["l1", "l2"], "full": ["f1", "f2"]}, "expect": [3, 30]}
    out = sweep.verdict(claim, records, None)
    assert out["ratio"] == pytest.approx(10.0) and out["verdict"] == "支持された"
    claim["expect"] = [20, 30]
    assert sweep.verdict(claim, records, None)["verdict"] == "支持されない"


def test_one_real_tiny_run_trains_and_scores_validation(tmp_path, clean_env):
    """The same utils path as 04 (LoRA and full fine-tuning), shrunk: 16 train records, 1 epoch, 8 validation records."""
    raw = json.loads(COMMITTED.read_text(encoding="utf-8"))
    raw["base"] = {"n_train": 16, "n_val": 8, "num_train_epochs": 1, "max_new_tokens": 16, "eval_steps": 100}
    raw["runs"] = {"default": {}, "full": {"method": "full", "learning_rate": "1e-4", "eval_each_epoch": True}}
    raw["claims"] = [{"id": "x", "kind": "a_beats_b", "runs": ["default", "full"], "claim": "x"}]
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(raw))
    grid = sweep.load_grid(path)
    from utils.data import summarization_splits

    splits = summarization_splits(sweep.run_config(grid, "default", tmp_path))
    splits.pop("test")
    done = sweep.run_grid(grid, tmp_path / "runs", splits, say=lambda *a, **k: None)
    lora, full = done["default"], done["full"]
    assert lora["train_records"] <= 16 and len(lora["validation"]["rougeL_per_record"]) == 8
    assert lora["trainable_parameters"] < full["trainable_parameters"]  # LoRA vs every weight
    assert [e["epoch"] for e in full["per_epoch"]] == [1]
    assert (tmp_path / "runs" / "full" / "cpu" / "adapter" / "config.json").is_file()
    assert sweep.verdict(grid.claims[0], done, None)["verdict"] in ("支持された", "支持されない (逆)", "ノイズの範囲")


def test_the_script_reports_an_unstarted_sweep_and_refuses_test_before_every_run(tmp_path):
    import subprocess
    import sys

    script = ROOT / "scripts" / "sweep.py"
    report = subprocess.run([sys.executable, str(script), str(COMMITTED), "--root", str(tmp_path), "--report"],
                            capture_output=True, text=True)
    assert report.returncode == 0 and "0/23 runs finished" in report.stdout and "未実行" in report.stdout
    test = subprocess.run([sys.executable, str(script), str(COMMITTED), "--root", str(tmp_path), "--test"],
                          capture_output=True, text=True)
    assert test.returncode != 0 and "全 run が終わってから" in test.stderr
