"""The nano chain, timed: each stage's wall time, the split inside RL, and the figures, per seed.

    .venv/bin/python bench/nano_speedrun.py                          # params/nano.yaml, seed 0
    .venv/bin/python bench/nano_speedrun.py --seeds 0 1 2            # three whole chains, then mean +- sd
    .venv/bin/python bench/nano_speedrun.py --seeds 0 1 2 --report   # only read runs made before
    .venv/bin/python bench/nano_speedrun.py --set rl_sft_control=true --name nano-ctl

The runs are a sweep of the Vision-R1 variant only (visionr1.sweep: `python -m visionr1 sweep PARAMS
--seeds S... --variants vision-r1 --name NAME --output-root outputs/speedrun`), so each seed is a whole
chain (data, bridging order, base pretraining, SFT, RL, evaluation) in `<output-root>/<name>/s<S>/`,
resumable, with its log beside it; this script adds the timing report. The times come from the
runner's `run_state.json` (each stage's notebook, kernel start-up included), the RL split from 03's
per-step log (generation, reward, training), the figures from each stage's `metrics.json`. The nano
base model is cached by its params (seed and thread count included): a second call with the same
seed reuses it, so pass `--fresh-base` to time its pretraining again.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

from visionr1 import env, sweep

STAGES = ("00_data", "01_cold_start_data", "02_cold_start_sft", "03_grpo_ptst", "04_evaluate", "05_curves")


def read(run: Path, stage: str) -> dict:
    m = run / stage / "metrics.json"
    return json.loads(m.read_text()) if m.exists() else {}


def report(run: Path) -> dict:
    """The figures and times of one run folder."""
    state = json.loads((run / "run_state.json").read_text())["stages"]
    d, ci, rl, ev = read(run, "00_data"), read(run, "02_cold_start_sft"), read(run, "03_grpo_ptst"), read(run, "04_evaluate")
    r = {"stage_seconds": {s: state.get(s, {}).get("seconds") for s in STAGES},
         "base_pretrain_s": d.get("base_pretrain_seconds"), "base_direct": d.get("base_direct_accuracy"),
         "chance": d.get("chance_accuracy"), "ci_format_02": ci.get("format_rate"), "ci_accuracy_02": ci.get("accuracy"),
         "sft_s": ci.get("train_seconds"), "sft_steps": ci.get("steps")}
    if rl:
        split = rl["s_per_step"]
        r.update(ci=rl.get("ci_accuracy"), rl=rl.get("rl_accuracy"), control=rl.get("control_accuracy"),
                 rl_format=rl.get("rl_format_rate"), reward_first10=rl["reward_first10"], reward_last10=rl["reward_last10"],
                 rl_steps=rl["steps"], rl_train_s=rl["train_seconds"], control_s=rl.get("control_seconds"),
                 rl_split={k: round(v * rl["steps"], 1) for k, v in split.items()},
                 rl_flops=rl.get("train_flops"), zero_std=rl.get("frac_reward_zero_std"))
    if ev:
        r["eval_04"] = {k: v["nano"]["accuracy"] for k, v in ev["results"].items() if "nano" in v}
    return r


def show(name: str, r: dict) -> None:
    secs = r["stage_seconds"]
    total = sum(v for v in secs.values() if v)
    print(f"\n== {name}: {total / 60:.1f} min in the stages")
    print("   " + "  ".join(f"{s[:2]} {v:.0f}s" if v else f"{s[:2]} -" for s, v in secs.items()))
    print(f"   base pretraining {r['base_pretrain_s']} s; base direct {r['base_direct']} (chance {r['chance']}); "
          f"SFT {r['sft_steps']} steps in {r['sft_s']} s; 02: CI format {r['ci_format_02']}, accuracy {r['ci_accuracy_02']}")
    if "rl" in r:
        print(f"   RL {r['rl_steps']} steps in {r['rl_train_s']} s (generation {r['rl_split']['generation']} s, reward "
              f"{r['rl_split']['reward']} s, training {r['rl_split']['training']} s); reward {r['reward_first10']} -> "
              f"{r['reward_last10']}; zero-spread groups {r['zero_std']}")
        gain = r["rl"] - r["ci"] if r["rl"] is not None and r["ci"] is not None else None
        print(f"   held-out: CI {r['ci']} -> RL {r['rl']} (gain {gain:+.3f}, RL format {r['rl_format']}); "
              f"control {r['control']} in {r['control_s']} s")
    if "eval_04" in r:
        print(f"   04 (temperature 0.6): {r['eval_04']}")


def mean_sd(xs: list[float]) -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    return f"{statistics.mean(xs):.3f} +- {statistics.stdev(xs):.3f}" if len(xs) > 1 else f"{xs[0]:.3f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("params", nargs="*", default=["params/nano.yaml"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--name", default="nano", help="the sweep folder: <output-root>/<name>/s<seed>")
    ap.add_argument("--output-root", default="outputs/speedrun")
    ap.add_argument("--jobs", type=int, default=1, help="seeds side by side, the threads split between them")
    ap.add_argument("--report", action="store_true", help="only read the run folders made before")
    ap.add_argument("--fresh-base", action="store_true", help="drop the cached nano base models first (time pretraining)")
    args = ap.parse_args(argv)
    env.setup_environment()
    if args.fresh_base and not args.report:
        for d in env.cache_dir().glob("nano_base-*"):
            shutil.rmtree(d)
    rc = 0
    if not args.report:
        rc = sweep.main([*args.params, "--seeds", *map(str, args.seeds), "--variants", "vision-r1", "--name", args.name,
                         "--output-root", args.output_root, "--jobs", str(args.jobs),
                         *[a for s in args.sets for a in ("--set", s)]])
    folder = env.run_dir(args.output_root, args.name)
    record = json.loads((folder / "sweep.json").read_text()) if (folder / "sweep.json").exists() else {"runs": []}
    walls = {r["run"]: r.get("seconds") for r in record["runs"]}
    reports = {}
    for seed in args.seeds:
        name = f"s{seed}"
        if not (folder / name / "run_state.json").exists():
            print(f"\n== {name}: no run folder in {folder}")
            continue
        reports[name] = report(folder / name)
        reports[name]["wall_s"] = walls.get(name)
        show(name, reports[name])
    if len(reports) > 1:
        rs = list(reports.values())
        print(f"\n== {len(rs)} seeds {args.seeds}: mean +- sd")
        for key in ("base_direct", "chance", "ci", "rl", "control", "rl_format"):
            print(f"   {key:12s} {mean_sd([r.get(key) for r in rs])}")
        gains = [r["rl"] - r["ci"] for r in rs if r.get("rl") is not None]
        print(f"   {'rl - ci':12s} {mean_sd(gains)}  (min {min(gains):+.3f})" if gains else "")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "speedrun-report.json").write_text(json.dumps(reports, indent=2))
    return rc


if __name__ == "__main__":
    sys.exit(main())
