"""Curves drawn only from the stages' metrics files: RL training curves with the PTST stages
shaded (docs/recipe.md §6 D-F), the overthinking view (accuracy and share of outputs by length
bucket, docs/recipe.md §6 A) and reflection-word counts (docs/recipe.md §6 C), for one run or
several on the same axes; and the figures 02 and 03 draw from their own records (the SFT loss,
the first and last steps' means, rollouts)."""

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


def step_records(metrics_path: str | Path, key: str) -> list[dict]:
    """Per-step records of a trainer's metrics.jsonl (02's SFT: key "loss"; 03's GRPO: "reward") that
    carry `key`, one per step (the latest write wins when a resumed run logged a step twice), in step
    order; the trainer's end-of-training summary line (train_loss, train_runtime) is left out."""
    by_step = {}
    for r in read_jsonl(metrics_path):
        if key in r and "step" in r:
            by_step[int(r["step"])] = r
    return [by_step[k] for k in sorted(by_step)]


def training_records(metrics_path: str | Path) -> list[dict]:
    """Per-step records of an RL run (03's metrics.jsonl), in step order."""
    return step_records(metrics_path, "reward")


def training_runs(runs: dict[str, Path]) -> tuple[dict[str, list[dict]], dict[str, list[dict]]]:
    """(per-step records, PTST schedule from grpo_params.json) of each run that has 03's
    metrics.jsonl; runs without it are left out."""
    records, schedules = {}, {}
    for name, path in runs.items():
        d = Path(path) / "03_grpo_ptst"
        if (d / "metrics.jsonl").exists():
            records[name] = training_records(d / "metrics.jsonl")
            schedules[name] = json.loads((d / "grpo_params.json").read_text())["stages"]
    return records, schedules


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


def first_last_mean(rows: list[dict], key: str, n: int = 10) -> tuple[float, float]:
    """Mean of `key` over the first and over the last `n` rows; on a short run `n` shrinks to half
    the rows (at least one), so the two windows never overlap.

    >>> first_last_mean([{"r": v} for v in range(30)], "r")
    (4.5, 24.5)
    >>> first_last_mean([{"r": v} for v in (0, 1, 2, 3, 4)], "r")  # 5 rows: windows of 2
    (0.5, 3.5)
    """
    k = min(n, max(1, len(rows) // 2))
    return mean_of(rows, key, first=k), mean_of(rows, key, last=k)


def training_summary(records: list[dict], n: int = 10) -> dict:
    """An RL run's headline figures (03's and 05's metrics.json): steps, and the reward and mean
    completion length over the first and the last `n` steps (`first_last_mean`)."""
    reward = first_last_mean(records, "reward", n)
    length = first_last_mean(records, "completions/mean_length", n)
    return {"steps": len(records), f"reward_first{n}": round(reward[0], 4), f"reward_last{n}": round(reward[1], 4),
            f"length_first{n}": round(length[0], 1), f"length_last{n}": round(length[1], 1)}


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


def plot_sft_loss(records: list[dict], path: str | Path | None = None):
    """02's loss (log scale) and learning rate against optimizer step. Returns the figure."""
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in records]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.2))
    ax[0].plot(steps, [r["loss"] for r in records])
    ax[0].set(title="SFT loss (assistant tokens)", xlabel="optimizer step", ylabel="cross-entropy (nats/token)",
              yscale="log")
    ax[1].plot(steps, [r.get("learning_rate", float("nan")) for r in records], color="tab:orange")
    ax[1].set(title="learning rate", xlabel="optimizer step", ylabel="lr")
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=110)
    return fig


# ---------------------------------------------------------------------------------------------
# RL rollouts (03's samples.jsonl)
# ---------------------------------------------------------------------------------------------
def last_rollouts(samples: list[dict], k: int = 4) -> list[dict]:
    """Up to `k` completions of the last saved step, one per prompt (the last one saved for it).

    >>> [(s["step"], s["id"], s["c"]) for s in last_rollouts([
    ...     {"step": 1, "id": "a", "c": 0}, {"step": 2, "id": "a", "c": 1}, {"step": 2, "id": "a", "c": 2},
    ...     {"step": 2, "id": "b", "c": 3}], k=4)]
    [(2, 'a', 2), (2, 'b', 3)]
    """
    if not samples:
        return []
    last = max(s["step"] for s in samples)
    return list({s["id"]: s for s in samples if s["step"] == last}.values())[:k]


def rollout_caption(sample: dict, width: int = 70, tail: int = 80) -> str:
    """One line for a rollout's panel: the question's first line, the reference, each reward part
    (None: not scored), and the end of the completion.

    >>> rollout_caption({"question": "How many circles?\\nAnswer.", "answer": "3", "completion": "<answer>3</answer>",
    ...                  "rewards": {"hfrrf_reward": 1.0, "format_reward": 1.0, "accuracy_reward": None}})
    'How many circles? (answer 3) | reward: hfrrf 1 format 1 | ...<answer>3</answer>'
    """
    parts = " ".join(f"{k.removesuffix('_reward')} {v:g}" for k, v in sample["rewards"].items() if v is not None)
    return (f"{sample['question'].strip().splitlines()[0][:width]} (answer {sample['answer']}) | reward: {parts} | "
            f"...{sample['completion'][-tail:]}")


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
    """Outputs binned by length (docs/recipe.md §6 A): per bucket its label, count, share of outputs and
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


def buckets_by_model(outputs: dict[str, list[dict]], edges: list[int], tokenizer=None) -> dict[str, list[dict]]:
    """`length_buckets` of each model's responses (04's per-sample records), lengths in the
    tokenizer's tokens (whitespace words without one)."""
    return {name: length_buckets(token_lengths([r["response"] for r in recs], tokenizer),
                                 [bool(r["correct"]) for r in recs], edges)
            for name, recs in outputs.items()}


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
    """Share of outputs and accuracy per length bucket, one bar group per model (docs/recipe.md §6 A)."""
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
    """Reflection-word counts per model over the same number of outputs (docs/recipe.md §6 C)."""
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


def evaluated_model_path(run_dir: Path, root: Path) -> str | None:
    """The first model that 04 evaluated in `run_dir` (its metrics.json) given as a local folder:
    an absolute path, or one that exists under `root` (the project root, where 04 ran); None when
    04 has not run or named only hub models or served names."""
    m = Path(run_dir) / "04_evaluate" / "metrics.json"
    if not m.exists():
        return None
    paths = [p for p in json.loads(m.read_text())["models"].values() if p.startswith("/") or (Path(root) / p).exists()]
    return paths[0] if paths else None


def token_lengths(texts: list[str], tokenizer=None) -> list[int]:
    """Token counts with the model's tokenizer; whitespace words when there is none."""
    if tokenizer is None:
        return [len(t.split()) for t in texts]
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
