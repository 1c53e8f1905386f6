"""Figures shared by the stage notebooks (matplotlib, Agg-safe: files are written, not shown)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt


def sample_grid(items: list[tuple], path: str | Path | None = None, ncols: int = 4, title: str = "",
                width: int = 34):
    """A grid of (image, caption) panels, e.g. a sample's image with its question and answer."""
    n = len(items)
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.6 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (img, caption) in zip(axes.flat, items):
        ax.imshow(img, interpolation="nearest")
        ax.set_title("\n".join(textwrap.wrap(caption, width)[:6]), fontsize=7, loc="left")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def bar_chart(ax, data: dict[str, float], title: str, ylabel: str, reference: float | None = None,
              reference_label: str = ""):
    """Bars with their values written on top; an optional dashed reference line (e.g. chance)."""
    keys = list(data)
    bars = ax.bar(keys, [data[k] for k in keys], color="tab:blue")
    for b, k in zip(bars, keys):
        ax.text(b.get_x() + b.get_width() / 2, b.get_height(), f"{data[k]:.2f}", ha="center", va="bottom", fontsize=7)
    if reference is not None:
        ax.axhline(reference, color="tab:red", ls="--", lw=1, label=reference_label)
        ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", labelrotation=35, labelsize=7)
    return ax
