#!/usr/bin/env python
"""Draw images/lora_diagram.png: h = W x + (alpha / r) * B A x, with the shapes of each matrix."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, Rectangle


def main(path: Path = Path(__file__).resolve().parent.parent / "images" / "lora_diagram.png") -> None:
    fig, ax = plt.subplots(figsize=(9, 4.6))
    ax.set_xlim(0, 18)
    ax.set_ylim(0, 9.2)
    ax.axis("off")

    def box(x, y, w, h, colour, label, sub=""):
        ax.add_patch(Rectangle((x, y), w, h, facecolor=colour, edgecolor="black", lw=1.2))
        ax.text(x + w / 2, y + h / 2 + (0.25 if sub else 0), label, ha="center", va="center", fontsize=13, weight="bold")
        if sub:
            ax.text(x + w / 2, y + h / 2 - 0.4, sub, ha="center", va="center", fontsize=9)

    def arrow(x0, y0, x1, y1):
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=14, lw=1.3))

    ax.text(1.0, 4.5, "x\n(d)", ha="center", va="center", fontsize=13)
    box(3.6, 5.2, 5.3, 3.2, "#d9d9d9", "W (frozen)", "d_out x d_in  (7B: 4096 x 4096)")
    box(4, 1.6, 1.2, 2.6, "#a6d96a", "A")
    ax.text(4.6, 1.25, "r x d_in", ha="center", va="center", fontsize=9)
    box(7.2, 2.3, 1.3, 1.2, "#a6d96a", "B")
    ax.text(7.85, 1.95, "d_out x r", ha="center", va="center", fontsize=9)
    ax.text(6.2, 2.9, "r", fontsize=13, ha="center")
    arrow(1.6, 4.7, 3.6, 6.8)
    arrow(1.6, 4.3, 4.0, 2.9)
    arrow(5.2, 2.9, 7.2, 2.9)
    ax.text(11.2, 2.9, "x  alpha / r", fontsize=12, ha="center", va="center")
    arrow(8.5, 2.9, 9.9, 2.9)
    ax.text(13.3, 4.6, "+", fontsize=26, ha="center", va="center")
    arrow(8.9, 6.8, 12.9, 5.0)
    arrow(12.4, 2.9, 12.9, 4.3)
    arrow(13.8, 4.6, 15.3, 4.6)
    ax.text(16.4, 4.6, "h", fontsize=14, ha="center", va="center")
    ax.text(9, 0.55, "h = W x + (alpha / r) * B A x      only A and B are trained; B starts at 0, so training starts from the base model",
            ha="center", fontsize=9.5)
    ax.text(9, 8.95, "LoRA: a low-rank update beside each frozen weight matrix", ha="center", fontsize=13, weight="bold")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
