"""The smoke pipeline end to end through the runner, asserting what each stage must record.

The smoke run itself is the session fixture `smoke_run` (tests/conftest.py), shared with the
determinism test. The nano base model is pretrained once per machine (a few CPU minutes) and cached
under .cache/nano_base-<key>; smoke.yaml keeps nano.yaml's pretraining params, so `make demo` reuses it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from visionr1 import env

pytestmark = pytest.mark.slow  # the notebook pipeline (`make test-fast` leaves it out)


def test_data_stage_writes_sets_and_base_figures(smoke_run):
    run_dir, stdout = smoke_run
    m = json.loads((run_dir / "00_data" / "metrics.json").read_text())
    assert m["sets"]["test"]["n"] == 600 and m["sets"]["rl"]["n"] == 200
    assert all(v == 0 for v in m["shared_images"].values())
    # the nano base model sees: direct accuracy at least twice the majority-answer chance level
    assert m["base_direct_accuracy"] >= 2 * m["chance_accuracy"], m
    for f in ("test.jsonl", "rl/train.parquet", "cold_start_source/source.jsonl", "samples.png", "base_accuracy.png"):
        assert (run_dir / "00_data" / f).exists(), f
    assert (run_dir / "00_data.ipynb").exists() and (run_dir / "params.yaml").exists()
    assert "run folder:" in stdout and "base_direct_accuracy" in stdout


def test_rerun_with_resume_skips_done_stages(smoke_run):
    run_dir, _ = smoke_run
    proc = subprocess.run([sys.executable, "-m", "visionr1", "run", "params/smoke.yaml", "--resume",
                           "--set", f"output_root={run_dir.parent}"], cwd=env.PROJECT_ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "skipped" in proc.stdout


def test_cold_start_stage_filters_and_exports(smoke_run):
    run_dir, _ = smoke_run
    m = json.loads((run_dir / "01_cold_start_data" / "metrics.json").read_text())
    assert m["raw"] == 60 and m["kept"] + sum(m["drops"].values()) == 60
    assert 0 < sum(m["drops"].values()) < 30  # the oracle spoils about 20%; the notebook asserts they match
    assert m["reflection_words"]["kept CoT (generated)"]["Wait"] > 0
    cold = run_dir / "01_cold_start_data" / "cold"
    assert (cold / "dataset_info.json").exists() and (cold / "sft.jsonl").read_text().count("\n") == m["kept"]


def test_sft_stage_trains_and_records_figures(smoke_run):
    run_dir, _ = smoke_run
    m = json.loads((run_dir / "02_cold_start_sft" / "metrics.json").read_text())
    assert m["steps"] == 30 and m["eval_samples"] == 40
    for key in ("format_rate", "accuracy", "base_accuracy", "s_per_step", "peak_rss_gib"):
        assert isinstance(m[key], (int, float)), key
    steps = (run_dir / "02_cold_start_sft" / "metrics.jsonl").read_text().count('"loss"')
    assert steps >= 30 and (run_dir / "02_cold_start_sft" / "final" / "processor_config.json").exists()
    assert (run_dir / "02_cold_start_sft" / "loss.png").exists()


def test_grpo_stage_runs_every_ptst_stage_and_records_figures(smoke_run):
    run_dir, _ = smoke_run
    d = run_dir / "03_grpo_ptst"
    m = json.loads((d / "metrics.json").read_text())
    assert m["steps"] == 5 and [s["stage"] for s in m["stages"]] == [1, 2]
    assert [(s["trainer_max_completion_length"], s["trainer_num_generations"]) for s in m["stages"]] == [(64, 4), (96, 2)]
    assert m["stages"][1]["start_sha"] == m["stages"][0]["final_sha"]
    for key in ("reward_first10", "reward_last10", "ci_accuracy", "rl_accuracy", "control_accuracy"):
        assert isinstance(m[key], (int, float)), key
    assert set(m["s_per_step"]) == {"generation", "reward", "training", "step"}
    assert m["eval_samples"] == 40 and m["control_steps"] >= 1
    for f in ("training_curves.png", "rollouts.png", "heldout_accuracy.png", "final/config.json", "samples.jsonl"):
        assert (d / f).exists(), f


def test_evaluate_stage_scores_base_ci_and_rl_in_one_table(smoke_run):
    run_dir, _ = smoke_run
    d = run_dir / "04_evaluate"
    m = json.loads((d / "metrics.json").read_text())
    assert set(m["results"]) == {"base", "ci", "rl"}
    for name in ("base", "ci", "rl"):
        assert m["results"][name]["nano"]["n"] == 40
        assert sum(1 for _ in (d / name / "nano.jsonl").open()) == 40
        assert m["samples_per_second"][name]["nano"] > 0
    for name in ("base", "ci", "rl"):  # 30 SFT steps do not teach the format: the nano figures test that
        r = m["results"][name]["nano"]
        assert 0 <= r["accuracy"] <= 100 and 0 <= r["format_rate"] <= 100 and "count_color" in r
    assert (d / "results.png").exists()


def test_curves_stage_draws_the_run(smoke_run):
    run_dir, _ = smoke_run
    d = run_dir / "05_curves"
    m = json.loads((d / "metrics.json").read_text())
    assert m["training"]["smoke"]["steps"] == 5 and set(m["length_buckets"]) == {"base", "ci", "rl"}
    for png in ("training_curves.png", "overthinking.png", "reflection_words.png"):
        assert (d / png).exists(), png


def test_two_process_smoke_chain_keeps_one_writer_and_each_completion_its_rewards(tmp_path):
    """The smoke chain with 02 and 03 on 2 CPU processes (DDP on gloo, no DeepSpeed)."""
    from conftest import run_pipeline

    from visionr1 import grading, rewards

    run_pipeline("params/smoke.yaml", tmp_path, "sft_num_gpus=2", "rl_num_gpus=2", "sft_deepspeed=none",
                 "rl_deepspeed=none", "rl_sft_control=false", "skip_stages=[04_evaluate, 05_curves]")
    run = tmp_path / "smoke"
    assert json.loads((run / "02_cold_start_sft" / "summary.json").read_text())["num_processes"] == 2
    d = run / "03_grpo_ptst"
    summary = json.loads((d / "summary.json").read_text())
    one, two = summary["stages"]
    assert summary["num_processes"] == 2 and one["num_processes"] == two["num_processes"] == 2
    # stage 2 starts, on both ranks, from stage 1's finished final weights (the smoke CI model rarely
    # earns a reward, so RL may leave them unchanged: tests/test_multiprocess.py trains with a varied reward)
    assert two["start_sha"] == one["final_sha"]
    assert two["loaded_sha"] == [one["final_sha"]] * 2 and one["trained_sha"] == [one["final_sha"]] * 2
    steps = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in steps if "reward" in r] == [1, 2, 3, 4, 5], "every RL step logged once"
    samples = [json.loads(x) for x in (d / "samples.jsonl").read_text().splitlines()]
    assert {x["rank"] for x in samples} == {0, 1}
    for x in samples:  # each recorded reward is its own completion's, not another rank's
        again = rewards.hfrrf_reward([x["completion"]], answer=[x["answer"]], choices=[grading.choices_in(x["question"])])
        assert again == [x["rewards"]["hfrrf_reward"]], x
    assert {(x["step"], x["rank"]) for x in samples} == {(st, r) for st in (1, 2, 4) for r in (0, 1)}
