"""The papermill runner: stage order, failure reporting, continuing a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nbformat
import pytest

from visionr1 import runner
from visionr1.params import ParamsError

PARAMS = ('run_name: str = "t"  # run\noutput_root: str = "outputs"  # root\nfail: bool = False  # make stage 01 fail\n'
          "skip_stages: list[str] = []  # stages to skip\n" 'tag: str = "a"  # a setting every stage reads\n')


def notebook(path, body, params=PARAMS):
    """A stage notebook: a `parameters` cell holding `params`, then `body`."""
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


@pytest.fixture()
def stages(tmp_path):
    d = tmp_path / "notebooks"
    d.mkdir()
    # each stage appends its name to a log in the run folder, so reruns can be counted
    log = "from pathlib import Path\nr = Path(output_root) / run_name\nr.mkdir(parents=True, exist_ok=True)\n"
    notebook(d / "00_first.ipynb", log + "open(r / 'log', 'a').write('00\\n')")
    notebook(d / "01_second.ipynb", log + "open(r / 'log', 'a').write('01\\n')\n"
                                           "if fail:\n    raise ValueError('broken on purpose')")
    notebook(d / "02_third.ipynb", log + "open(r / 'log', 'a').write('02\\n')")
    return d


def run(stages, tmp_path, *args):
    return runner.main(["--notebooks", str(stages), "--set", f"output_root={tmp_path / 'out'}", *args])


def test_runs_all_stages_in_order_and_writes_params(stages, tmp_path):
    assert run(stages, tmp_path) == 0
    rd = tmp_path / "out" / "t"
    assert (rd / "log").read_text().split() == ["00", "01", "02"]
    assert sorted(p.name for p in rd.glob("*.ipynb")) == ["00_first.ipynb", "01_second.ipynb", "02_third.ipynb"]
    assert "fail: false" in (rd / "params.yaml").read_text()
    state = json.loads((rd / "run_state.json").read_text())["stages"]
    assert all(s["status"] == "done" for s in state.values())


def test_failing_stage_stops_with_its_error(stages, tmp_path, capsys):
    assert run(stages, tmp_path, "--set", "fail=true") == 1
    err = capsys.readouterr().err
    assert "stage 01_second failed" in err and "ValueError: broken on purpose" in err
    rd = tmp_path / "out" / "t"
    assert (rd / "log").read_text().split() == ["00", "01"]  # 02 never ran
    assert json.loads((rd / "run_state.json").read_text())["stages"]["01_second"]["status"] == "failed"
    # continue from the failed stage once fixed: 00 is not redone
    assert run(stages, tmp_path, "--from", "01") == 0
    assert (rd / "log").read_text().split() == ["00", "01", "01", "02"]


def test_resume_skips_finished_stages_with_same_params(stages, tmp_path):
    assert run(stages, tmp_path, "--only", "00_first") == 0
    assert run(stages, tmp_path, "--resume") == 0
    assert (tmp_path / "out" / "t" / "log").read_text().split() == ["00", "01", "02"]


def test_params_error_exits_2_before_running(stages, tmp_path, capsys):
    assert run(stages, tmp_path, "--set", "nope=1") == 2
    assert "unknown key 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_unknown_stage_is_refused():
    with pytest.raises(ParamsError, match="unknown stage 'zz'"):
        runner.pick_stage("zz", ["00_data"])


def test_cli_entry_point_help():
    out = subprocess.run([sys.executable, "-m", "visionr1", "--help"], capture_output=True, text=True, check=True)
    assert "run PARAMS" in out.stdout and "data check" in out.stdout


def test_skip_stages(stages, tmp_path):
    assert run(stages, tmp_path, "--set", "skip_stages=[01_second]") == 0
    assert (tmp_path / "out" / "t" / "log").read_text().split() == ["00", "02"]


def test_params_mistakes_fail_before_anything_runs_or_is_written(tmp_path, capsys):
    """Real notebooks: each mistake only a stage's code used to catch is refused at the start."""
    from visionr1 import env

    cases = {  # --set value -> words the error must contain
        "rl_stages=[{steps: 1}]": "missing max_completion_length, num_generations",
        "rl_rollout=vllm_colocate": "#6294",
        "rl_batch_size=6": "per-device batch 6 x 1 process(es) x grad_accum 1 = 6 completions per step is not a "
                           "multiple of num_generations 8",
        "sft_data=/nowhere/sft.jsonl": "sft_data = '/nowhere/sft.jsonl' (from --set): does not exist",
        "base_model=./no-such-model": "neither a local model folder",
        "rl_deepspeed=zero4": "one of none, zero2, zero3, zero3_offload",
    }
    for item, words in cases.items():
        code = runner.main([str(env.PROJECT_ROOT / "params" / "nano.yaml"), "--set", f"output_root={tmp_path}",
                            "--set", item])
        err = capsys.readouterr().err
        assert code == 2 and words in err and "nothing was run or written" in err, (item, err)
        assert not (tmp_path / "nano").exists(), item


