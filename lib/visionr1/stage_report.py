"""What a stage measures and records at its end: 00's check that the base model sees, 03's held-out
comparison of the start model, the RL model and the SFT control, 04's tally per model and
benchmark, and the `metrics.json` every stage writes with its W&B mirror (docs/style.md §9).

The notebooks call these after their recipe steps; each returns the figures that go to the stage's
`metrics.json` under the keys (and in the order) the tests and the run's closing summary read.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from visionr1 import tracking


# ---------------------------------------------------------------------------------------------
# Every stage: metrics.json and its W&B mirror
# ---------------------------------------------------------------------------------------------
def record(out_dir: str | Path, metrics: dict, values: dict, images: list[str] | None = None,
           mirror: list[str] | None = None) -> Path:
    """Write `out_dir/metrics.json` (key order kept; values JSON cannot hold, such as paths, as
    text) and mirror the stage to W&B as one run named `<run_name>/<stage>` (the stage is
    `out_dir`'s name; `values`: the notebook's params, `params.notebook_values`, holding
    `run_name` and `wandb_mode`; wandb_mode "disabled" mirrors nothing). `images`: PNG file
    names in `out_dir` logged under their stem (None: every PNG there); a named file that is
    missing is an error. `mirror`: the keys of `metrics` logged, those of them it holds (None:
    all; W&B keeps numbers only, `tracking.scalars`). Returns the metrics.json path."""
    out_dir = Path(out_dir)
    for key in ("run_name", "wandb_mode"):
        if key not in values:
            raise KeyError(f"record({out_dir.name}): values lacks {key!r}; pass params.notebook_values(globals(), ...)")
    if images is None:
        pngs = {p.stem: p for p in sorted(out_dir.glob("*.png"))}
    else:
        pngs = {Path(n).stem: out_dir / n for n in images}
        missing = [str(p) for p in pngs.values() if not p.exists()]
        if missing:
            raise FileNotFoundError(f"record({out_dir.name}): images not written: {', '.join(missing)}")
    path = out_dir / "metrics.json"
    path.write_text(json.dumps(metrics, indent=2, default=str))
    logged = metrics if mirror is None else {k: v for k, v in metrics.items() if k in mirror}
    tracking.log_stage(out_dir.parent, values["run_name"], out_dir.name, values["wandb_mode"], values, logged, pngs)
    return path


# ---------------------------------------------------------------------------------------------
# 00: does the nano base model see?
# ---------------------------------------------------------------------------------------------
def base_check(base_path: str | Path, test: list, png: str | Path | None = None, progress: bool = True) -> dict:
    """00's check of the nano base model on the test split: greedy direct answers (no chain of
    thought), the same questions with a blank image (the control: what does not come from the
    image), and bars per question type against chance. Returns {"metrics": the `base_*` figures of
    00's metrics.json, "predictions": the direct answers, "pretrain": nano_base.json}."""
    from visionr1 import nano_base, nano_task, plots, tiny_model

    base_path = Path(base_path)
    model, processor = tiny_model.load_model(base_path), tiny_model.load_processor(base_path)
    t0 = time.perf_counter()
    acc = nano_base.direct_accuracy(model, processor, test, progress=progress)
    eval_s = time.perf_counter() - t0
    blank = nano_base.direct_accuracy(model, processor, test, blank=True)
    info = json.loads((base_path / "nano_base.json").read_text())
    metrics = {"base_model_path": str(base_path), "base_direct_accuracy": round(acc["accuracy"], 4),
               "base_direct_accuracy_per_type": acc["per_type"],
               "base_blank_image_accuracy": round(blank["accuracy"], 4),
               "base_pretrain_seconds": info["train_seconds"], "base_pretrain_s_per_step": info["s_per_step"],
               "base_params": tiny_model.n_params(model), "base_eval_samples_per_s": round(len(test) / eval_s, 1)}
    if png is not None:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(9, 3.8))
        plots.grouped_bars(ax, {"nano base model": acc["per_type"], "same, blank image": blank["per_type"],
                                "chance (majority answer)": nano_task.chance_per_type(test)},
                           f"Nano base model, direct answers on the test split (n={len(test)})",
                           "accuracy (share correct)")
        fig.tight_layout()
        fig.savefig(png, dpi=110)
    return {"metrics": metrics, "predictions": acc["predictions"], "pretrain": info}


# ---------------------------------------------------------------------------------------------
# 03: the start model, the RL model and the SFT control on held-out prompts
# ---------------------------------------------------------------------------------------------
def start_key(rl_start: str) -> str:
    """The name 03's metrics give the model RL started from: `ci` or `base` for those references,
    `start` for a path.

    >>> [start_key(s) for s in ("ci", "base", "outputs/other/02_cold_start_sft/final")]
    ['ci', 'base', 'start']
    """
    return rl_start if rl_start in ("ci", "base") else "start"


