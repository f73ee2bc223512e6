import gzip
import json

import pytest

from utils.recipe import data
from utils.recipe.config import get_config


@pytest.fixture(scope="module")
def bundled():
    return data.read_jsonl(data.BUNDLED_PATH)


def test_bundled_snapshot_has_licence_and_attribution():
    folder = data.BUNDLED_PATH.parent
    assert "Attribution-ShareAlike 3.0" in (folder / "LICENSE.txt").read_text()
    readme = (folder / "README.md").read_text()
    assert "CC BY-SA 3.0" in readme and "kunishou" in readme and "Databricks" in readme


def test_offline_load_falls_back_to_bundled(clean_env, capsys):
    clean_env.setenv("HF_HUB_OFFLINE", "1")
    records, source = data.load_dolly(get_config())
    assert source == "bundled" and len(records) == 15015
    assert "同梱スナップショット" in capsys.readouterr().out


def test_unreachable_hub_falls_back_at_once(clean_env, capsys):
    """Without HF_HUB_OFFLINE, a machine with no network must not sit through the libraries' retries."""
    import time

    clean_env.delenv("HF_HUB_OFFLINE", raising=False)
    clean_env.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    t0 = time.time()
    records, source = data.load_dolly(get_config())
    assert source == "bundled" and len(records) == 15015
    assert time.time() - t0 < 10
    assert "接続できません" in capsys.readouterr().out


def test_summarization_cleaning_counts(bundled):
    kept, report = data.clean_summarization(bundled)
    assert report.in_category == 1263
    assert report.kept == len(kept) == 1263 - sum(report.dropped.values())
    assert all(r["category"] == "summarization" and r["input"] and r["output"] for r in kept)


def test_cleaning_reports_every_drop():
    recs = [
        {"index": "1", "instruction": "要約して", "input": "  本文です。 ", "output": " 要約 ", "category": "summarization"},
        {"index": "2", "instruction": "要約して", "input": "   ", "output": "x", "category": "summarization"},
        {"index": "3", "instruction": "要約して", "input": "本文", "output": "", "category": "summarization"},
        {"index": "4", "instruction": "要約して", "input": "本文です。", "output": "別", "category": "summarization"},
        {"index": "5", "instruction": "質問", "input": "", "output": "答え", "category": "open_qa"},
        {"index": "6", "instruction": "要約", "input": "前置き。本文です。後書き。", "output": "要約", "category": "summarization"},
    ]
    kept, report = data.clean_summarization(recs)
    assert [r["index"] for r in kept] == ["1"]
    assert kept[0]["input"] == "本文です。" and kept[0]["output"] == "要約"
    assert report.dropped == {"empty input": 1, "empty output": 1, "duplicate input text": 1,
                              "input overlaps another record's input": 1}
    assert report.dropped_ids["empty input"] == ["2"]
    assert report.total == 6 and report.in_category == 5 and report.kept == 1
    assert "dropped: empty input" in str(report)


def test_split_is_deterministic_and_disjoint(bundled):
    kept, _ = data.clean_summarization(bundled)
    a = data.split_records(kept)
    b = data.split_records(list(reversed(kept)))  # row order must not matter
    assert {k: [r["index"] for r in v] for k, v in a.items()} == {k: [r["index"] for r in v] for k, v in b.items()}
    ids = {k: {r["index"] for r in v} for k, v in a.items()}
    assert not ids["train"] & ids["test"] and not ids["train"] & ids["validation"] and not ids["validation"] & ids["test"]
    assert sum(len(v) for v in ids.values()) == len(kept)
    # fractions near the targets
    assert 0.07 < len(ids["test"]) / len(kept) < 0.13
    assert 0.03 < len(ids["validation"]) / len(kept) < 0.08
    # no test passage appears in train, not even inside a longer excerpt
    train_inputs = [r["input"] for r in a["train"]]
    assert not any(r["input"] in t or t in r["input"] for r in a["test"] for t in train_inputs)


def test_split_depends_only_on_index():
    rec = {"index": "18", "instruction": "a", "input": "b", "output": "c", "category": "summarization"}
    other = dict(rec, input="全く別の本文", output="別")
    assert data.split_of(rec["index"]) == data.split_of(other["index"])


def test_profile_selection_takes_first_n(clean_env, bundled):
    kept, _ = data.clean_summarization(bundled)
    splits = data.split_records(kept)
    cfg = get_config(n_test=5, n_val=3, n_train=None)
    sel = data.select(splits, cfg)
    assert [r["index"] for r in sel["test"]] == [r["index"] for r in splits["test"][:5]]
    assert len(sel["validation"]) == 3 and len(sel["train"]) == len(splits["train"])
    assert [r["index"] for r in data.select(splits, get_config(n_train=7))["train"]] == [r["index"] for r in splits["train"][:7]]


def test_local_jsonl_replaces_the_source(clean_env, tmp_path, capsys):
    path = tmp_path / "mini.jsonl.gz"
    rows = [{"index": str(i), "instruction": "要約", "input": f"本文{i}", "output": f"要約{i}",
             "category": "summarization"} for i in range(4)]
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    clean_env.setenv("WORKSHOP_DATA_PATH", str(path))
    records, source = data.load_dolly(get_config())
    assert source == "local" and [r["input"] for r in records] == [f"本文{i}" for i in range(4)]


@pytest.mark.parametrize("line,match", [
    ("{not json", "JSON として読めません"),
    ("[1, 2]", "JSON オブジェクト"),
    ('{"index": "9", "instruction": "x"}', "必須の列"),
])
def test_malformed_line_names_file_and_line(tmp_path, line, match):
    path = tmp_path / "bad.jsonl"
    good = json.dumps({"index": "1", "instruction": "i", "input": "x", "output": "y", "category": "summarization"})
    path.write_text(good + "\n\n" + line + "\n", encoding="utf-8")
    with pytest.raises(data.DataFormatError, match=match) as err:
        data.read_jsonl(path)
    assert f"{path}:3:" in str(err.value)


def test_saved_splits_round_trip_and_missing_ones_name_notebook_02(clean_env, tmp_path):
    cfg = get_config(output_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="02_dataset_formatting"):
        data.load_splits(cfg)
    rec = {"index": "1", "instruction": "i", "input": "本文", "output": "要約", "category": "summarization"}
    data.save_splits({"train": [rec], "validation": [], "test": [rec]}, cfg)
    assert data.load_splits(cfg) == {"train": [rec], "validation": [], "test": [rec]}
