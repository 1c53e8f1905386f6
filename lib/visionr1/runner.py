"""The runner: executes the stage notebooks in order with papermill into outputs/<run_name>/.

    python -m visionr1 run params/nano.yaml [more.yaml ...] [--only STAGE] [--from STAGE]
                                             [--resume] [--overwrite] [--set key=value ...] [--dry-run]

Params are resolved and checked against every notebook's `parameters` cell before anything runs;
the resolved params are written to outputs/<run>/params.yaml; each stage's executed notebook is
outputs/<run>/<stage>.ipynb and its files go to outputs/<run>/<stage>/. The first failing stage
stops the run with that cell's error and exit code 1. outputs/<run>/run_state.json records which
stages finished with which params, so `--from` and `--resume` continue without redoing them.

Provenance: before anything runs, every params value is validated (visionr1.validate: schedules,
choices, cross-key rules, the paths and models the selected stages read). Each finished stage
records what it ran with in `<stage>/ran_with.json` (its params, and the finish time of every
earlier stage it read, its inputs). A stage re-running marks every later stage stale until it runs
again; `--resume` re-runs a stage whose params or inputs changed, and says why; the closing summary
marks stale stages, and no stage starts on stale inputs. A folder holding finished stages made
with other params is refused (naming the keys) unless `--resume` or `--overwrite` (which moves the
old outputs to `<run>/_replaced/<time>/`, never deleting them).

`--dry-run` makes every one of these checks without running or writing anything, then prints the
plan: each stage, its launch command(s) and GPUs (vLLM's start and stop per PTST stage in server
mode) and preflight's memory per GPU for each training stage; exit 0 when the run can start, 2
with every problem listed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from visionr1 import env, machines, validate
from visionr1.params import ParamsError, Resolved, declarations, resolve, stage_notebooks


class StageFailed(RuntimeError):
    pass


def pick_stage(name: str, stages: list[str]) -> str:
    """Accept '03_grpo_ptst', 'grpo_ptst' or '03'."""
    for s in stages:
        if name in (s, s[3:], s[:2]):
            return s
    raise ParamsError(f"unknown stage {name!r}; stages are: {', '.join(stages)}")


def fmt_seconds(s: float) -> str:
    m, s = divmod(int(round(s)), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


# keys declared after run folders existed, at the value that means what those runs did: left out of
# the hash, so such a folder keeps its hashes and `--resume` does not redo its stages
ADDED_LATER = {"num_machines": 1, "nano_base_seed": -1, "eval_data_parallel": 1,
               "nano_base_arithmetic": 0.0, "nano_base_tagged": 0.0, "nano_base_options": 0.0, "cs_oracle_style": "counts",
               "cs_mc_answer": "letter", "nano_base_direct_levels": 3}


_ABSENT = object()


def _hash(values: dict) -> str:
    """A stage's params hash; where it runs (machines.PLACEMENT_KEYS: this machine's rank, machine 0's
    address) is left out, so the same run resumed on other nodes is the same run; so is a key of
    `ADDED_LATER` at its old meaning (`num_machines: 1`)."""
    kept = {k: v for k, v in values.items()
            if k not in machines.PLACEMENT_KEYS and not (k in ADDED_LATER and v == ADDED_LATER[k])}
    return hashlib.sha1(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:12]


class RunState:
    """outputs/<run>/run_state.json: per stage its status, params hash, time and finish time."""

    def __init__(self, path: Path):
        self.path = path
        self.data = json.loads(path.read_text()) if path.exists() else {"stages": {}}

    def get(self, stage: str) -> dict:
        return self.data["stages"].get(stage, {})

    def set(self, stage: str, **info) -> None:
        self.data["stages"][stage] = info
        self._write()

    def note(self, **info) -> None:
        """Run-level facts (beside the per-stage records)."""
        self.data.update(info)
        self._write()

    def _write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2))
        tmp.replace(self.path)  # atomic: a killed run never leaves a half-written state


def stale_reasons(run_dir: Path) -> dict[str, str]:
    """{stage: why its outputs no longer follow from its inputs} for every finished stage of a run
    folder: an earlier stage re-ran (or is re-running) after it, or never finished."""
    state = RunState(Path(run_dir) / "run_state.json")
    out = {}
    for stage, rec in state.data["stages"].items():
        if rec.get("status") != "done":
            continue
        if rec.get("stale_because"):
            out[stage] = rec["stale_because"]
            continue
        for up, finished in (rec.get("inputs") or {}).items():
            now = state.get(up)
            if now.get("status") != "done":
                out[stage] = f"{up} is {now.get('status', 'gone')} since {stage} ran"
            elif now.get("finished_at") != finished:
                out[stage] = f"{up} re-ran at {now.get('finished_at')} after {stage} ran"
            if stage in out:
                break
    return out


def stale_inputs(run_dir: Path, stage: str) -> dict[str, str]:
    """The earlier stages of `stage` in this run folder that are stale: a notebook refuses to
    present results built on them (04, 05)."""
    return {s: why for s, why in stale_reasons(run_dir).items() if s < stage}


def require_fresh_inputs(run_dir: Path, stage: str) -> None:
    stale = stale_inputs(run_dir, stage)
    if stale:
        raise RuntimeError(f"{stage} would read stale results in {run_dir}: " +
                           "; ".join(f"{s} ({why})" for s, why in stale.items()) +
                           f". Re-run them first: python -m visionr1 run PARAMS --resume")


class _KnownParameters(logging.Filter):
    """papermill's own parameter inspection cannot read annotations such as `str | None` and warns
    "Passed unknown parameter" for them; every key was already checked against the notebooks'
    declarations (visionr1.params), so that warning is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Passed unknown parameter")


