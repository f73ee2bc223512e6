"""Evaluation plumbing shared by notebooks 03 and 05: test prompts, predictions on disk, results.json."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from utils.evaluation import metrics
from utils.recipe.config import WorkshopConfig
from utils.recipe.generation import Generation
from utils.evaluation.losses import reference_loss  # noqa: F401 - 05 and 08 import it from here
from utils.recipe.prompt import fit_records, parse_prompt, to_prompt_completion


def eval_prompts(test_records: list[dict], tokenizer, cfg: WorkshopConfig) -> tuple[list[dict], dict]:
    """One row per test record: id, input, prompt, reference. Long inputs are shortened so that the
    prompt fits ``max_length`` (the training budget); generation then adds up to ``max_new_tokens``."""
    fitted, report = fit_records(test_records, tokenizer, cfg.max_length, with_completion=False)
    rows = [{"id": r["index"], "input": r["input"], **to_prompt_completion(r)} for r in fitted]
    for row in rows:
        row["reference"] = row.pop("completion")
    return rows, report


def predictions_path(cfg: WorkshopConfig, which: str) -> Path:
    """``which``: "base" (notebook 03) or "lora" (notebook 05)."""
    return cfg.run_dir / f"predictions_{which}.jsonl"


def save_predictions(rows: list[dict], generations: list[Generation], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for row, gen in zip(rows, generations, strict=True):
            out = {"id": row["id"], "prompt": row["prompt"], "reference": row["reference"], "prediction": gen.text,
                   "finish_reason": gen.finish_reason, "new_tokens": gen.new_tokens}
            fh.write(json.dumps(out, ensure_ascii=False) + "\n")


def load_predictions(path: Path, notebook: str) -> list[dict]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} がありません。先に notebooks/{notebook} を最後まで実行してください。")
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def loops(text: str, n: int = 6, times: int = 3) -> bool:
    """True when some ``n``-character piece occurs ``times`` times or more: the model is going round in a loop
    ("金融、金融、金融、…"). A summary that quotes its passage does not repeat itself like that."""
    seen: dict[str, int] = {}
    for i in range(len(text) - n + 1):
        piece = text[i: i + n]
        seen[piece] = seen.get(piece, 0) + 1
        if seen[piece] >= times:
            return True
    return False


def behaviour(rows: list[dict]) -> dict[str, float]:
    """stop_rate: share that ended with EOS; length_ratio: median chars(prediction) / chars(reference)."""
    return {
        "stop_rate": sum(r["finish_reason"] == "eos" for r in rows) / len(rows),
        "length_ratio": statistics.median(len(r["prediction"]) / max(1, len(r["reference"])) for r in rows),
    }


def passages_seen(rows: list[dict]) -> list[str]:
    """The passage of each saved prediction as the model saw it (03's prompt, shortened to fit where it had to):
    what an output's facts are checked against."""
    return [parse_prompt(r["prompt"])["input"] for r in rows]


def shot_examples(kshot_prompt: str, prompt: str) -> str:
    """The worked examples of a saved k-shot prompt: what comes before the plain test prompt it ends with."""
    return kshot_prompt[: len(kshot_prompt) - len(prompt)] if kshot_prompt.endswith(prompt) else ""


def arm_results(arms: dict[str, list[dict]], refs: list[str], seed: int = 0) -> tuple[dict, dict]:
    """ROUGE and behaviour of every arm (``{"0-shot": 03's outputs, "1-shot": ..., "lora": 05's}``), and for every
    arm but "lora" the CI of LoRA − that arm on each ROUGE (paired: the same test records)."""
    per = {name: metrics.ja_rouge_per_example([r["prediction"] for r in rows], refs) for name, rows in arms.items()}
    table = {}
    for name, rows in arms.items():
        table[name] = {k: statistics.fmean(per[name][k]) for k in metrics.ROUGE_TYPES} | behaviour(rows)
    lora_vs = {name: {k: metrics.paired_difference(per[name][k], per["lora"][k], seed) for k in metrics.ROUGE_TYPES}
               for name in arms if name != "lora"}
    return table, lora_vs


def build_results(cfg: WorkshopConfig, before: list[dict], after: list[dict], inputs: list[str],
                  ref_loss_before: list[float], ref_loss_after: list[float], train_seconds: float | None,
                  seed: int = 0, adapter: dict | None = None, kshot: dict[str, list[dict]] | None = None,
                  kshot_plans: list[dict] | None = None, forgetting: dict | None = None) -> dict:
    """The results.json of notebook 05 (ROUGE F1 x 100, MeCab tokens; CI bounds the gain after - before).

    ``kshot``: 03's k-shot predictions by arm name ("1-shot", ...), scored on the same records with the same
    scorer (``arms``, ``lora_vs``); ``faithfulness`` is computed for every arm and for the references;
    ``forgetting`` (``utils.evaluation.forgetting.scale_curve``) is stored as given."""
    from utils.evaluation import faithfulness

    if [r["id"] for r in before] != [r["id"] for r in after]:
        raise ValueError("03 と 05 の出力が同じテスト例の並びではありません。03 をもう一度実行してください。")
    for name, rows in (kshot or {}).items():
        if [r["id"] for r in rows] != [r["id"] for r in after]:
            raise ValueError(f"03 の {name} の出力が同じテスト例の並びではありません。03 をもう一度実行してください。")
    refs = [r["reference"] for r in after]
    per_before = metrics.ja_rouge_per_example([r["prediction"] for r in before], refs)
    per_after = metrics.ja_rouge_per_example([r["prediction"] for r in after], refs)
    lead = metrics.ja_rouge([metrics.lead_sentence(x) for x in inputs], refs)
    per_shuffled = metrics.ja_rouge_per_example([r["prediction"] for r in after], metrics.shuffled(refs, seed=seed))
    out_metrics = {}
    for k in metrics.ROUGE_TYPES:
        lo, hi = metrics.paired_bootstrap_ci(per_before[k], per_after[k], seed=seed)
        out_metrics[k] = {"before": statistics.fmean(per_before[k]), "after": statistics.fmean(per_after[k]),
                          "ci_low": lo, "ci_high": hi, "lead": lead[k], "shuffled": statistics.fmean(per_shuffled[k])}
    # after - shuffled, per record: the same outputs against their own reference and against another record's
    margin = metrics.paired_difference(per_shuffled["rougeL"], per_after["rougeL"], seed)
    out_metrics["rougeL"] |= {"margin_ci_low": margin["ci_low"], "margin_ci_high": margin["ci_high"]}
    arms = {"0-shot": before, **(kshot or {}), "lora": after}
    arm_table, lora_vs = arm_results(arms, refs, seed)
    b, a = behaviour(before), behaviour(after)
    return {
        "profile": cfg.profile,
        "base_model": cfg.base_model,
        "adapter": adapter,  # {"path": ..., "source": "04" | "WORKSHOP_ADAPTER"}: which adapter "after" is
        "n_test": len(after),
        "train_seconds": train_seconds,
        "metrics": out_metrics,
        "behaviour": {
            "stop_rate": {"before": b["stop_rate"], "after": a["stop_rate"]},
            "length_ratio": {"before": b["length_ratio"], "after": a["length_ratio"]},
            "ref_loss": {"before": statistics.fmean(ref_loss_before), "after": statistics.fmean(ref_loss_after)},
        },
        "arms": arm_table,
        "lora_vs": lora_vs,
        "kshot_plans": kshot_plans or [],
        "faithfulness": faithfulness.compare({name: [r["prediction"] for r in rows] for name, rows in arms.items()},
                                             passages_seen(after), refs, seed=seed, examples={
                                                 name: [shot_examples(r["prompt"], b["prompt"]) for r, b in zip(rows, before)]
                                                 for name, rows in (kshot or {}).items()}),
        "forgetting": forgetting,
        "per_example": {"rougeL_before": per_before["rougeL"], "rougeL_after": per_after["rougeL"]},
    }


# ROUGE-L points by which the predictions must beat the shuffled-reference control before 05's reading
# calls the gain "content" (the CI guard, scripts/ci/check_results.py, keeps its own measured floor).
CONTENT_MARGIN = 5.0


def content_learning_failures(results: dict, min_margin: float = CONTENT_MARGIN) -> list[str]:
    """Why a results.json does *not* show that fine-tuning taught content (empty list: it does).

    Two conditions, both on ROUGE-L: the gain's 95% CI lies above 0 (the adapter helped at all), and the
    predictions score at least ``min_margin`` points higher against their own references than against
    other records' references (the shuffled control): format alone (summary style, stopping) scores the
    same against any reference, content does not.
    """
    m = results["metrics"]["rougeL"]
    failures = []
    if not m["ci_low"] > 0:
        failures.append(f"ROUGE-L gain CI [{m['ci_low']:+.2f}, {m['ci_high']:+.2f}] does not lie above 0")
    margin = m["after"] - m["shuffled"]
    if margin < min_margin:
        failures.append(f"ROUGE-L after - shuffled = {m['after']:.2f} - {m['shuffled']:.2f} = {margin:.2f} "
                        f"< {min_margin} (the gain is format, not content)")
    return failures


def stopping_failures(results: dict, min_stop_rate: float) -> list[str]:
    """Why the fine-tuned outputs do *not* show the stopping that completion-only SFT teaches (empty: they do).

    With the prompt masked, the summary's EOS is one of its ~100 learned tokens; left unmasked, it is one of a
    whole prompt's several hundred, and the model mostly runs on to ``max_new_tokens``. A base model that copies
    learns content either way, so this is what tells the two recipes apart (README: CI の結果チェック).
    """
    rate = results["behaviour"]["stop_rate"]["after"]
    if rate < min_stop_rate:
        return [f"EOS stop rate after training {rate:.2f} < {min_stop_rate} (the model did not learn to stop: "
                "is the prompt masked, is the EOS learned?)"]
    return []


ROUGE_NAMES = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L"}


def reading_lines(results: dict, min_margin: float = CONTENT_MARGIN) -> list[str]:
    """Every line of ``reading_sections`` in order (for scripts and tests)."""
    return [line for section in reading_sections(results, min_margin).values() for line in section]


def _rouge_lines(results: dict, min_margin: float = CONTENT_MARGIN) -> list[str]:
    """05's automatic reading of results.json, in Japanese: what the numbers allow one to say, no more.

    Every figure is printed as the table rounds it (1 decimal), and differences are taken between the
    rounded values, so the text and the table always agree.
    """
    r1 = lambda x: round(x, 1)  # noqa: E731
    lines = []
    for key, name in ROUGE_NAMES.items():
        m = results["metrics"][key]
        if m["ci_low"] > 0:
            label, verdict = "改善の 95% 信頼区間", "は 0 を含まず、改善したと言えます"
        elif m["ci_high"] < 0:
            label, verdict = "95% 信頼区間", "は 0 より下で、悪化しています"
        else:
            label, verdict = "95% 信頼区間", "は 0 を含み、この件数では改善があるとは言えません"
        lines.append(f"{name}: {r1(m['before']):.1f} → {r1(m['after']):.1f}。{label} "
                     f"[{m['ci_low']:+.1f}, {m['ci_high']:+.1f}] {verdict}。")
    m = results["metrics"]["rougeL"]
    margin = r1(m["after"]) - r1(m["shuffled"])
    ci = (f"差の 95% 信頼区間 [{m['margin_ci_low']:+.1f}, {m['margin_ci_high']:+.1f}]、" if "margin_ci_low" in m else "")
    invented = (results.get("faithfulness") or {}).get("arms", {}).get("lora", {}).get("with_invented")
    beside = f"ただし、本文にない数か名前を含む出力が {invented:.0%} あります (08 の 2 節)。" if invented is not None else ""
    if margin >= min_margin:
        shaky = ("区間の下限は 5 点を下回るので、件数を増やすと変わり得ます。"
                 if "margin_ci_low" in m and m["margin_ci_low"] < min_margin else "")
        lines.append(f"学習後の出力は、自分の参照要約に対して、別レコードの参照要約 (シャッフル対照 {r1(m['shuffled']):.1f}) より "
                     f"ROUGE-L で {margin:.1f} 点高く ({ci}{min_margin:g} 点以上)、**自分の本文に固有の語** を拾っています "
                     f"(本文の内容を正しく要約しているかまでは ROUGE では分かりません)。{shaky}{beside}")
    elif m["ci_low"] > 0:
        lines.append(f"ただし、学習後の出力を別レコードの参照要約 (シャッフル対照) と比べても {r1(m['shuffled']):.1f} 点あり、"
                     f"正しい参照要約との差は {margin:+.1f} 点 ({ci}{min_margin:g} 点未満) にすぎません。改善の大部分は **形式** "
                     "(要約らしい文体・EOS で止まること) によるもので、自分の本文に固有の語を拾えているとは言えません。")
    else:
        lines.append(f"学習後の出力は、別レコードの参照要約 (シャッフル対照) に対しても {r1(m['shuffled']):.1f} 点 "
                     f"(差 {margin:+.1f}、{ci.rstrip('、')})で、自分の本文に固有の語を拾えているとは言えません。".replace("、)", ")"))
    gap = r1(m["lead"]) - r1(m["after"])
    if gap > 0:
        lines.append(f"lead ベースライン (本文の 1 文目をそのまま要約とみなす) は ROUGE-L {r1(m['lead']):.1f} 点で、"
                     f"学習後のモデルはそれに {gap:.1f} 点届きません。")
    else:
        lines.append(f"lead ベースライン (本文の 1 文目) は ROUGE-L {r1(m['lead']):.1f} 点で、学習後のモデルはそれを "
                     f"{-gap:.1f} 点上回っています。")
    b = results["behaviour"]
    ratio, before_ratio = b["length_ratio"]["after"], b["length_ratio"]["before"]
    judged = "短すぎます" if ratio < 0.7 else "長すぎます" if ratio > 1.5 else "参照要約に近い長さです"
    lines.append(f"出力の長さ (文字数の中央値) は参照要約の約 {ratio:.1f} 倍で、{judged} (学習前は {before_ratio:.1f} 倍)。")
    lines.append(f"EOS で止まった割合は {b['stop_rate']['before']:.0%} → {b['stop_rate']['after']:.0%}、"
                 f"参照要約の損失は {b['ref_loss']['before']:.2f} → {b['ref_loss']['after']:.2f} nats/token でした。")
    return lines


def reading_sections(results: dict, min_margin: float = CONTENT_MARGIN) -> dict[str, list[str]]:
    """The same reading, grouped the way 05 presents it: ROUGE and behaviour, then 05 §7, §8 and §9."""
    from utils.evaluation.forgetting import curve_lines

    return {"ROUGE と振る舞い (4〜6 節)": _rouge_lines(results, min_margin), "プロンプトだけで足りたか (08 の 1 節)": kshot_lines(results),
            "本文にない事実 (08 の 2 節)": faithfulness_lines(results),
            "アダプタの強さと忘却 (08 の 3 節)": curve_lines(results["forgetting"]) if results.get("forgetting") else []}


def _verdict(ci_low: float, ci_high: float, higher: str, lower: str) -> str:
    if ci_low > 0:
        return f"0 を含まず、{higher}"
    if ci_high < 0:
        return f"0 より下で、{lower}"
    return "0 を含み、この件数では差があるとは言えません"


def kshot_lines(results: dict) -> list[str]:
    """Would a prompt have done it? Each k-shot arm against LoRA (ROUGE-L, paired CI), and the k that did not run."""
    arms, lora_vs = results.get("arms") or {}, results.get("lora_vs") or {}
    lines = []
    for name, row in arms.items():
        if name in ("0-shot", "lora"):
            continue
        d = lora_vs[name]["rougeL"]
        lines.append(f"{name} (例を {name.split('-')[0]} 件見せたプロンプト): ROUGE-L {row['rougeL']:.1f} "
                     f"(0-shot {arms['0-shot']['rougeL']:.1f}、LoRA {arms['lora']['rougeL']:.1f})。LoRA − {name} の 95% 信頼区間 "
                     f"[{d['ci_low']:+.1f}, {d['ci_high']:+.1f}] は "
                     f"{_verdict(d['ci_low'], d['ci_high'], 'LoRA が上回ります', f'{name} が上回ります')}。")
    for plan in results.get("kshot_plans") or []:
        if not plan["fits"]:
            lines.append(f"{plan['k']}-shot は実行していません。{plan['reason']}")
    return lines


def faithfulness_lines(results: dict) -> list[str]:
    """Invented numbers and names, per arm and on the references, with the planted control first."""
    f = results.get("faithfulness")
    if not f:
        return []
    arms, ref, planted = f["arms"], f["reference"], f["planted"]
    lines = [f"対照: どの出力にも本文にない数と名前を 1 つずつ植え込むと、数は {planted['numbers_flagged']}/{planted['n']} 件、"
             f"名前は {planted['names_flagged']}/{planted['n']} 件を「本文にない」と検出しました"
             f"{'' if planted['numbers_flagged'] == planted['names_flagged'] == planted['n'] else ' (全件ではありません: 測り方を確かめてください)'}。"]
    d = f["lora_vs"]["0-shot"]["with_invented"]
    others = "".join(f"、{name} {row['with_invented']:.0%}" for name, row in arms.items() if name not in ("0-shot", "lora"))
    lines.append(f"本文にない数か名前を 1 つ以上含む出力: 学習前 {arms['0-shot']['with_invented']:.0%} → 学習後 "
                 f"{arms['lora']['with_invented']:.0%} (差の 95% 信頼区間 [{d['ci_low'] * 100:+.0f}, {d['ci_high'] * 100:+.0f}] ポイントは "
                 f"{_verdict(d['ci_low'], d['ci_high'], '学習後に増えています', '学習後に減っています')}){others}。"
                 f"参照要約でも {ref['with_invented']:.0%} です (機械翻訳や本文の省略のため、参照要約にも本文にない語が入ります)。")
    carried = [f"{name} {c['names_in_examples'] / c['invented_names']:.0%}" for name, c in (f.get("from_examples") or {}).items()
               if c["invented_names"]]
    if carried:
        lines.append(f"k-shot の出力にある「本文にない名前」のうち、例 (shot) の中にあった名前の割合: {'、'.join(carried)}。"
                     "例を見せると、例の要約の内容をそのまま持ち込むことがあります。")
    prec = lambda row: "—" if row["entity_precision"] is None else f"{row['entity_precision']:.2f}"  # noqa: E731
    novel = lambda row: "—" if row["novel_bigram_share"] is None else f"{row['novel_bigram_share']:.0%}"  # noqa: E731
    lines.append(f"名前が本文にある割合 (固有名詞の適合率): 学習前 {prec(arms['0-shot'])} → 学習後 {prec(arms['lora'])} "
                 f"(参照要約 {prec(ref)})。本文にない内容語の 2-gram の割合: 学習前 {novel(arms['0-shot'])} → 学習後 "
                 f"{novel(arms['lora'])} (参照要約 {novel(ref)}。低いほど本文の言い回しを写しています)。")
    return lines
