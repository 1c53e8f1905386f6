"""Shared fixtures. Caches (HF, W&B, Jupyter, matplotlib) go to the project's .cache/, never $HOME.

`make test` runs the unit tests and doctests on 2 pytest-xdist workers (Makefile), one thread each:
on these tiny models two single-thread processes do more work than one process with two threads
(the unit tests on an idle 2-core machine: 1 min 52 s against 2 min 46 s).
The notebook pipelines (`slow`) then run in one process at the default thread count: a CPU's float
results can depend on it, and their asserted figures were measured there.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):  # one core per worker, for torch here and the pipelines it launches
    os.environ["OMP_NUM_THREADS"] = "1"

from visionr1 import env  # noqa: E402

env.setup_environment()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A test-size tiny Qwen2.5-VL folder, built once per session."""
    from visionr1 import tiny_model

    return tiny_model.build_tiny(tmp_path_factory.mktemp("tiny") / "model", size="test", seed=0)


def pipeline_command(params: str, output_root, *sets: str, args: tuple[str, ...] = ()) -> list[str]:
    """`python -m visionr1 run PARAMS [ARGS] --set output_root=... --set KEY=VALUE ...`."""
    return [sys.executable, "-m", "visionr1", "run", params, *args, "--set", f"output_root={output_root}",
            *[a for s in sets for a in ("--set", s)]]


def run_pipeline(params: str, output_root, *sets: str, timeout: int = 3000, args: tuple[str, ...] = (),
                 environ: dict | None = None) -> str:
    """`python -m visionr1 run PARAMS --set output_root=...` in a subprocess (`environ`: variables
    added to its environment); returns its stdout."""
    proc = subprocess.run(pipeline_command(params, output_root, *sets, args=args), cwd=env.PROJECT_ROOT,
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, **(environ or {})})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def copy_run_inputs(run_dir, output_root, stages=("00_data", "01_cold_start_data")):
    """A run folder under `output_root` holding only `stages` of the finished run `run_dir` (their
    folders, executed notebooks and run_state records), for a run `--from` the next stage."""
    import json
    import shutil

    dest = output_root / run_dir.name
    dest.mkdir(parents=True)
    for s in stages:
        shutil.copytree(run_dir / s, dest / s)
        shutil.copy2(run_dir / f"{s}.ipynb", dest / f"{s}.ipynb")
    state = json.loads((run_dir / "run_state.json").read_text())
    state["stages"] = {s: state["stages"][s] for s in stages}
    (dest / "run_state.json").write_text(json.dumps(state, indent=2))
    return dest


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The smoke pipeline (params/smoke.yaml, every stage), once per session: (run folder, stdout)."""
    out = tmp_path_factory.mktemp("outputs")
    return out / "smoke", run_pipeline("params/smoke.yaml", out)


@pytest.fixture(scope="session")
def smoke_sweep(tmp_path_factory):
    """`python -m visionr1 sweep params/smoke.yaml --seeds 0 1` of every variant, once per session:
    (sweep folder, the command). Its s0 has smoke_run's params (tests/test_determinism.py)."""
    root = tmp_path_factory.mktemp("sweeps")
    command = [sys.executable, "-m", "visionr1", "sweep", "params/smoke.yaml", "--seeds", "0", "1",
               "--variants", "vision-r1,zero,long", "--output-root", str(root)]
    proc = subprocess.run(command, cwd=env.PROJECT_ROOT, capture_output=True, text=True, timeout=5400)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
    return root / "smoke", command


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` skip cleanly where torch sees no CUDA device."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