logging.getLogger("papermill").addFilter(_KnownParameters())


def _kernel_config():
    """The papermill kernel's manager config: CurveZMQ transport encryption where it can be had.

    ipykernel >= 7 logs "Kernel is running over TCP without encryption ..." at every kernel start
    (ipykernel/kernelapp.py, init_sockets) unless the kernel manager hands it CurveZMQ keys. The
    warning comes from the kernel process's own log, which no filter in this process reaches; its
    remedy does: jupyter_client's `KernelManager.transport_encryption = "auto"` provisions the keys
    for a kernelspec that declares curve support (ipykernel's does). Without that trait (an older
    jupyter_client) or without CurveZMQ in libzmq, the kernel runs as before and may still warn."""
    import zmq
    from jupyter_client import KernelManager
    from traitlets.config import Config

    config = Config()
    if "transport_encryption" in KernelManager.class_trait_names() and zmq.has("curve"):
        config.KernelManager.transport_encryption = "auto"
    return config


def execute_stage(nb: Path, out_nb: Path, parameters: dict, cwd: Path) -> None:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    os.environ["VISIONR1_HEADLESS"] = "1"  # the kernel inherits it: progress as lines (visionr1.training.progress)
    try:
        papermill.execute_notebook(
            str(nb), str(out_nb), parameters=parameters, kernel_name="python3", cwd=str(cwd),
            progress_bar=False, stdout_file=sys.stdout, stderr_file=sys.stderr, log_output=False,
            config=_kernel_config(),
        )
    except PapermillExecutionError as e:
        tb = _ANSI.sub("", "\n".join(e.traceback)).strip().splitlines()
        where = [ln for ln in tb if ln.lstrip().startswith("---->") or ln.lstrip().startswith("Cell In[")]
        shown = "\n    ".join(where[-4:])
        raise StageFailed(f"stage {nb.stem} failed in cell {e.exec_count} "
                          f"(executed notebook: {out_nb}):\n    {shown}\n{e.ename}: {e.evalue}") from None


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def summarize(run_dir: Path, stages: list[str]) -> str:
    """The closing summary: per stage the scalar figures of its metrics.json, then what a stage
    records in tables (`STAGE_DETAILS`: 04's accuracy per benchmark and model, 05's figure files)."""
    lines = []
    stale = stale_reasons(run_dir)
    for s in stages:
        m = run_dir / s / "metrics.json"
        if m.exists():
            data = json.loads(m.read_text())
            figures = {k: v for k, v in data.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
            mark = f" [STALE: {stale[s]}]" if s in stale else ""
            lines.append(f"  {s}{mark}:" + "".join(f" {k}={v}," for k, v in list(figures.items())[:12]).rstrip(","))
            detail = STAGE_DETAILS.get(s[3:])
            lines += [f"    {x}" for x in (detail(data, run_dir / s) if detail else [])]
    return "\n".join(lines)


def evaluate_lines(metrics: dict, stage_dir: Path) -> list[str]:
    """04's accuracy (percent) as a table, one row per benchmark, one column per model, with the
    number of graded items.

    >>> print("\\n".join(evaluate_lines({"results": {"base": {"nano": {"accuracy": 59.4, "n": 1000}},
    ...     "rl": {"nano": {"accuracy": 58.8, "n": 1000}}}}, Path("04_evaluate"))))
    accuracy (%)  base  rl
    nano          59.4  58.8  (n=1000)
    """
    results = metrics.get("results") or {}
    models = list(results)
    benches = list(dict.fromkeys(b for per in results.values() for b in per))
    if not models or not benches:
        return []
    rows = [["accuracy (%)", *models, ""]]
    for b in benches:
        ns = sorted({results[m][b].get("n") for m in models if b in results[m]} - {None})
        rows.append([b, *(f"{results[m][b]['accuracy']:.1f}" if b in results[m] else "-" for m in models),
                     f"(n={'/'.join(map(str, ns))})" if ns else ""])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def curves_lines(metrics: dict, stage_dir: Path) -> list[str]:
    """05's training figures per run (reward and completion length, first -> last 10 steps) and the
    figure files it wrote (metrics.json's `figures`, else the PNGs in its folder)."""
    out = [f"{name}: reward {t['reward_first10']} -> {t['reward_last10']}, length {t['length_first10']} -> "
           f"{t['length_last10']} tokens over {t['steps']} steps"
           for name, t in (metrics.get("training") or {}).items() if "reward_first10" in t]
    names = metrics.get("figures") or sorted(p.name for p in stage_dir.glob("*.png"))
    written = [n for n in names if (stage_dir / n).exists()]
    if written:
        out.append(f"figures in {_shown(stage_dir)}/: {', '.join(written)}")
    return out


def _shown(path: Path) -> str:
    """A path as a user would type it: relative to the project root when it lies under it."""
    try:
        return str(Path(path).resolve().relative_to(env.PROJECT_ROOT))
    except ValueError:
        return str(path)


STAGE_DETAILS = {"evaluate": evaluate_lines, "curves": curves_lines}  # stage name after its number -> lines


def changed_keys(run_dir: Path, stage: str, params: dict) -> list[str] | None:
    """Keys whose value differs from what the stage last ran with (None: no record of it); a key of
    `ADDED_LATER` that the record lacks counts at its old meaning, as in the hash."""
    rec = Path(run_dir) / stage / "ran_with.json"
    if not rec.exists():
        return None
    old = json.loads(rec.read_text())["params"]
    new = json.loads(json.dumps(params, default=str))

    def value(d: dict, k: str):
        return d[k] if k in d else ADDED_LATER.get(k, _ABSENT)

    return sorted(k for k in set(old) | set(new)
                  if value(old, k) != value(new, k) and k not in machines.PLACEMENT_KEYS)


def move_aside(run_dir: Path, stages: list[str], log=print) -> Path:
    """Move these stages' outputs (folder and executed notebook) and the run's records to
    `<run>/_replaced/<time>/`; returns that folder. Nothing is deleted."""
    dest = run_dir / "_replaced" / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    dest.mkdir(parents=True, exist_ok=False)
    for name in ("run_state.json", "params.yaml"):
        if (run_dir / name).exists():
            shutil.copy2(run_dir / name, dest / name)
    for stage in stages:
        for src in (run_dir / stage, run_dir / f"{stage}.ipynb"):
            if src.exists():
                shutil.move(str(src), str(dest / src.name))
    log(f"moved the outputs of {', '.join(stages)} to {dest}")
    return dest


# keys of metrics.json that hold times (grading/mean_ms too), speeds, memory or paths: they differ between two runs of the
# same params and seed, every other figure must not (tests/test_determinism.py)
VOLATILE = re.compile(r"second|_s$|_ms$|/s$|per_s|time|rss|path|elapsed|_at$|model|from|dir$|speed|wall", re.I)


def comparable_figures(run_dir: Path, stages: list[str] | None = None) -> dict:
    """Every figure of each stage's metrics.json, flattened to "stage/key/subkey" -> value, except
    the volatile ones (`VOLATILE`: times, speeds, memory, paths; and any absolute path as a value)."""
    out: dict = {}

    def walk(prefix: str, v) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                if not VOLATILE.search(str(k)):
                    walk(f"{prefix}/{k}", x)
        elif isinstance(v, list):
            for i, x in enumerate(v):
                walk(f"{prefix}/{i}", x)
        elif not (isinstance(v, str) and Path(v).is_absolute()):  # a path under the run folder
            out[prefix] = v

    for m in sorted(Path(run_dir).glob("*/metrics.json")):
        if stages is None or m.parent.name in stages:
            walk(m.parent.name, json.loads(m.read_text()))
    return out


def select_stages(names: list[str], only: str | None, start: str | None) -> list[str]:
    """The stages `--only` / `--from` pick (all without either)."""
    if only and start:
        raise ParamsError("use --only or --from, not both")
    if only:
        return [pick_stage(only, names)]
    if start:
        return names[names.index(pick_stage(start, names)):]
    return list(names)


def finished_with_other_params(run_dir: Path, state: RunState, resolved: Resolved, nbs: list[Path],
                               selected: list[str], skipped: set[str]) -> tuple[dict, dict]:
    """({stage: changed keys} for every finished stage whose params differ now, the part of it this
    run would overwrite: selected and not skipped). A stage it only reads is kept as it is."""
    hashes = {nb.stem: _hash(resolved.for_notebook(nb.name)) for nb in nbs}
    differ = {s: changed_keys(run_dir, s, resolved.for_notebook(f"{s}.ipynb"))
              for s, rec in state.data["stages"].items()
              if rec.get("status") == "done" and s in hashes and rec.get("params_hash") != hashes[s]}
    return differ, {s: keys for s, keys in differ.items() if s in selected and s not in skipped}


def refusal(run_dir: Path, conflicts: dict) -> str:
    return (f"{run_dir} holds stages finished with other params: " +
            "; ".join(f"{s} ({', '.join(keys) if keys else 'params differ'})" for s, keys in conflicts.items()) +
            ". Use --resume (re-run what changed and what depends on it), a new run_name "
            "(--set run_name=...), or --overwrite (move the old outputs to _replaced/ and start again)")


def run(files: list[str], sets: list[str] | None = None, only: str | None = None, start: str | None = None,
        resume: bool = False, notebooks_dir: Path | None = None, log=print, overwrite: bool = False) -> Path:
    """Resolve and validate params, then run the selected stages; returns the run folder."""
    env.setup_environment()
    nbs = stage_notebooks(notebooks_dir or env.NOTEBOOKS_DIR)
    resolved: Resolved = resolve(files, sets, declarations(nbs))
    launcher = machines.apply_environment(resolved.values, resolved.sources)
    names = [nb.stem for nb in nbs]
    selected = select_stages(names, only, start)
    skipped = set(resolved.values.get("skip_stages", []))
    found = validate.problems(resolved.values, resolved.sources, [s for s in selected if s not in skipped])
    where = machines.Machines.from_values(resolved.values)
    if where.rank > 0 and overwrite:
        found.append("--overwrite on a machine of machine_rank > 0: only machine 0 writes the run folder; "
                     "give --overwrite to machine 0's command only")
    if found:
        raise ParamsError(f"{len(found)} problem(s) in the params; nothing was run or written:\n  " + "\n  ".join(found))
    for w in validate.warnings(resolved.values, [s for s in selected if s not in skipped]):
        log(f"warning: {w}")
    run_dir = env.run_dir(resolved.values["output_root"], resolved.values["run_name"])
    if launcher:
        log(f"machines from the {launcher} environment: " + ", ".join(
            f"{k}={resolved.values[k]}" for k in machines.KEYS if resolved.sources[k].startswith("env")))
    if where.rank > 0:  # joins machine 0's launches; writes nothing (the run folder is machine 0's)
        from visionr1 import dist

        if not machines.follow(where, run_dir, dist.join, log):
            raise StageFailed(f"machine 0's run failed (its log says where); machine {where.rank} stopped with it")
        return run_dir
    state = RunState(run_dir / "run_state.json")
    differ, conflicts = finished_with_other_params(run_dir, state, resolved, nbs, selected, skipped)
    for s, keys in differ.items():
        if s not in conflicts:
            log(f"note: {s} ran with other params ({', '.join(keys or ['?'])}); its outputs are kept and read as "
                f"they are (its own record: {run_dir / s / 'ran_with.json'})")
    if conflicts and not (resume or overwrite):
        raise ParamsError(refusal(run_dir, conflicts))
    if conflicts and overwrite:
        first = min(names.index(s) for s in conflicts)
        later = [s for s in names[first:] if state.get(s) or (run_dir / s).exists()]
        move_aside(run_dir, later, log)
        for s in later:
            state.data["stages"].pop(s, None)
    run_dir.mkdir(parents=True, exist_ok=True)
    resolved.dump(run_dir / "params.yaml")
    # CPU float results depend on the thread count (blocking of the matrix products): identical
    # figures need the same params, seed and threads, so the run records them
    state.note(threads=int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1))
    for earlier in names[:names.index(selected[0])]:
        if state.get(earlier).get("status") != "done":
            log(f"note: {earlier} has not finished in {run_dir}; later stages may miss its outputs")
    log(f"run {resolved.values['run_name']} -> {run_dir}  (params: {', '.join(map(str, files)) or 'defaults'})")
    coordinator = None
    if where.several:  # the other machines read this token from the shared folder before they join
        coordinator = machines.Coordinator(where)
        state.note(machines=where.num, machines_token=coordinator.token)
        log(f"machine 0 of {where.num}: the others join each training launch through {where.ip}:{where.port}")
    with coordinator or contextlib.nullcontext():
        _run_stages(nbs, names, selected, resolved, state, run_dir, resume, log)
    summary = summarize(run_dir, selected)
    if summary:
        log(summary)
    return run_dir


