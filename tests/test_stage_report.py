"""What the stages record at their end (visionr1.stage_report): metrics.json with its W&B mirror, 00's
base-model check, 03's held-out comparison, 04's tally and its chart (visionr1.plots.benchmark_bars).
Tiny inputs; models and generation are replaced by fakes, so nothing here loads or trains a model."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import pytest

from visionr1 import benchmarks, evaluate, generation, nano_base, nano_task, plots, stage_report, tiny_model, tracking

matplotlib.use("Agg")


@pytest.fixture()
def logged(monkeypatch):
    """The calls `record` makes to the W&B mirror, captured instead of logged."""
    calls = []
    monkeypatch.setattr(tracking, "log_stage", lambda *a: calls.append(a))
    return calls


VALUES = {"run_name": "r1", "wandb_mode": "offline", "seed": 0}


# ---------------------------------------------------------------------------------------------
# record: metrics.json and the mirror
# ---------------------------------------------------------------------------------------------
def test_record_writes_metrics_in_order_and_mirrors_the_stage(tmp_path, logged):
    out = tmp_path / "r1" / "03_grpo_ptst"
    out.mkdir(parents=True)
    (out / "training_curves.png").write_bytes(b"png")
    (out / "rollouts.png").write_bytes(b"png")
    metrics = {"steps": 5, "final": out / "final", "stages": [{"stage": 1}], "rl_accuracy": 0.5}
    path = stage_report.record(out, metrics, VALUES, images=["training_curves.png"])
    assert path == out / "metrics.json"
    text = path.read_text()
    assert list(json.loads(text)) == ["steps", "final", "stages", "rl_accuracy"]  # order kept
    assert json.loads(text)["final"] == str(out / "final")  # a path as text
    assert text == json.dumps(json.loads(text), indent=2)  # indented as the stages always wrote it
    (run_dir, run_name, stage, mode, config, mirrored, images), = logged
    assert (run_dir, run_name, stage, mode, config) == (out.parent, "r1", "03_grpo_ptst", "offline", VALUES)
    assert mirrored == metrics
    assert images == {"training_curves": out / "training_curves.png"}  # only the named PNG


@pytest.mark.parametrize("images, mirror, want_images, want_keys", [
    (None, None, {"a", "b"}, ["x", "training", "results"]),          # 00: every PNG, every key
    (["b.png"], ["results"], {"b"}, ["results"]),                     # 04: one figure, results only
    (["a.png"], ["training", "absent"], {"a"}, ["training"]),         # 05: a key it lacks is left out
    ([], ["nothing"], set(), []),                                     # nothing at all
])
def test_record_images_and_mirrored_keys(tmp_path, logged, images, mirror, want_images, want_keys):
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(b"png")
    stage_report.record(tmp_path, {"x": 1, "training": {"r": 0.5}, "results": {"m": 2}}, VALUES, images, mirror)
    (*_, mirrored, imgs), = logged
    assert set(imgs) == want_images and list(mirrored) == want_keys


def test_record_fails_on_a_missing_figure_or_missing_params(tmp_path, logged):
    with pytest.raises(FileNotFoundError, match="results.png"):
        stage_report.record(tmp_path, {"x": 1}, VALUES, images=["results.png"])
    with pytest.raises(KeyError, match="wandb_mode"):
        stage_report.record(tmp_path, {"x": 1}, {"run_name": "r1"})
    assert not logged and not (tmp_path / "metrics.json").exists()  # nothing half-written


def test_record_with_wandb_disabled_writes_the_file_only(tmp_path):
    stage_report.record(tmp_path, {"x": 1.5}, {**VALUES, "wandb_mode": "disabled"})
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"x": 1.5}
    assert not (tmp_path.parent / "wandb").exists()


# ---------------------------------------------------------------------------------------------
# 00: the base-model check
# ---------------------------------------------------------------------------------------------
def test_base_check_reports_direct_and_blank_image_accuracy(tmp_path, monkeypatch):
    test = nano_task.generate(8, seed=0, split="test")
    base = tmp_path / "base"
    base.mkdir()
    (base / "nano_base.json").write_text(json.dumps({"train_seconds": 12.5, "s_per_step": 0.1}))
    monkeypatch.setattr(tiny_model, "load_model", lambda p: "model")
    monkeypatch.setattr(tiny_model, "load_processor", lambda p: "processor")
    monkeypatch.setattr(tiny_model, "n_params", lambda m: 1234)

    def direct_accuracy(model, processor, samples, blank=False, **kw):
        assert (model, processor, samples) == ("model", "processor", test)
        share = 0.125 if blank else 0.62345  # the control falls to chance
        return {"accuracy": share, "per_type": {"count": share}, "predictions": ["1"] * len(samples)}
    monkeypatch.setattr(nano_base, "direct_accuracy", direct_accuracy)

    out = stage_report.base_check(base, test, tmp_path / "base_accuracy.png", progress=False)
    m = out["metrics"]
    assert list(m) == ["base_model_path", "base_direct_accuracy", "base_direct_accuracy_per_type",
                       "base_blank_image_accuracy", "base_pretrain_seconds", "base_pretrain_s_per_step",
                       "base_params", "base_eval_samples_per_s"]
    assert (m["base_model_path"], m["base_direct_accuracy"], m["base_blank_image_accuracy"]) == (str(base), 0.6234, 0.125)
    assert m["base_direct_accuracy_per_type"] == {"count": 0.62345}
    assert (m["base_pretrain_seconds"], m["base_pretrain_s_per_step"], m["base_params"]) == (12.5, 0.1, 1234)
    assert m["base_eval_samples_per_s"] > 0
    assert out["predictions"] == ["1"] * 8 and out["pretrain"]["train_seconds"] == 12.5
    assert (tmp_path / "base_accuracy.png").stat().st_size > 0


# ---------------------------------------------------------------------------------------------
# 03: held-out comparison
# ---------------------------------------------------------------------------------------------
EV = {"eval_samples": 4, "chance_accuracy": 0.25, "start_accuracy": 0.5, "start_format_rate": 1.0,
      "rl_accuracy": 0.75, "rl_format_rate": 0.9, "sft_control_accuracy": 0.6, "sft_control_format_rate": 0.8}
CONTROL = {"steps": 7, "flops": 1e9, "train_seconds": 3.2, "final_model": "ctl/final"}


@pytest.mark.parametrize("rl_start, control, keys", [
    ("ci", None, ["ci_accuracy", "ci_format_rate", "rl_accuracy", "rl_format_rate", "eval_samples",
                  "chance_accuracy"]),
    ("base", None, ["base_accuracy", "base_format_rate", "rl_accuracy", "rl_format_rate", "eval_samples",
                    "chance_accuracy"]),
    # a model path starts RL: "start"; the control's compute comes first, its scores last
    ("runs/x/final", CONTROL, ["control_steps", "control_flops", "control_seconds", "start_accuracy",
                               "start_format_rate", "rl_accuracy", "rl_format_rate", "eval_samples",
                               "chance_accuracy", "control_accuracy", "control_format_rate"]),
])
def test_heldout_metrics_keys_in_order(rl_start, control, keys):
    m = stage_report.heldout_metrics(EV, rl_start, control)
    assert list(m) == keys
    assert m[stage_report.start_key(rl_start) + "_accuracy"] == 0.5 and m["rl_accuracy"] == 0.75
    if control:
        assert (m["control_steps"], m["control_flops"], m["control_seconds"]) == (7, 1e9, 3.2)
        assert (m["control_accuracy"], m["control_format_rate"]) == (0.6, 0.8)


def test_heldout_check_evaluates_the_control_too(tmp_path, monkeypatch):
    seen = {}

    def evaluate_models(models, samples, max_new_tokens):
        seen.update(models=models, n=len(samples), tokens=max_new_tokens)
        return {**EV, **{f"{n}_responses": [f"{n} says"] * len(samples) for n in models}}
    monkeypatch.setattr(generation, "evaluate_models", evaluate_models)
    test = nano_task.generate(4, seed=0, split="test")
    out = stage_report.heldout_check("ci/final", "rl/final", test, 32, "ci", tmp_path / "h.png", CONTROL)
    assert seen == {"models": {"start": "ci/final", "rl": "rl/final", "sft_control": "ctl/final"}, "n": 4, "tokens": 32}
    assert out["metrics"] == stage_report.heldout_metrics(EV, "ci", CONTROL)
    assert out["responses"]["rl"] == ["rl says"] * 4 and set(out["responses"]) == {"start", "rl", "sft_control"}
    assert (tmp_path / "h.png").stat().st_size > 0


# ---------------------------------------------------------------------------------------------
# 04: the tally over models and benchmarks, and its chart
# ---------------------------------------------------------------------------------------------
@pytest.fixture()
def items(tmp_path):
    path = nano_task.write_jsonl(nano_task.generate(4, seed=0, split="test"), tmp_path / "test.jsonl")
    return benchmarks.load("nano", path)


def answers(kind: str):
    """A fake responder: "right" answers in the format, "late" puts the answer block on the
    second try only, "wrong" answers 'nothing' in the format."""
    tries: dict = {}

    def respond(batch):
        out = []
        for i in batch:
            tries[i.id] = tries.get(i.id, 0) + 1
            if kind == "late" and tries[i.id] == 1:
                out.append("<think>still counting")
            else:
                out.append(f"<think>counting</think><answer>{i.answer if kind != 'wrong' else 'nothing'}</answer>")
        return out
    return respond


def test_evaluate_all_tallies_each_model_on_each_benchmark(items, tmp_path):
    built = []

    def responder(model):
        built.append(model)
        return answers(model)

    s = evaluate.Sampling(reask=1, batch_size=2)
    out = stage_report.evaluate_all({"good": "right", "slow": "late", "bad": "wrong"}, {"nano": items}, responder,
                                    s, tmp_path)
    assert built == ["right", "late", "wrong"]  # one responder per model
    res = out["results"]
    assert {m: res[m]["nano"]["accuracy"] for m in res} == {"good": 100.0, "slow": 100.0, "bad": 0.0}
    assert {m: res[m]["nano"]["format_rate"] for m in res} == {"good": 100.0, "slow": 100.0, "bad": 100.0}
    assert {m: res[m]["nano"]["reasked"] for m in res} == {"good": 0, "slow": 4, "bad": 0}
    assert res["good"]["nano"]["n"] == 4 and res["good"]["nano"]["grading"]["graded"] >= 4
    assert list(res["good"]["nano"])[-3:] == ["format_rate", "reasked", "grading"]
    assert set(out["records"]) == {("good", "nano"), ("slow", "nano"), ("bad", "nano")}
    assert all((tmp_path / m / "nano.jsonl").exists() for m in res)
    assert set(out["samples_per_second"]) == set(res)
    # a rerun reads every sample from the files: nothing is asked
    again = stage_report.evaluate_all({"good": "right"}, {"nano": items}, lambda m: (lambda b: pytest.fail("asked")),
                                      s, tmp_path)
    assert again["results"]["good"] == res["good"]


def test_tally_counts_the_format_and_refuses_an_empty_benchmark(items):
    recs = [{"correct": c, "format_ok": f, "tries": t, "grading": {"graded": 1, "seconds": 0.002}}
            for c, f, t in [(True, True, 1), (False, True, 2), (True, False, 1), (None, False, 3)]]
    t = stage_report.tally("nano", items, recs)
    assert (t["accuracy"], t["n"], t["format_rate"], t["reasked"]) == (66.7, 3, 50.0, 2)  # None: ungradeable, counted
    assert t["grading"]["graded"] == 4 and t["grading"]["mean_ms"] == 2.0
    with pytest.raises(ValueError, match="nano: no records"):
        stage_report.tally("nano", [], [])


def test_benchmark_bars_draws_one_bar_per_model_and_benchmark_with_chance(tmp_path):
    results = {"base": {"nano": {"accuracy": 40.0}, "mathvista": {"accuracy": 20.5}},
               "rl": {"nano": {"accuracy": 60.0}, "mathvista": {"accuracy": 30.0}}}
    fig = plots.benchmark_bars(results, "Accuracy by benchmark", chance=25.0, path=tmp_path / "results.png")
    ax = fig.axes[0]
    assert [round(b.get_height(), 1) for b in ax.patches] == [40.0, 20.5, 60.0, 30.0]  # series by model
    assert [t.get_text() for t in ax.get_xticklabels()] == ["nano", "mathvista"]
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"base", "rl", "nano chance"}
    assert ax.get_ylim() == (0, 100) and ax.lines[0].get_ydata()[0] == 25.0
    assert (tmp_path / "results.png").stat().st_size > 0
    no_chance = plots.benchmark_bars(results, "t").axes[0]
    assert not no_chance.lines and [t.get_text() for t in no_chance.get_legend().get_texts()] == ["base", "rl"]
    with pytest.raises(ValueError, match="no results"):
        plots.benchmark_bars({}, "t")


def test_the_stage_notebooks_write_metrics_through_record():
    """One way to write a stage's metrics: no notebook writes metrics.json or calls the mirror itself."""
    for nb in sorted(Path(__file__).resolve().parents[1].glob("notebooks/[0-9][0-9]_*.ipynb")):
        code = "\n".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")
        assert code.count("stage_report.record(") == 1, nb.name
        assert '"metrics.json"' not in code and "log_stage" not in code, nb.name
