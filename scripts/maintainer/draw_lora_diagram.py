#!/usr/bin/env python
"""Draw images/lora_diagram.png: h = W x + (alpha / r) * B A x, with the shapes of each matrix."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, Rectangle


def main(path: Path = Path(__file__).resolve().parents[2] / "images" / "lora_diagram.png") -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from utils.classroom.display import use_japanese_font

    use_japanese_font()  # the participants read Japanese: bundled IPAexGothic
    fig, ax = plt.subplots(figsize=(9.5, 4.8))
    ax.set_xlim(0, 19)
    ax.set_ylim(0, 9.6)
    ax.axis("off")

    def box(x, y, w, h, colour, label, sub=""):
        ax.add_patch(Rectangle((x, y), w, h, facecolor=colour, edgecolor="black", lw=1.2))
        ax.text(x + w / 2, y + h / 2 + (0.3 if sub else 0), label, ha="center", va="center", fontsize=13, weight="bold")
        if sub:
            ax.text(x + w / 2, y + h / 2 - 0.6, sub, ha="center", va="center", fontsize=9.5)

    def arrow(x0, y0, x1, y1):
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=14, lw=1.3))

    ax.text(1.0, 4.6, "入力 x\n(幅 d)", ha="center", va="center", fontsize=12)
    box(3.4, 5.3, 6.2, 3.2, "#d9d9d9", "W (凍結、学習しない)", "d_out × d_in\n(7B の q_proj: 4096 × 4096)")
    box(3.9, 1.5, 1.4, 2.8, "#a6d96a", "A")
    ax.text(4.6, 1.1, "r × d_in", ha="center", va="center", fontsize=9.5)
    box(7.4, 2.3, 1.4, 1.2, "#a6d96a", "B")
    ax.text(8.1, 1.9, "d_out × r", ha="center", va="center", fontsize=9.5)
    ax.text(6.35, 3.15, "幅 r", fontsize=11, ha="center")
    arrow(1.9, 4.9, 3.4, 6.9)
    arrow(1.9, 4.3, 3.9, 2.9)
    arrow(5.3, 2.9, 7.4, 2.9)
    ax.text(11.3, 2.9, "× α / r", fontsize=12, ha="center", va="center")
    arrow(8.8, 2.9, 10.4, 2.9)
    ax.text(13.6, 4.7, "+", fontsize=26, ha="center", va="center")
    arrow(9.6, 6.9, 13.2, 5.1)
    arrow(12.2, 2.9, 13.2, 4.4)
    arrow(14.1, 4.7, 15.6, 4.7)
    ax.text(16.9, 4.7, "出力 h", fontsize=13, ha="center", va="center")
    ax.text(9.5, 0.35, "h = W x + (α / r) B A x    学習するのは A と B だけ。B は 0 から始めるので、学習はベースモデルそのものから始まる",
            ha="center", fontsize=10)
    ax.text(9.5, 9.25, "LoRA: 凍結した重み行列の横に、幅 r の小さな更新 B A を足す", ha="center", fontsize=13, weight="bold")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
