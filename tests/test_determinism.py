"""Same params, same seed, same figures: the smoke chain run twice on one machine gives identical
figures in every stage's metrics.json (times, speeds, memory and paths aside).

The second run is the smoke sweep's s0 (`smoke_sweep`, tests/conftest.py): params/smoke.yaml with
the sweep's layer, in another output folder, so nothing is reused from the first but the cached
nano base model (keyed by its params and thread count).
"""

from __future__ import annotations

import json

import pytest
import yaml

from visionr1.runner import comparable_figures

pytestmark = pytest.mark.slow


def figures(run_dir):
    """runner.comparable_figures with the run's own name, a key of 05's `training`, written <run>."""
    return {"/".join("<run>" if part == run_dir.name else part for part in k.split("/")): v
            for k, v in comparable_figures(run_dir).items()}


def test_two_smoke_runs_with_one_seed_give_identical_figures(smoke_run, smoke_sweep):
    first, _ = smoke_run
    second = smoke_sweep[0] / "s0"
    # the same resolved params but for where the run is written
    p1, p2 = (yaml.safe_load((d / "params.yaml").read_text()) for d in (first, second))
    differ = {k for k in p1.keys() | p2.keys() if p1.get(k) != p2.get(k)}
    assert differ == {"run_name", "output_root"}, differ
    threads = [json.loads((d / "run_state.json").read_text())["threads"] for d in (first, second)]
    assert threads[0] == threads[1], threads
    a, b = figures(first), figures(second)
    assert set(a) == set(b)
    stages = {k.split("/")[0] for k in a}
    assert stages == {"00_data", "01_cold_start_data", "02_cold_start_sft", "03_grpo_ptst", "04_evaluate", "05_curves"}
    # the figures that would move first if anything were left to chance
    for key in ("02_cold_start_sft/train_loss", "03_grpo_ptst/rl_accuracy", "03_grpo_ptst/stages/1/final_sha",
                "04_evaluate/results/rl/nano/accuracy"):
        assert key in a, key
    differ = {k: (a[k], b[k]) for k in a if a[k] != b[k]}
    assert not differ, differ
