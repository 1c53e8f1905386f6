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


def test_step_records_read_a_trainers_metrics_jsonl(tmp_path):
    f = tmp_path / "metrics.jsonl"
    lines = [{"step": 1, "loss": 2.0, "learning_rate": 1e-3}, {"step": 2, "loss": 1.5, "learning_rate": 1e-3},
             {"step": 2, "loss": 1.4, "learning_rate": 9e-4},  # a resumed run logged step 2 again: the latest wins
             {"step": 3, "grad_norm": 0.5},  # no loss: not a loss record
             {"step": 3, "train_loss": 1.6, "train_runtime": 9.0}]  # the end-of-training summary
    f.write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert [(r["step"], r["loss"]) for r in curves.step_records(f, "loss")] == [(1, 2.0), (2, 1.4)]
    assert curves.step_records(f, "reward") == []
    fig = curves.plot_sft_loss(curves.step_records(f, "loss"), tmp_path / "loss.png")
    assert (tmp_path / "loss.png").stat().st_size > 5_000 and len(fig.axes) == 2


@pytest.mark.parametrize("values, n, expected", [
    (list(range(30)), 10, (4.5, 24.5)),  # the first and last 10 of 30
    (list(range(6)), 10, (1.0, 4.0)),    # 6 rows: windows of 3, never overlapping
    ([1.0, 3.0], 10, (1.0, 3.0)),         # 2 rows: one each
    ([2.0], 10, (2.0, 2.0)),              # 1 row: that row for both
    (list(range(10)), 2, (0.5, 8.5)),     # a smaller n
])
def test_first_last_mean(values, n, expected):
    assert curves.first_last_mean([{"r": v} for v in values], "r", n) == pytest.approx(expected)


def test_first_last_mean_without_the_key_names_it():
    with pytest.raises(ValueError, match="'reward'"):
        curves.first_last_mean([{"step": 1}], "reward")


def test_training_summary_and_runs(tmp_path):
    write_training(tmp_path / "r", [0.1] * 10 + [0.5] * 10, [(1, 12), (2, 8)], [100.0 - i for i in range(20)])
    (tmp_path / "other").mkdir()
    records, schedules = curves.training_runs({"r": tmp_path / "r", "other": tmp_path / "other"})
    assert list(records) == list(schedules) == ["r"]  # a run without 03's files is left out
    assert [s["max_completion_length"] for s in schedules["r"]] == [64, 128]
    assert curves.training_summary(records["r"]) == {"steps": 20, "reward_first10": 0.1, "reward_last10": 0.5,
                                                     "length_first10": 95.5, "length_last10": 85.5}


def test_last_rollouts_and_caption():
    samples = [{"step": s, "id": i, "question": f"Q{i}?\nmore", "answer": "2", "completion": "x" * 100 + "<answer>2</answer>",
                "rewards": {"hfrrf_reward": float(s == 20), "format_reward": 1.0, "accuracy_reward": None}}
               for s in (10, 20) for i in ("a", "b", "c")]
    shown = curves.last_rollouts(samples, k=2)
    assert [(s["step"], s["id"]) for s in shown] == [(20, "a"), (20, "b")]
    assert curves.last_rollouts([], k=4) == []
    cap = curves.rollout_caption(shown[0])
    assert cap.startswith("Qa? (answer 2) | reward: hfrrf 1 format 1 | ...") and cap.endswith("<answer>2</answer>")
    assert "accuracy" not in cap and len(cap.split("...")[1]) == 80  # unscored parts left out; the completion's end


def test_buckets_by_model_and_the_evaluated_model(tmp_path):
    outputs = {"ci": [{"response": "a b c", "correct": True}, {"response": "a " * 10, "correct": False}]}
    b = curves.buckets_by_model(outputs, [5], tokenizer=None)  # whitespace words
    assert [(x["label"], x["n"], x["accuracy"]) for x in b["ci"]] == [("0-5", 1, 1.0), ("5+", 1, 0.0)]
    run = tmp_path / "run"
    assert curves.evaluated_model_path(run, tmp_path) is None  # 04 has not run
    (tmp_path / "models" / "ci").mkdir(parents=True)
    (run / "04_evaluate").mkdir(parents=True)
    (run / "04_evaluate" / "metrics.json").write_text(json.dumps(
        {"models": {"base": "Qwen/Qwen2.5-VL-7B-Instruct", "ci": "models/ci", "rl": "/abs/rl"}}))
    assert curves.evaluated_model_path(run, tmp_path) == "models/ci"  # a hub name is not a local folder


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
    assert m["figures"] == ["training_curves.png", "overthinking.png", "reflection_words.png"]
    summary = res.stdout[res.stdout.index("05_curves done"):]  # the run's closing summary
    assert "    fx: reward 0.245 -> 0.445" in summary  # the first and the last 10 of 30 steps
    assert f"figures in {out}/: training_curves.png, overthinking.png, reflection_words.png" in summary


def test_accuracy_bars(tmp_path):
    from visionr1 import plots

    fig = plots.accuracy_bars({"start": 0.45, "rl": 0.6, "sft_control": 0.5}, 0.25, "Held-out accuracy", tmp_path / "a.png")
    assert (tmp_path / "a.png").stat().st_size > 5_000
    assert [round(p.get_height(), 2) for p in fig.axes[0].patches] == [0.45, 0.6, 0.5]
