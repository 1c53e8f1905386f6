"""A sweep's runs side by side (issue 41; the comparison stage `06_compare`): every scalar figure
of every run, as mean +- sd over seeds per (grid label, variant), and the RL training curves of all
variants on shared axes with a band over seeds.

A sweep folder (`python -m visionr1 sweep`) holds `sweep.json` and one run folder per (grid
combination, variant, seed), each written by the runner like any run. This module reads only
those files, as 05 does for one run (docs/style.md §9): the stages' `metrics.json`, 03's per-step
`metrics.jsonl` and `grpo_params.json`. A run that is not done, or lacks a file, is reported by
name and left out (or only its missing figures are), so a half-finished sweep still compares
what it has. visionr1.findings reads the same figures to judge the paper's findings.

Figure names are `<stage>.<key>` (`03.rl_accuracy`), `04.<model>.<benchmark>.<score>`
(`04.rl.nano.accuracy`, `04.rl.nano.multi_step`) and `05.<model>.<length bucket>.<share|accuracy>`.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from visionr1 import curves, nano_task, runner

VARIANTS = ("vision-r1", "zero", "long")
# the stages each variant runs (zero and long skip 00-02 and read the main run's, params/ablation-*.yaml)
STAGES = {"vision-r1": ("00_data", "02_cold_start_sft", "03_grpo_ptst", "04_evaluate", "05_curves"),
          "zero": ("03_grpo_ptst", "04_evaluate", "05_curves"),
          "long": ("03_grpo_ptst", "04_evaluate", "05_curves")}
# 04's per-benchmark entries that are counts or tallies, not scores
NOT_SCORES = {"n", "n_ungradeable", "sub_n", "reasked", "grading", "n_questions"}
# top-level numbers of 00-03's metrics.json that are settings, the same for every seed, not figures
NOT_FIGURES = {"num_processes", "eval_samples", "base_params"}
# 04's models as the paper names them: (variant, model) -> name
MODEL_NAMES = {("vision-r1", "base"): "base", ("vision-r1", "ci"): "CI", ("vision-r1", "rl"): "Vision-R1",
               ("zero", "rl"): "Zero", ("long", "rl"): "Long"}
CURVE_PANELS = (  # (metrics.jsonl key, title, y label): the training curves of every variant
    ("reward", "Reward (HFRRF; Zero: format + result, 0-2)", "mean reward per step"),
    ("rewards/accuracy_reward/mean", "Training accuracy", "share of completions correct"),
    ("completions/mean_length", "Completion length", "mean tokens per completion"),
)


class SweepError(ValueError):
    """A sweep folder cannot be compared; the message names the file and the key at fault."""


@dataclass
class Run:
    """One finished run folder of the sweep: its place in the sweep and what its files hold."""

    name: str
    variant: str
    seed: int
    label: str
    path: Path
    figures: dict[str, float] = field(default_factory=dict)  # flat: figure name -> number
    buckets: dict[str, list[dict]] = field(default_factory=dict)  # 05's length buckets of this run's models
    steps: list[dict] = field(default_factory=list)  # 03's per-step records, in step order
    schedule: list[dict] = field(default_factory=list)  # 03's PTST stages (grpo_params.json)


@dataclass
class Sweep:
    path: Path
    name: str
    command: str
    seeds: list[int]
    runs: list[Run]
    left_out: dict[str, str]  # run name -> why it is not compared at all
    problems: list[str]  # "<run>: <stage>/<file> ..." for figures a compared run lacks

    def groups(self) -> dict[tuple[str, str], list[Run]]:
        """(grid label, variant) -> its runs, in seed order; labels in sweep order, variants in VARIANTS order."""
        out: dict[tuple[str, str], list[Run]] = {}
        for label in dict.fromkeys(r.label for r in self.runs):
            for variant in VARIANTS:
                runs = sorted((r for r in self.runs if r.label == label and r.variant == variant), key=lambda r: r.seed)
                if runs:
                    out[label, variant] = runs
        return out

    def labels(self) -> list[str]:
        return list(dict.fromkeys(r.label for r in self.runs))


# ---------------------------------------------------------------------------------------------
# Reading a sweep
# ---------------------------------------------------------------------------------------------
def load_json(path: Path) -> dict:
    """A JSON object from `path`; a file that is not one is an error naming it."""
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise SweepError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise SweepError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_sweep(sweep_dir: str | Path) -> Sweep:
    """The sweep at `sweep_dir`: sweep.json's entries whose run is done and has a folder, with
    their figures. Why any other entry is left out, and which files a compared run lacks, are in
    `left_out` and `problems`: a sweep still running compares what has finished."""
    path = Path(sweep_dir)
    spec_file = path / "sweep.json"
    if not spec_file.exists():
        raise SweepError(f"{spec_file} not found: {path} is not a sweep folder (python -m visionr1 sweep writes it)")
    spec = load_json(spec_file)
    for key in ("name", "command", "runs"):
        if key not in spec:
            raise SweepError(f"{spec_file}: key {key!r} missing")
    runs, left_out, problems = [], {}, []
    for i, entry in enumerate(spec["runs"]):
        missing = [k for k in ("run", "variant", "seed", "status") if k not in entry]
        if missing:
            raise SweepError(f"{spec_file}: runs[{i}] lacks {', '.join(missing)}")
        if entry["variant"] not in VARIANTS:
            raise SweepError(f"{spec_file}: runs[{i}] ({entry['run']}): variant {entry['variant']!r} "
                             f"is none of {', '.join(VARIANTS)}")
        why = _not_comparable(path / entry["run"], entry)
        if why:
            left_out[entry["run"]] = why
            continue
        run = Run(entry["run"], entry["variant"], int(entry["seed"]), entry.get("label") or "", path / entry["run"])
        problems += [f"{run.name}: {p}" for p in read_run(run)]
        runs.append(run)
    seeds = sorted({r.seed for r in runs}) or sorted(spec.get("seeds") or [])
    return Sweep(path, spec["name"], spec["command"], seeds, runs, left_out, problems)


def _not_comparable(run_dir: Path, entry: dict) -> str | None:
    """Why a sweep.json entry cannot be compared at all (None: it can)."""
    if entry["status"] != "done":
        return f"status {entry['status']}" + (f" (exit code {entry['exit_code']})" if entry.get("exit_code") else "")
    if not run_dir.is_dir():
        return f"run folder {run_dir} missing"
    if not (run_dir / "run_state.json").exists():
        return f"{run_dir / 'run_state.json'} missing"
    try:
        load_json(run_dir / "run_state.json")
    except SweepError as e:
        return str(e)
    return None


def read_run(run: Run) -> list[str]:
    """Fill `run` from its folder; returns what it lacks (a missing or unreadable metrics file, a
    stale stage), whose figures are then left out."""
    stale = runner.stale_reasons(run.path)
    problems = []
    readers = {"00_data": _plain_figures, "02_cold_start_sft": _plain_figures, "03_grpo_ptst": _plain_figures,
               "04_evaluate": _eval_figures, "05_curves": _bucket_figures}
    for stage in STAGES[run.variant]:
        file = run.path / stage / "metrics.json"
        if stage in stale:
            problems.append(f"{stage} is stale ({stale[stage]}): its figures are left out")
        elif not file.exists():
            problems.append(f"{stage}/metrics.json missing")
        else:
            try:
                readers[stage](run, stage[:2], load_json(file))
            except SweepError as e:  # a file this code cannot read: its figures are left out, the rest compared
                problems.append(str(e))
    if "03_grpo_ptst" not in stale:
        problems += _read_steps(run)
    return problems


def _read_steps(run: Run) -> list[str]:
    """03's per-step records and PTST schedule into `run`; returns what stopped it (nothing when
    03 logged no steps: that run has no curve)."""
    d = run.path / "03_grpo_ptst"
    if not (d / "metrics.jsonl").exists():
        return []
    if not (d / "grpo_params.json").exists():
        return ["03_grpo_ptst/grpo_params.json missing: its curves are left out"]
    try:
        steps = curves.training_records(d / "metrics.jsonl")
    except ValueError as e:  # a bad line inside the file (a torn last line is skipped)
        return [f"{e}: its curves are left out"]
    run.steps, run.schedule = steps, load_json(d / "grpo_params.json").get("stages", [])
    return []


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _plain_figures(run: Run, stage: str, metrics: dict) -> None:
    """Every top-level number of a stage's metrics.json (00, 02, 03), and 03's mean step time."""
    run.figures.update({f"{stage}.{k}": v for k, v in metrics.items() if _number(v) and k not in NOT_FIGURES})
    if isinstance(metrics.get("s_per_step"), dict) and _number(metrics["s_per_step"].get("step")):
        run.figures[f"{stage}.s_per_step"] = metrics["s_per_step"]["step"]


def _eval_figures(run: Run, stage: str, metrics: dict) -> None:
    """04's scores per model and benchmark (accuracy, format rate, each sub-score), and on the
    nano split the pooled one-step and multi-step accuracy (`step_scores`); all or none."""
    if "results" not in metrics:
        raise SweepError(f"{run.path / '04_evaluate' / 'metrics.json'}: key 'results' missing")
    figures = {}
    for model, per_bench in metrics["results"].items():
        for bench, scores in per_bench.items():
            prefix = f"{stage}.{model}.{bench}"
            figures.update({f"{prefix}.{k}": v for k, v in scores.items() if k not in NOT_SCORES and _number(v)})
            if bench == "nano":
                figures.update({f"{prefix}.{k}": v for k, v in step_scores(scores).items()})
    run.figures.update(figures)


def step_scores(scores: dict) -> dict[str, float]:
    """Accuracy (percent) pooled over the nano question types of one step (level 1) and of several
    (levels 2-3, nano_task.QUESTION_TYPES), weighted by each type's item count (`sub_n`).

    >>> step_scores({"accuracy": 50.0, "count_color": 80.0, "weighted_sum": 20.0, "more_shape": 50.0,
    ...              "sub_n": {"count_color": 10, "weighted_sum": 10, "more_shape": 30}})
    {'one_step': 80.0, 'multi_step': 42.5}
    """
    sub_n = scores.get("sub_n") or {}
    unknown = sorted(set(sub_n) - set(nano_task.QUESTION_TYPES))
    if unknown:
        raise SweepError(f"04_evaluate/metrics.json: nano question types that nano_task.QUESTION_TYPES does not "
                         f"know: {', '.join(unknown)} (a run from another version of the task)")
    out = {}
    for name, multi in (("one_step", False), ("multi_step", True)):
        kinds = [q for q in sub_n if (nano_task.QUESTION_TYPES[q][0] >= 2) == multi and q in scores]
        n = sum(sub_n[q] for q in kinds)
        if n:
            out[name] = round(sum(scores[q] * sub_n[q] for q in kinds) / n, 2)
    return out


def _bucket_figures(run: Run, stage: str, metrics: dict) -> None:
    """05's length buckets of this run's own models (05 names them `model`, or `run/model` when it
    drew the ablations beside the run; other runs' models are theirs to report)."""
    for name, buckets in (metrics.get("length_buckets") or {}).items():
        owner, _, model = name.rpartition("/")
        if owner not in ("", run.name):
            continue
        run.buckets[model] = buckets
        for b in buckets:
            for k in ("share", "accuracy"):
                if _number(b.get(k)):
                    run.figures[f"{stage}.{model}.len {b['label']}.{k}"] = b[k]


# ---------------------------------------------------------------------------------------------
# The table: mean +- sd over seeds
# ---------------------------------------------------------------------------------------------
def mean_sd(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for one value).

    >>> mean_sd([1.0, 2.0, 3.0])
    (2.0, 1.0)
    >>> mean_sd([0.5])
    (0.5, None)
    """
    if not values:
        raise ValueError("mean_sd of no values")
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, None
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def fmt_mean_sd(values: list[float], digits: int = 4) -> str:
    """'mean ± sd' (`digits` significant digits; the sd alone for one value).

    >>> fmt_mean_sd([0.70, 0.72, 0.69])
    '0.7033 ± 0.015'
    >>> fmt_mean_sd([66.5])
    '66.5'
    """
    m, sd = mean_sd(values)
    return f"{m:.{digits}g}" if sd is None else f"{m:.{digits}g} ± {sd:.2g}"


def table(sweep: Sweep) -> list[dict]:
    """One row per (grid label, variant, figure): the figure's per-seed values, mean, sd and count,
    figures in the order runs first hold them."""
    rows = []
    for (label, variant), runs in sweep.groups().items():
        names = list(dict.fromkeys(k for r in runs for k in r.figures))
        for name in names:
            values = {r.seed: r.figures[name] for r in runs if name in r.figures}
            m, sd = mean_sd(list(values.values()))
            rows.append({"label": label, "variant": variant, "figure": name, "n": len(values),
                         "mean": m, "sd": sd, "values": values})
    return rows


def seeds_count(n: int) -> str:
    return f"{n} seed" + ("" if n == 1 else "s")


def group_title(label: str, variant: str) -> str:
    return f"{label} / {variant}" if label else variant


def table_markdown(sweep: Sweep, rows: list[dict]) -> str:
    """The table as markdown: a row per figure, a column per (grid label, variant) with its seed
    count; a cell from fewer seeds than its column says how many."""
    groups = sweep.groups()
    cols = list(groups)
    cells: dict[str, dict] = defaultdict(dict)
    for r in rows:
        vals = list(r["values"].values())
        short = f" (n={r['n']})" if r["n"] < len(groups[r["label"], r["variant"]]) else ""
        cells[r["figure"]][r["label"], r["variant"]] = fmt_mean_sd(vals) + short
    head = ["figure"] + [f"{group_title(*c)} ({seeds_count(len(groups[c]))})" for c in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join([f"`{fig}`"] + [per.get(c, "") for c in cols]) + " |" for fig, per in cells.items()]
    return "\n".join(lines) + "\n"


def write_table(sweep: Sweep, rows: list[dict], out_dir: str | Path) -> tuple[Path, Path]:
    """table.md and table.csv (one line per label, variant and figure: n, mean, sd, seeds, values)."""
    out_dir = Path(out_dir)
    md = out_dir / "table.md"
    md.write_text(table_markdown(sweep, rows))
    path = out_dir / "table.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "variant", "figure", "n", "mean", "sd", "seeds", "values"])
        for r in rows:
            w.writerow([r["label"], r["variant"], r["figure"], r["n"], repr(r["mean"]),
                        "" if r["sd"] is None else repr(r["sd"]), " ".join(map(str, r["values"])),
                        " ".join(repr(v) for v in r["values"].values())])
    return md, path


# ---------------------------------------------------------------------------------------------
# Curves: every variant on shared axes, seed mean and band
# ---------------------------------------------------------------------------------------------
def seed_band(runs: list[Run], key: str, window: int = 1) -> dict[str, list[float]]:
    """Per RL step (steps some seed logged `key` at): the seeds' mean, min and max of `key`, each
    seed first smoothed over `window` steps (curves.smooth).

    >>> r = [Run("a", "zero", 0, "", Path("."), steps=[{"step": 1, "x": 1.0}, {"step": 2, "x": 3.0}]),
    ...      Run("b", "zero", 1, "", Path("."), steps=[{"step": 1, "x": 3.0}])]
    >>> seed_band(r, "x")
    {'step': [1, 2], 'mean': [2.0, 3.0], 'lo': [1.0, 3.0], 'hi': [3.0, 3.0], 'n': [2, 1]}
    """
    per_step: dict[int, list[float]] = defaultdict(list)
    for run in runs:
        rows = [r for r in run.steps if key in r]
        for r, v in zip(rows, curves.smooth([r[key] for r in rows], window)):
            if not math.isnan(v):
                per_step[int(r["step"])].append(v)
    steps = sorted(per_step)
    return {"step": steps, "mean": [sum(per_step[s]) / len(per_step[s]) for s in steps],
            "lo": [min(per_step[s]) for s in steps], "hi": [max(per_step[s]) for s in steps],
            "n": [len(per_step[s]) for s in steps]}


def stage_starts(runs: list[Run]) -> list[tuple[int, int]]:
    """(stage, first step) of each PTST stage after the first, from the first run with steps."""
    for run in runs:
        if run.steps:
            return [(st, a) for st, a, _ in curves.stage_spans(run.steps)[1:]]
    return []


def schedule_text(runs: list[Run]) -> str:
    """The PTST schedule of the first run that has one, as tokens x generations per stage.

    >>> schedule_text([Run("s0", "vision-r1", 0, "", Path("."), schedule=[
    ...     {"steps": 100, "max_completion_length": 192, "num_generations": 8},
    ...     {"steps": 60, "max_completion_length": 256, "num_generations": 8}])])
    '192x8 -> 256x8'
    """
    stages = next((r.schedule for r in runs if r.schedule), [])
    return " -> ".join(f"{s['max_completion_length']}x{s['num_generations']}" for s in stages) or "schedule unknown"


def plot_curves(sweep: Sweep, path: str | Path | None = None, window: int = 10):
    """Reward, training accuracy and completion length against RL step for every (grid label,
    variant): the seed mean as a line, the seeds' min-max as a band (each seed smoothed over
    `window` steps); the PTST stage boundaries of each group as dotted lines in its colour.
    Returns the figure (None when no run logged RL steps)."""
    import matplotlib.pyplot as plt

    groups = {g: runs for g, runs in sweep.groups().items() if any(r.steps for r in runs)}
    if not groups:
        return None
    fig, axes = plt.subplots(1, len(CURVE_PANELS), figsize=(5.4 * len(CURVE_PANELS), 4.0))
    for ax, (key, title, ylabel) in zip(axes, CURVE_PANELS):
        for i, ((label, variant), runs) in enumerate(groups.items()):
            band = seed_band(runs, key, window)
            if not band["step"]:
                continue
            color = f"C{i}"
            ax.fill_between(band["step"], band["lo"], band["hi"], color=color, alpha=0.18, lw=0)
            ax.plot(band["step"], band["mean"], color=color, lw=1.8,
                    label=f"{group_title(label, variant)} ({seeds_count(len(runs))}; {schedule_text(runs)})")
            for st, a in stage_starts(runs):
                ax.axvline(a - 0.5, color=color, ls=":", lw=1.2)
                ax.annotate(f"stage {st}", (a - 0.5, 1), xycoords=("data", "axes fraction"), rotation=90,
                            va="top", ha="right", fontsize=7, color=color)
        ax.set(title=title, xlabel="RL step", ylabel=ylabel)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="best")
    fig.suptitle(f"Sweep {sweep.name}: seed mean (line) and min-max over seeds (band), {window}-step means; "
                 "dotted: PTST stage starts", fontsize=10)
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=110)
    return fig


def bar_name(label: str, variant: str, model: str) -> str:
    """`MODEL_NAMES`' name of a variant's model, after its grid label.

    >>> bar_name("", "vision-r1", "ci"), bar_name("rl_beta=0.01", "zero", "rl"), bar_name("", "long", "base")
    ('CI', 'rl_beta=0.01: Zero', 'long: base')
    """
    name = MODEL_NAMES.get((variant, model), f"{variant}: {model}")
    return f"{label}: {name}" if label else name


def plot_accuracy(sweep: Sweep, rows: list[dict], benchmark: str = "nano", path: str | Path | None = None):
    """04's accuracy on `benchmark` of every model each group evaluated (base and CI from the
    main runs, RL from every variant): a bar at the seed mean, an error bar of +- sd, the seeds as
    dots. Returns the figure (None when 04 reported nothing on `benchmark`)."""
    import matplotlib.pyplot as plt

    bars = [(bar_name(r["label"], r["variant"], r["figure"].split(".")[1]), r) for r in rows
            if r["figure"].startswith("04.") and r["figure"].endswith(f".{benchmark}.accuracy")]
    if not bars:
        return None
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(bars)), 3.8))
    for i, (name, r) in enumerate(bars):
        ax.bar(i, r["mean"], color=f"C{i}", alpha=0.8, yerr=r["sd"] or 0, capsize=4)
        ax.plot([i] * r["n"], list(r["values"].values()), "k.", ms=5)
        ax.text(i, r["mean"], f"{r['mean']:.1f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(bars)), [n for n, _ in bars], rotation=30, ha="right", fontsize=8)
    ax.set(title=f"04 accuracy on {benchmark}: mean ± sd over seeds (dots: seeds)", ylabel="accuracy (%)",
           ylim=(0, 100))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=110)
    return fig


def summary(sweep: Sweep) -> dict:
    """What was compared and what was not: runs per group, runs left out with why, missing files."""
    return {"sweep": sweep.name, "command": sweep.command, "seeds": sweep.seeds,
            "runs": {group_title(*g): [r.name for r in runs] for g, runs in sweep.groups().items()},
            "left_out": sweep.left_out, "problems": sweep.problems}