def _run_stages(nbs: list[Path], names: list[str], selected: list[str], resolved: Resolved, state: RunState,
                run_dir: Path, resume: bool, log) -> None:
    """`run`'s loop over the selected stages."""
    skipped = set(resolved.values.get("skip_stages", []))
    t_run = time.perf_counter()
    for i, nb in enumerate(nbs):
        stage = nb.stem
        if stage not in selected:
            continue
        if stage in resolved.values.get("skip_stages", []):
            log(f"[{i + 1}/{len(nbs)}] {stage}: skipped (skip_stages)")
            continue
        params = resolved.for_notebook(nb.name)
        h = _hash(params)
        prev = state.get(stage)
        stale = stale_reasons(run_dir).get(stage)
        if resume and prev.get("status") == "done" and prev.get("params_hash") == h and not stale:
            log(f"[{i + 1}/{len(nbs)}] {stage}: done earlier with the same params and inputs, skipped")
            continue
        if resume and prev.get("status") == "done":
            why = stale or "its params changed (" + ", ".join(changed_keys(run_dir, stage, params) or ["?"]) + ")"
            log(f"[{i + 1}/{len(nbs)}] {stage}: re-running: {why}")
        upstream = [s for s in names[:names.index(stage)] if s not in skipped]
        not_fresh = {s: why for s, why in stale_reasons(run_dir).items() if s in upstream}
        if not_fresh:
            raise ParamsError(f"{stage} would start on stale inputs: " + "; ".join(
                f"{s} ({why})" for s, why in not_fresh.items()) + ". Run with --resume, or --from the first of them")
        inputs = {s: state.get(s).get("finished_at") for s in upstream if state.get(s).get("status") == "done"}
        # everything after this stage now describes outputs of its previous run: stale until re-run
        for later in names[names.index(stage) + 1:]:
            if state.get(later).get("status") == "done":
                state.data["stages"][later]["stale_because"] = f"{stage} re-ran at {_now()} after it"
        log(f"[{i + 1}/{len(nbs)}] {stage} ...")
        state.set(stage, status="running", params_hash=h, started_at=_now())
        t0 = time.perf_counter()
        try:
            execute_stage(nb, run_dir / nb.name, params, cwd=env.PROJECT_ROOT)
        except StageFailed:
            state.set(stage, status="failed", params_hash=h, seconds=round(time.perf_counter() - t0, 1),
                      finished_at=_now())
            raise
        took = time.perf_counter() - t0
        finished = _now()
        (run_dir / stage).mkdir(parents=True, exist_ok=True)
        (run_dir / stage / "ran_with.json").write_text(json.dumps(
            {"params": params, "inputs": inputs, "finished_at": finished}, indent=2, default=str))
        state.set(stage, status="done", params_hash=h, seconds=round(took, 1), finished_at=finished, inputs=inputs)
        log(f"[{i + 1}/{len(nbs)}] {stage} done in {fmt_seconds(took)}")
    log(f"finished in {fmt_seconds(time.perf_counter() - t_run)}; run folder: {run_dir}")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------
