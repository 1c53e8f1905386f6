"""06_compare: reading a sweep, the table of mean ± sd over seeds, the curves, and the paper's
findings judged on both sides of each definition's threshold.

The sweep is built from real run-folder files (tests/fixtures/sweep/, see its README.md for the
command that made them): seed 0 is those files as the smoke chain wrote them; a second seed is the
same files renamed, with figures perturbed by the test where a test needs a spread.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from visionr1 import compare, env, findings

FIXTURE = Path(__file__).parent / "fixtures" / "sweep"
VARIANT_SUFFIX = {"vision-r1": "", "zero": "-zero", "long": "-long"}


def make_sweep(root: Path, seeds=(0, 1), variants=("vision-r1", "zero", "long"), status=None,
               labels=("",)) -> Path:
    """A sweep folder under `root`: the fixture's runs copied once per grid label and seed (s0 ->
    s<seed>, or <label>_s<seed>), and a sweep.json naming them (`status`: {run: status} overrides)."""
    sweep = root / "sweep"
    sweep.mkdir()
    entries = []
    for label in labels:
        for seed in seeds:
            for variant in variants:
                name = (f"{label}_" if label else "") + f"s{seed}{VARIANT_SUFFIX[variant]}"
                shutil.copytree(FIXTURE / f"s0{VARIANT_SUFFIX[variant]}", sweep / name)
                entries.append({"run": name, "variant": variant, "seed": seed, "grid": {}, "label": label,
                                "threads": 2, "status": (status or {}).get(name, "done"), "exit_code": 0,
                                "seconds": 1.0, "log": f"{name}.log"})
    spec = {"name": "fixture", "params": ["params/smoke.yaml"], "sets": [], "grid": {}, "seeds": list(seeds),
            "variants": list(variants), "command": "python -m visionr1 sweep params/smoke.yaml --seeds 0 1",
            "runs": entries}
    (sweep / "sweep.json").write_text(json.dumps(spec, indent=1))
    return sweep


def edit_metrics(run_dir: Path, stage: str, **values) -> None:
    """Set top-level keys of a run's `<stage>/metrics.json`."""
    path = run_dir / stage / "metrics.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **values}))


@pytest.fixture
def sweep(tmp_path):
    return compare.read_sweep(make_sweep(tmp_path))


def groups(sweep: compare.Sweep) -> dict[str, list[compare.Run]]:
    return {variant: runs for (_, variant), runs in sweep.groups().items()}


def set_figure(runs: list[compare.Run], key: str, per_seed: dict[int, float | None]) -> None:
    """Give each seed's run figure `key` (None: remove it)."""
    for r in runs:
        if r.seed in per_seed:
            if per_seed[r.seed] is None:
                r.figures.pop(key, None)
            else:
                r.figures[key] = per_seed[r.seed]


# ---------------------------------------------------------------------------------------------
# Reading a sweep
# ---------------------------------------------------------------------------------------------
def test_reads_every_stage_figure_of_the_real_runs(sweep):
    g = groups(sweep)
    assert [r.name for r in g["vision-r1"]] == ["s0", "s1"] and [r.name for r in g["zero"]] == ["s0-zero", "s1-zero"]
    main, zero_run, long_run = g["vision-r1"][0], g["zero"][0], g["long"][0]
    for key in ("00.base_direct_accuracy", "00.chance_accuracy", "02.format_rate", "02.accuracy", "03.ci_accuracy",
                "03.rl_accuracy", "03.control_accuracy", "03.reward_first10", "03.reward_last10",
                "03.length_first10", "03.length_last10", "03.train_seconds", "04.base.nano.accuracy",
                "04.ci.nano.format_rate", "04.rl.nano.accuracy", "04.rl.nano.multi_step", "04.rl.nano.one_step"):
        assert key in main.figures, key
    assert any(k.startswith("05.ci.len ") and k.endswith(".accuracy") for k in main.figures)
    assert "03.base_accuracy" in zero_run.figures and "03.ci_accuracy" in long_run.figures  # RL's start model
    assert "04.base.nano.accuracy" not in zero_run.figures  # base and CI are in the main run's 04 only
    assert main.steps and main.steps[0]["step"] == 1 and len(main.schedule) == 2
    assert not sweep.left_out and not sweep.problems and sweep.seeds == [0, 1]


