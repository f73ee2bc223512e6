"""Checks for the notebooks' 「やってみよう」 exercises.

Each check computes the true answer with the real libraries or the workshop's own functions (PEFT on the
meta device, ``fit_records``, ``format_prompt``, ``optimizer_steps``, ``ja_rouge``) and returns a
:class:`CheckResult` whose text says, in Japanese, whether the answer is right and why. A check never raises
for a wrong or missing answer: the notebook keeps running (in CI the placeholder ``None`` is "unanswered").
Each check costs at most about a second on 2 CPU cores.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from functools import lru_cache

from utils.recipe.config import WorkshopConfig
from utils.recipe.prompt import HEADER_PREFIX, PROMPT_TEMPLATE, fit_records, format_prompt

CORRECT, WRONG, UNANSWERED = "correct", "wrong", "unanswered"
EDIT_MARKER = "# ここを編集"


@dataclass(frozen=True)
class CheckResult:
    """What ``print()`` shows under a check cell; ``status`` and ``expected`` are for tests."""

    status: str  # CORRECT, WRONG or UNANSWERED
    message: str
    expected: object = None

    @property
    def ok(self) -> bool:
        return self.status == CORRECT

    def __str__(self) -> str:
        return self.message


def _correct(text: str, expected=None) -> CheckResult:
    return CheckResult(CORRECT, f"✓ 正解です。{text}", expected)


def _wrong(text: str, expected=None) -> CheckResult:
    return CheckResult(WRONG, f"✗ まだ違います。{text}", expected)


def _unanswered(what: str) -> CheckResult:
    return CheckResult(UNANSWERED, f"… まだ答えが入っていません (未回答)。上の `{EDIT_MARKER}` のセルで {what} を書き、"
                                   "そのセルとこのセルをもう一度実行してください。")


def _is_blank(answer) -> bool:
    return answer is None or (isinstance(answer, str) and not answer.strip())


def _as_int(answer) -> int | None:
    """An integer answer (int, numpy int, or a float such as 2.0e7 with no fraction); None otherwise."""
    if isinstance(answer, bool):
        return None
    if isinstance(answer, numbers.Integral):
        return int(answer)
    if isinstance(answer, numbers.Real) and math.isfinite(float(answer)) and float(answer).is_integer():
        return int(answer)
    return None


def _not_an_int(answer) -> CheckResult:
    return _wrong(f"答えは整数で入れてください (今の答えは {type(answer).__name__} の {answer!r})。")


# ---------------------------------------------------------------------------------------------------------------
# 01: LoRA's trainable parameters for another r, counted by PEFT on the meta device
# ---------------------------------------------------------------------------------------------------------------
@lru_cache(maxsize=8)
def _peft_count(r: int, target_modules: tuple[str, ...], cfg: WorkshopConfig) -> tuple[int, int, dict]:
    import torch
    from peft import get_peft_model
    from transformers import MistralConfig, MistralForCausalLM

    from utils.recipe.memory import MISTRAL_7B
    from utils.recipe.training import lora_config

    lora = lora_config(dataclasses.replace(cfg, lora_r=r, lora_target_modules=target_modules))
    with torch.device("meta"):  # shapes only: no memory, well under a second for the 7B
        model = get_peft_model(MistralForCausalLM(MistralConfig(**MISTRAL_7B)), lora)
    trainable, total = model.get_nb_trainable_parameters()
    shapes: dict[str, dict[str, int]] = {}  # per projection: d_in, d_out and how many layers carry it
    for name, param in model.named_parameters():
        if ".lora_A." not in name and ".lora_B." not in name:
            continue
        module = name.split(".lora_")[0].rsplit(".", 1)[-1]
        entry = shapes.setdefault(module, {"in": 0, "out": 0, "layers": 0})
        if ".lora_A." in name:  # A: (r, d_in)
            entry["in"], entry["layers"] = param.shape[1], entry["layers"] + 1
        else:  # B: (d_out, r)
            entry["out"] = param.shape[0]
    return trainable, total, shapes


def peft_lora_params(cfg: WorkshopConfig, r: int) -> tuple[int, int, dict]:
    """(trainable, all parameters, per-projection shapes) of the 7B (Mistral-7B-v0.1's shape) wrapped with
    the workshop's LoraConfig at rank ``r``, as PEFT's ``get_nb_trainable_parameters()`` counts them."""
    return _peft_count(int(r), tuple(cfg.lora_target_modules), cfg)


def check_lora_params(answer, r: int, cfg: WorkshopConfig) -> CheckResult:
    """01: LoRA's trainable parameter count of the 7B at rank ``r`` (the profile's target modules)."""
    if _is_blank(answer):
        return _unanswered(f"r = {r} のときの LoRA のパラメータ数 (整数)")
    value = _as_int(answer)
    if value is None:
        return _not_an_int(answer)
    truth, total, shapes = peft_lora_params(cfg, r)
    per_rank = truth // r
    n_layers = max((s["layers"] for s in shapes.values()), default=0)
    lines = [f"  {m:<9}: {r} × ({s['in']:,} + {s['out']:,}) × {s['layers']} 層 = {r * (s['in'] + s['out']) * s['layers']:,}"
             for m, s in shapes.items()]
    breakdown = "\n".join(["内訳 (A は r × d_in、B は d_out × r なので 1 つの射影に r × (d_in + d_out)):", *lines])
    scaling = ""
    if cfg.lora_r != r:
        scaling = (f"\nLoRA のパラメータ数は r に比例します: プロファイルの r = {cfg.lora_r} では {per_rank * cfg.lora_r:,}、"
                   f"r = {r} ではその {r}/{cfg.lora_r} 倍です。")
    if value == truth:
        return _correct(f"PEFT の get_nb_trainable_parameters() も r = {r} で {truth:,} と数えました "
                        f"(7B 全体 {total:,} の {truth / total:.2%})。\n{breakdown}{scaling}", truth)
    if cfg.lora_r != r and value == per_rank * cfg.lora_r:
        hint = f"これはプロファイルの r = {cfg.lora_r} のときの数です。r を {r} にして数え直しましょう。"
    elif n_layers and value * n_layers == truth:
        hint = f"これは 1 層分の数です。デコーダ層の数 ({n_layers}) を掛けましょう。"
    elif value == per_rank:
        hint = "これは r = 1 のときの数です。r を掛けましょう。"
    else:
        hint = f"ヒント: 上の count_lora_params(MISTRAL_7B, {r}, cfg.lora_target_modules) と同じ計算です。"
        if "k_proj" in shapes:
            hint += f"k_proj と v_proj の出力は KV ヘッドの分 ({shapes['k_proj']['out']:,}) だけの幅です。"
    return _wrong(f"あなたの答え {value:,} に対し、PEFT が数えた r = {r} の学習パラメータ数は {truth:,} です。{hint}\n"
                  f"{breakdown}{scaling}", truth)


# ---------------------------------------------------------------------------------------------------------------
# 02: how many train records do not fit another max_length (fit_records decides)
# ---------------------------------------------------------------------------------------------------------------
def check_fit_count(answer, records: list[dict], tokenizer, max_length: int) -> CheckResult:
    """02: records that do not fit ``max_length`` as they are (input shortened + dropped), by ``fit_records``."""
    if _is_blank(answer):
        return _unanswered(f"max_length = {max_length} に収まらない学習レコードの件数 (整数)")
    value = _as_int(answer)
    if value is None:
        return _not_an_int(answer)
    _, report = fit_records(records, tokenizer, max_length, with_completion=True)
    truncated, dropped, kept = report["input_truncated"], report["dropped_too_long"], report["kept_as_is"]
    truth = truncated + dropped
    facts = (f"fit_records で数えると、max_length = {max_length} では {len(records)} 件のうち {truth} 件が収まりません: "
             f"本文を短くして収める {truncated} 件 + 要約だけでも収まらず除外する {dropped} 件 (そのまま使えるのは {kept} 件)。")
    lesson = ("\nmax_length を小さくすると、本文を削られる例と除外される例が増えます。大きくすると削られる例は減りますが、"
              "1 件あたりのトークン数 (学習の計算量と活性化のメモリ) が増えます。")
    tolerance = max(2, round(0.005 * len(records)))
    if value == truth:
        return _correct(facts + lesson, truth)
    if abs(value - truth) <= tolerance:
        return CheckResult(CORRECT, f"✓ ほぼ正解です (差 {abs(value - truth)} 件)。{facts}\n"
                           "差が出るのは数え方の違いです: lengths は prompt と completion を別々にトークン化して足した長さ、"
                           "fit_records は 1 つの文字列にしてからトークン化するので、境目で 1 トークンずれる例があります。"
                           + lesson, truth)
    if value == truncated:
        hint = "これは本文を短くされる件数だけです。要約だけでも収まらず除外される件数も足しましょう。"
    elif value == kept:
        hint = "これは収まる (そのまま使える) 件数です。聞いているのは収まらない件数です。"
    else:
        hint = ("ヒント: 上の lengths[\"total\"] (prompt + completion + EOS のトークン数) が "
                f"{max_length} を超える件数を数えます。")
    return _wrong(f"あなたの答えは {value} 件です。{hint}\n{facts}", truth)


# ---------------------------------------------------------------------------------------------------------------
# 03: the prompt written by hand, compared character by character with format_prompt
# ---------------------------------------------------------------------------------------------------------------
def _section_at(text: str, pos: int) -> str:
    start = text.rfind(HEADER_PREFIX + " ", 0, pos + 1)
    if start < 0:
        return "先頭"
    return text[start:text.find("\n", start)] if "\n" in text[start:] else text[start:]


def check_prompt(answer, record: dict) -> CheckResult:
    """03: a prompt written by hand for ``record`` must equal ``format_prompt`` exactly."""

    if _is_blank(answer):
        return _unanswered("テンプレートに沿ったプロンプトの文字列")
    if not isinstance(answer, str):
        return _wrong(f"答えは文字列 (str) で入れてください (今の答えは {type(answer).__name__})。")
    expected = format_prompt(record["instruction"], record["input"])
    if answer == expected:
        return _correct(f"{len(expected)} 文字すべてが utils.recipe.prompt.format_prompt の結果と一致しました。"
                        "学習 (04) でも推論 (03, 05) でもこの 1 つのテンプレートを使うので、1 文字でも違うと"
                        "学習時と違う入力をモデルに見せることになります。最後の `### 応答` と改行の後ろが、モデルに書かせる部分です。",
                        expected)
    pos = next((i for i, (a, b) in enumerate(zip(answer, expected)) if a != b), min(len(answer), len(expected)))
    lo, hi = max(0, pos - 12), pos + 12
    where = (f"先頭から {pos} 文字目 (0 から数えて、{expected[:pos].count(chr(10)) + 1} 行目、"
             f"「{_section_at(expected, pos)}」の部分) で最初に違います。\n"
             f"  あなたの答え: {answer[lo:hi]!r}\n"
             f"  正しい形    : {expected[lo:hi]!r}\n"
             f"  その位置の文字: あなた {answer[pos:pos + 1]!r} / 正しい形 {expected[pos:pos + 1]!r}")
    if expected.startswith(answer):
        hint = f"答えが途中で終わっています。続きは {expected[len(answer):][:20]!r}{'…' if len(expected) - len(answer) > 20 else ''} です。"
    elif answer.startswith(expected):
        hint = f"正しい形の後ろに余分な文字 {answer[len(expected):][:20]!r} が続いています。"
    elif "".join(answer.split()) == "".join(expected.split()):
        hint = "違うのは改行や空白だけです。見出しと本文の間は改行 1 つ、セクションの間は空行 (改行 2 つ)、最後は `### 応答` の後に改行 1 つです。"
    else:
        template = PROMPT_TEMPLATE.format(instruction="…", input="…").replace("\n", "\\n")
        hint = f"テンプレート `{template}` と見比べてください。"
    return _wrong(f"{where}\n{hint}", expected)


# ---------------------------------------------------------------------------------------------------------------
# 04: optimizer steps for another batch size / gradient accumulation
# ---------------------------------------------------------------------------------------------------------------
def check_optimizer_steps(answer, n_records: int, cfg: WorkshopConfig, batch_size: int, accumulation: int) -> CheckResult:
    """04: optimizer steps of one process with ``batch_size`` x ``accumulation``, by ``training.optimizer_steps``."""
    from utils.recipe.training import optimizer_steps

    if _is_blank(answer):
        return _unanswered(f"バッチ {batch_size}・勾配累積 {accumulation} のときの最適化ステップ数 (整数)")
    value = _as_int(answer)
    if value is None:
        return _not_an_int(answer)
    other = dataclasses.replace(cfg, per_device_train_batch_size=batch_size, gradient_accumulation_steps=accumulation)
    truth = optimizer_steps(n_records, other, n_processes=1)
    current = optimizer_steps(n_records, cfg, n_processes=1)  # the profile's own batch x accumulation
    epochs = cfg.num_train_epochs
    batches = math.ceil(n_records / batch_size)
    updates = math.ceil(batches / accumulation)
    total = (f"{updates} × {epochs:g} エポック = {truth}" if float(updates * epochs).is_integer()
             else f"ceil({updates} × {epochs:g} エポック) = {truth}")
    formula = (f"1 エポックのバッチ数 ceil({n_records} / {batch_size}) = {batches}、"
               f"更新回数 ceil({batches} / {accumulation}) = {updates}、合計 {total} 回 "
               f"(実効バッチ {batch_size} × {accumulation} = {batch_size * accumulation} 件/更新)。")
    if value == truth:
        compare = (f"\n今のプロファイル ({cfg.per_device_train_batch_size} × {cfg.gradient_accumulation_steps}) では {current} 回"
                   "でした。実効バッチが大きいほど更新回数は減ります (1 回の更新が見る例は増えます)。") if current != truth else ""
        return _correct(formula + compare, truth)
    if value == current:
        hint = (f"これは今のプロファイルの設定 ({cfg.per_device_train_batch_size} × {cfg.gradient_accumulation_steps}) のステップ数です。"
                f"バッチ {batch_size}・勾配累積 {accumulation} で計算し直しましょう。")
    elif value == updates and epochs != 1:
        hint = f"これは 1 エポック分です。エポック数 ({epochs:g}) を掛けましょう。"
    elif value in (math.floor(n_records / batch_size / accumulation * epochs), round(n_records / batch_size / accumulation * epochs)):
        hint = "割り算の端数を切り捨てていませんか。最後の半端なバッチや半端な累積も 1 回と数えます (切り上げ)。"
    else:
        hint = "ヒント: 上のセルの「updates per epoch」と同じ計算を、バッチと勾配累積を変えて行います。"
    return _wrong(f"あなたの答えは {value} 回です。{hint}\n{formula}", truth)


# ---------------------------------------------------------------------------------------------------------------
# 05: the participant's own summary, scored with the workshop's Japanese ROUGE
# ---------------------------------------------------------------------------------------------------------------
def pick_example(passages: list[str], references: list[str], max_chars: int = 300) -> int:
    """Index of the first record short enough to summarise by hand: a passage of at most ``max_chars``
    characters and a one-line reference at most a quarter of its length (else the first record)."""
    for i, (passage, ref) in enumerate(zip(passages, references)):
        if len(passage) <= max_chars and "\n" not in ref.strip() and len(ref) <= len(passage) / 4:
            return i
    return 0


COPY_ROUGE_L = 90.0  # ROUGE-L (F1 x 100) at or above which a summary counts as a copy of the text it is compared with


def _copied_from(answer: str, reference: str, passage: str | None) -> str | None:
    """Why ``answer`` is not the participant's own summary (a copy of the reference or of the passage's lead), or None."""
    from utils.evaluation.metrics import ja_rouge, lead_sentence

    def same(a: str, b: str) -> bool:
        return bool(b.strip()) and (a.strip() == b.strip() or ja_rouge([a], [b])["rougeL"] >= COPY_ROUGE_L)

    if same(answer, reference):
        return (f"参照要約をほぼそのまま写しています (ROUGE-L が {COPY_ROUGE_L:g} 以上)。この演習は、本文を読んで自分の言葉で要約したとき "
                "ROUGE が何点になるかを見るものです。参照要約を見ずに書き直してから、もう一度実行してください。")
    if passage and same(answer, lead_sentence(passage)):
        return ("本文の 1 文目をそのまま写しています (それは lead ベースラインと同じです)。自分の言葉で書き直してから、"
                "もう一度実行してください。")
    if len(answer.strip()) < 5:
        return "短すぎます。本文の要点を 1〜2 文で書いてください。"
    return None


def check_own_summary(answer, reference: str, after: str, before: str | None = None,
                      passage: str | None = None) -> CheckResult:
    """05: score the participant's summary against ``reference`` beside the models' outputs (an open exercise)."""
    from utils.evaluation.metrics import ja_rouge, lead_sentence

    if _is_blank(answer):
        return _unanswered("本文を読んで自分で書いた要約 (文字列)")
    if not isinstance(answer, str):
        return _wrong(f"要約は文字列 (str) で入れてください (今の答えは {type(answer).__name__})。")
    copied = _copied_from(answer, reference, passage)
    if copied:
        return _wrong(copied)
    rows = [("あなたの要約", answer), ("学習後のモデル", after)]
    if before is not None:
        rows.append(("学習前のモデル", before))
    if passage is not None:
        rows.append(("lead (本文の 1 文目)", lead_sentence(passage)))
    scores = {label: ja_rouge([text], [reference]) for label, text in rows}
    table = ["ROUGE-1  ROUGE-2  ROUGE-L  要約 (参照要約と比べた F1 × 100)"]
    table += [f"{s['rouge1']:7.1f}  {s['rouge2']:7.1f}  {s['rougeL']:7.1f}  {label}" for label, s in scores.items()]
    mine, model = scores["あなたの要約"]["rougeL"], scores["学習後のモデル"]["rougeL"]
    compare = ("学習後のモデルより高い" if mine > model else "学習後のモデルと同じ" if mine == model else "学習後のモデルより低い")
    text = ("自分の要約を採点しました (正解が 1 つではない自由課題なので、自分で書けていれば ✓ です。参照要約や本文の 1 文目の"
            "写しは ✗ にします)。\n" + "\n".join(table) + "\n"
            f"あなたの ROUGE-L は {mine:.1f} で、{compare}点です。\n"
            "読み方: ROUGE は参照要約と同じ語 (MeCab で分かち書きした語) をどれだけ含むかだけを数えます。"
            "内容が正しくても言い換えると点は下がり、参照要約の語を並べただけの不自然な文でも点は上がります。"
            "自分の要約の点が思ったより低ければ、参照要約とどの語が違うかを見比べてみてください。"
            "ROUGE の数字は 1 件ではぶれが大きいので、モデルどうしの比較には 4 節の表のように、多くの例の平均と信頼区間を使います。")
    return CheckResult(CORRECT, "✓ " + text, scores)


# ---------------------------------------------------------------------------------------------------------------
# 05: find the invented numbers and names yourself
# ---------------------------------------------------------------------------------------------------------------
def pick_invented_example(outputs: list[str], passages: list[str], max_chars: int = 400) -> int:
    """Index of the first output with one to three invented items and a passage short enough to read (else 0)."""
    from utils.evaluation.faithfulness import invented_names, invented_numbers

    for i, (out, passage) in enumerate(zip(outputs, passages)):
        n = len(invented_numbers(out, passage)) + len(invented_names(out, passage))
        if 1 <= n <= 3 and len(passage) <= max_chars:
            return i
    return 0


def check_invented(answer, output: str, passage: str) -> CheckResult:
    """05: the numbers and names of ``output`` that its passage does not contain, as the participant found them,
    against what ``utils.evaluation.faithfulness`` flags (a number counts by its value, so "2016年6月17日" or "6月17日" both match)."""
    from utils.evaluation.faithfulness import invented_names, invented_numbers, names, normalise, numbers

    if answer is None:
        return _unanswered("本文にない数・名前のリスト (例: [\"2016年6月17日\", \"マイケル\"]、無ければ [])")
    if isinstance(answer, str) or not isinstance(answer, (list, tuple, set)) or not all(isinstance(a, str) for a in answer):
        return _wrong("答えは文字列のリストで入れてください (例: [\"2016年6月17日\", \"マイケル\"]。無ければ [])。")
    truth = [n.text for n in invented_numbers(output, passage)] + [n.text for n in invented_names(output, passage)]
    found = {normalise(a).strip() for a in answer if a.strip()}

    def covers(item: str) -> bool:
        return any(a in item or item in a for a in found if a)

    missed = [t for t in truth if not covers(t)]
    extra = [a for a in found if not any(a in t or t in a for t in truth)]
    supported = [a for a in extra if normalise(a) in normalise(passage)]
    counted = {n.text for n in numbers(output)} | {n.text for n in names(output)}
    if not missed and not extra:
        return _correct(f"本文にない数・名前は {truth or 'ありません'} でした (utils.evaluation.faithfulness が数えたものと同じ)。"
                        "2 節の表の「本文にない数か名前を含む出力」は、これを全部の出力について数えた割合です。", truth)
    hints = []
    if missed:
        hints.append(f"見落とし: {missed} (本文を検索してみてください。数は値で、日付は年・月・日の組で照合します)")
    if supported:
        hints.append(f"{supported} は本文にあります (本文にあるものは「作った事実」ではありません)")
    others = [a for a in extra if a not in supported]
    if others:
        where = "出力にない語です" if not any(a in normalise(output) for a in others) else "数えた語に当たりません"
        hints.append(f"{others} は{where} (数えるのは数と名前: {sorted(counted)})")
    return _wrong("。".join(hints) + "。", truth)


GUESSES = ("上がる", "下がる", "ノイズの範囲")


def check_sweep_guess(answer, diff: dict, noise: float | None) -> CheckResult:
    """06: the participant's guess for their own run against the default, read by the grid's pre-registered noise
    rule (``utils.sweep.study.beyond_noise``: the paired CI excludes 0 and the difference is larger than the seed spread)."""
    from utils.sweep.study import beyond_noise

    if _is_blank(answer):
        return _unanswered(f"MY_GUESS ({' / '.join(map(repr, GUESSES))} のどれか)")
    if answer not in GUESSES:
        return _wrong(f"MY_GUESS は {' / '.join(map(repr, GUESSES))} のどれかにしてください (今は {answer!r})。")
    expected = ("上がる" if diff["diff"] > 0 else "下がる") if beyond_noise(diff, noise) else "ノイズの範囲"
    why = (f"既定との差 {diff['diff']:+.1f} (95% CI [{diff['ci_low']:+.1f}, {diff['ci_high']:+.1f}])、seed による幅 "
           f"{noise:.1f}: 区間が 0 をまたがず、差が幅より大きいときだけ「上がる / 下がる」と読みます。")
    return _correct(f"結果は「{expected}」でした。{why}", expected) if answer == expected else \
        _wrong(f"結果は「{expected}」でした。{why}", expected)
