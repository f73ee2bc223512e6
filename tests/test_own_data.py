"""Your own data (CSV / JSONL / JSONL.gz): it runs through the same loading, cleaning and split, and every
bad input gets a Japanese error that names the file, the line and the fix; nothing is dropped silently."""

import csv
import gzip
import json

import pytest

from utils.recipe.config import ConfigError, get_config
from utils.recipe.data import DataFormatError, clean_summarization, load_dolly, read_records, split_of, split_records


def own_records(n: int) -> list[dict]:
    """Synthetic records (distinct passages), enough to fill every split when n is large."""
    return [{"instruction": "次の文章を要約してください。",
             "input": f"これは {i} 番目のテスト用の文章です。内容はレコードごとに異なり、番号 {i * 7} を含みます。",
             "output": f"{i} 番目の文章の要約。"} for i in range(n)]


def write_csv(path, rows, fields=("instruction", "input", "output")):
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(fields))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in fields})
    return path


def test_csv_without_category_uses_every_record(clean_env, tmp_path, capsys):
    path = write_csv(tmp_path / "mine.csv", own_records(80))
    cfg = get_config("cpu", data_path=str(path))
    records, source = load_dolly(cfg)
    assert source == "local" and len(records) == 80
    assert "category 列がないので、全 80 件" in capsys.readouterr().out
    kept, report = clean_summarization(records, cfg.task_category)
    assert report.kept == 80 and not report.dropped
    splits = split_records(kept, source=path)
    assert sum(len(v) for v in splits.values()) == 80 and all(splits.values())
    again = split_records(clean_summarization(load_dolly(cfg, verbose=False)[0])[0])
    assert {k: [r["index"] for r in v] for k, v in again.items()} == {k: [r["index"] for r in v] for k, v in splits.items()}


def test_index_from_content_does_not_depend_on_row_order(tmp_path):
    rows = own_records(10)
    a = read_records(write_csv(tmp_path / "a.csv", rows))
    b = read_records(write_csv(tmp_path / "b.csv", rows[::-1]))
    assert sorted(r["index"] for r in a) == sorted(r["index"] for r in b)


def test_a_repeated_passage_without_index_is_dropped_with_a_reason_not_refused(clean_env, tmp_path):
    """The same instruction + passage twice (two references for one passage) and a pasted duplicate row, in a CSV
    without an index column: no error about a column the participant never wrote; unique, order-independent
    indices; all rows of the passage in one split; the duplicate rule keeps one and reports the others."""
    rows = own_records(80)
    repeated = dict(rows[5], output="同じ本文に、別の人が書いた 2 つ目の要約。")
    path = write_csv(tmp_path / "mine.csv", rows + [repeated, dict(rows[5])])
    records, _ = load_dolly(get_config("cpu", data_path=str(path)), verbose=False)  # as 02 reads it
    indices = [r["index"] for r in records]
    assert len(set(indices)) == len(indices) == 82
    passage = [r for r in records if r["input"] == rows[5]["input"]]
    assert len(passage) == 3 and len({split_of(r["index"]) for r in passage}) == 1  # one split for the passage
    kept, report = clean_summarization(records)
    assert report.kept == 80 and dict(report.rows())["dropped: duplicate input text"] == 2
    # another row order gives the same indices, the same kept row and the same splits
    shuffled = write_csv(tmp_path / "shuffled.csv", [dict(rows[5])] + rows[::-1] + [repeated])
    again, _ = load_dolly(get_config("cpu", data_path=str(shuffled)), verbose=False)
    assert sorted(r["index"] for r in again) == sorted(indices)
    assert {r["index"] for r in clean_summarization(again)[0]} == {r["index"] for r in kept}


def test_jsonl_gz_with_category_uses_the_profile_s_category(clean_env, tmp_path, capsys):
    rows = [{**r, "index": str(i), "category": "summarization" if i % 2 else "open_qa"} for i, r in enumerate(own_records(40))]
    path = tmp_path / "mine.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    records, _ = load_dolly(get_config("cpu", data_path=str(path)))
    assert "category == 'summarization' の 20 件を使います" in capsys.readouterr().out
    kept, report = clean_summarization(records)
    assert report.total == 40 and report.in_category == report.kept == 20


def test_cleaning_counts_what_it_drops(tmp_path):
    rows = own_records(5) + [{"instruction": "要約", "input": "", "output": "空の本文"}]
    records = [{**r, "category": "summarization"} for r in read_records(write_csv(tmp_path / "x.csv", rows))]
    kept, report = clean_summarization(records)
    assert report.kept == 5 and report.dropped["empty input"] == 1