def heldout_metrics(ev: dict, rl_start: str, control: dict | None = None) -> dict:
    """03's held-out figures from `generation.evaluate_models` over the models `start`, `rl` (and
    `sft_control` when `control`, grpo.sft_control's summary, is given), in metrics.json's order:
    the control's compute first, then each model's accuracy and format rate.

    >>> ev = {"start_accuracy": 0.4, "start_format_rate": 1.0, "rl_accuracy": 0.5, "rl_format_rate": 0.9,
    ...       "eval_samples": 10, "chance_accuracy": 0.3}
    >>> m = heldout_metrics(ev, "ci")
    >>> list(m)
    ['ci_accuracy', 'ci_format_rate', 'rl_accuracy', 'rl_format_rate', 'eval_samples', 'chance_accuracy']
    >>> m["ci_accuracy"], m["rl_accuracy"], m["chance_accuracy"]
    (0.4, 0.5, 0.3)
    """
    key = start_key(rl_start)
    out = {}
    if control is not None:
        out.update(control_steps=control["steps"], control_flops=control["flops"],
                   control_seconds=control["train_seconds"])
    out.update({f"{key}_accuracy": ev["start_accuracy"], f"{key}_format_rate": ev["start_format_rate"],
                "rl_accuracy": ev["rl_accuracy"], "rl_format_rate": ev["rl_format_rate"],
                "eval_samples": ev["eval_samples"], "chance_accuracy": ev["chance_accuracy"]})
    if control is not None:
        out.update(control_accuracy=ev["sft_control_accuracy"], control_format_rate=ev["sft_control_format_rate"])
    return out


def heldout_check(start_model: str, rl_model: str, test: list, max_new_tokens: int, rl_start: str,
                  png: str | Path | None = None, control: dict | None = None) -> dict:
    """03's held-out comparison: the start model, the RL model and (with `control`, the summary
    `grpo.sft_control` returned) the SFT control answer the same nano test samples greedily; bars
    of their accuracy against chance go to `png`. Returns {"metrics": `heldout_metrics`,
    "responses": {"start" | "rl" | "sft_control": responses}}."""
    from visionr1 import generation, plots

    models = {"start": start_model, "rl": rl_model}
    if control is not None:
        models["sft_control"] = control["final_model"]
    ev = generation.evaluate_models(models, test, max_new_tokens)
    if png is not None:
        plots.accuracy_bars({n: ev[f"{n}_accuracy"] for n in models}, ev["chance_accuracy"],
                            f"Held-out accuracy (n={ev['eval_samples']}, greedy)", png)
    return {"metrics": heldout_metrics(ev, rl_start, control), "responses": {n: ev[f"{n}_responses"] for n in models}}


# ---------------------------------------------------------------------------------------------
# 04: every model on every benchmark
# ---------------------------------------------------------------------------------------------
def tally(bench: str, items: list, records: list[dict]) -> dict:
    """One model's scores on one benchmark from `evaluate.run`'s records: `benchmarks.aggregate`'s
    accuracy and sub-scores (percent), then `format_rate` (percent of responses in the strict
    format), `reasked` (responses that took more than one try) and `grading` (timeouts, refused,
    ungradeable gold, errors: `evaluate.grading_summary`)."""
    from visionr1 import benchmarks, evaluate

    if not records:
        raise ValueError(f"{bench}: no records to tally (an empty benchmark or an empty eval_limit)")
    out = benchmarks.aggregate(bench, items, [r["correct"] for r in records])
    out["format_rate"] = round(100 * sum(bool(r["format_ok"]) for r in records) / len(records), 1)
    out["reasked"] = sum(r["tries"] > 1 for r in records)
    out["grading"] = evaluate.grading_summary(records)
    return out


def evaluate_all(models: dict[str, str], data: dict[str, list], responder: Callable, sampling, out_dir: str | Path
                 ) -> dict:
    """04's loop: each model (name -> model path or served name) answers each benchmark
    (name -> items) through `responder(model)` (an `evaluate.Responder`, built once per model if it
    has a question left to answer, and released before the next), cached and resumable in
    `out_dir/<model>/<benchmark>.jsonl` (with the parts engines side by side wrote folded in:
    visionr1.eval_parallel; their answers are then all on disk and no model is loaded here).
    Returns {"results": {model: {bench: tally}}, "samples_per_second": {model: {bench: rate}}
    (None when it took no time: every sample came from the cache), "records": {(model, bench):
    evaluate.run's records}}."""
    from visionr1 import evaluate

    results: dict = {}
    speed: dict = {}
    records: dict = {}
    for name, model in models.items():
        outs = {bench: Path(out_dir) / name / f"{bench}.jsonl" for bench in data}
        for bench, items in data.items():
            evaluate.fold_parts(items, outs[bench])
        # built before the clock starts (speeds leave loading out), and only if a question is left
        todo = any({i.id for i in items} - evaluate.finished_ids(outs[b]) for b, items in data.items())
        respond = responder(model) if todo else evaluate.lazy(lambda model=model: responder(model))
        for bench, items in data.items():
            t0 = time.perf_counter()
            recs = evaluate.run(items, respond, outs[bench], sampling, desc=f"{name} / {bench}")
            seconds = time.perf_counter() - t0
            records[name, bench] = recs
            results.setdefault(name, {})[bench] = tally(bench, items, recs)
            speed.setdefault(name, {})[bench] = round(len(items) / seconds, 2) if seconds > 1e-3 else None
        del respond  # one model in memory at a time
    return {"results": results, "samples_per_second": speed, "records": records}
