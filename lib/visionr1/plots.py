"""Figures shared by the stage notebooks (matplotlib, Agg-safe: files are written, not shown)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt


def sample_grid(items: list[tuple], path: str | Path | None = None, ncols: int = 4, title: str = "",
                width: int = 44):
    """A grid of (image, caption) panels, e.g. a sample's image with its question and answer."""
    n = len(items)
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 4.3 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (img, caption) in zip(axes.flat, items):
        ax.imshow(img, interpolation="nearest")
        ax.set_title("\n".join(textwrap.wrap(caption, width)[:6]), fontsize=7, loc="left")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.93) if title else None)
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def grouped_bars(ax, series: dict[str, dict[str, float]], title: str, ylabel: str):
    """Bars grouped by category (x) with one colour per series, e.g. accuracy per question type
    for the model, a control and chance; values written on the bars."""
    names = list(series)
    cats = list(next(iter(series.values())))
    w = 0.8 / len(names)
    for j, name in enumerate(names):
        xs = [i + (j - (len(names) - 1) / 2) * w for i in range(len(cats))]
        vals = [series[name].get(c, 0.0) for c in cats]
        ax.bar(xs, vals, w, label=name)
        for x, v in zip(xs, vals):
            ax.text(x, v, f"{v:.2f}" if v % 1 else f"{v:.0f}", ha="center", va="bottom", fontsize=6)
    ax.set_xticks(range(len(cats)), cats, rotation=30, ha="right", fontsize=7)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    return ax


def histogram(ax, values: list[float], title: str, xlabel: str, bins: int = 30, label: str | None = None):
    ax.hist(values, bins=bins, alpha=0.7, label=label)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    if label:
        ax.legend(fontsize=8)
    return ax


def accuracy_bars(accuracy: dict[str, float], chance: float | None, title: str, path: str | Path | None = None):
    """One bar per model (share correct, 0-1), a dashed line at chance; e.g. 03's start model, RL
    model and SFT control on the same held-out prompts. Returns the figure."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    colors = ["tab:gray", "tab:blue", "tab:orange", "tab:green", "tab:red"]
    ax.bar(list(accuracy), list(accuracy.values()), color=[colors[i % len(colors)] for i in range(len(accuracy))])
    if chance is not None:
        ax.axhline(chance, color="k", ls="--", lw=1, label="chance")
        ax.legend()
    ax.set(title=title, ylabel="share correct", ylim=(0, 1))
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def benchmark_bars(results: dict[str, dict[str, dict]], title: str, chance: float | None = None,
                   path: str | Path | None = None):
    """04's results: accuracy (percent) per benchmark, one bar per model (`grouped_bars`), a dashed
    line at the nano split's chance level when given. `results`: model -> benchmark -> scores with
    "accuracy", as `stage_report.evaluate_all` returns them. Returns the figure."""
    series = {model: {bench: scores["accuracy"] for bench, scores in per_bench.items()}
              for model, per_bench in results.items()}
    if not series:
        raise ValueError(f"benchmark_bars({title!r}): no results to draw")
    n_bars = len(series) * len(next(iter(series.values()), {}))
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * n_bars), 3.6))
    grouped_bars(ax, series, title, "accuracy (%)")
    if chance is not None:
        ax.axhline(chance, color="k", ls="--", lw=1, label="nano chance")
        ax.legend(fontsize=8)
    ax.set_ylim(0, 100)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
