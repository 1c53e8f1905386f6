"""Curves drawn only from the stages' metrics files: RL training curves with the PTST stages
shaded (RECIPE §6 D-F), the overthinking view (accuracy and share of outputs by length bucket,
§6 A) and reflection-word counts (§6 C), for one run or several on the same axes."""

from __future__ import annotations

import json
import math
from pathlib import Path

from visionr1.cold_start import OUTPUT_REFLECTION_WORDS, reflection_counts

STAGE_COLORS = ("#dbe9f6", "#fde2c8", "#d9f0d3", "#eadcf0", "#f6d9d9")
TRAINING_PANELS = (  # (metrics.jsonl key, title, y label)
    ("reward", "Reward (HFRRF or the run's reward set)", "mean reward per step"),
    ("rewards/accuracy_reward/mean", "Training accuracy", "share of completions correct"),
    ("completions/mean_length", "Completion length", "mean tokens per completion"),
)


def read_jsonl(path: str | Path) -> list[dict]:
    """Records of a JSONL file; a torn last line (a run killed mid-write) is skipped, any other bad
    line raises ValueError naming the file and line."""
    path = Path(path)
    lines = path.read_text().splitlines()
    out = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i == len(lines):
                continue
            raise ValueError(f"{path}:{i}: not valid JSON ({e})") from None
    return out


def training_records(metrics_path: str | Path) -> list[dict]:
    """Per-step records of an RL run (03's metrics.jsonl), one per step (the latest write wins when
    a resumed run logged a step twice), in step order; the final summary line is left out."""
    by_step = {}
    for r in read_jsonl(metrics_path):
        if "reward" in r and "step" in r:
            by_step[int(r["step"])] = r
    return [by_step[k] for k in sorted(by_step)]


def stage_spans(records: list[dict]) -> list[tuple[int, int, int]]:
    """(stage, first step, last step) of each PTST stage in the records."""
    spans: list[list[int]] = []
    for r in records:
        st = int(r.get("stage", 1))
        if spans and spans[-1][0] == st:
            spans[-1][2] = r["step"]
        else:
            spans.append([st, r["step"], r["step"]])
    return [tuple(s) for s in spans]


def smooth(values: list[float], window: int) -> list[float]:
    """Trailing moving average (window >= 1), NaN-aware."""
    out = []
    for i in range(len(values)):
        w = [v for v in values[max(0, i - window + 1):i + 1] if v is not None and not math.isnan(v)]
        out.append(sum(w) / len(w) if w else float("nan"))
    return out


def mean_of(records: list[dict], key: str, first: int | None = None, last: int | None = None) -> float:
    """Mean of `key` over the first or last N records."""
    rs = records[:first] if first else records[-last:] if last else records
    vals = [r[key] for r in rs if key in r]
    if not vals:
        raise ValueError(f"no {key!r} in the records")
    return sum(vals) / len(vals)


def shade_stages(ax, records: list[dict], labels: bool = True) -> None:
    """Shade each PTST stage's steps, with its length limit and generations when known."""
    for st, a, b in stage_spans(records):
        ax.axvspan(a - 0.5, b + 0.5, color=STAGE_COLORS[(st - 1) % len(STAGE_COLORS)], alpha=0.6, lw=0,
                   label=f"stage {st}" if labels else None)