def test_runs_not_done_or_missing_files_are_named_and_left_out(tmp_path):
    path = make_sweep(tmp_path, status={"s1-zero": "failed", "s1-long": "running"})
    shutil.rmtree(path / "s1" / "04_evaluate")
    (path / "s0-long" / "run_state.json").unlink()
    sweep = compare.read_sweep(path)
    assert sweep.left_out == {"s1-zero": "status failed", "s1-long": "status running",
                              "s0-long": f"{path / 's0-long' / 'run_state.json'} missing"}
    assert sweep.problems == ["s1: 04_evaluate/metrics.json missing"]
    s1 = groups(sweep)["vision-r1"][1]
    assert "03.rl_accuracy" in s1.figures and not any(k.startswith("04.") for k in s1.figures)
    assert "long" not in groups(sweep)


def test_a_stale_stage_is_left_out(tmp_path):
    path = make_sweep(tmp_path, seeds=(0,))
    state = json.loads((path / "s0" / "run_state.json").read_text())
    state["stages"]["02_cold_start_sft"]["finished_at"] = "2099-01-01T00:00:00+00:00"  # re-ran after 03 read it
    (path / "s0" / "run_state.json").write_text(json.dumps(state))
    sweep = compare.read_sweep(path)
    assert any(p.startswith("s0: 03_grpo_ptst is stale") for p in sweep.problems), sweep.problems
    assert "03.rl_accuracy" not in groups(sweep)["vision-r1"][0].figures


def test_errors_name_the_file_and_key(tmp_path):
    with pytest.raises(compare.SweepError, match="sweep.json not found"):
        compare.read_sweep(tmp_path)
    (tmp_path / "sweep.json").write_text(json.dumps({"name": "x", "runs": []}))
    with pytest.raises(compare.SweepError, match=r"sweep.json: key 'command' missing"):
        compare.read_sweep(tmp_path)
    (tmp_path / "sweep.json").write_text(json.dumps({"name": "x", "command": "c", "runs": [
        {"run": "s0", "variant": "short", "seed": 0, "status": "done"}]}))
    with pytest.raises(compare.SweepError, match=r"runs\[0\] \(s0\): variant 'short'"):
        compare.read_sweep(tmp_path)


# ---------------------------------------------------------------------------------------------
# The table and the curves
# ---------------------------------------------------------------------------------------------
def test_table_is_mean_and_sd_over_seeds(tmp_path):
    path = make_sweep(tmp_path)
    edit_metrics(path / "s0", "03_grpo_ptst", rl_accuracy=0.5)
    edit_metrics(path / "s1", "03_grpo_ptst", rl_accuracy=0.7)
    sweep = compare.read_sweep(path)
    rows = compare.table(sweep)
    row = next(r for r in rows if r["variant"] == "vision-r1" and r["figure"] == "03.rl_accuracy")
    assert row["n"] == 2 and row["values"] == {0: 0.5, 1: 0.7}
    assert row["mean"] == pytest.approx(0.6) and row["sd"] == pytest.approx(0.141421, abs=1e-6)
    md_path, csv_path = compare.write_table(sweep, rows, tmp_path)
    md = md_path.read_text()
    assert "| figure | vision-r1 (2 seeds) | zero (2 seeds) | long (2 seeds) |" in md
    assert "| `03.rl_accuracy` | 0.6 ± 0.14 | " in md
    assert "vision-r1,03.rl_accuracy,2,0.6,0.1414" in csv_path.read_text().replace("0.6000000000000001", "0.6")


def test_curves_draw_every_variant_with_a_seed_band(sweep, tmp_path):
    band = compare.seed_band(groups(sweep)["vision-r1"], "completions/mean_length")
    assert band["n"][0] == 2 and band["lo"][0] <= band["mean"][0] <= band["hi"][0]
    assert compare.stage_starts(groups(sweep)["vision-r1"]) == [(2, 4)]  # smoke: 3 steps, then stage 2
    fig = compare.plot_curves(sweep, tmp_path / "curves.png", window=2)
    assert (tmp_path / "curves.png").stat().st_size > 10_000
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [
        "vision-r1 (2 seeds; 64x4 -> 96x2)", "zero (2 seeds; 64x4)", "long (2 seeds; 96x4)"]


