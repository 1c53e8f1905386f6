"""Batch runs: a recipe over seeds x a grid of settings x its variants (Vision-R1, -Zero, -Long), each
one a run folder made by `python -m visionr1 run`, then the comparison notebook over all of them.

    python -m visionr1 sweep params/nano.yaml --seeds 0 1 2 [--grid rl_beta=0.01,0.04]
        [--variants vision-r1,zero,long] [--jobs N] [--set KEY=VALUE ...] [--name NAME]
        [--output-root DIR] [--dry-run] [--compare-only]

`<output-root>/<name>/` (default outputs/sweeps/<first params file's stem>/) holds:
  params/<run>.yaml   the layer a main run puts on PARAMS: seed, run_name, output_root, then the
                      --set values, then the grid point's values
  <run>/, <run>.log   each run folder as `run` writes it, and the run's stdout and stderr
  sweep.json          the definition, the one command that reproduces it, each run's status
  06_compare.ipynb    the comparison notebook, executed; its files in 06_compare/ (findings.json)

A combination is a grid point x a seed; its main run is `s<seed>` (`<label>_s<seed>` with a grid),
Vision-R1-Zero and -Long put params/ablation-zero.yaml / ablation-long.yaml on top of the main run's
params (after the layer, so the ablation's own keys win) and read its 00 (Zero) or 00-02 (Long), so
they start once their main run has finished. Every run is launched with `--resume`: the runner
decides what to skip (finished with the same params and inputs) and what to re-run (params
changed, stale inputs), so a sweep that was killed continues where it stopped and nothing here
duplicates that logic. A failed run is reported with its log's tail; the runs that do not depend on
it go on; the sweep then exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import itertools
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from visionr1 import env, runner
from visionr1.params import ParamsError, Resolved, declarations, parse_set, resolve, stage_notebooks
from visionr1.training import ProgressLines

VARIANTS = {"vision-r1": [], "zero": ["params/ablation-zero.yaml"], "long": ["params/ablation-long.yaml"]}
MAIN_STAGES_READ = {"zero": "00_data", "long": "02_cold_start_sft"}  # the last stage of its main run a variant reads
SWEEP_KEYS = ("seed", "run_name", "output_root")  # the sweep sets them in each run's layer
DEFAULT_ROOT = "outputs/sweeps"
COMPARE_NOTEBOOK = "06_compare"
RUNNER = [sys.executable, "-m", "visionr1", "run"]
LOG_TAIL = 30  # lines of a failed run's log shown in the terminal


# ---------------------------------------------------------------------------------------------
# The definition: files, seeds, grid, variants -> runs
# ---------------------------------------------------------------------------------------------
@dataclass
class Definition:
    params: list[str]            # params files, as paths from the project root where they lie under it
    seeds: list[int]
    grid: dict[str, list]        # key -> its values (YAML values, as --set reads them)
    grid_text: dict[str, list[str]]  # key -> the values as typed (for the command)
    variants: list[str]
    sets: list[str]
    name: str
    output_root: str             # as given
    jobs: int = 1

    @property
    def folder(self) -> str:
        """The sweep folder as given (`outputs/sweeps/nano`): each run's output_root."""
        return str(Path(self.output_root) / self.name)

    @property
    def path(self) -> Path:
        return env.run_dir(self.output_root, self.name)

    def command(self) -> str:
        """The one command that makes this sweep again (printed at start and end, in sweep.json)."""
        parts = ["python", "-m", "visionr1", "sweep", *self.params, "--seeds", *map(str, self.seeds)]
        for key, texts in self.grid_text.items():
            parts += ["--grid", f"{key}={','.join(texts)}"]
        parts += ["--variants", ",".join(self.variants), "--jobs", str(self.jobs)]
        for s in self.sets:
            parts += ["--set", s]
        if self.name != Path(self.params[0]).stem:
            parts += ["--name", self.name]
        if self.output_root != DEFAULT_ROOT:
            parts += ["--output-root", self.output_root]
        return shlex.join(parts)


