"""Every params mistake a stage would reject, found before any stage runs.

The params check (visionr1.params) knows each key's declared type; this adds what only a stage's
code knew so far: the structure of each PTST schedule, the allowed choices, rules across keys, and
the paths and model references the selected stages read. `problems()` returns one message per
mistake, naming the key, the file its value came from and the fix; the runner refuses the run
(exit 2) before writing anything when there is one.
"""

from __future__ import annotations

import re
from pathlib import Path

HUB_NAME = re.compile(r"^[\w.-]+/[\w.-]+$")  # owner/name on the Hugging Face Hub

# key -> allowed values (the reward sets and DeepSpeed configs are read from their modules)
CHOICES: dict[str, tuple] = {
    "data_source": ("nano", "released"),
    "wandb_mode": ("offline", "online", "disabled"),
    "sft_method": ("full", "lora", "unsloth", "lora_fast"),
    "rl_rollout": ("hf", "vllm_server"),
    "rl_truncated": ("mask", "zero", "keep"),
    "rl_format_strictness": ("strict", "lenient"),
    "rl_scale_rewards": ("group", "batch", "none"),
    "eval_backend": ("hf", "vllm", "openai"),
}
SCHEDULES = ("rl_stages", "rl_zero_stages", "rl_long_stages")
# stage -> keys naming files or folders it reads (None or "" means: made by an earlier stage)
PATHS = {
    "02_cold_start_sft": ("sft_data",),
    "03_grpo_ptst": ("rl_data",),
}


def problems(values: dict, sources: dict, stages: list[str]) -> list[str]:
    """Mistakes in resolved params for a run of `stages`; empty when the run can start."""
    from visionr1 import compat, grpo, models, rewards, training

    out: list[str] = []

    def bad(key: str, what: str, fix: str) -> None:
        out.append(f"{key} = {values.get(key)!r} (from {sources.get(key, 'default')}): {what}; fix: {fix}")

    choices = {**CHOICES, "rl_reward": tuple(sorted(rewards.REWARD_SETS)),
               "sft_deepspeed": training.DEEPSPEED_CONFIGS, "rl_deepspeed": training.DEEPSPEED_CONFIGS}
    for key, allowed in choices.items():
        if key in values and values[key] not in allowed:
            if key == "rl_rollout" and values[key] == "vllm_colocate":
                bad(key, compat.COLOCATE_REFUSED, "rl_rollout: vllm_server or hf")
            else:
                bad(key, "not one of the allowed values", f"one of {', '.join(map(str, allowed))}")
    for key in SCHEDULES:
        if key not in values:
            continue
        try:
            grpo.check_stages(values[key])
        except (ValueError, TypeError, AttributeError) as e:
            bad(key, str(e), "a list of stages like [{steps: 100, max_completion_length: 4096, num_generations: 16}]")
            continue
        batch = values.get("rl_batch_size")
        # the other two schedules become rl_stages only in their ablation (checked there, with its batch)
        for i, st in enumerate(values[key] if key == "rl_stages" else [], 1):
            bs = st.get("batch_size") or batch or st["num_generations"]
            if int(bs) % int(st["num_generations"]):
                bad(key, f"stage {i}: rl_batch_size {bs} is not a multiple of its num_generations "
                         f"{st['num_generations']} (GRPO compares whole groups)",
                    "a batch that is a multiple of every stage's num_generations, or batch_size in the stage")
    for key in ("sft_num_gpus", "rl_num_gpus", "eval_batch_size"):
        if key in values and (not isinstance(values[key], int) or values[key] < 1):
            bad(key, "must be a whole number >= 1", f"{key}: 1")
    if values.get("eval_backend") == "openai" and not values.get("eval_base_url") and "04_evaluate" in stages:
        bad("eval_backend", "the openai backend needs an endpoint", "set eval_base_url (e.g. http://localhost:8000/v1)")
    # paths and model references the selected stages read
    if "00_data" in stages and values.get("data_source") == "released":
        named = [k for k in ("rl_data_dir", "cold_data_dir") if values.get(k)]
        if not named:
            bad("data_source", "released data needs a folder", "set rl_data_dir and/or cold_data_dir")
        for key in named:
            _exists(values, key, bad)
    for stage, keys in PATHS.items():
        if stage in stages:
            for key in keys:
                if values.get(key):
                    _exists(values, key, bad)
    if "04_evaluate" in stages and isinstance(values.get("eval_benchmarks"), dict):
        for bench, path in values["eval_benchmarks"].items():
            if path and not Path(path).exists():
                bad("eval_benchmarks", f"{bench}: {path} does not exist",
                    f"download {bench} and give its file or folder (python -m visionr1 data check PATH)")
    for key, stage in (("base_model", "00_data"), ("sft_model", "02_cold_start_sft"), ("rl_start", "03_grpo_ptst")):
        ref = values.get(key)
        if stage in stages and ref and ref != "nano" and not models.is_stage_ref(ref) and not _is_model(ref):
            bad(key, "neither a local model folder (with config.json) nor a hub name (owner/name)",
                "a path to a saved model, or a hub name such as Qwen/Qwen2.5-VL-7B-Instruct")
    return out


def _exists(values: dict, key: str, bad) -> None:
    if not Path(str(values[key])).exists():
        bad(key, "does not exist", "download the data there or point the key at it")


def _is_model(ref: str) -> bool:
    p = Path(ref).expanduser()
    if p.exists():
        return (p / "config.json").exists()
    return bool(HUB_NAME.match(ref)) and not ref.startswith((".", "/", "~"))