# ---------------------------------------------------------------------------------------------
# The findings, each on both sides of its threshold (one comment per case)
# ---------------------------------------------------------------------------------------------
def judge(sweep, fn, edits: dict[tuple[str, str], dict]) -> dict:
    """`fn` on the sweep's groups after setting figures: {(variant, key): {seed: value}}."""
    g = groups(sweep)
    for (variant, key), per_seed in edits.items():
        set_figure(g.get(variant, []), key, per_seed)
    return fn(g)


BOTH = lambda a, b: {0: a, 1: b}  # noqa: E731 - per-seed values, read as a table
VR = "vision-r1"
CASES = [
    # F1: 0.9 on every seed passes; one seed at 0.89 fails
    (findings.cold_start_format, {(VR, "02.format_rate"): BOTH(0.95, 0.9)}, "reproduced"),
    (findings.cold_start_format, {(VR, "02.format_rate"): BOTH(1.0, 0.89)}, "not reproduced"),
    # F2: CI 10 points under base passes; 11 points is beyond 2 x 5.1; CI above base fails
    (findings.ci_below_base, {(VR, "04.base.nano.accuracy"): BOTH(60, 60),
                              (VR, "04.ci.nano.accuracy"): BOTH(50, 50)}, "reproduced"),
    (findings.ci_below_base, {(VR, "04.base.nano.accuracy"): BOTH(60, 60),
                              (VR, "04.ci.nano.accuracy"): BOTH(49, 49)}, "not reproduced"),
    (findings.ci_below_base, {(VR, "04.base.nano.accuracy"): BOTH(50, 50),
                              (VR, "04.ci.nano.accuracy"): BOTH(51, 49)}, "not reproduced"),
    # F3: +0.10 on every seed and above the control passes
    (findings.rl_beats_ci, {(VR, "03.ci_accuracy"): BOTH(0.40, 0.40), (VR, "03.rl_accuracy"): BOTH(0.50, 0.55),
                            (VR, "03.control_accuracy"): BOTH(0.45, 0.45)}, "reproduced"),
    # F3: +0.09 on one seed fails, whatever the control
    (findings.rl_beats_ci, {(VR, "03.ci_accuracy"): BOTH(0.40, 0.40), (VR, "03.rl_accuracy"): BOTH(0.49, 0.55),
                            (VR, "03.control_accuracy"): BOTH(None, None)}, "not reproduced"),
    # F3: the gain holds but RL ties the control on one seed
    (findings.rl_beats_ci, {(VR, "03.ci_accuracy"): BOTH(0.40, 0.40), (VR, "03.rl_accuracy"): BOTH(0.50, 0.55),
                            (VR, "03.control_accuracy"): BOTH(0.45, 0.55)}, "not reproduced"),
    # F3: the gain holds, no control: not measurable
    (findings.rl_beats_ci, {(VR, "03.ci_accuracy"): BOTH(0.40, 0.40), (VR, "03.rl_accuracy"): BOTH(0.50, 0.55),
                            (VR, "03.control_accuracy"): BOTH(None, None)}, "not measurable"),
    # F4: multi-step RL above CI and base passes; RL above CI but under base fails
    (findings.multi_step, {(VR, "04.base.nano.multi_step"): BOTH(30, 30), (VR, "04.ci.nano.multi_step"): BOTH(25, 25),
                           (VR, "04.rl.nano.multi_step"): BOTH(35, 31)}, "reproduced"),
    (findings.multi_step, {(VR, "04.base.nano.multi_step"): BOTH(30, 30), (VR, "04.ci.nano.multi_step"): BOTH(25, 25),
                           (VR, "04.rl.nano.multi_step"): BOTH(31, 28)}, "not reproduced"),
    # F5: a tie with base passes (>=); below fails
    (findings.beats_base, {(VR, "04.base.nano.accuracy"): BOTH(60, 70), (VR, "04.rl.nano.accuracy"): BOTH(70, 60)},
     "reproduced"),
    (findings.beats_base, {(VR, "04.base.nano.accuracy"): BOTH(60, 70), (VR, "04.rl.nano.accuracy"): BOTH(70, 59)},
     "not reproduced"),
]
ZERO_OK = {("zero", "03.reward_first10"): BOTH(0.1, 0.1), ("zero", "03.reward_last10"): BOTH(0.3, 0.2),
           ("zero", "03.length_first10"): BOTH(100, 100), ("zero", "03.length_last10"): BOTH(110, 110),
           ("zero", "04.rl.nano.accuracy"): BOTH(40, 40), (VR, "04.rl.nano.accuracy"): BOTH(60, 60)}