@pytest.mark.parametrize("case, message", [
    ("missing_column_csv", r"x\.csv:1 \(ヘッダー行\): 必須の列 \['output'\]"),
    ("missing_column_jsonl", r"x\.jsonl:2: 必須の列 \['input'\]"),
    ("empty_csv", r"x\.csv: レコードが 1 件もありません"),
    ("empty_jsonl", r"x\.jsonl: レコードが 1 件もありません"),
    ("duplicate_index", r"x\.csv:3: index '7' が 2 行目と重複"),
    ("shift_jis", r"x\.csv:3: UTF-8 として読めないバイト.*UTF-8 で保存し直して"),
    ("bad_json", r"x\.jsonl:1: JSON として読めません"),
    ("extra_cell", r"x\.csv:2: 列の数がヘッダーより多い"),
    ("unsupported", r"x\.xlsx: 対応していない形式"),
])
def test_bad_input_names_file_line_and_fix(tmp_path, case, message):
    good = "instruction,input,output\n要約して,本文その1。,要約1\n"
    files = {
        "missing_column_csv": ("x.csv", "instruction,input,summary\n要約して,本文,要約\n"),
        "missing_column_jsonl": ("x.jsonl", '{"instruction": "a", "input": "b", "output": "c"}\n{"instruction": "a", "output": "c"}\n'),
        "empty_csv": ("x.csv", ""),
        "empty_jsonl": ("x.jsonl", "\n\n"),
        "duplicate_index": ("x.csv", "index,instruction,input,output\n7,要約して,本文1,要約1\n7,要約して,本文2,要約2\n"),
        "shift_jis": ("x.csv", None),
        "bad_json": ("x.jsonl", "{not json}\n"),
        "extra_cell": ("x.csv", "instruction,input,output\n要約して,本文,要約,余分\n"),
        "unsupported": ("x.xlsx", good),
    }
    name, text = files[case]
    path = tmp_path / name
    if case == "shift_jis":
        path.write_bytes(good.encode("utf-8") + "要約して,本文その2。,要約2\n".encode("shift_jis"))
    else:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(DataFormatError, match=message):
        read_records(path)


def test_too_few_records_to_split_says_how_many_are_needed(tmp_path):
    records = [{**r, "category": "summarization"} for r in read_records(write_csv(tmp_path / "few.csv", own_records(6)))]
    kept, _ = clean_summarization(records)
    with pytest.raises(DataFormatError, match=r"few\.csv: .*6 件を分割すると.*が空です.*60 件以上"):
        split_records(kept, source=tmp_path / "few.csv")


def test_config_rejects_a_wrong_data_path(clean_env, tmp_path):
    with pytest.raises(ConfigError, match="見つかりません"):
        get_config("cpu", data_path=str(tmp_path / "none.csv"))
    (tmp_path / "data.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"\.csv / \.jsonl / \.jsonl\.gz"):
        get_config("cpu", data_path=str(tmp_path / "data.txt"))


@pytest.mark.slow  # runs notebook 02
def test_example_csv_runs_through_notebook_02(clean_env, tmp_path):
    """The README's own-data walk-through: notebook 02 on the shipped example CSV reports and saves the counts."""
    import nbformat
    from nbclient import NotebookClient

    from utils.recipe.config import PROJECT_ROOT

    example = PROJECT_ROOT / "data" / "own_data_example" / "example_summaries.csv"
    clean_env.setenv("WORKSHOP_PROFILE", "cpu")
    clean_env.setenv("WORKSHOP_DATA_PATH", str(example))
    clean_env.setenv("WORKSHOP_OUTPUT_DIR", str(tmp_path))
    nb = nbformat.read(PROJECT_ROOT / "notebooks" / "02_dataset_formatting.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, resources={"metadata": {"path": str(PROJECT_ROOT / "notebooks")}}).execute()
    text = "\n".join(o.get("text", "") + json.dumps(o.get("data", {}), ensure_ascii=False)
                     for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "category 列がないので、全 64 件" in text
    saved = {name: (tmp_path / "cpu" / "splits" / f"{name}.jsonl").read_text(encoding="utf-8").count("\n")
             for name in ("train", "validation", "test")}
    assert saved == {"train": 57, "validation": 3, "test": 4}