@dataclass
class Run:
    """One run folder of the sweep and the command(s) that make it."""

    name: str                    # its folder's name: the run_name its params resolve to
    variant: str
    seed: int
    grid: dict
    label: str
    main: str                    # the main run of its combination (itself for a main run)
    files: list[str]             # the params files of its command, its layer included
    resolved: Resolved
    only: list[str] | None = None  # a main run made only for its variants: the stages they read
    threads: int = 1
    stages: list[str] = field(default_factory=list)  # the stages it runs (skip_stages left out)

    @property
    def needs(self) -> str | None:
        return None if self.name == self.main else self.main

    @property
    def run_dir(self) -> Path:
        return env.run_dir(self.resolved.values["output_root"], self.name)

    def commands(self, runner_cmd: list[str] = RUNNER) -> list[list[str]]:
        base = [*runner_cmd, *self.files, "--resume"]
        return [base + ["--only", s] for s in self.only] if self.only else [base]


def split_values(raw: str) -> list[str]:
    """`0.01,0.04` -> ["0.01", "0.04"]; a comma inside [...], {...} or quotes is part of a value.

    >>> split_values("0.01, 0.04")
    ['0.01', '0.04']
    >>> split_values("[1,2],[3]")
    ['[1,2]', '[3]']
    """
    out, depth, quote, cur = [], 0, None, ""
    for ch in raw:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
            continue
        cur += ch
    return [*out, cur.strip()]


def parse_grid(items: list[str]) -> tuple[dict[str, list], dict[str, list[str]]]:
    """`--grid KEY=V1,V2 ...` -> ({key: values}, {key: values as typed}); each value read as --set reads it."""
    grid, text = {}, {}
    for item in items:
        if "=" not in item:
            raise ParamsError(f"--grid {item!r}: expected KEY=V1,V2,...")
        key, raw = (x.strip() for x in item.split("=", 1))
        texts = split_values(raw)
        if key in grid:
            raise ParamsError(f"--grid {key}: given twice; list every value once: --grid {key}=V1,V2")
        if "" in texts or len(set(texts)) != len(texts):
            raise ParamsError(f"--grid {key}: {raw!r} holds an empty or repeated value")
        grid[key], text[key] = [parse_set(f"{key}={t}")[1] for t in texts], texts
    return grid, text