def plot_training(runs: dict[str, list[dict]], path: str | Path | None = None, window: int = 10,
                  stage_info: dict[str, list[dict]] | None = None):
    """Reward, training accuracy and completion length against RL step, one line per run (smoothed
    over `window` steps, raw values faint), the first run's PTST stages shaded. Returns the figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(TRAINING_PANELS), figsize=(5.2 * len(TRAINING_PANELS), 3.8))
    first = next(iter(runs.values()))
    for ax, (key, title, ylabel) in zip(axes, TRAINING_PANELS):
        shade_stages(ax, first)
        for i, (name, recs) in enumerate(runs.items()):
            xs = [r["step"] for r in recs]
            ys = [r.get(key, float("nan")) for r in recs]
            color = f"C{i}"
            if len(runs) == 1:
                ax.plot(xs, ys, color=color, alpha=0.25, lw=0.8)
            ax.plot(xs, smooth(ys, window), color=color, lw=1.8, label=f"{name} ({window}-step mean)")
        ax.set(title=title, xlabel="RL step", ylabel=ylabel)
        ax.grid(alpha=0.3)
    if stage_info:
        names = ", ".join(f"stage {k}: {s['max_completion_length']} tok x {s['num_generations']}"
                          for k, s in enumerate(next(iter(stage_info.values())), 1))
        fig.suptitle(f"GRPO under PTST ({names})", fontsize=10)
    axes[0].legend(fontsize=8, loc="best")
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=110)
    return fig


# ---------------------------------------------------------------------------------------------
# The overthinking view and reflection words (from 04's per-sample files)
# ---------------------------------------------------------------------------------------------
def bucket_labels(edges: list[int]) -> list[str]:
    """[4096, 8192] -> ["0-4K", "4K-8K", "8K+"] (tokens; K only for multiples of 1024)."""
    def k(x):
        return f"{x // 1024}K" if x % 1024 == 0 else str(x)
    bounds = [0, *edges]
    return [f"{k(a) if a else 0}-{k(b)}" for a, b in zip(bounds, bounds[1:])] + [f"{k(edges[-1])}+"]


def length_buckets(lengths: list[int], correct: list[bool], edges: list[int]) -> list[dict]:
    """Outputs binned by length (RECIPE §6 A): per bucket its label, count, share of outputs and
    accuracy (None for an empty bucket).

    >>> [(b["label"], b["n"], b["share"], b["accuracy"]) for b in length_buckets([10, 50, 90, 200], [1, 1, 0, 0], [64, 128])]
    [('0-64', 2, 0.5, 1.0), ('64-128', 1, 0.25, 0.0), ('128+', 1, 0.25, 0.0)]
    """
    if sorted(edges) != list(edges) or not edges:
        raise ValueError(f"length bucket edges must be increasing and non-empty, got {edges}")
    labels = bucket_labels(edges)
    groups: list[list[bool]] = [[] for _ in labels]
    for n, c in zip(lengths, correct):
        groups[sum(n >= e for e in edges)].append(bool(c))
    total = max(1, len(lengths))
    return [{"label": lab, "n": len(g), "share": round(len(g) / total, 4),
             "accuracy": round(sum(g) / len(g), 4) if g else None} for lab, g in zip(labels, groups)]


def reflection_words(outputs: dict[str, list[dict]], n: int, words: tuple[str, ...] = OUTPUT_REFLECTION_WORDS
                     ) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """(counts per model, outputs counted per model) of the reflection words in each model's first `n`
    responses (04's per-sample records; the paper counts 50 per model, docs/recipe.md §6 C).

    >>> reflection_words({"ci": [{"response": "Wait. Hmm"}, {"response": "Wait"}], "rl": []}, 50)
    ({'ci': {'Wait': 2, 'Hmm': 1, 'Alternatively': 0}, 'rl': {'Wait': 0, 'Hmm': 0, 'Alternatively': 0}}, {'ci': 2, 'rl': 0})
    """
    texts = {name: [r["response"] for r in recs[:n]] for name, recs in outputs.items()}
    return ({name: reflection_counts(t, words) for name, t in texts.items()},
            {name: len(t) for name, t in texts.items()})


def plot_overthinking(per_model: dict[str, list[dict]], path: str | Path | None = None, title: str = ""):
    """Share of outputs and accuracy per length bucket, one bar group per model (RECIPE §6 A)."""
    import matplotlib.pyplot as plt

    labels = [b["label"] for b in next(iter(per_model.values()))]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    width = 0.8 / len(per_model)
    for k, (name, buckets) in enumerate(per_model.items()):
        xs = [i + k * width for i in range(len(labels))]
        axes[0].bar(xs, [100 * b["share"] for b in buckets], width, label=name)
        axes[1].bar(xs, [100 * (b["accuracy"] or 0) for b in buckets], width, label=name)
        for x, b in zip(xs, buckets):
            axes[1].annotate(f"n={b['n']}", (x, 100 * (b["accuracy"] or 0)), ha="center", va="bottom", fontsize=7)
    for ax, what in zip(axes, ("Share of outputs", "Accuracy")):
        ax.set_xticks([i + width * (len(per_model) - 1) / 2 for i in range(len(labels))], labels)
        ax.set(title=f"{what} by output length", xlabel="output length (tokens)", ylabel=f"{what.lower()} (%)",
               ylim=(0, 105))
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=110)
    return fig


def plot_reflections(counts: dict[str, dict[str, int]], n_outputs: dict[str, int], path: str | Path | None = None):
    """Reflection-word counts per model over the same number of outputs (RECIPE §6 C)."""
    import matplotlib.pyplot as plt

    words = list(next(iter(counts.values())))
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    width = 0.8 / len(counts)
    for k, (name, c) in enumerate(counts.items()):
        ax.bar([i + k * width for i in range(len(words))], [c[w] for w in words], width,
               label=f"{name} ({n_outputs[name]} outputs)")
    ax.set_xticks([i + width * (len(counts) - 1) / 2 for i in range(len(words))], words)
    ax.set(title="Reflection words per model", xlabel="word", ylabel="occurrences")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=110)
    return fig


# ---------------------------------------------------------------------------------------------
# Runs on disk
# ---------------------------------------------------------------------------------------------
def find_runs(run_dir: Path, names: list[str]) -> dict[str, Path]:
    """Run folders to draw: `names` (folder names beside `run_dir`), or by default `run_dir` and
    its `-zero` / `-long` ablations when they exist. A named run that does not exist is an error."""
    root = run_dir.parent
    if names:
        missing = [n for n in names if not (root / n).is_dir()]
        if missing:
            raise FileNotFoundError(f"run folders not found under {root}: {', '.join(missing)}")
        return {n: root / n for n in names}
    runs = {run_dir.name: run_dir}
    for suffix in ("-zero", "-long"):
        if (root / f"{run_dir.name}{suffix}").is_dir():
            runs[f"{run_dir.name}{suffix}"] = root / f"{run_dir.name}{suffix}"
    return runs


def eval_outputs(runs: dict[str, Path], benchmark: str) -> dict[str, list[dict]]:
    """04's per-sample records for `benchmark`, per model: `model` for one run, `run/model` for
    several (a run evaluated by 04 with models base, ci, rl gives three entries)."""
    out = {}
    for run, path in runs.items():
        for f in sorted((path / "04_evaluate").glob(f"*/{benchmark}.jsonl")):
            name = f.parent.name if len(runs) == 1 else f"{run}/{f.parent.name}"
            out[name] = read_jsonl(f)
    return out


def token_lengths(texts: list[str], tokenizer=None) -> list[int]:
    """Token counts with the model's tokenizer; whitespace words when there is none."""
    if tokenizer is None:
        return [len(t.split()) for t in texts]
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