# --dry-run: every check of `run`, then the plan, nothing run or written
# ---------------------------------------------------------------------------------------------
def stale_refusals(run_dir: Path, names: list[str], selected: list[str], skipped: set[str], hashes: dict,
                   resume: bool, state: RunState | None = None) -> tuple[list[str], set[str]]:
    """`run`'s loop replayed on the run folder's records without running anything: (the refusal
    it would meet, "STAGE would start on stale inputs", if any; the stages --resume would skip).
    A stage that runs marks every later finished stage stale, as `run` does."""
    state = state or RunState(Path(run_dir) / "run_state.json")
    done = {s for s, rec in state.data["stages"].items() if rec.get("status") == "done"}
    stale = {s: why for s, why in stale_reasons(run_dir).items() if s in done}  # --overwrite took some away
    kept: set[str] = set()
    for stage in names:
        if stage not in selected or stage in skipped:
            continue
        prev = state.get(stage)
        if resume and stage in done and prev.get("params_hash") == hashes[stage] and stage not in stale:
            kept.add(stage)
            continue
        upstream = [s for s in names[:names.index(stage)] if s not in skipped]
        not_fresh = {s: stale[s] for s in upstream if s in stale}
        if not_fresh:
            return [f"{stage} would start on stale inputs: " + "; ".join(f"{s} ({why})" for s, why in not_fresh.items())
                    + ". Run with --resume, or --from the first of them"], kept
        stale.pop(stage, None)
        done.add(stage)
        for later in names[names.index(stage) + 1:]:
            if later in done:
                stale[later] = f"{stage} re-runs before it"
    return [], kept


