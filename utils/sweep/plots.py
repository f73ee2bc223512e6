"""The sweep's figures (06 and ``scripts/participant/sweep.py --export``): one figure per claim, ROUGE-L and validation loss.

Every point is a run's validation ROUGE-L **minus the default run's** on the same 48 records, with its paired 95%
CI, and the grey band is ± the seed spread: the pre-registered noise rule drawn, so a point counts only when its
bar clears 0 and it lies outside the band. The right panel is the run's last validation loss (the Trainer's mean
over tokens; no CI). A run the participant added (06's exercise) is drawn in red on every figure whose axis it
lies on.
"""

from __future__ import annotations

from utils.sweep import study

NAMES = {"lora": "LoRA", "full": "全パラメータ", "default": "既定 (LoRA r16, lr 2e-3)"}
LOG_AXES = {"learning_rate", "lora_r", "n_train", "effective_batch"}
PAIR_COLOUR = {"lora": "tab:blue", "full": "tab:orange"}
MINE = "tab:red"
# The figures' titles in Japanese (the claims themselves stay as registered, in English, in the grid file).
TITLES = {
    "lr_ratio": "学習率: LoRA の最良の学習率は全パラメータ学習の約 10 倍か (事前登録)",
    "lr_ratio_wider": "学習率: 全パラメータ側を 2 点広げた追試 (結果を見た後に追加)",
    "lr": "学習率はいちばん効く設定か",
    "rank": "ランク r: 性能はほとんど変わらないか (alpha = 2r)",
    "all_linear": "LoRA を付ける層: 全線形層は attention だけより良いか (学習するパラメータ数はほぼ同じ)",
    "epochs": "エポック数: 1〜3 エポックで足りるか (事前登録: 曲線を見る)",
    "epochs_enough": "エポック数: 1〜3 エポックで足りるか (読み方を結果の後に決めた追試)",
    "batch": "実効バッチ: 大きなバッチは LoRA に不利か (同じ学習率)",
    "data_size": "データ量: 学習レコードが多いほど良いか",
    "dropout": "lora_dropout: ほとんど効かないか",
    "seeds": "学習 seed による幅 (ノイズの大きさ)",
}


def title(claim: dict) -> str:
    """The claim's Japanese title (its registered English text where there is none)."""
    return TITLES.get(claim["id"], claim["claim"])


def axis_of(claim: dict, records: dict[str, dict], default: str) -> str | None:
    """The one knob a claim's runs differ in (None: they differ in more than the knobs, e.g. target layers)."""
    runs = study.claim_runs(claim)
    if claim["kind"] == "best_ratio":
        return "learning_rate"
    if claim["kind"] == "curve":
        return "num_train_epochs"
    configs = [records[r]["config"] for r in dict.fromkeys([*runs, default]) if r in records]
    varying = [k for k in study.KNOBS if len({c.get(k) for c in configs}) > 1]
    return varying[0] if len(varying) == 1 and all(records[r].get("method", "lora") == "lora" for r in runs) else None


def on_axis(records: dict[str, dict], default: str, knob: str, method: str = "lora") -> list[str]:
    """The runs that differ from the default only in ``knob`` (and use ``method``), the default included: every point
    the grid has on that axis, e.g. n_train 128 / 256 / 512 for the data-size claim."""
    base = records[default]["config"]
    out = []
    for run, rec in records.items():
        if rec.get("method", "lora") != method or rec.get("per_epoch"):
            continue
        if all(rec["config"].get(k) == v for k, v in base.items() if k != knob):
            out.append(run)
    return sorted(out, key=lambda r: records[r]["config"][knob])


def figure_runs(claim: dict, records: dict[str, dict], default: str) -> list[str]:
    """The runs a claim's figure draws (its table in 06 lists the same): every point on the claim's axis, e.g. the
    data-size claim names 512 and 128 records and the figure also has 256."""
    if claim["kind"] == "best_ratio":
        return [r for r in study.claim_runs(claim) if r in records]
    if claim["kind"] == "curve":
        return [*claim["runs"], default]
    knob = axis_of(claim, records, default)
    return on_axis(records, default, knob) if knob else list(dict.fromkeys([*study.claim_runs(claim), default]))