def grid_points(grid: dict[str, list]) -> list[dict]:
    """Every combination of the grid's values ([{}] without a grid).

    >>> grid_points({"a": [1, 2], "b": ["x"]})
    [{'a': 1, 'b': 'x'}, {'a': 2, 'b': 'x'}]
    """
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def value_text(v) -> str:
    """A value as YAML writes it inline (`true`, `0.04`, `[1, 2]`), a string as it is."""
    if isinstance(v, str):
        return v
    return yaml.safe_dump(v, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()


def combination_label(point: dict) -> str:
    """A grid point's label, safe in a folder name: "" without a grid.

    >>> combination_label({"rl_beta": 0.04, "rl_stages": [1, 2]})
    'rl_beta=0.04_rl_stages=-1--2-'
    """
    return re.sub(r"[^A-Za-z0-9._=-]", "-", "_".join(f"{k}={value_text(v)}" for k, v in point.items()))


def main_run_name(label: str, seed: int) -> str:
    """`s0`, or `rl_beta=0.04_s0` with a grid."""
    return f"{label}_s{seed}" if label else f"s{seed}"


def layer_values(seed: int, run_name: str, folder: str, sets: list[str], point: dict) -> dict:
    """What a main run's layer says, in this order: the sweep's own keys, --set, the grid point."""
    values = {"seed": seed, "run_name": run_name, "output_root": folder}
    values.update(parse_set(s) for s in sets)
    values.update(point)
    return values


def layer_text(values: dict) -> str:
    return yaml.safe_dump(values, sort_keys=False, width=10**6)


def layer_path(defn: Definition, main: str) -> Path:
    return defn.path / "params" / f"{main}.yaml"


def check_flags(defn: Definition, decls: dict) -> None:
    """--set and --grid name declared keys with values of their types, and leave the sweep's own
    keys to it; the error names the flag and the key."""
    for origin, keys in (("--set", [parse_set(s)[0] for s in defn.sets]), ("--grid", list(defn.grid))):
        own = [k for k in keys if k in SWEEP_KEYS]
        if own:
            raise ParamsError(f"{origin} {own[0]}: the sweep sets {', '.join(SWEEP_KEYS)} in each run's layer; "
                              "use --seeds, --name and --output-root")
    both = set(defn.grid) & {parse_set(s)[0] for s in defn.sets}
    if both:
        raise ParamsError(f"--set {sorted(both)[0]} and --grid {sorted(both)[0]}: give the key one way")
    unknown = [v for v in defn.variants if v not in VARIANTS]
    if unknown or not defn.variants:
        raise ParamsError(f"--variants {','.join(defn.variants)}: choose among {', '.join(VARIANTS)}")
    layers = [(f"--grid {k}", {k: v}) for k, values in defn.grid.items() for v in values]
    resolve([*defn.params, *layers], defn.sets, decls)


def plan(defn: Definition, decls: dict, stage_names: list[str]) -> list[Run]:
    """Every run of the sweep, each main run before the variants that read it; every run's params
    resolved (so an unknown key or a wrong type fails before anything runs)."""
    check_flags(defn, decls)
    runs: list[Run] = []
    for point in grid_points(defn.grid):
        label = combination_label(point)
        for seed in defn.seeds:
            runs += combination_runs(defn, decls, stage_names, point, label, seed)
    seen: dict[str, Run] = {}
    for r in runs:
        if r.name in seen:
            raise ParamsError(f"two runs of the sweep are both named {r.name!r} (grid points {seen[r.name].grid} and "
                              f"{r.grid}): make the grid values differ in letters, digits or . _ = -")
        seen[r.name] = r
    return runs


def combination_runs(defn: Definition, decls: dict, stage_names: list[str], point: dict, label: str,
                     seed: int) -> list[Run]:
    """The main run of one grid point x seed, then its variants."""
    main = main_run_name(label, seed)
    layer = layer_path(defn, main)
    values = layer_values(seed, main, defn.folder, defn.sets, point)
    shown = runner._shown(layer)
    last = max((stage_names.index(MAIN_STAGES_READ[v]) for v in defn.variants if v in MAIN_STAGES_READ), default=0)
    only = None if "vision-r1" in defn.variants else stage_names[:last + 1]
    out = []
    for variant in ["vision-r1", *[v for v in defn.variants if v != "vision-r1"]]:
        extra = [runner._shown(env.PROJECT_ROOT / f) for f in VARIANTS[variant]]
        resolved = resolve([*defn.params, (shown, values), *extra], [], decls)
        name = resolved.values["run_name"]
        if variant != "vision-r1" and name == main:
            raise ParamsError(f"{VARIANTS[variant][0]} keeps run_name {main!r}: a variant needs its own run folder")
        skipped = set(resolved.values.get("skip_stages") or [])
        stages = [s for s in (only if variant == "vision-r1" and only else stage_names) if s not in skipped]
        out.append(Run(name, variant, seed, dict(point), label, main, [*defn.params, shown, *extra], resolved,
                       only=only if variant == "vision-r1" else None, stages=stages))
    return out


# ---------------------------------------------------------------------------------------------
# What a run folder holds already
# ---------------------------------------------------------------------------------------------
def to_do(run: Run, stage_names: list[str]) -> dict[str, str]:
    """{stage: why `run --resume` would run it} for the run's stages ({}: the run is finished),
    from the runner's own replay of its loop (runner.stale_refusals) on the folder's records."""
    nbs = {s: f"{s}.ipynb" for s in stage_names}
    hashes = {s: runner._hash(run.resolved.for_notebook(nb)) for s, nb in nbs.items()}
    skipped = set(stage_names) - set(run.stages)
    state = runner.RunState(run.run_dir / "run_state.json")
    refused, kept = runner.stale_refusals(run.run_dir, stage_names, run.stages, skipped, hashes, True, state)
    out = {}
    for s in run.stages:
        if s in kept:
            continue
        rec = state.get(s)
        out[s] = ("params changed" if rec.get("status") == "done" and rec.get("params_hash") != hashes[s]
                  else "stale inputs" if rec.get("status") == "done" else rec.get("status", "not run"))
    if refused:
        out["refused"] = refused[0]
    return out


def describe(todo: dict[str, str]) -> str:
    if not todo:
        return "finished"
    return "to run: " + ", ".join(f"{s} ({why})" for s, why in todo.items())


# ---------------------------------------------------------------------------------------------
# sweep.json
# ---------------------------------------------------------------------------------------------
def run_record(run: Run, old: dict | None) -> dict:
    rec = {"run": run.name, "variant": run.variant, "seed": run.seed, "grid": run.grid, "label": run.label,
           "threads": run.threads, "status": "pending", "exit_code": None, "seconds": None, "log": f"{run.name}.log"}
    if run.only:
        rec["only"] = run.only  # made for its variants only: these stages
    for k in ("status", "exit_code", "seconds", "threads"):  # threads: the count it was made at
        if old and k in old:
            rec[k] = old[k]
    if rec["status"] == "running":  # a sweep killed while it ran: not finished
        rec["status"] = "pending"
    return rec


def definition_record(defn: Definition) -> dict:
    return {"name": defn.name, "params": defn.params, "sets": defn.sets, "grid": defn.grid, "seeds": defn.seeds,
            "variants": defn.variants, "command": defn.command()}


def merge(old: dict | None, defn: Definition, runs: list[Run]) -> tuple[dict, list[str]]:
    """(sweep.json for this definition, what changed from `old`). Runs are keyed by name: a run of
    both keeps its status; one only in `old` moves to `earlier_runs` (kept, not compared)."""
    old = old or {}
    by_name = {r["run"]: r for r in [*old.get("earlier_runs", []), *old.get("runs", [])]}
    new = {**definition_record(defn), "runs": [run_record(r, by_name.get(r.name)) for r in runs]}
    names = {r.name for r in runs}
    new["earlier_runs"] = [r for n, r in by_name.items() if n not in names]
    if not old:
        return new, []
    changes = [f"{k}: {old.get(k)} -> {new[k]}" for k in ("params", "sets", "grid", "seeds", "variants")
               if old.get(k) != new[k]]
    added = [r.name for r in runs if r.name not in by_name]
    dropped = [r["run"] for r in old.get("runs", []) if r["run"] not in names]
    changes += [f"runs added: {', '.join(added)}"] if added else []
    changes += [f"{r.name}: {by_name[r.name].get('threads')} -> {r.threads} thread(s) (its finished stages are kept)"
                for r in runs if r.name in by_name and by_name[r.name].get("threads") not in (None, r.threads)]
    changes += [f"runs not in this definition (kept in sweep.json as earlier_runs): {', '.join(dropped)}"] \
        if dropped else []
    return new, changes


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)  # atomic: a killed sweep never leaves half a file