def dry_run(files: list[str], sets: list[str] | None = None, only: str | None = None, start: str | None = None,
            resume: bool = False, notebooks_dir: Path | None = None, overwrite: bool = False,
            out=print, err=None) -> int:
    """Every check `run` makes (params keys and types, validate.problems with the data and
    benchmark paths, the refusals a finished or stale run folder meets), then the plan: each stage
    to run, its launch command(s) and GPUs, vLLM's start and stop per PTST stage, and preflight's
    per-GPU memory for each training stage. Nothing is run or written (no run folder, no
    params.yaml). Returns 0 when the run can start, 2 with every problem listed on stderr."""
    err = err or (lambda m: print(m, file=sys.stderr))
    env.setup_environment()
    try:
        nbs = stage_notebooks(notebooks_dir or env.NOTEBOOKS_DIR)
        resolved: Resolved = resolve(files, sets, declarations(nbs))
    except ParamsError as e:  # without resolved params nothing else can be checked
        err(f"dry run: 1 problem; nothing was run or written:\n  {e}")
        return 2
    launcher = machines.apply_environment(resolved.values, resolved.sources, dict(os.environ))
    v = resolved.values
    names = [nb.stem for nb in nbs]
    found: list[str] = []
    try:
        selected = select_stages(names, only, start)
    except ParamsError as e:
        found.append(str(e))
        selected = names
    skipped = set(v.get("skip_stages", []))
    running = [s for s in selected if s not in skipped]
    found += validate.problems(v, resolved.sources, running)
    where = machines.Machines.from_values(v)
    if where.rank > 0 and overwrite:
        found.append("--overwrite on a machine of machine_rank > 0: only machine 0 writes the run folder; "
                     "give --overwrite to machine 0's command only")
    run_dir = env.run_dir(v["output_root"], v["run_name"])
    state = RunState(run_dir / "run_state.json")
    hashes = {nb.stem: _hash(resolved.for_notebook(nb.name)) for nb in nbs}
    notes: list[str] = []
    differ, conflicts = finished_with_other_params(run_dir, state, resolved, nbs, selected, skipped)
    for s, keys in differ.items():
        if s not in conflicts:
            notes.append(f"{s} ran with other params ({', '.join(keys or ['?'])}); its outputs are kept and read")
    if conflicts and not (resume or overwrite):
        found.append(refusal(run_dir, conflicts))
    if conflicts and overwrite:  # what run moves to _replaced/ no longer counts
        first = min(names.index(s) for s in conflicts)
        moved = [s for s in names[first:] if state.get(s) or (run_dir / s).exists()]
        notes.append(f"--overwrite moves the outputs of {', '.join(moved)} to {run_dir / '_replaced'}/")
        state = RunState(run_dir / "run_state.json")
        for s in moved:
            state.data["stages"].pop(s, None)
    refused, kept = stale_refusals(run_dir, names, selected, skipped, hashes, resume, state)
    found += refused
    for earlier in names[:names.index(selected[0])]:
        if earlier not in skipped and state.get(earlier).get("status") != "done":
            notes.append(f"{earlier} has not finished in {_shown(run_dir)}; later stages may miss its outputs")
    warns = validate.warnings(v, running)
    mem_lines, mem_problems, mem_note = _memory_plan(v, running)
    found += mem_problems
    notes += [mem_note] if mem_note else []
    out(f"dry run of {v['run_name']} -> {_shown(run_dir)}/ (params: {', '.join(map(str, files)) or 'defaults'}); "
        f"nothing is run or written")
    for w in warns:
        out(f"warning: {w}")
    if launcher:
        notes.append(f"machines from the {launcher} environment: " + ", ".join(
            f"{k}={v[k]}" for k in machines.KEYS if resolved.sources[k].startswith("env")))
    if where.several:
        notes.append(_machines_note(where, run_dir))
    for n in notes:
        out(f"note: {n}")
    out("plan (commands as launched on a CUDA machine; without CUDA several processes run on gloo with "
        "python -m torch.distributed.run):")
    for i, nb in enumerate(nbs):
        stage = nb.stem
        head = f"[{i + 1}/{len(nbs)}] {stage}"
        if stage not in selected:
            continue
        if stage in skipped:
            out(f"{head}: skipped (skip_stages)")
            continue
        if stage in kept:
            out(f"{head}: done earlier with the same params and inputs, skipped (--resume)")
            continue
        out(f"{head}: papermill {_shown(nb)} -> {_shown(run_dir / nb.name)}")
        try:
            lines = _stage_plan(stage, v, run_dir, mem_lines)
        except (ValueError, KeyError, TypeError, ZeroDivisionError, OSError) as e:  # a problem listed below
            lines = [f"no plan: {type(e).__name__}: {e}"[:300]]
        for line in lines:
            out(f"    {line}")
    if found:
        err(f"dry run: {len(found)} problem(s); nothing was run or written:\n  " + "\n  ".join(found))
        return 2
    out("dry run: every check passed; `run` with the same arguments starts here")
    return 0


