"""k-shot prompting baselines: would a prompt have done what LoRA does?

01 advises "try prompting first"; this module makes that a measured arm of the comparison. The base model gets
k worked examples (shots) in the workshop's own template before the test prompt, with the same greedy generation
as 03/05. The shots are the same for every test record and come from the *train* split only, by one fixed rule:
the train records in a seeded shuffled order, taking the first k whose example fits the room the context leaves
(``select_shots``). A k is run only when k shots + the longest test prompt + ``max_new_tokens`` fit the model's
context window (``plan_shots`` says which k fit and, for the others, why not).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

from utils.recipe.config import shot_counts  # noqa: F401 - the k to try (config field ``kshot``); used here and by 08
from utils.recipe.prompt import format_prompt

SHOT_COUNTS = (1, 3)  # the default k of the k-shot arms (config field ``kshot``; 0-shot is 03's plain prompt, "before")
SHOT_SEPARATOR = "\n\n"  # between worked examples, and between the last one and the test prompt


def plan_path(cfg):
    """Where 03 saves the k-shot plan that 05 reads."""
    return cfg.run_dir / "kshot_plan.json"


def save_plan(plans: list["ShotPlan"], cfg) -> None:
    import json

    path = plan_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([p.to_dict() for p in plans], ensure_ascii=False, indent=1), encoding="utf-8")


def load_plan(cfg) -> list[dict]:
    import json

    path = plan_path(cfg)
    if not path.is_file():
        raise FileNotFoundError(f"{path} がありません。先に notebooks/03_baseline_inference.ipynb を最後まで実行してください "
                                "(k-shot の出力もそこで作ります)。")
    return json.loads(path.read_text(encoding="utf-8"))


def example_text(record: dict) -> str:
    """One worked example: the template filled with a train record, its summary after ``### 応答``."""
    return format_prompt(record["instruction"], record["input"]) + record["output"].strip()


def kshot_prompt(shots: list[dict], prompt: str) -> str:
    """The test ``prompt`` (03's, unchanged) after the worked examples."""
    return "".join(example_text(s) + SHOT_SEPARATOR for s in shots) + prompt


def context_window(model) -> int:
    """Tokens the model attends over: ``max_position_embeddings``, or the sliding window if that is smaller
    (Mistral-style models; past it the test prompt would not see the first shot)."""
    config = model.config
    sizes = [getattr(config, name, None) for name in ("max_position_embeddings", "sliding_window")]
    sizes = [s for s in sizes if isinstance(s, int) and s > 0]
    if not sizes:
        raise ValueError("モデルの設定に max_position_embeddings がなく、コンテキスト長が分かりません。")
    return min(sizes)


def _n_tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, verbose=False)["input_ids"])


def shot_order(train: list[dict], seed: int) -> list[dict]:
    """The train records in the fixed, seeded order that shots are drawn from (independent of file order)."""
    records = sorted(train, key=lambda r: str(r["index"]))
    random.Random(f"kshot-{seed}").shuffle(records)
    return records


def select_shots(train: list[dict], k: int, tokenizer, per_shot_tokens: int, seed: int) -> list[dict]:
    """The first ``k`` records of ``shot_order`` whose worked example (+ separator) has at most
    ``per_shot_tokens`` tokens; fewer than ``k`` when the train split has too few that short."""
    shots = []
    for rec in shot_order(train, seed):
        if _n_tokens(tokenizer, example_text(rec) + SHOT_SEPARATOR) <= per_shot_tokens:
            shots.append(rec)
            if len(shots) == k:
                break
    return shots


@dataclass
class ShotPlan:
    """Whether the k-shot arm runs, with the figures that decide it (saved by 03, read by 05)."""

    k: int
    fits: bool
    context: int  # the model's context window (tokens)
    longest_prompt: int  # tokens of the longest test prompt (03's, fitted to max_length)
    max_new_tokens: int
    total: int | None  # tokens of shots + longest prompt + max_new_tokens (None: no shots chosen)
    shot_ids: list[str] = field(default_factory=list)
    reason: str = ""  # Japanese: why it fits or why not

    def to_dict(self) -> dict:
        return asdict(self)


def plan_shots(train: list[dict], test_prompts: list[str], tokenizer, context: int, max_new_tokens: int,
               seed: int, ks: tuple[int, ...] = SHOT_COUNTS) -> tuple[list[ShotPlan], dict[int, list[dict]]]:
    """For each k: choose its shots and check that they fit the context with every test prompt.

    The room for shots is what the longest test prompt and ``max_new_tokens`` leave of ``context``, shared equally
    by the k shots (so that 3 short examples are preferred to 1 long and 2 missing). Returns the plans and, for the
    k that fit, their shots.
    """
    if not train:
        raise ValueError("train 分割が空なので、k-shot の例を選べません。")
    longest = max(test_prompts, key=lambda p: _n_tokens(tokenizer, p))
    longest_n = _n_tokens(tokenizer, longest)
    room = context - longest_n - max_new_tokens
    plans, chosen = [], {}
    for k in ks:
        base = dict(k=k, context=context, longest_prompt=longest_n, max_new_tokens=max_new_tokens)
        shots = select_shots(train, k, tokenizer, room // k, seed) if room > 0 else []
        if len(shots) < k:
            plans.append(ShotPlan(**base, fits=False, total=None, reason=(
                f"入りません: コンテキスト {context} − 最長の test プロンプト {longest_n} − max_new_tokens {max_new_tokens} "
                f"= {room} トークンに、例 {k} 件 (1 件 {max(0, room // k)} トークン以下) を選べる train レコードが "
                f"{len(shots)} 件しかありません。")))
            continue
        total = _n_tokens(tokenizer, kshot_prompt(shots, longest)) + max_new_tokens
        fits = total <= context
        reason = (f"入ります: 例 {k} 件 + 最長の test プロンプト + max_new_tokens = {total} ≤ コンテキスト {context} トークン。"
                  if fits else f"入りません: 例 {k} 件 + 最長の test プロンプト + max_new_tokens = {total} > {context} トークン。")
        plans.append(ShotPlan(**base, fits=fits, total=total, shot_ids=[str(s["index"]) for s in shots], reason=reason))
        if fits:
            chosen[k] = shots
    return plans, chosen


def arm_name(k: int) -> str:
    """The arm's key in predictions files and results.json ("0-shot" is 03's plain prompt)."""
    return f"{k}-shot"
