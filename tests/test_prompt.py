import pytest

from utils.recipe.prompt import (PROMPT_TEMPLATE, _template_pattern, fit_records, format_prompt, parse_prompt,
                          passage_cut_shares, to_prompt_completion)


def test_template_is_the_workshop_format():
    assert PROMPT_TEMPLATE == "### 指示\n{instruction}\n\n### 入力\n{input}\n\n### 応答\n"


def test_record_to_prompt_completion():
    rec = {"index": "1", "instruction": " 要約してください ", "input": "本文。\n", "output": " 要約。 ", "category": "summarization"}
    pair = to_prompt_completion(rec)
    assert pair == {"prompt": "### 指示\n要約してください\n\n### 入力\n本文。\n\n### 応答\n", "completion": "要約。"}


def test_empty_fields_are_rejected():
    with pytest.raises(ValueError, match="空にできません"):
        format_prompt("要約して", "  ")


def test_parse_prompt_is_the_inverse_of_format_prompt():
    assert parse_prompt(format_prompt(" 要約して ", "一行目\n二行目")) == {"instruction": "要約して", "input": "一行目\n二行目"}
    # a passage that itself contains the template's headers still parses the way it was filled
    tricky = "前半\n\n### 入力\n後半\n\n### 応答\nおわり"
    assert parse_prompt(format_prompt("要約して", tricky)) == {"instruction": "要約して", "input": tricky}
    with pytest.raises(ValueError, match="PROMPT_TEMPLATE"):
        parse_prompt("指示: 要約して\n本文")


def test_the_parser_is_read_from_the_template_not_written_twice():
    pattern = _template_pattern("Q: {instruction}\nText: {input}\nA:")
    assert pattern.fullmatch("Q: sum up\nText: a\nText: b\nA:").groupdict() == {"instruction": "sum up", "input": "a\nText: b"}


def test_fit_records_shortens_input_not_summary(tiny_tokenizer):
    long = {"index": "1", "instruction": "要約して", "input": "長い本文です。" * 400, "output": "短い要約。", "category": "summarization"}
    short = {"index": "2", "instruction": "要約して", "input": "短い本文。", "output": "要約。", "category": "summarization"}
    huge_summary = {"index": "3", "instruction": "要約して", "input": "本文。", "output": "要約。" * 400, "category": "summarization"}
    out, report = fit_records([long, short, huge_summary], tiny_tokenizer, 128, with_completion=True)
    assert report == {"kept_as_is": 1, "input_truncated": 1, "dropped_too_long": 1, "dropped_cut_too_much": 0}
    fitted = out[0]
    assert fitted["output"] == long["output"] and fitted["input"].endswith("…")
    pair = to_prompt_completion(fitted)
    assert len(tiny_tokenizer(pair["prompt"] + pair["completion"] + tiny_tokenizer.eos_token)["input_ids"]) <= 128
    assert out[1] == short


def test_a_record_that_would_lose_most_of_its_passage_can_be_dropped_instead(tiny_tokenizer):
    """max_cut_fraction: training drops (and counts) records cut beyond it; inference never drops."""
    long = {"index": "1", "instruction": "要約して", "input": "長い本文です。" * 400, "output": "短い要約。", "category": "summarization"}
    slightly = {"index": "2", "instruction": "要約して", "input": "少し長い本文です。" * 22, "output": "要約。", "category": "summarization"}
    _, cut_report = fit_records([slightly], tiny_tokenizer, 100, with_completion=True)
    assert cut_report["input_truncated"] == 1  # it needs shortening, but only a little
    out, report = fit_records([long, slightly], tiny_tokenizer, 100, with_completion=True, max_cut_fraction=0.5)
    assert report == {"kept_as_is": 0, "input_truncated": 1, "dropped_too_long": 0, "dropped_cut_too_much": 1}
    assert [r["index"] for r in out] == ["2"]
    out, report = fit_records([long, slightly], tiny_tokenizer, 100, with_completion=False, max_cut_fraction=0.5)
    assert len(out) == 2 and report["dropped_cut_too_much"] == 0


def test_passage_cut_shares_agree_with_what_fit_records_does(tiny_tokenizer):
    records = [{"index": str(i), "instruction": "要約して", "input": text, "output": out, "category": "summarization"}
               for i, (text, out) in enumerate([("短い本文。", "要約。"), ("少し長い本文です。" * 22, "要約。"),
                                                ("長い本文です。" * 400, "短い要約。"), ("本文。", "要約。" * 400)])]
    shares = passage_cut_shares(records, tiny_tokenizer, 100)
    assert shares[0] == 0.0 and 0 < shares[1] < 0.5 < shares[2] < 1 and shares[3] is None
    _, report = fit_records(records, tiny_tokenizer, 100, with_completion=True, max_cut_fraction=0.5)
    assert report == {"kept_as_is": 1, "input_truncated": 1, "dropped_too_long": 1, "dropped_cut_too_much": 1}
