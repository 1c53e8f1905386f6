"""Params files: composed in order, checked against the notebooks' parameters cells."""

from __future__ import annotations

import json

import pytest

from visionr1 import env
from visionr1.params import ParamsError, declarations, parse_declarations, resolve
from visionr1.runner import stage_notebooks

DECLS = parse_declarations(
    'run_name: str = "nano"  # run folder\n'
    "steps: int = 10  # steps\n"
    "lr: float = 0.001  # learning rate\n"
    "flag: bool = False  # a switch\n"
    "path: str | None = None  # optional folder\n"
    'names: list[str] = ["a"]  # entries\n',
    "NB.ipynb",
)


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_later_files_and_sets_win(tmp_path):
    a = write(tmp_path, "a.yaml", "steps: 5\nlr: 0.1\n")
    b = write(tmp_path, "b.yaml", "steps: 7\n")
    r = resolve([a, b], ["lr=2", "path=/data"], DECLS)
    assert r.values["steps"] == 7 and r.sources["steps"] == str(b)  # b overrides a
    assert r.values["lr"] == 2.0 and isinstance(r.values["lr"], float)  # --set wins; int accepted as float
    assert r.values["path"] == "/data" and r.values["run_name"] == "nano"  # default kept


@pytest.mark.parametrize(
    "files, sets, message",
    [
        # unknown key: names the key, the file and a close match
        ({"a.yaml": "stepz: 5\n"}, [], ["a.yaml", "'stepz'", "did you mean steps"]),
        # wrong type: names the key, the file, the expected type and the value
        ({"a.yaml": "steps: ten\n"}, [], ["a.yaml", "'steps'", "expected int", "'ten'"]),
        # bool is not an int
        ({"a.yaml": "steps: true\n"}, [], ["'steps'", "expected int"]),
        # list of the wrong element type
        ({"a.yaml": "names: [1, 2]\n"}, [], ["'names'", "list[str]"]),
        # an unknown key from --set names --set
        ({}, ["nope=1"], ["--set", "'nope'"]),
        # --set without '='
        ({}, ["steps"], ["--set", "key=value"]),
        # a file that is not a mapping
        ({"a.yaml": "- 1\n- 2\n"}, [], ["a.yaml", "mapping"]),
        # invalid YAML
        ({"a.yaml": "steps: [1,\n"}, [], ["a.yaml", "not valid YAML"]),
    ],
)
def test_errors_name_key_and_file(tmp_path, files, sets, message):
    paths = [write(tmp_path, n, t) for n, t in files.items()]
    with pytest.raises(ParamsError) as e:
        resolve(paths, sets, DECLS)
    for part in message:
        assert part in str(e.value)


def test_missing_file_fails_before_anything(tmp_path):
    good = write(tmp_path, "good.yaml", "steps: 3\n")
    with pytest.raises(ParamsError, match="params file not found: .*missing.yaml"):
        resolve([good, tmp_path / "missing.yaml"], [], DECLS)


def test_parameters_cell_must_declare_with_types():
    # an untyped assignment is refused, naming the notebook and the line
    with pytest.raises(ParamsError, match="NB.ipynb: line 1"):
        parse_declarations("steps = 3\n", "NB.ipynb")
    # a default that does not fit its own annotation is refused
    with pytest.raises(ParamsError, match="default of 'steps'"):
        parse_declarations('steps: int = "x"  # n\n', "NB.ipynb")


def test_shipped_params_files_resolve():
    decls = declarations(stage_notebooks(env.NOTEBOOKS_DIR))
    for name in ("nano.yaml", "smoke.yaml", "qwen2.5-vl-7b-8gpu.yaml"):
        r = resolve([env.PROJECT_ROOT / "params" / name], [], decls)
        assert r.values["run_name"]
    # every declaration carries a comment that says what it means
    assert all(d.comment for d in decls.values()), [k for k, d in decls.items() if not d.comment]


def test_notebooks_are_committed_without_outputs():
    for nb in stage_notebooks(env.NOTEBOOKS_DIR):
        cells = json.loads(nb.read_text())["cells"]
        dirty = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
        assert not dirty, f"{nb.name}: cells {dirty} have outputs; clear them before committing"


@pytest.mark.parametrize("module,cls,notebook", [("grpo", "GRPOParams", "03_grpo_ptst"), ("sft", "SFTParams", "02_cold_start_sft")])
def test_stage_settings_are_the_notebook_declarations(module, cls, notebook, tmp_path):
    """One declaration per knob: the settings dataclass has a field for every knob of the stage's
    parameters cell, with its type and default, and params_from_values carries every value over."""
    import dataclasses
    import importlib

    mod = importlib.import_module(f"visionr1.{module}")
    settings = getattr(mod, cls)
    decls = declarations([env.NOTEBOOKS_DIR / f"{notebook}.ipynb"])
    prefix = settings.PREFIX
    knobs = {k for k in decls if k.startswith(prefix)} - set(settings.NOTEBOOK_ONLY)
    assert set(settings.NOTEBOOK_ONLY) <= set(decls), "NOTEBOOK_ONLY names a key the notebook does not declare"
    by_key = {f.metadata["key"]: f for f in dataclasses.fields(settings) if "key" in f.metadata}
    assert set(by_key) == knobs
    resolved = {"model", "data", "output_dir", "method", "system_prompt", "deepspeed"}
    for key, f in by_key.items():
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        # a field of the subclass with the same name would shadow the declaration: refused
        assert (f.name in resolved) or default == decls[key].default, f"{cls}.{f.name} drifted from {key}"
    # params_from_values: every knob's value arrives in its field (numbers changed from the default)
    run = tmp_path / "nano"
    (run / "02_cold_start_sft" / "final").mkdir(parents=True)
    (run / "02_cold_start_sft" / "final" / "config.json").write_text("{}")
    (run / "00_data").mkdir()
    (run / "00_data" / "metrics.json").write_text(json.dumps({"base_model_path": str(run / "base")}))
    values = {k: d.default for k, d in decls.items()} | {"output_root": str(tmp_path), "run_name": "nano"}
    for key, f in by_key.items():
        d = decls[key].default
        if isinstance(d, bool):
            values[key] = not d
        elif isinstance(d, (int, float)):
            values[key] = d + 2
    p = mod.params_from_values(values)
    for key, f in by_key.items():
        if f.name not in resolved:
            assert getattr(p, f.name) == values[key], f"{key} does not reach {cls}.{f.name}"
