"""The papermill runner: stage order, failure reporting, continuing a run."""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest

from visionr1 import runner
from visionr1.params import ParamsError

PARAMS = ('run_name: str = "t"  # run\noutput_root: str = "outputs"  # root\nfail: bool = False  # make stage 01 fail\n'
          "skip_stages: list[str] = []  # stages to skip\n")


def notebook(path, body):
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell(PARAMS)
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
