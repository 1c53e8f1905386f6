"""The smoke pipeline end to end through the runner, asserting what each stage must record.

The smoke run itself is the session fixture `smoke_run` (tests/conftest.py), shared with the
determinism test. The nano base model is pretrained once per machine (a few CPU minutes) and cached
under .cache/nano_base-<key>; smoke.yaml keeps nano.yaml's pretraining params, so `make demo` reuses it.
"""

from __future__ import annotations

import json
import os
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


# 02 and 03 of the smoke chain on 2 CPU processes (DDP on gloo, no DeepSpeed), from the smoke run's
# 00 and 01, with fewer SFT steps, no RL held-out check, and RL paid by the `spread` reward (test_grpo.py:
# it varies within a group, where the smoke CI model earns no HFRRF reward, so RL changes the weights):
# what they test is the processes, not the nano figures
SEVERAL = ("sft_deepspeed=none", "rl_deepspeed=none", "rl_sft_control=false", "sft_max_steps=10",
           "sft_eval_samples=8", "rl_eval_samples=0", "rl_reward=spread", "skip_stages=[04_evaluate, 05_curves]")


@pytest.fixture(scope="module")
def several_env(tmp_path_factory):
    """The runs' environment: the `spread` reward registered in every process (the runner, the
    kernels, the launched ranks: Python imports `sitecustomize` from PYTHONPATH at start-up), and one
    thread per process on either layout, the kernel's too (CPU figures depend on the thread count)."""
    from test_grpo import SPREAD_REWARD

    site = tmp_path_factory.mktemp("site")
    (site / "sitecustomize.py").write_text(SPREAD_REWARD)
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def two_process_run(smoke_run, several_env, tmp_path_factory):
    """02 and 03 on 2 processes of one machine: (run folder, seconds)."""
    import time

    from conftest import copy_run_inputs, run_pipeline

    out = tmp_path_factory.mktemp("two_process")
    copy_run_inputs(smoke_run[0], out)
    t0 = time.perf_counter()
    run_pipeline("params/smoke.yaml", out, "sft_num_gpus=2", "rl_num_gpus=2", *SEVERAL, args=("--from", "02"),
                 environ=several_env)
    return out / "smoke", time.perf_counter() - t0


def test_two_process_smoke_chain_keeps_one_writer_and_each_completion_its_rewards(two_process_run):
    run = two_process_run[0]
    assert json.loads((run / "02_cold_start_sft" / "summary.json").read_text())["num_processes"] == 2
    d = run / "03_grpo_ptst"
    summary = json.loads((d / "summary.json").read_text())
    one, two = summary["stages"]
    assert summary["num_processes"] == 2 and one["num_processes"] == two["num_processes"] == 2
    # both stages trained; stage 2 starts, on both ranks, from stage 1's finished final weights
    assert one["final_sha"] != one["start_sha"] and two["final_sha"] != two["start_sha"]
    assert two["start_sha"] == one["final_sha"]
    assert two["loaded_sha"] == [one["final_sha"]] * 2 and one["trained_sha"] == [one["final_sha"]] * 2
    steps = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in steps if "reward" in r] == [1, 2, 3, 4, 5], "every RL step logged once"
    samples = [json.loads(x) for x in (d / "samples.jsonl").read_text().splitlines()]
    assert {x["rank"] for x in samples} == {0, 1}
    for x in samples:  # each recorded reward is its own completion's, not another rank's
        assert x["rewards"]["spread_reward"] == float(len(x["completion"]) % 3), x
    assert len({x["rewards"]["spread_reward"] for x in samples}) > 1
    assert {(x["step"], x["rank"]) for x in samples} == {(st, r) for st in (1, 2, 4) for r in (0, 1)}


def test_two_machines_on_localhost_give_the_figures_of_two_processes_on_one(smoke_run, two_process_run, several_env,
                                                                            tmp_path):
    """Two runners, machine ranks 0 and 1, one process each (torch.distributed.run --nnodes 2): the
    figures of 02 and 03 (times aside) are those of 2 processes on one machine, and machine 1 only
    joins the launches (3: 02's SFT and each PTST stage of 03)."""
    import subprocess
    import time

    from conftest import copy_run_inputs, pipeline_command, run_pipeline

    from visionr1 import dist, runner

    baseline = two_process_run[0]
    copy_run_inputs(smoke_run[0], tmp_path)
    machines = ("num_machines=2", f"main_process_port={dist.free_port()}", "sft_num_gpus=1", "rl_num_gpus=1", *SEVERAL)
    t0 = time.perf_counter()
    follower = subprocess.Popen(pipeline_command("params/smoke.yaml", tmp_path, *machines, "machine_rank=1",
                                                 args=("--from", "02")), cwd=env.PROJECT_ROOT, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, **several_env})
    try:
        run_pipeline("params/smoke.yaml", tmp_path, *machines, args=("--from", "02"), environ=several_env)
        log, _ = follower.communicate(timeout=120)
    finally:
        if follower.poll() is None:
            follower.kill()
    took = time.perf_counter() - t0
    assert follower.returncode == 0, log[-3000:]
    assert log.count("joining launch") == 3 and "machine 0's run finished" in log, log[-3000:]
    stages = ["02_cold_start_sft", "03_grpo_ptst"]
    two_machines, one_machine = (runner.comparable_figures(r, stages) for r in (tmp_path / "smoke", baseline))
    rl = "03_grpo_ptst/stages/1"
    assert one_machine[f"{rl}/final_sha"] != one_machine[f"{rl}/start_sha"], "RL trained: its weights are compared"
    assert two_machines == one_machine
    print(f"02 + 03 on 2 machines x 1 process: {took:.0f} s; on 1 machine x 2 processes: {two_process_run[1]:.0f} s")