def _band(ax, noise: float | None) -> None:
    ax.axhline(0, color="black", lw=0.8)
    if noise:
        ax.axhspan(-noise, noise, color="0.85", zorder=0, label=f"seed による幅 ±{noise:.1f}")


def _pad(ax, values: list[float], least: float = 0.2) -> None:
    """At least ``least`` nats of y range: a gap of 0.01 in validation loss is not drawn as a cliff."""
    if values:
        middle, half = (max(values) + min(values)) / 2, max((max(values) - min(values)) / 2 * 1.15, least / 2)
        ax.set_ylim(middle - half, middle + half)


def _errorbar(ax, xs, rows, colour, label, line=True):
    ys = [r["diff"] for r in rows]
    err = [[r["diff"] - r["ci_low"] for r in rows], [r["ci_high"] - r["diff"] for r in rows]]
    ax.errorbar(xs, ys, yerr=err, fmt="o-" if line else "o", color=colour, label=label, capsize=3)


def _loss(ax, xs, rows, colour, label, marker="o"):
    pts = [(x, r["eval_loss"]) for x, r in zip(xs, rows) if r["eval_loss"] is not None]
    if pts:
        ax.plot(*zip(*pts), marker + "-", color=colour, label=label)


def claim_figure(claim: dict, records: dict[str, dict], default: str, noise: float | None,
                 mine: list[str] = (), title: str | None = None):
    """The figure of one claim: left, validation ROUGE-L − default with paired CIs and the seed band; right, the last
    validation loss. ``mine``: the participant's runs, drawn in red where they lie on this claim's axis."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    _band(left, noise)
    knob = axis_of(claim, records, default)
    if claim["kind"] == "best_ratio":
        for method, group in claim["runs"].items():
            group = [r for r in group if r in records]
            group = sorted(dict.fromkeys(group + [r for r in mine if records[r].get("method", "lora") == method
                                                  and r in on_axis(records, default, knob, method)]),
                           key=lambda r: records[r]["config"][knob])
            rows = study.versus(records, group, default)
            xs = [records[r]["config"][knob] for r in group]
            _errorbar(left, xs, rows, PAIR_COLOUR.get(method, "gray"), NAMES.get(method, method))
            _loss(right, xs, rows, PAIR_COLOUR.get(method, "gray"), NAMES.get(method, method))
            for x, r, row in zip(xs, group, rows):
                if r in mine:
                    left.plot([x], [row["diff"]], "*", color=MINE, ms=14, zorder=5)
                if records[r]["settings"].get("added"):
                    left.annotate("追加", (x, row["ci_low"]), textcoords="offset points", xytext=(0, -11), ha="center", fontsize=8,
                                  color=PAIR_COLOUR.get(method, "gray"))
    elif claim["kind"] == "curve":
        run = claim["runs"][0]
        epochs = study.epoch_records(records[run])
        best = max(epochs, key=lambda e: epochs[e]["validation"]["rougeL"])
        # the verdict compares every epoch with the best epoch of the same run, so the figure does too
        rows = study.versus(epochs, list(epochs), best)
        _errorbar(left, list(epochs), rows, "tab:blue", f"{run} (エポックごと)")
        left.set_xticks(list(epochs))
        steps_per_epoch = records[run]["optimizer_steps"] / max(epochs)
        curve = records[run]["eval_loss"]
        right.plot([p["step"] / steps_per_epoch for p in curve], [p["eval_loss"] for p in curve], "o-", color="tab:blue",
                   label=f"{run} (評価ごと)")
        _pad(right, [p["eval_loss"] for p in curve])
        knob = "num_train_epochs"
    elif knob:
        group = figure_runs(claim, records, default)  # the participant's run is among them when it lies on this axis
        rows = study.versus(records, group, default)
        # data size: the records that fit max_length and were trained, not the n_train asked for
        xs = [records[r]["train_records"] if knob == "n_train" else records[r]["config"][knob] for r in group]
        _errorbar(left, xs, rows, "tab:blue", "LoRA")
        _loss(right, xs, rows, "tab:blue", "LoRA")
        _pad(right, [r["eval_loss"] for r in rows if r["eval_loss"] is not None])
        for x, r, row in zip(xs, group, rows):
            if r in mine:
                left.plot([x], [row["diff"]], "*", color=MINE, ms=14, zorder=5, label="あなたの run")
    else:  # categorical: the claim's runs side by side (e.g. all linear layers vs attention only)
        runs = figure_runs(claim, records, default)
        rows = study.versus(records, runs, default)
        xs = list(range(len(runs)))
        _errorbar(left, xs, rows, "tab:blue", "LoRA", line=False)
        losses = [r["eval_loss"] for r in rows]
        right.plot(xs, losses, "o", color="tab:blue")
        _pad(right, losses)
        for ax in (left, right):
            ax.set_xticks(xs, [NAMES.get(r, r) for r in runs], fontsize=8)
            ax.set_xlim(-0.5, len(xs) - 0.5)
    if knob in LOG_AXES:
        for ax in (left, right):
            ax.set_xscale("log", base=2 if knob in ("lora_r", "n_train", "effective_batch") else 10)
            if knob != "learning_rate" and claim["kind"] != "curve":  # ticks at the values tried, as numbers (not 2^7)
                ax.set_xticks(sorted(set(xs)), [f"{x:g}" for x in sorted(set(xs))])
                ax.minorticks_off()
    label = "学習したレコード数 (max_length に収まった件数)" if knob == "n_train" else study.KNOBS.get(knob, "")
    reference = "最良のエポック" if claim["kind"] == "curve" else "既定"
    left.set(xlabel=label, ylabel=f"validation ROUGE-L − {reference} (ポイント)")
    left.margins(y=0.12)  # room for the "追加" labels under the lowest bars
    right.set(xlabel=label if claim["kind"] != "curve" else "エポック",
              ylabel="検証の損失" if claim["kind"] == "curve" else "検証の損失 (最後の評価)")
    left.legend(fontsize=8, loc="best")
    if right.get_legend_handles_labels()[0]:
        right.legend(fontsize=8, loc="best")
    fig.suptitle(title or claim["claim"], fontsize=10)
    fig.tight_layout()
    return fig


def overview_figure(records: dict[str, dict], default: str, noise: float | None, mine: list[str] = ()):
    """Every trained run against the default, sorted: the whole sweep in one picture (the participant's in red)."""
    import matplotlib.pyplot as plt

    rows = sorted(study.versus(records, study.trained(records), default), key=lambda row: row["diff"])
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(rows) + 1.2))
    if noise:
        ax.axvspan(-noise, noise, color="0.85", zorder=0, label=f"seed による幅 ±{noise:.1f}")
    ax.axvline(0, color="black", lw=0.8)
    for i, row in enumerate(rows):
        colour = MINE if row["run"] in mine else ("tab:orange" if records[row["run"]].get("method") == "full" else "tab:blue")
        ax.errorbar([row["diff"]], [i], xerr=[[row["diff"] - row["ci_low"]], [row["ci_high"] - row["diff"]]], fmt="o",
                    color=colour, capsize=2)
    ax.set_yticks(range(len(rows)), [NAMES.get(r["run"], r["run"]) for r in rows], fontsize=8)
    ax.set_xlabel("validation ROUGE-L − 既定 (ポイント、95% 信頼区間)")
    ax.set_title("全 run と既定の差 (青: LoRA、橙: 全パラメータ、赤: あなたの run)", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig
