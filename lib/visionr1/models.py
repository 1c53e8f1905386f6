"""Model references: one function turns what a params file names into a model path.

    base          00_data's base model (the path its metrics.json records)
    ci            02_cold_start_sft's final (the cold-start-initialized model)
    rl            03_grpo_ptst's final (Vision-R1)
    <run>:<ref>   the same in another run folder of the same output root ("nano-s1:ci")
    anything else a local folder or a hub name, returned as it is

Used by 02 (`sft_model`), 03 (`rl_start`), 04 (`eval_models`) and the params checks.
"""

from __future__ import annotations

import json
from pathlib import Path

STAGE_MODELS = {"base": ("00_data", None), "ci": ("02_cold_start_sft", "final"), "rl": ("03_grpo_ptst", "final")}


def is_stage_ref(ref: str) -> bool:
    """True for "base", "ci", "rl" and "<run>:<one of those>": references resolved from run folders.

    >>> [is_stage_ref(r) for r in ("ci", "nano-s1:rl", "Qwen/Qwen2.5-VL-7B-Instruct", "/models/ci")]
    [True, True, False, False]
    """
    return ref in STAGE_MODELS or (":" in ref and ref.split(":", 1)[1] in STAGE_MODELS and "/" not in ref)


def resolve(ref: str, run: str | Path, key: str = "model") -> str:
    """The model path `ref` names, read from the run folder `run` (see the module docstring).
    `key` is the params key that holds `ref`, named in the error when the stage has not run."""
    run = Path(run)
    if not is_stage_ref(ref):
        return ref
    if ":" in ref:
        other, ref = ref.split(":", 1)
        run = run.parent / other
    stage, sub = STAGE_MODELS[ref]
    if sub is None:
        m = run / stage / "metrics.json"
        if not m.exists():
            raise FileNotFoundError(f"{key}: {ref!r} needs {m}: run {stage} of {run.name} first, or set {key} "
                                    f"to a model path")
        return json.loads(m.read_text())["base_model_path"]
    path = run / stage / sub
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{key}: {ref!r} needs {path}: run {stage} of {run.name} first, or set {key} "
                                f"to a model path")
    return str(path)
