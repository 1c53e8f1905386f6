"""05_curves from fixture metrics files: the lib functions and the notebook end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from visionr1 import cold_start, curves, env


def write_training(run: Path, rewards: list[float], stages: list[tuple[int, int]], lengths: list[float]) -> None:
    d = run / "03_grpo_ptst"
    d.mkdir(parents=True, exist_ok=True)
    lines, step = [], 0
    for stage, n in stages:
        for _ in range(n):
            step += 1
            lines.append({"step": step, "stage": stage, "reward": rewards[step - 1],
                          "rewards/accuracy_reward/mean": rewards[step - 1], "completions/mean_length": lengths[step - 1],
                          "time/generation_s": 1.0})
    lines.append({"step": step, "train_runtime": 12.0})  # the trainer's end-of-training summary line
    (d / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"step": 99, "rew')  # torn last line
    (d / "grpo_params.json").write_text(json.dumps({"stages": [
        {"steps": n, "max_completion_length": 64 * s, "num_generations": 8 // s} for s, n in stages]}))


def write_eval(run: Path, model: str, responses: list[tuple[str, bool]], bench: str = "nano") -> None:
    d = run / "04_evaluate" / model
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{bench}.jsonl").write_text("".join(
        json.dumps({"id": str(i), "response": r, "correct": c, "tries": 1}) + "\n" for i, (r, c) in enumerate(responses)))


def test_training_records_spans_and_means(tmp_path):
    write_training(tmp_path, [0.1] * 10 + [0.5] * 10, [(1, 12), (2, 8)], [100.0] * 20)
    recs = curves.training_records(tmp_path / "03_grpo_ptst" / "metrics.jsonl")
    assert [r["step"] for r in recs] == list(range(1, 21))  # summary and torn lines left out
    assert curves.stage_spans(recs) == [(1, 1, 12), (2, 13, 20)]
    assert curves.mean_of(recs, "reward", first=10) == pytest.approx(0.1)
    assert curves.mean_of(recs, "reward", last=10) == pytest.approx(0.5)
    assert curves.smooth([1.0, 3.0, float("nan"), 5.0], 2) == [1.0, 2.0, 3.0, 5.0]


def test_buckets_reflections_and_runs(tmp_path):
    b = curves.length_buckets([100, 5000, 9000, 3000], [True, False, False, True], [4096, 8192])
    assert [x["label"] for x in b] == ["0-4K", "4K-8K", "8K+"]
    assert [(x["n"], x["accuracy"]) for x in b] == [(2, 1.0), (1, 0.0), (1, 0.0)]
    with pytest.raises(ValueError, match="increasing"):
        curves.length_buckets([1], [True], [8, 4])
    counts, counted = curves.reflection_words(
        {"ci": [{"response": "Wait. Hmm, wait. Alternatively"}, {"response": "Wait"}, {"response": "Wait"}]}, 2)
    assert counts == {"ci": {"Wait": 2, "Hmm": 1, "Alternatively": 1}} and counted == {"ci": 2}  # the first 2 outputs
    assert curves.reflection_counts is cold_start.reflection_counts  # one counter for 01 and 05
    for name in ("r", "r-zero", "other"):
        (tmp_path / name).mkdir()
    assert list(curves.find_runs(tmp_path / "r", [])) == ["r", "r-zero"]
    with pytest.raises(FileNotFoundError, match="nope"):
        curves.find_runs(tmp_path / "r", ["nope"])
    write_eval(tmp_path / "r", "ci", [("a", True)])
    write_eval(tmp_path / "r-zero", "rl", [("b", False)])
    assert list(curves.eval_outputs(curves.find_runs(tmp_path / "r", []), "nano")) == ["r/ci", "r-zero/rl"]


def test_curves_notebook_draws_every_figure_from_fixture_files(tmp_path):
    root = tmp_path / "outputs"
    run = root / "fx"
    write_training(run, [0.2 + 0.01 * i for i in range(30)], [(1, 15), (2, 15)], [120 - i for i in range(30)])
    write_training(root / "fx-zero", [0.1] * 30, [(1, 30)], [40.0] * 30)
    long_ok = [("<think>Wait, " + "x " * 150 + "</think><answer>1</answer>", False)] * 3
    write_eval(run, "ci", [("<think>Hmm. Wait</think><answer>2</answer>", True)] * 5 + long_ok)
    write_eval(run, "rl", [("<think>short</think><answer>2</answer>", True)] * 7 + [("Alternatively 3", False)])
    cmd = [sys.executable, "-m", "visionr1", "run", "--only", "05_curves", "--set", f"output_root={root}",
           "--set", "run_name=fx", "--set", "wandb_mode=disabled", "--set", "curves_benchmark=nano",
           "--set", "curves_length_edges=[64, 128]"]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=env.PROJECT_ROOT, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    out = run / "05_curves"
    for png in ("training_curves.png", "overthinking.png", "reflection_words.png"):
        assert (out / png).stat().st_size > 10_000, png
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["training"]) == {"fx", "fx-zero"}
    assert m["training"]["fx"]["reward_last10"] > m["training"]["fx"]["reward_first10"]
    assert m["training"]["fx"]["stages"] == [[1, 1, 15], [2, 16, 30]]
    ci = {b["label"]: b for b in m["length_buckets"]["fx/ci"] if b["n"]}
    assert ci["0-64"]["accuracy"] == 1.0 and ci["128+"]["accuracy"] == 0.0  # whitespace words: no tokenizer here
    assert m["reflection_words"]["fx/ci"] == {"Wait": 8, "Hmm": 5, "Alternatively": 0}
    assert m["reflection_words"]["fx/rl"]["Alternatively"] == 1