# ---------------------------------------------------------------------------------------------
# Running: jobs side by side, each with its share of the threads
# ---------------------------------------------------------------------------------------------
def threads_per_run(jobs: int, environ: dict | None = None) -> int:
    """max(1, budget // jobs). The budget is OMP_NUM_THREADS where exported, else torch's default
    count: what a plain `run` uses, so `--jobs 1` is the same draw as `run` (CPU float results and
    the cached nano base model depend on the thread count)."""
    environ = os.environ if environ is None else environ
    if environ.get("OMP_NUM_THREADS"):
        budget = int(environ["OMP_NUM_THREADS"])
    else:
        import torch

        budget = torch.get_num_threads()
    return max(1, budget // jobs)


class Job:
    """A run's command(s), one after the other, their output appended to the run's log."""

    def __init__(self, run: Run, log: Path, runner_cmd: list[str]):
        self.run, self.log, self.commands = run, log, run.commands(runner_cmd)
        self.environ = {**os.environ, "OMP_NUM_THREADS": str(run.threads), "MKL_NUM_THREADS": str(run.threads)}
        self.proc: subprocess.Popen | None = None
        self.t0 = time.monotonic()

    def start(self) -> None:
        cmd = self.commands.pop(0)
        with open(self.log, "a") as f:
            f.write(f"\n=== {runner._now()} OMP_NUM_THREADS={self.run.threads} $ {runner._command(cmd)}\n")
            f.flush()
            self.proc = subprocess.Popen(cmd, cwd=env.PROJECT_ROOT, env=self.environ, stdout=f,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def poll(self) -> int | None:
        """None while it runs; else the exit code of the command that failed, or 0."""
        rc = self.proc.poll()
        if rc is None:
            return None
        if rc == 0 and self.commands:
            self.start()
            return None
        return rc



def stop_all(procs: list[subprocess.Popen], grace_s: float = 30.0) -> None:
    """The runners' own Ctrl-C (from a terminal they got it too; else ours), so each stops its
    kernel; then a kill for any that does not exit."""
    for signum, wait_s in ((None, 5.0), (signal.SIGINT, grace_s), (signal.SIGKILL, grace_s)):
        alive = [p for p in procs if p.poll() is None]
        for p in alive if signum else []:
            p.send_signal(signum)
        deadline = time.monotonic() + wait_s
        for p in alive:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(max(0.0, deadline - time.monotonic()))


def log_tail(path: Path, n: int = LOG_TAIL) -> str:
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    return "\n".join(f"    | {ln}" for ln in lines[-n:])


def run_seconds(run: Run) -> float | None:
    """The run's stages' time from its run_state.json (stable across resumes), else None."""
    state = runner.RunState(run.run_dir / "run_state.json")
    secs = [state.get(s).get("seconds") for s in run.stages]
    return round(sum(s for s in secs if s), 1) if any(secs) else None


class Scheduler:
    """Starts runs in order, at most `jobs` at once, a variant once its main run finished in this
    sweep; records each start and finish in sweep.json and prints one line for each."""

    def __init__(self, runs: list[Run], record: dict, sweep_dir: Path, jobs: int, todo: set[str],
                 runner_cmd: list[str], out=print):
        self.runs, self.record, self.dir, self.jobs, self.out = runs, record, sweep_dir, jobs, out
        self.runner_cmd = runner_cmd
        self.rows = {r["run"]: r for r in record["runs"]}
        self.pending = list(runs)
        self.running: dict[str, Job] = {}
        self.finished: set[str] = set()
        self.failed: dict[str, int] = {}
        self.blocked: dict[str, str] = {}
        self.todo = todo  # runs not finished at the start: the ETA counts these
        # its line() (runs done, rate, elapsed, ETA) is printed with each finish
        self.progress = ProgressLines("sweep", len(todo), unit="run", disable=True)

    def loop(self, poll_s: float = 0.2) -> None:
        while self.pending or self.running:
            self._start_ready()
            for name, job in list(self.running.items()):
                rc = job.poll()
                if rc is not None:
                    self._finish(name, job, rc)
            if self.running:
                time.sleep(poll_s)

    def _start_ready(self) -> None:
        for run in list(self.pending):
            if run.needs in self.failed or run.needs in self.blocked:
                self.pending.remove(run)
                self.blocked[run.name] = run.needs
                self.out(f"not run: {run.name} needs {run.needs}, which did not finish")
            elif len(self.running) < self.jobs and (run.needs is None or run.needs in self.finished):
                self.pending.remove(run)
                self._start(run)

    def _start(self, run: Run) -> None:
        job = Job(run, self.dir / f"{run.name}.log", self.runner_cmd)
        job.start()
        self.running[run.name] = job
        state = "resuming" if run.name not in self.todo else "start"
        self._update(run.name, status="running", **({"threads": run.threads} if run.name in self.todo else {}))
        self.out(f"{state} {run.name} ({run.variant}, seed {run.seed}, {run.threads} thread(s)); "
                 f"log: {runner._shown(job.log)}")

    def _finish(self, name: str, job: Job, rc: int) -> None:
        del self.running[name]
        took = time.monotonic() - job.t0
        secs = run_seconds(job.run)
        self._update(name, status="done" if rc == 0 else "failed", exit_code=rc,
                     seconds=secs if secs is not None else round(took, 1))
        if name in self.todo:
            self.progress.update(1)  # the ETA counts the runs that had work left at the start
        where = self.progress.line() if name in self.todo else "finished earlier, resumed"
        if rc == 0:
            self.finished.add(name)
            self.out(f"done {name} in {runner.fmt_seconds(took)}; {where}")
        else:
            self.failed[name] = rc
            self.out(f"FAILED {name}: exit code {rc} after {runner.fmt_seconds(took)}; log: "
                     f"{runner._shown(job.log)}\n{log_tail(job.log)}")

    def _update(self, name: str, **info) -> None:
        self.rows[name].update(info)
        write_json(self.dir / "sweep.json", self.record)

    def stop(self) -> None:
        """Interrupted: stop every running run; each stays pending (a restart resumes it)."""
        stop_all([job.proc for job in self.running.values()])
        for name in self.running:
            self._update(name, status="pending", exit_code=None)
            self.out(f"stopped {name}; the next sweep resumes it")
        self.running.clear()


@contextlib.contextmanager
def sweep_lock(sweep_dir: Path):
    """One sweep at a time into a folder: two would run the same run folders at once."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with open(sweep_dir / "sweep.lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ParamsError(f"another sweep is running into {runner._shown(sweep_dir)} (it holds sweep.lock); "
                              "wait for it or stop it") from None
        yield


# ---------------------------------------------------------------------------------------------
# The comparison
# ---------------------------------------------------------------------------------------------
def compare(sweep_dir: Path, notebook: Path | None = None, out=print) -> int:
    """Execute the comparison notebook over the sweep folder, as the runner executes a stage
    (papermill, kernel python3, cwd the project root): `<sweep>/06_compare.ipynb`, its files in
    `<sweep>/06_compare/`, its output in `<sweep>/06_compare.log`. Returns 0, or 1 if it failed."""
    notebook = notebook or env.NOTEBOOKS_DIR / f"{COMPARE_NOTEBOOK}.ipynb"
    if not notebook.exists():
        out(f"comparison: {runner._shown(notebook)} does not exist; nothing compared")
        return 1
    sweep_dir = Path(sweep_dir).resolve()
    out_dir, log = sweep_dir / COMPARE_NOTEBOOK, sweep_dir / f"{COMPARE_NOTEBOOK}.log"
    executed = sweep_dir / f"{COMPARE_NOTEBOOK}.ipynb"
    env.setup_environment()
    out(f"comparison: papermill {runner._shown(notebook)} -> {runner._shown(executed)} (log: {runner._shown(log)})")
    try:
        with open(log, "w") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
            runner.execute_stage(notebook, executed, {"sweep_dir": str(sweep_dir), "output_dir": str(out_dir)},
                                 cwd=env.PROJECT_ROOT)
    except runner.StageFailed as e:
        out(f"comparison FAILED: {e}\n{log_tail(log)}")
        return 1
    return report_comparison(out_dir, out)


def report_comparison(out_dir: Path, out=print) -> int:
    findings = out_dir / "findings.json"
    if not findings.exists():
        out(f"comparison FAILED: it wrote no {runner._shown(findings)}")
        return 1
    out(f"findings: {runner._shown(findings)}")
    files = sorted(p for p in out_dir.rglob("*") if p.is_file() and p != findings)
    tables = [p for p in files if p.suffix in (".md", ".csv")]
    for p in tables or files:
        out(f"{'table' if p in tables else 'wrote'}: {runner._shown(p)}")
    return 0


# ---------------------------------------------------------------------------------------------
# Dry run, run, command line
# ---------------------------------------------------------------------------------------------
def dry_run(defn: Definition, runs: list[Run], stage_names: list[str], runner_cmd: list[str], out=print) -> int:
    """Each run's command(s), its layer, what it waits for and what its folder holds; writes nothing."""
    out(f"dry run of the sweep {runner._shown(defn.path)}/ ({len(runs)} runs, {defn.jobs} at once, "
        f"{runs[0].threads} thread(s) each); nothing is run or written")
    out(f"command: {defn.command()}")
    for run in runs:
        out(f"{run.name} ({run.variant}, seed {run.seed}" + (f", {run.label}" if run.label else "") +
            f"): {describe(to_do(run, stage_names))}")
        if run.needs:
            out(f"    after: {run.needs}")
        else:
            layer = layer_path(defn, run.name)
            text = layer_text(layer_values(run.seed, run.name, defn.folder, defn.sets, run.grid))
            state = "as on disk" if layer.exists() and layer.read_text() == text else \
                "differs from the one on disk" if layer.exists() else "new"
            out(f"    layer {runner._shown(layer)} ({state}): " + "; ".join(text.strip().splitlines()))
        for cmd in run.commands(runner_cmd):
            log = runner._shown(defn.path / f"{run.name}.log")
            out(f"    $ OMP_NUM_THREADS={run.threads} {runner._command(cmd)} >> {log}")
    out(f"then: papermill notebooks/{COMPARE_NOTEBOOK}.ipynb -> {runner._shown(defn.path / COMPARE_NOTEBOOK)}.ipynb")
    return 0


def write_layers(defn: Definition, runs: list[Run]) -> None:
    """Each main run's layer, rewritten only when it changes (its runs' params are what is hashed)."""
    for run in runs:
        if run.needs:
            continue
        path = layer_path(defn, run.name)
        text = layer_text(layer_values(run.seed, run.name, defn.folder, defn.sets, run.grid))
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)


def execute(defn: Definition, runs: list[Run], stage_names: list[str], runner_cmd: list[str], out=print) -> int:
    """Run the sweep; returns 0, or 1 when a run or the comparison failed."""
    sweep_dir = defn.path
    with sweep_lock(sweep_dir):
        old_path = sweep_dir / "sweep.json"
        record, changes = merge(json.loads(old_path.read_text()) if old_path.exists() else None, defn, runs)
        for c in changes:
            out(f"sweep.json: {c}")
        todo = {r.name for r in runs if to_do(r, stage_names)}
        for run, row in zip(runs, record["runs"]):  # what the run folders hold decides
            row["status"] = "pending" if run.name in todo else "done"
            row["seconds"] = row["seconds"] if row["seconds"] is not None else run_seconds(run)
        write_layers(defn, runs)
        write_json(old_path, record)
        out(f"sweep {runner._shown(sweep_dir)}/: {len(runs)} runs ({len(todo)} to run or finish, the others "
            f"resumed), {defn.jobs} at once, {runs[0].threads} thread(s) each\ncommand: {defn.command()}")
        sched = Scheduler(runs, record, sweep_dir, defn.jobs, todo, runner_cmd, out)
        try:
            sched.loop()
        except KeyboardInterrupt:
            sched.stop()
            raise
    rc = compare(sweep_dir, out=out)
    for name, code in sched.failed.items():
        out(f"failed: {name} (exit code {code}); log: {runner._shown(sweep_dir / name)}.log")
    for name, need in sched.blocked.items():
        out(f"not run: {name} (needs {need})")
    out(f"command: {defn.command()}")
    return 1 if sched.failed or sched.blocked or rc else 0


def definition(args: argparse.Namespace) -> Definition:
    if not args.params:
        raise ParamsError("give at least one params file: python -m visionr1 sweep params/nano.yaml --seeds 0 1 2")
    if args.jobs < 1:
        raise ParamsError(f"--jobs {args.jobs}: give 1 or more")
    grid, text = parse_grid(args.grid)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    params = [runner._shown(Path(p).resolve()) for p in args.params]
    if len(set(args.seeds)) != len(args.seeds):
        raise ParamsError(f"--seeds {' '.join(map(str, args.seeds))}: a seed is repeated")
    return Definition(params, list(args.seeds), grid, text, variants, list(args.sets),
                      args.name or Path(args.params[0]).stem, args.output_root, args.jobs)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m visionr1 sweep", description=__doc__.split("\n\n")[0])
    ap.add_argument("params", nargs="*", help="YAML params files, composed in order (later win)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one run per seed (default: 0 1 2)")
    ap.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                    help="a setting's values; every combination of the --grid keys is run; repeatable")
    ap.add_argument("--variants", default="vision-r1,zero,long",
                    help="comma-separated, of vision-r1 (PARAMS), zero and long (params/ablation-*.yaml on top)")
    ap.add_argument("--jobs", type=int, default=1,
                    help="runs side by side, each with OMP_NUM_THREADS = max(1, threads // jobs)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="override one key in every run (YAML value); repeatable")
    ap.add_argument("--name", help="the sweep folder's name (default: the first params file's stem)")
    ap.add_argument("--output-root", default=DEFAULT_ROOT, help=f"parent of sweep folders (default {DEFAULT_ROOT})")
    ap.add_argument("--dry-run", action="store_true",
                    help="print every run's command, layer, dependency and state; run and write nothing")
    ap.add_argument("--compare-only", action="store_true", help="run only the comparison notebook over the folder")
    return ap


def main(argv: list[str] | None = None, runner_cmd: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    runner_cmd = runner_cmd or RUNNER
    try:
        if args.compare_only:
            if not (args.name or args.params):
                raise ParamsError("--compare-only: name the sweep with --name NAME or its params file")
            folder = env.run_dir(args.output_root, args.name or Path(args.params[0]).stem)
            if not (folder / "sweep.json").exists():
                raise ParamsError(f"--compare-only: no sweep in {runner._shown(folder)} (it holds no sweep.json)")
            return compare(folder)
        defn = definition(args)
        stage_names = [nb.stem for nb in stage_notebooks(env.NOTEBOOKS_DIR)]
        runs = plan(defn, declarations(stage_notebooks(env.NOTEBOOKS_DIR)), stage_names)
        threads = threads_per_run(defn.jobs)
        for r in runs:
            r.threads = threads
        if args.dry_run:
            return dry_run(defn, runs, stage_names, runner_cmd)
        before = signal.signal(signal.SIGTERM, _interrupt)
        try:
            return execute(defn, runs, stage_names, runner_cmd)
        finally:
            signal.signal(signal.SIGTERM, before)
    except ParamsError as e:
        print(f"params error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sweep interrupted; run the same command to continue", file=sys.stderr)
        return 130


def _interrupt(signum, frame):
    """SIGTERM stops the sweep as Ctrl-C does: its runs are stopped and stay resumable."""
    raise KeyboardInterrupt