def test_a_rerun_stage_makes_later_ones_stale_and_resume_reruns_them(stages, tmp_path, capsys):
    assert run(stages, tmp_path) == 0
    rd = tmp_path / "out" / "t"
    assert run(stages, tmp_path, "--only", "01") == 0  # 01 again: 02 now describes the old 01
    stale = runner.stale_reasons(rd)
    assert list(stale) == ["02_third"] and "01_second re-ran" in stale["02_third"]
    (rd / "02_third" / "metrics.json").write_text('{"accuracy": 0.5}')  # what the closing summary shows
    assert "02_third [STALE: 01_second re-ran" in runner.summarize(rd, ["02_third"])
    with pytest.raises(RuntimeError, match="02_third would read stale results|stale"):
        runner.require_fresh_inputs(rd, "03_later")
    capsys.readouterr()
    assert run(stages, tmp_path, "--resume") == 0
    out = capsys.readouterr().out
    assert "00_first: done earlier with the same params and inputs, skipped" in out
    assert "02_third: re-running: 01_second re-ran" in out
    assert (rd / "log").read_text().split() == ["00", "01", "02", "01", "02"]
    assert runner.stale_reasons(rd) == {}
    rec = json.loads((rd / "02_third" / "ran_with.json").read_text())
    assert rec["params"]["tag"] == "a" and set(rec["inputs"]) == {"00_first", "01_second"}


def test_no_stage_starts_on_stale_inputs(stages, tmp_path, capsys):
    assert run(stages, tmp_path) == 0
    assert run(stages, tmp_path, "--only", "00") == 0  # 01 and 02 are stale now
    assert run(stages, tmp_path, "--only", "02") == 2
    assert "02_third would start on stale inputs: 01_second (00_first re-ran" in capsys.readouterr().err


def test_changed_params_into_a_finished_folder_are_refused_and_overwrite_keeps_the_old(stages, tmp_path, capsys):
    assert run(stages, tmp_path) == 0
    rd = tmp_path / "out" / "t"
    capsys.readouterr()
    assert run(stages, tmp_path, "--set", "tag=b") == 2
    err = capsys.readouterr().err
    assert "holds stages finished with other params: 00_first (tag)" in err and "--overwrite" in err
    assert "tag: a" in (rd / "params.yaml").read_text(), "nothing written by the refused run"
    assert run(stages, tmp_path, "--set", "tag=b", "--overwrite") == 0
    old = list((rd / "_replaced").iterdir())
    assert len(old) == 1 and {p.name for p in old[0].iterdir()} >= {"00_first.ipynb", "01_second.ipynb",
                                                                   "02_third.ipynb", "run_state.json", "params.yaml"}
    assert "tag: a" in (old[0] / "params.yaml").read_text() and "tag: b" in (rd / "params.yaml").read_text()
    assert json.loads((rd / "00_first" / "ran_with.json").read_text())["params"]["tag"] == "b"


def test_closing_summary_shows_04s_accuracy_table_and_05s_figures(tmp_path):
    rd = tmp_path / "run"
    for stage, metrics in {
        "03_grpo_ptst": {"steps": 200, "reward_first10": 0.33, "reward_last10": 0.48, "stages": [{"stage": 1}]},
        "04_evaluate": {"results": {
            "base": {"nano": {"accuracy": 59.4, "n": 1000, "format_rate": 0.0}, "mathvista": {"accuracy": 68.1, "n": 1000}},
            "ci": {"nano": {"accuracy": 46.5, "n": 1000, "format_rate": 99.9}, "mathvista": {"accuracy": 60.2, "n": 1000}},
            "rl": {"nano": {"accuracy": 58.8, "n": 1000, "format_rate": 100.0}}},  # rl not run on mathvista
            "backend": "hf", "models": {"base": "outputs/run/00_data/base"}},
        "05_curves": {"training": {"run": {"steps": 200, "reward_first10": 0.33, "reward_last10": 0.48,
                                           "length_first10": 105.8, "length_last10": 90.5, "stages": [[1, 1, 200]]}},
                      "figures": ["training_curves.png", "overthinking.png", "reflection_words.png"]},
    }.items():
        (rd / stage).mkdir(parents=True)
        (rd / stage / "metrics.json").write_text(json.dumps(metrics))
    for png in ("training_curves.png", "reflection_words.png"):  # overthinking.png listed but not on disk
        (rd / "05_curves" / png).write_bytes(b"png")
    lines = runner.summarize(rd, ["03_grpo_ptst", "04_evaluate", "05_curves"]).splitlines()
    assert lines == [
        "  03_grpo_ptst: steps=200, reward_first10=0.33, reward_last10=0.48",
        "  04_evaluate: backend=hf",
        "    accuracy (%)  base  ci    rl",
        "    nano          59.4  46.5  58.8  (n=1000)",
        "    mathvista     68.1  60.2  -     (n=1000)",  # a model not run on a benchmark: "-"
        "  05_curves:",
        "    run: reward 0.33 -> 0.48, length 105.8 -> 90.5 tokens over 200 steps",
        f"    figures in {rd / '05_curves'}/: training_curves.png, reflection_words.png",
    ]


def test_closing_summary_lists_05s_pngs_when_metrics_name_none(tmp_path):
    d = tmp_path / "run" / "05_curves"
    d.mkdir(parents=True)
    (d / "metrics.json").write_text("{}")  # a 05 run from before metrics.json named its figures
    (d / "overthinking.png").write_bytes(b"png")
    assert runner.summarize(tmp_path / "run", ["05_curves"]).splitlines()[-1].endswith("/05_curves/: overthinking.png")


def test_headless_kernels_get_text_progress_bars():
    # the runner's papermill kernels: tqdm.auto would draw ipywidgets nobody sees in a terminal log
    code = "import visionr1, tqdm.auto, tqdm.std; print(tqdm.auto.tqdm is tqdm.std.tqdm)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "VISIONR1_HEADLESS": "1"})
    assert out.stdout.strip() == "True"
