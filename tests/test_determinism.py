"""Same params, same seed, same figures: the smoke chain run twice on one machine gives identical
figures in every stage's metrics.json (times, speeds, memory and paths aside).

The second run goes to another output folder, so nothing is reused from the first but the cached
nano base model (keyed by its params).
"""

from __future__ import annotations

import pytest

from conftest import run_pipeline
from visionr1.runner import comparable_figures

pytestmark = pytest.mark.slow


def test_two_smoke_runs_with_one_seed_give_identical_figures(smoke_run, tmp_path):
    first, _ = smoke_run
    run_pipeline("params/smoke.yaml", tmp_path)
    a, b = comparable_figures(first), comparable_figures(tmp_path / "smoke")
    assert set(a) == set(b)
    stages = {k.split("/")[0] for k in a}
    assert stages == {"00_data", "01_cold_start_data", "02_cold_start_sft", "03_grpo_ptst", "04_evaluate", "05_curves"}
    # the figures that would move first if anything were left to chance
    for key in ("02_cold_start_sft/train_loss", "03_grpo_ptst/rl_accuracy", "03_grpo_ptst/stages/1/final_sha",
                "04_evaluate/results/rl/nano/accuracy"):
        assert key in a, key
    differ = {k: (a[k], b[k]) for k in a if a[k] != b[k]}
    assert not differ, differ