CASES += [
    # F6: reward up on both seeds, Vision-R1 above Zero, length x1.1 exactly: reproduced
    (findings.zero, ZERO_OK, "reproduced"),
    # F6: one seed's reward flat; Zero's CoTs x1.2; Zero above Vision-R1: each fails
    (findings.zero, {**ZERO_OK, ("zero", "03.reward_last10"): BOTH(0.3, 0.1)}, "not reproduced"),
    (findings.zero, {**ZERO_OK, ("zero", "03.length_last10"): BOTH(120, 120)}, "not reproduced"),
    (findings.zero, {**ZERO_OK, ("zero", "04.rl.nano.accuracy"): BOTH(60, 61)}, "not reproduced"),
]


@pytest.mark.parametrize("fn,edits,expected", CASES)
def test_finding_verdicts_on_both_sides_of_the_threshold(sweep, fn, edits, expected):
    f = judge(sweep, fn, edits)
    assert f["verdict"] == expected, f
    assert set(f) == {"id", "finding", "paper", "ours", "values", "verdict", "reason"}
    assert f["reason"].endswith(".") and "measured on" not in f["reason"]  # two seeds: no note


def set_lengths(runs: list[compare.Run], lengths: list[float]) -> None:
    """Give every seed's run the same per-step mean lengths (stages as logged)."""
    for r in runs:
        for rec, v in zip(r.steps, lengths):
            rec["completions/mean_length"] = v


LONG_OK = {("long", "03.length_first10"): BOTH(100, 100), ("long", "03.length_last10"): BOTH(120, 110),
           ("long", "04.rl.nano.accuracy"): BOTH(50, 50), (VR, "04.rl.nano.accuracy"): BOTH(60, 60)}


@pytest.mark.parametrize("lengths,edits,expected", [
    # smoke schedule: 3 steps of stage 1, 2 of stage 2 (windows of 2): 90 -> low 60 -> 85, Long lengthens and ends lower
    ([100, 80, 40, 80, 90], LONG_OK, "reproduced"),
    # the curve never dips below its first window
    ([60, 80, 90, 95, 100], LONG_OK, "not reproduced"),
    # dips, but the last steps stay at the low
    ([100, 80, 40, 40, 40], LONG_OK, "not reproduced"),
    # Long's CoTs shorten
    ([100, 80, 40, 80, 90], {**LONG_OK, ("long", "03.length_last10"): BOTH(90, 100)}, "not reproduced"),
    # Long ends level with Vision-R1
    ([100, 80, 40, 80, 90], {**LONG_OK, ("long", "04.rl.nano.accuracy"): BOTH(60, 60)}, "not reproduced"),
])
def test_long_and_ptst(sweep, lengths, edits, expected):
    set_lengths(groups(sweep)["vision-r1"], lengths)
    f = judge(sweep, findings.long_and_ptst, edits)
    assert f["verdict"] == expected, f


def set_ci_buckets(runs, short, long_):
    for r in runs:
        r.buckets["ci"][0]["accuracy"], r.buckets["ci"][-1]["accuracy"] = short, long_


@pytest.mark.parametrize("short,long_,expected", [
    (0.5, 0.2, "reproduced"),  # the paper's shape: long outputs mostly wrong
    (0.5, 0.5, "not reproduced"),  # as accurate when long
    (0.5, None, "not measurable"),  # no CI output in the longest bucket on any seed
])
def test_overthinking(sweep, short, long_, expected):
    set_ci_buckets(groups(sweep)["vision-r1"], short, long_)
    assert findings.overthinking(groups(sweep))["verdict"] == expected


def test_missing_inputs_are_not_measurable(tmp_path):
    sweep = compare.read_sweep(make_sweep(tmp_path, seeds=(0,), variants=("vision-r1",)))
    found = {f["id"]: f for f in findings.judge(sweep)}
    assert found["F6"]["verdict"] == "not measurable" and "no zero variant" in found["F6"]["reason"]
    assert found["F7"]["verdict"] in ("not measurable", "not reproduced") and "no long variant" in found["F7"]["reason"]
    for f in found.values():  # one seed: every reason says so, unless nothing was measured
        assert "measured on 1 seed (0)" in f["reason"] or (f["verdict"] == "not measurable" and not f["values"]), f