def _memory_plan(v: dict, running: list[str]) -> tuple[dict, list[str], str | None]:
    """({(notebook, PTST stage or None): preflight's line}, problems, a note when there is no
    estimate): per-GPU memory of each training stage, judged against sft_preflight_gpu_gib when
    set (a stage over it is a problem), else shown against 80 GiB."""
    from visionr1 import preflight

    trains = {"02_cold_start_sft", "03_grpo_ptst"} & set(running)
    if not trains:
        return {}, [], None
    gpu = v.get("sft_preflight_gpu_gib")
    size = float(gpu) if gpu else 80.0
    try:
        rows, _ = preflight.report({**v, "skip_stages": [s for s in ("02_cold_start_sft", "03_grpo_ptst")
                                                         if s not in trains]}, (size,), data_lengths=False)
    except (preflight.PreflightError, ValueError, KeyError, TypeError, ZeroDivisionError) as e:
        return {}, [], f"no memory estimate: {e}"[:300]
    lines, problems = {}, []
    for r in rows:
        m = r["memory_gib"]
        ok, short = r["fits"][size]
        parts = ", ".join(f"{k} {m[k]}" for k in ("weights", "grads", "optimizer", "reference", "activations",
                                                  "kv_cache") if m[k])
        verdict = f"fits {size:g} GiB" if ok else f"DOES NOT FIT {size:g} GiB ({short:g} short)"
        lines[(r["notebook"], r["ptst_stage"])] = (f"memory per GPU (preflight, {r['model']}): {m['total']} GiB, "
                                                   f"{verdict}; {parts}")
        if not ok and gpu:
            problems.append(f"{r['stage']}: estimated {m['total']} GiB per GPU does not fit sft_preflight_gpu_gib "
                            f"{size:g} GiB ({short:g} short; python -m visionr1 preflight shows the parts); fix: a "
                            f"smaller per-device batch with more accumulation, ZeRO-3, LoRA or shorter sequences")
    return lines, problems, None


