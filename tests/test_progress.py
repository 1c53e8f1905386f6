"""Progress of long work as lines (visionr1.training): step / total, rate, ETA, the PTST stage and the
overall progress; time-throttled; what the runner's headless kernels print and what they no longer print."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from visionr1 import benchmarks, evaluate, nano_task, runner, training


class Clock:
    """A fake clock: seconds advance only when a test says so."""

    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def lines_of(label="SFT", total=10, every_s=30.0, **kw):
    clock, out = Clock(), []
    return training.ProgressLines(label, total, every_s=every_s, write=out.append, clock=clock, **kw), clock, out


@pytest.mark.parametrize("total, initial, done, seconds, whole, expected", [
    # one step a second: rate, elapsed and ETA in tqdm's own time format
    (10, 0, 1, 1.0, None, "SFT step 1/10 (10%) 1 step/s, elapsed 00:01, ETA 00:09"),
    # fast steps: steps per second, three figures
    (2010, 0, 120, 15.0, None, "SFT step 120/2010 (6%) 8 step/s, elapsed 00:15, ETA 03:56"),
    # slow steps: seconds per step instead
    (60, 0, 4, 50.0, None, "SFT step 4/60 (7%) 12.5 s/step, elapsed 00:50, ETA 11:40"),
    # an hour and more: H:MM:SS
    (3000, 0, 10, 60.0, None, "SFT step 10/3000 (0%) 6 s/step, elapsed 01:00, ETA 4:59:00"),
    # resumed at step 100: the rate counts only the steps done since, the position all of them
    (200, 100, 10, 10.0, None, "SFT step 110/200 (55%) 1 step/s, elapsed 00:10, ETA 01:30"),
    # nothing done yet: no rate, no ETA
    (10, 0, 0, 5.0, None, "SFT step 0/10 (0%) ? step/s, elapsed 00:05, ETA ?"),
    # a part of a larger whole (a PTST stage of RL): the whole at this part's rate
    (60, 0, 40, 40.0, (60, 180), "SFT step 40/60 (67%) 1 step/s, elapsed 00:40, ETA 00:20; "
                                 "overall 100/180 (56%), ETA 01:20"),
])
def test_line_says_step_total_rate_and_eta(total, initial, done, seconds, whole, expected):
    p, clock, _ = lines_of(total=total, initial=initial, whole=whole)
    p.n += done
    clock.t = seconds
    assert p.line() == expected


def test_postfix_and_unit():
    p, clock, out = lines_of("evaluating rl / nano", total=40, unit="sample")
    clock.t = 4.0
    p.set_postfix(loss="0.412")
    p.update(8)
    assert out == ["evaluating rl / nano sample 8/40 (20%) 2 sample/s, elapsed 00:04, ETA 00:16, loss 0.412"]


def test_lines_are_time_throttled():
    p, clock, out = lines_of(total=100, every_s=30.0)
    for step in range(100):  # one step a second
        clock.t = step + 1.0
        p.update()
    p.close()
    # the first step, then at most one line per 30 s, then the last
    assert [ln.split(" (")[0] for ln in out] == ["SFT step 1/100", "SFT step 31/100", "SFT step 61/100",
                                                 "SFT step 91/100", "SFT step 100/100"]
    p.close()  # closing again writes nothing
    assert len(out) == 5


def test_close_does_not_repeat_the_line_just_written():
    p, clock, out = lines_of(total=3, every_s=30.0)
    for step in range(3):
        clock.t = 40.0 * (step + 1)  # every step slower than the interval: each one gets its line
        p.update()
    p.close()
    assert [ln.split(" (")[0] for ln in out] == ["SFT step 1/3", "SFT step 2/3", "SFT step 3/3"]


def test_disabled_writes_nothing():
    p, clock, out = lines_of(disable=True)
    p.update(5)
    p.close()
    assert out == []


def state(step=0, max_steps=10, main=True):
    return SimpleNamespace(global_step=step, max_steps=max_steps, is_world_process_zero=main)


def run_trainer(cb, clock, st, steps, seconds_per_step, logs=None):
    """Drive a callback as the Trainer does: begin, per step the step end and a log, end."""
    cb.on_train_begin(None, st, None)
    for _ in range(steps):
        clock.t += seconds_per_step
        st.global_step += 1
        cb.on_step_end(None, st, None)
        cb.on_log(None, st, None, logs=logs)
    cb.on_train_end(None, st, None)


def test_trainer_callback_sft():
    clock, out = Clock(), []
    cb = training.TrainingProgress("SFT", every_s=30.0, write=out.append, clock=clock)
    run_trainer(cb, clock, state(max_steps=30), 30, 2.0, logs={"loss": 0.41234, "learning_rate": 1e-4})
    assert out[0] == "SFT step 1/30 (3%) 2 s/step, elapsed 00:02, ETA 00:58"  # no loss logged yet
    assert out[-1] == "SFT step 30/30 (100%) 2 s/step, elapsed 01:00, ETA 00:00, loss 0.4123"
    # the first step (2 s), 30 s later (step 16 at 32 s), the end (60 s)
    assert [ln.split(" (")[0] for ln in out] == ["SFT step 1/30", "SFT step 16/30", "SFT step 30/30"]


def test_trainer_callback_rl_stage_and_overall():
    clock, out = Clock(), []
    cb = training.TrainingProgress("RL stage 2/3", whole=(60, 180), every_s=30.0, write=out.append, clock=clock)
    run_trainer(cb, clock, state(max_steps=60), 40, 1.0, logs={"reward": 0.5, "loss": 0.0})
    assert out[-2].startswith("RL stage 2/3 step 31/60 (52%) 1 step/s, elapsed 00:31, ETA 00:29, loss 0, reward 0.5; "
                              "overall 91/180 (51%), ETA 01:29")
    assert out[-1].endswith("; overall 100/180 (56%), ETA 01:20")


def test_trainer_callback_resumed_and_other_ranks():
    clock, out = Clock(), []
    cb = training.TrainingProgress("SFT", every_s=30.0, write=out.append, clock=clock)
    run_trainer(cb, clock, state(step=20, max_steps=30), 10, 3.0)
    assert out[0] == "SFT step 21/30 (70%) 3 s/step, elapsed 00:03, ETA 00:27"  # the rate of the new steps only
    quiet = []
    cb = training.TrainingProgress("SFT", write=quiet.append, clock=clock)
    run_trainer(cb, clock, state(main=False), 10, 3.0)
    assert quiet == []  # one writer: the main process


def test_progress_is_lines_headless_and_a_bar_elsewhere(monkeypatch):
    monkeypatch.delenv("VISIONR1_HEADLESS", raising=False)
    bar = training.progress(10, "x", disable=True)
    assert not isinstance(bar, training.ProgressLines)
    bar.close()
    monkeypatch.setenv("VISIONR1_HEADLESS", "1")
    assert isinstance(training.progress(10, "x"), training.ProgressLines)


def test_headless_evaluation_prints_lines(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("VISIONR1_HEADLESS", "1")
    items = benchmarks.load("nano", nano_task.write_jsonl(nano_task.generate(4, seed=0, split="test"),
                                                          tmp_path / "test.jsonl"))
    evaluate.run(items, lambda b: ["<think>x</think><answer>1</answer>"] * len(b), tmp_path / "r.jsonl",
                 evaluate.Sampling(batch_size=2), desc="rl / nano")
    out = capsys.readouterr().err.splitlines()
    assert out[0].startswith("evaluating rl / nano sample 2/4 (50%) ")
    assert out[-1].startswith("evaluating rl / nano sample 4/4 (100%) ")
    assert "\r" not in "".join(out)


def test_kernel_runs_without_the_tcp_warning_and_streams_lines(tmp_path, capfd):
    # ipykernel warned "Kernel is running over TCP without encryption" at every stage's start;
    # the runner has the kernel manager provision CurveZMQ keys (runner._kernel_config)
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from visionr1 import training\n"
        "p = training.progress(3, 'demo')\n"
        "for _ in range(3):\n"
        "    p.update()\n"
        "p.close()")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "in.ipynb")
    runner.execute_stage(tmp_path / "in.ipynb", tmp_path / "out.ipynb", {}, cwd=tmp_path)
    captured = capfd.readouterr()
    assert "without encryption" not in captured.err
    assert "demo step 1/3 (33%)" in captured.err and "demo step 3/3 (100%)" in captured.err
    # and the executed notebook keeps them as text
    outputs = json.loads(Path(tmp_path / "out.ipynb").read_text())["cells"][-1]["outputs"]
    assert "demo step 3/3 (100%)" in "".join("".join(o.get("text", "")) for o in outputs)


def test_kernel_config_asks_for_encryption():
    import zmq

    cfg = runner._kernel_config()
    if zmq.has("curve"):
        assert cfg.KernelManager.transport_encryption == "auto"
    assert sys.modules["traitlets.config"]  # a traitlets Config, which papermill hands to the kernel manager