def test_findings_files(sweep, tmp_path):
    found = findings.judge(sweep)
    assert [f["id"] for f in found] == [f"F{i}" for i in range(1, 9)]
    js, md = findings.write(sweep, found, tmp_path)
    data = json.loads(js.read_text())
    assert data["sweep"] == "fixture" and data["seeds"] == [0, 1] and data["command"].startswith("python -m visionr1 sweep")
    assert md.read_text().count("\n| F") == 8 and "| finding | paper | ours | verdict | reason |" in md.read_text()


def test_a_grid_compares_and_judges_each_grid_point(tmp_path):
    sweep = compare.read_sweep(make_sweep(tmp_path, seeds=(0,), variants=("vision-r1", "zero"),
                                          labels=("rl_beta=0.01", "rl_beta=0.04")))
    assert list(sweep.groups()) == [("rl_beta=0.01", "vision-r1"), ("rl_beta=0.01", "zero"),
                                    ("rl_beta=0.04", "vision-r1"), ("rl_beta=0.04", "zero")]
    assert "| figure | rl_beta=0.01 / vision-r1 (1 seed) |" in compare.table_markdown(sweep, compare.table(sweep))
    found = findings.judge(sweep)
    assert [(f["label"], f["id"]) for f in found][7:9] == [("rl_beta=0.01", "F8"), ("rl_beta=0.04", "F1")]
    assert findings.markdown(found).startswith("| grid | finding | paper |")


# ---------------------------------------------------------------------------------------------
# The notebook
# ---------------------------------------------------------------------------------------------
NOTEBOOK = env.NOTEBOOKS_DIR / "06_compare.ipynb"


def test_notebook_is_committed_without_outputs_and_declares_its_parameters():
    from visionr1 import params

    cells = json.loads(NOTEBOOK.read_text())["cells"]
    assert not [i for i, c in enumerate(cells) if c["cell_type"] == "code" and (c["outputs"] or c["execution_count"])]
    decls = params.parse_declarations(params.parameters_cell(NOTEBOOK), NOTEBOOK.name)
    assert {"sweep_dir", "output_dir"} <= set(decls) and all(d.comment for d in decls.values())


def test_notebook_writes_the_comparison(tmp_path):
    """papermill runs 06 on the fixture sweep as the sweep does (about 15 s on 2 busy cores)."""
    import papermill

    path = make_sweep(tmp_path)
    out = path / "06_compare"
    t0 = time.perf_counter()
    papermill.execute_notebook(str(NOTEBOOK), str(path / "06_compare.ipynb"), kernel_name="python3",
                               parameters={"sweep_dir": str(path), "output_dir": str(out)},
                               cwd=str(env.PROJECT_ROOT), progress_bar=False)
    print(f"06_compare took {time.perf_counter() - t0:.1f} s")
    for name in ("table.md", "table.csv", "curves.png", "accuracy.png", "findings.json", "findings.md", "metrics.json"):
        assert (out / name).exists(), name
    data = json.loads((out / "findings.json").read_text())
    assert len(data["findings"]) == 8 and {f["verdict"] for f in data["findings"]} <= {
        "reproduced", "not reproduced", "not measurable"}
    assert json.loads((out / "metrics.json").read_text())["verdicts"]["F1"] == data["findings"][0]["verdict"]


def test_an_unreadable_file_is_a_problem_not_a_crash(tmp_path):
    path = make_sweep(tmp_path)
    (path / "s1" / "02_cold_start_sft" / "metrics.json").write_text("{not json")
    m = json.loads((path / "s0" / "04_evaluate" / "metrics.json").read_text())
    m["results"]["ci"]["nano"]["sub_n"]["count_hexagons"] = 3  # a question type of another task version
    (path / "s0" / "04_evaluate" / "metrics.json").write_text(json.dumps(m))
    sweep = compare.read_sweep(path)
    assert [p.split(":")[0] for p in sweep.problems] == ["s0", "s1"], sweep.problems
    assert "count_hexagons" in sweep.problems[0] and "not valid JSON" in sweep.problems[1]
    s0, s1 = groups(sweep)["vision-r1"]
    assert not any(k.startswith("04.") for k in s0.figures) and "03.rl_accuracy" in s0.figures
    assert "02.format_rate" not in s1.figures and "04.rl.nano.accuracy" in s1.figures