def _gpus(first: int, n: int) -> str:
    return ",".join(str(g) for g in range(first, first + n))


def _stage_plan(stage: str, v: dict, run_dir: Path, memory: dict) -> list[str]:
    """What one stage launches, on which GPUs, and its memory estimate."""
    from visionr1 import dist

    sdir = _shown(run_dir / stage)
    if stage == "02_cold_start_sft":
        n = int(v["sft_num_gpus"])
        where = machines.Machines.from_values(v)
        if where.several:
            lines = [f"SFT ({v['sft_method']}, {v['sft_deepspeed']}) on {where.num} machines x GPUs {_gpus(0, n)} "
                     f"(machine 0 announces the launch with its rendezvous PORT):"]
            lines += [f"  machine {r}: CUDA_VISIBLE_DEVICES={_gpus(0, n)} " + _command(dist.launch_command(
                "visionr1.sft", [f"{sdir}/sft_params.json"], n, cuda=True, main_process_port="PORT",
                machines=_on(where, r))) for r in _ranks(where)]
        elif n > 1:
            cmd = dist.launch_command("visionr1.sft", [f"{sdir}/sft_params.json"], n, cuda=True)
            lines = [f"SFT ({v['sft_method']}, {v['sft_deepspeed']}) on GPUs {_gpus(0, n)}:",
                     f"  CUDA_VISIBLE_DEVICES={_gpus(0, n)} {_command(cmd)}"]
        else:
            lines = [f"SFT ({v['sft_method']}) in the notebook kernel: one process on GPU 0 (or the CPU)"]
        return lines + ([memory[(stage, None)]] if (stage, None) in memory else [])
    if stage == "03_grpo_ptst":
        return _grpo_plan(v, run_dir, memory)
    if stage == "04_evaluate":
        from visionr1 import eval_parallel

        return eval_parallel.plan(v, sdir)
    return ["in the notebook kernel (one process)"]


def _grpo_plan(v: dict, run_dir: Path, memory: dict) -> list[str]:
    """03 as grpo.launch runs it: per PTST stage the batch arithmetic, the vLLM server's start on the
    stage's start model and its stop (server mode), the training launch, and the memory estimate."""
    from visionr1 import dist, grpo, vllm_server

    n = int(v["rl_num_gpus"])
    m = machines.Machines.from_values(v)
    p = _planned_grpo_params(v, run_dir)
    remote = p.rollout == "vllm_server" and not vllm_server.is_local(p.vllm_server_host)
    server = p.rollout == "vllm_server" and not remote  # started here, per stage
    launched = n > 1 or server or remote or m.several  # grpo.launch: one process group per stage; else in the kernel
    train_gpus, serve_gpus = vllm_server.split_gpus(n, p.vllm_gpus, [str(i) for i in range(n + p.vllm_gpus)]) \
        if server else ([str(i) for i in range(n)], [])
    where = f"GPU(s) {','.join(train_gpus)}" if launched else "the notebook kernel (GPU 0, or the CPU)"
    if m.several:
        where = f"{m.num} machines x {where}"
    lines = [f"GRPO under PTST, {len(p.stages)} stage(s), training on {where}" +
             (f", vLLM server on machine 0's GPU(s) {','.join(serve_gpus)}" if server and m.several else
              f", vLLM server on GPU(s) {','.join(serve_gpus)}" if server else
              f", vLLM server started by you at {p.vllm_server_host}:{p.vllm_server_port}" if remote else
              ", rollouts by HF generate")]
    if remote:
        lines.append(f"start it there first (rollouts wait for it, up to rl_vllm_server_timeout): "
                     f"{_command(grpo.server_command(p))}")
    for k, st in enumerate(p.stages, 1):
        batch, procs, accum, per_step = validate.rl_generation_batch(v, st)
        g = int(st["num_generations"])
        lines.append(f"stage {k}: {st['steps']} steps of {st['max_completion_length']} tokens x {g}; {batch} per "
                     f"device x {procs} process(es) x {accum} accumulation = {per_step} completions "
                     f"= {per_step / g:g} prompt{'s' * (per_step != g)} per step")
        if server:
            start = grpo.stage_start(p, k)
            lines.append(f"  start vLLM: CUDA_VISIBLE_DEVICES={','.join(serve_gpus)} "
                         f"{_command(grpo.server_command(p, start))}")
        if remote:
            lines.append(f"  wait for the vLLM server at {p.vllm_server_host}:{p.vllm_server_port}")
        if launched and m.several:
            for r in _ranks(m):
                cmd = dist.launch_command("visionr1.grpo", [f"{p.output_dir}/grpo_params.json", "--stage", str(k)],
                                          n, cuda=True, mixed_precision="bf16" if p.bf16 else "no",
                                          main_process_port="PORT", machines=_on(m, r))
                gpus = ",".join(train_gpus) if r == 0 else _gpus(0, n)
                lines.append(f"  train, machine {r}: CUDA_VISIBLE_DEVICES={gpus} {_command(cmd)}")
        elif launched:
            cmd = dist.launch_command("visionr1.grpo", [f"{p.output_dir}/grpo_params.json", "--stage", str(k)], n,
                                      cuda=True, mixed_precision="bf16" if p.bf16 else "no")
            lines.append(f"  train: CUDA_VISIBLE_DEVICES={','.join(train_gpus)} {_command(cmd)}")
        else:
            lines.append("  train: grpo.train in the notebook kernel")
        if server:
            lines.append(f"  stop vLLM (port {p.vllm_server_port}) when stage {k} ends or fails")
        if ("03_grpo_ptst", k) in memory:
            lines.append(f"  {memory[('03_grpo_ptst', k)]}")
    return lines


