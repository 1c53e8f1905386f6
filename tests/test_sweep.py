"""The sweep (`python -m visionr1 sweep`): naming, layers, order, threads, sweep.json, dry run,
resuming, failures and the comparison step.

The fast tests run the real sweep against tests/fake_runner.py, which records stages the way the
runner does (real params, real hashes) without executing notebooks; the slow ones run a 2-seed
smoke sweep of every variant through the real runner (the `smoke_sweep` fixture, tests/conftest.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from visionr1 import env, runner, sweep
from test_runner import notebook  # a stage notebook: a parameters cell, then a body
from visionr1.params import ParamsError, declarations, stage_notebooks

FAKE = [sys.executable, str(Path(__file__).with_name("fake_runner.py"))]
STAGES = [nb.stem for nb in stage_notebooks(env.NOTEBOOKS_DIR)]


@pytest.fixture()
def fake(tmp_path, monkeypatch):
    """The environment of tests/fake_runner.py; the comparison is recorded, not executed (its own
    test executes a notebook)."""
    monkeypatch.setenv("FAKE_RUNNER_LOG", str(tmp_path / "calls.jsonl"))
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    compared = []
    monkeypatch.setattr(sweep, "compare", lambda d, **kw: compared.append(d) or 0)
    return compared


def starting(out: str, word: str) -> int:
    return sum(line.startswith(word) for line in out.splitlines())


def calls(tmp_path) -> list[dict]:
    return [json.loads(x) for x in (tmp_path / "calls.jsonl").read_text().splitlines()]


def sweep_main(tmp_path, *args) -> int:
    return sweep.main(["params/smoke.yaml", "--output-root", str(tmp_path / "out"), *args], runner_cmd=FAKE)


def definition(*args) -> sweep.Definition:
    return sweep.definition(sweep.parser().parse_args(["params/smoke.yaml", *args]))


def plan(*args) -> list[sweep.Run]:
    return sweep.plan(definition(*args), declarations(stage_notebooks(env.NOTEBOOKS_DIR)), STAGES)


@pytest.mark.parametrize("point,label,run", [
    ({}, "", "s3"),                                              # no grid: the seed alone
    ({"rl_beta": 0.04}, "rl_beta=0.04", "rl_beta=0.04_s3"),     # one key
    ({"rl_beta": 0.04, "rl_reward": "hfrrf"}, "rl_beta=0.04_rl_reward=hfrrf", "rl_beta=0.04_rl_reward=hfrrf_s3"),
    ({"eval_models": {"rl": "rl"}}, "eval_models=-rl--rl-", "eval_models=-rl--rl-_s3"),  # not [A-Za-z0-9._=-]: "-"
    ({"rl_sft_control": True}, "rl_sft_control=true", "rl_sft_control=true_s3"),          # YAML's spelling
])
def test_combination_label_and_main_run_name(point, label, run):
    assert sweep.combination_label(point) == label
    assert sweep.main_run_name(label, 3) == run


def test_grid_values_take_the_declared_types_and_errors_name_the_key():
    runs = plan("--seeds", "0", "--grid", "rl_beta=0.01,0.04", "--grid", "sft_max_steps=5,10",
                "--variants", "vision-r1")
    assert [r.name for r in runs] == ["rl_beta=0.01_sft_max_steps=5_s0", "rl_beta=0.01_sft_max_steps=10_s0",
                                      "rl_beta=0.04_sft_max_steps=5_s0", "rl_beta=0.04_sft_max_steps=10_s0"]
    assert runs[1].resolved.values["sft_max_steps"] == 10 and runs[1].resolved.values["rl_beta"] == 0.01
    for args, key in [(["--grid", "rl_bta=0.1"], "rl_bta"),            # unknown key: named, with a suggestion
                      (["--grid", "sft_max_steps=5,x"], "sft_max_steps"),  # a value of the wrong type
                      (["--set", "seed=3"], "seed"),                    # the sweep's own key
                      (["--set", "rl_beta=0.1", "--grid", "rl_beta=0.2"], "rl_beta"),  # one key given two ways
                      (["--grid", "rl_beta=0.1,0.1"], "rl_beta"),       # a repeated value
                      (["--variants", "vision-r1,nope"], "nope")]:
        with pytest.raises(ParamsError, match=key):
            plan(*args)


def test_runs_commands_and_dependencies():
    runs = plan("--seeds", "0", "1", "--variants", "vision-r1,zero,long", "--set", "rl_beta=0.02")
    assert [(r.name, r.variant, r.needs) for r in runs] == [
        ("s0", "vision-r1", None), ("s0-zero", "zero", "s0"), ("s0-long", "long", "s0"),
        ("s1", "vision-r1", None), ("s1-zero", "zero", "s1"), ("s1-long", "long", "s1")]
    layer = "outputs/sweeps/smoke/params/s0.yaml"
    # the layer before the ablation file, so the ablation's own keys (run_name, rl_sft_control) win
    assert runs[1].commands(["run"]) == [["run", "params/smoke.yaml", layer, "params/ablation-zero.yaml", "--resume"]]
    assert runs[0].commands(["run"]) == [["run", "params/smoke.yaml", layer, "--resume"]]
    assert runs[1].resolved.values["rl_sft_control"] is False and runs[0].resolved.values["rl_sft_control"] is True
    assert runs[1].stages == ["03_grpo_ptst", "04_evaluate", "05_curves"]
    # without vision-r1 the main run makes only what its variants read: 00-02 for Long, 00 for Zero
    long_only = plan("--seeds", "0", "--variants", "long")
    assert long_only[0].commands(["run"]) == [["run", "params/smoke.yaml", layer, "--resume", "--only", s]
                                              for s in ("00_data", "01_cold_start_data", "02_cold_start_sft")]
    assert plan("--seeds", "0", "--variants", "zero")[0].only == ["00_data"]


def test_threads_are_split_between_jobs():
    assert sweep.threads_per_run(1, {"OMP_NUM_THREADS": "4"}) == 4
    assert sweep.threads_per_run(2, {"OMP_NUM_THREADS": "4"}) == 2
    assert sweep.threads_per_run(3, {"OMP_NUM_THREADS": "4"}) == 1
    assert sweep.threads_per_run(8, {"OMP_NUM_THREADS": "2"}) == 1  # never 0


def test_a_sweep_writes_layers_runs_in_order_and_resumes(tmp_path, fake, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_RUNNER_SLEEP", "0.3")
    assert sweep_main(tmp_path, "--seeds", "0", "1", "--jobs", "2") == 0
    d = tmp_path / "out" / "smoke"
    assert (d / "params" / "s0.yaml").read_text() == f"seed: 0\nrun_name: s0\noutput_root: {d}\n"
    record = json.loads((d / "sweep.json").read_text())
    assert record["command"] == (f"python -m visionr1 sweep params/smoke.yaml --seeds 0 1 --variants "
                                 f"vision-r1,zero,long --jobs 2 --output-root {tmp_path / 'out'}")
    assert [(r["run"], r["status"], r["threads"], r["exit_code"], r["log"]) for r in record["runs"]] == [
        (n, "done", 2, 0, f"{n}.log") for n in ("s0", "s0-zero", "s0-long", "s1", "s1-zero", "s1-long")]
    assert [r["seconds"] for r in record["runs"]] == [9.0, 4.5, 4.5] * 2  # 1.5 s per stage in run_state.json
    c = {x["run"]: x for x in calls(tmp_path)}
    assert {x["threads"] for x in c.values()} == {"2"}  # 4 threads // 2 jobs
    assert c["s1"]["start"] < c["s0"]["end"]  # two main runs side by side
    for v in ("zero", "long"):
        assert c[f"s0-{v}"]["start"] >= c["s0"]["end"] and c[f"s1-{v}"]["start"] >= c["s1"]["end"]
    assert c["s0"]["ran"] == STAGES and c["s0-zero"]["ran"] == ["03_grpo_ptst", "04_evaluate", "05_curves"]
    assert (d / "s0-zero.log").read_text().count("$ ") == 1 and fake == [d]
    out = capsys.readouterr().out
    assert starting(out, "start ") == 6 and "ETA" in out and out.count(record["command"]) == 2
    # again: every run is launched with --resume, finds its stages done and runs none of them
    (tmp_path / "calls.jsonl").unlink()
    assert sweep_main(tmp_path, "--seeds", "0", "1", "--jobs", "2") == 0
    assert all(x["ran"] == [] for x in calls(tmp_path)) and len(calls(tmp_path)) == 6
    out = capsys.readouterr().out
    assert starting(out, "resuming ") == 6 and starting(out, "start ") == 0
    assert out.count("finished earlier, resumed") == 6


def test_a_failed_run_is_reported_and_the_others_go_on(tmp_path, fake, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_RUNNER_FAIL", "s0")
    assert sweep_main(tmp_path, "--seeds", "0", "1", "--variants", "vision-r1,zero") == 1
    record = json.loads((tmp_path / "out" / "smoke" / "sweep.json").read_text())
    assert {r["run"]: (r["status"], r["exit_code"]) for r in record["runs"]} == {
        "s0": ("failed", 1), "s0-zero": ("pending", None), "s1": ("done", 0), "s1-zero": ("done", 0)}
    out = capsys.readouterr().out
    assert "FAILED s0: exit code 1" in out and "smoke/s0.log" in out and "boom: s0 fails on purpose" in out
    assert "not run: s0-zero (needs s0)" in out


def test_a_changed_definition_merges_into_sweep_json():
    runs = plan("--seeds", "0", "1", "--variants", "vision-r1")
    old, _ = sweep.merge(None, definition("--seeds", "0", "1", "--variants", "vision-r1"), runs)
    old["runs"][0].update(status="done", seconds=12.0, exit_code=0)
    new_def = definition("--seeds", "1", "2", "--variants", "vision-r1")
    new, changes = sweep.merge(old, new_def, plan("--seeds", "1", "2", "--variants", "vision-r1"))
    assert [r["run"] for r in new["runs"]] == ["s1", "s2"] and [r["run"] for r in new["earlier_runs"]] == ["s0"]
    assert new["earlier_runs"][0]["seconds"] == 12.0  # kept as it was
    assert changes == ["seeds: [0, 1] -> [1, 2]", "runs added: s2",
                       "runs not in this definition (kept in sweep.json as earlier_runs): s0"]
    back, _ = sweep.merge(new, definition("--seeds", "0", "--variants", "vision-r1"),
                          plan("--seeds", "0", "--variants", "vision-r1"))
    assert back["runs"][0]["status"] == "done"  # s0 comes back with its record


def test_dry_run_writes_nothing(tmp_path, fake, capsys):
    assert sweep_main(tmp_path, "--seeds", "0", "--variants", "vision-r1") == 0  # one run finished
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    capsys.readouterr()
    assert sweep_main(tmp_path, "--seeds", "0", "1", "--dry-run") == 0
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before
    out = capsys.readouterr().out
    assert "s0 (vision-r1, seed 0): finished" in out and "s1 (vision-r1, seed 1): to run: 00_data (not run)" in out
    assert "after: s1" in out and "s1.yaml (new)" in out and "s0.yaml (as on disk)" in out
    assert "params/smoke.yaml" in out and "params/ablation-long.yaml --resume" in out


def test_comparison_notebooks_are_no_stage_of_run(tmp_path):
    """06_compare runs over a sweep: never in `run`'s chain, and its parameters are no run's params."""
    assert "06_compare" in sweep.COMPARE_NOTEBOOK and all(not s.startswith("06_") for s in STAGES)
    assert not {"sweep_dir", "output_dir"} & set(declarations(stage_notebooks(env.NOTEBOOKS_DIR)))
    for name in ("00_a", "01_b", "06_compare"):
        notebook(tmp_path / f"{name}.ipynb", "", params="x: int = 1  # a setting")
    assert [p.stem for p in stage_notebooks(tmp_path)] == ["00_a", "01_b"]


PARAMS = 'sweep_dir: str = ""  # the sweep\noutput_dir: str = ""  # where to write'


def test_the_comparison_is_executed_over_the_sweep_folder(tmp_path, capsys):
    """A throwaway comparison notebook, executed as the sweep executes 06_compare."""
    nb = tmp_path / "06_compare.ipynb"
    notebook(nb, "import json, pathlib\nout = pathlib.Path(output_dir)\nout.mkdir(parents=True)\n"
             "runs = json.loads((pathlib.Path(sweep_dir) / 'sweep.json').read_text())['runs']\n"
             "(out / 'findings.json').write_text(json.dumps({'runs': len(runs)}))\n"
             "(out / 'table.md').write_text('| run |')\nprint('compared', len(runs))", params=PARAMS)
    d = tmp_path / "sw"
    d.mkdir()
    (d / "sweep.json").write_text(json.dumps({"runs": [{"run": "s0"}]}))
    assert sweep.compare(d, notebook=nb) == 0
    assert json.loads((d / "06_compare" / "findings.json").read_text()) == {"runs": 1}
    assert "compared 1" in (d / "06_compare.log").read_text() and (d / "06_compare.ipynb").exists()
    out = capsys.readouterr().out
    assert f"findings: {d / '06_compare' / 'findings.json'}" in out and f"table: {d / '06_compare' / 'table.md'}" in out
    notebook(nb, "raise ValueError('no runs')", params=PARAMS)
    assert sweep.compare(d, notebook=nb) == 1
    assert "ValueError: no runs" in capsys.readouterr().out


def test_compare_only_needs_a_sweep_folder(tmp_path, capsys):
    assert sweep.main(["params/smoke.yaml", "--compare-only", "--output-root", str(tmp_path)]) == 2
    assert f"no sweep in {tmp_path / 'smoke'}" in capsys.readouterr().err


@pytest.mark.parametrize("key, old, new", [("nano_base_seed", -1, 0), ("nano_base_arithmetic", 0.0, 0.5),
                                           ("nano_base_tagged", 0.0, 0.1), ("nano_base_options", 0.0, 0.2),
                                           ("cs_mc_answer", "letter", "value"), ("nano_base_direct_levels", 3, 2),
                                           ("cs_oracle_style", "counts", "steps")])
def test_hashes_ignore_a_later_key_at_its_old_meaning(key, old, new):
    """A key at what every run did before it existed (nano_base_seed: -1) leaves the hash alone, so
    run folders made then keep their hashes; at another value it is another run."""
    v = {"seed": 0, "run_name": "x"}
    assert runner._hash({**v, key: old}) == runner._hash(v) != runner._hash({**v, key: new})


def test_a_direct_level_outside_the_task_is_refused_naming_the_key():
    from visionr1 import validate

    assert not validate.problems({"nano_base_direct_levels": 2}, {}, ["00_data"])
    (problem,) = validate.problems({"nano_base_direct_levels": 0}, {"nano_base_direct_levels": "--set"}, ["00_data"])
    assert problem.startswith("nano_base_direct_levels = 0 (from --set)") and "one of 1, 2, 3" in problem


def test_changed_keys_count_a_later_key_at_its_old_meaning(tmp_path):
    """A stage recorded before a key existed did not run "with other params" for that key at its old
    meaning; at another value, or for any other key, it did."""
    (tmp_path / "00_data").mkdir()
    (tmp_path / "00_data" / "ran_with.json").write_text(json.dumps({"params": {"seed": 0, "run_name": "a"}}))
    now = {"seed": 0, "run_name": "b", "nano_base_direct_levels": 3}
    assert runner.changed_keys(tmp_path, "00_data", now) == ["run_name"]
    assert runner.changed_keys(tmp_path, "00_data", {**now, "nano_base_direct_levels": 2}) == \
        ["nano_base_direct_levels", "run_name"]


# ---------------------------------------------------------------------------------------------
# slow: the smoke sweep through the real runner
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_smoke_sweep_runs_every_variant_and_compares(smoke_sweep):
    d, _ = smoke_sweep
    record = json.loads((d / "sweep.json").read_text())
    names = ["s0", "s0-zero", "s0-long", "s1", "s1-zero", "s1-long"]
    assert [r["run"] for r in record["runs"]] == names
    for r in record["runs"]:
        assert r["status"] == "done" and r["exit_code"] == 0 and r["threads"] >= 1 and r["seconds"] > 0, r
        state = json.loads((d / r["run"] / "run_state.json").read_text())
        stages = STAGES if r["variant"] == "vision-r1" else ["03_grpo_ptst", "04_evaluate", "05_curves"]
        assert {s: state["stages"].get(s, {}).get("status") for s in stages} == {s: "done" for s in stages}, r["run"]
        assert not runner.stale_reasons(d / r["run"])
    assert (d / "06_compare" / "findings.json").exists() and (d / "06_compare.ipynb").exists()
    assert any("table" in p.name for p in (d / "06_compare").iterdir())


@pytest.mark.slow
def test_a_finished_sweep_runs_nothing_again(smoke_sweep):
    d, command = smoke_sweep
    before = {p: p.stat().st_mtime_ns for p in d.glob("s*/*/metrics.json")}
    t0 = time.monotonic()
    proc = subprocess.run(command, cwd=env.PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    took = time.monotonic() - t0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert starting(proc.stdout, "resuming ") == 6 and starting(proc.stdout, "start ") == 0
    assert {p: p.stat().st_mtime_ns for p in d.glob("s*/*/metrics.json")} == before  # no stage ran again
    assert took < 180, f"a finished sweep took {took:.0f} s to resume"