def _ranks(m: machines.Machines) -> list:
    """The machine ranks a plan shows: each of up to 3 machines, else 0 and R (each other machine)."""
    return list(range(m.num)) if m.num <= 3 else [0, "R"]


def _on(m: machines.Machines, rank) -> machines.Machines:
    from dataclasses import replace

    return replace(m, rank=rank)


def _machines_note(m: machines.Machines, run_dir: Path) -> str:
    """What each machine does in a run over several."""
    if m.rank > 0:
        return (f"machine {m.rank} of {m.num}: runs no notebook and writes nothing; it joins each training launch "
                f"machine 0 ({m.ip}:{m.port}) announces, once it reads machine 0's token in {_shown(run_dir)}/ "
                f"(output_root must be shared)")
    return (f"machine 0 of {m.num}: runs every stage below and writes {_shown(run_dir)}/ (a shared filesystem); its "
            f"runner holds the coordinator on port {m.port}, through which each training launch is announced to "
            + ("machine 1" if m.num == 2 else f"machines 1..{m.num - 1}") + " (started with the same params and "
            "--set machine_rank=R)")


def _planned_grpo_params(v: dict, run_dir: Path):
    """03's GRPOParams as the stage will build them; a start model an earlier stage of this run
    makes is named by the path it will have."""
    from visionr1 import grpo, models

    source = env.run_dir(v["output_root"], v["rl_source_run"]) if v.get("rl_source_run") else run_dir
    try:
        model = grpo.start_model(v, source)
    except FileNotFoundError:
        ref = v["rl_start"]
        other, ref = ref.split(":", 1) if ":" in ref else (None, ref)
        stage, sub = models.STAGE_MODELS[ref]
        folder = (source.parent / other) if other else source
        model = _shown(folder / stage / sub) if sub else f"{v.get('base_model')} (00_data's base model)"
    return grpo.GRPOParams.from_values(v, model=str(model), data=v.get("rl_data") or _shown(source / "00_data" / "rl"),
                                       output_dir=_shown(run_dir / "03_grpo_ptst"))


def _command(cmd: list[str]) -> str:
    """A command line as a user would type it: the venv's python as `python`, quoted where needed."""
    import shlex

    return " ".join("python" if c == sys.executable else shlex.quote(str(c)) for c in cmd)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m visionr1 run",
                                 description="Run the stage notebooks with papermill.")
    ap.add_argument("params", nargs="*", help="YAML params files, composed in order (later win)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="override one key (YAML value); repeatable")
    ap.add_argument("--only", metavar="STAGE", help="run this stage only")
    ap.add_argument("--from", dest="start", metavar="STAGE", help="run from this stage on")
    ap.add_argument("--resume", action="store_true",
                    help="skip stages that finished earlier in this run folder with the same params")
    ap.add_argument("--overwrite", action="store_true",
                    help="replace stages finished with other params (their outputs move to <run>/_replaced/)")
    ap.add_argument("--dry-run", action="store_true",
                    help="make every check run makes (params, data and benchmark paths, finished or stale stages, "
                         "memory per GPU), print each stage's launch commands and GPUs, run and write nothing; "
                         "exit 0 when the run can start, 2 listing every problem")
    ap.add_argument("--notebooks", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.dry_run:
        return dry_run(args.params, args.sets, args.only, args.start, args.resume, args.notebooks, args.overwrite)
    try:
        run(args.params, args.sets, args.only, args.start, args.resume, args.notebooks, overwrite=args.overwrite)
    except ParamsError as e:
        print(f"params error: {e}", file=sys.stderr)
        return 2
    except StageFailed as e:
        print(f"\n{e}", file=sys.stderr)
        return 1
    return 0
