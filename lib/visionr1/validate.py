"""Every params mistake a stage would reject, found before any stage runs.

The params check (visionr1.params) knows each key's declared type; this adds what only a stage's
code knew so far: the structure of each PTST schedule, the allowed choices, rules across keys, and
the paths and model references the selected stages read (the benchmark files of 04 included:
each must be in a layout its loader reads, found without reading a row), and 04's engines against
the GPUs this machine shows. `problems()` returns one
message per mistake, naming the key, the file its value came from and the fix; the runner refuses
the run (exit 2) before writing anything when there is one. `warnings()` lists what will not stop
a run but changes what it does (W&B online without a login logs offline instead).

Relative paths are taken from the project root, as the stages read them (papermill runs every
notebook there).
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
    "nano_base_direct_levels": (1, 2, 3),  # nano_task.QUESTION_TYPES' levels
}
SCHEDULES = ("rl_stages", "rl_zero_stages", "rl_long_stages")
# stage -> keys naming files or folders it reads (None or "" means: made by an earlier stage)
PATHS = {
    "02_cold_start_sft": ("sft_data",),
    "03_grpo_ptst": ("rl_data",),
}


def resolve_path(path: str | Path) -> Path:
    """A path as the stages read it: relative ones from the project root."""
    from visionr1 import env

    p = Path(path).expanduser()
    return p if p.is_absolute() else env.PROJECT_ROOT / p


def rl_generation_batch(values: dict, stage: dict) -> tuple[int, int, int, int]:
    """(per-device batch, training processes on all machines, accumulation steps, completions per optimizer step)
    of one PTST stage. TRL generates per-device batch x processes x accumulation completions for
    each optimizer step and needs that to hold whole groups of num_generations; the per-device
    batch alone may be smaller than a group (trl/trainer/grpo_config.py, generation_batch_size)."""
    batch = int(stage.get("batch_size") or values.get("rl_batch_size") or stage["num_generations"])
    procs = int(values.get("rl_num_gpus") or 1) * int(values.get("num_machines") or 1)  # every machine's processes
    accum = int(stage.get("grad_accum") or values.get("rl_grad_accum") or 1)
    return batch, procs, accum, batch * procs * accum


def problems(values: dict, sources: dict, stages: list[str]) -> list[str]:
    """Mistakes in resolved params for a run of `stages`; empty when the run can start."""
    from visionr1 import compat, grpo, machines, models, rewards, training

    out: list[str] = []

    def bad(key: str, what: str, fix: str, item: str | None = None) -> None:
        """`item`: one entry of a mapping key (eval_benchmarks.mathvista), shown with its own value."""
        shown = f"{key}.{item} = {values[key][item]!r}" if item is not None else f"{key} = {values.get(key)!r}"
        out.append(f"{shown} (from {sources.get(key, 'default')}): {what}; fix: {fix}")

    choices = {**CHOICES, "rl_reward": tuple(sorted(rewards.REWARD_SETS)),
               "sft_deepspeed": training.DEEPSPEED_CONFIGS, "rl_deepspeed": training.DEEPSPEED_CONFIGS}
    for key, allowed in choices.items():
        if key in values and values[key] not in allowed:
            if key == "rl_rollout" and values[key] == "vllm_colocate":
                bad(key, compat.COLOCATE_REFUSED, "rl_rollout: vllm_server or hf")
            else:
                bad(key, "not one of the allowed values", f"one of {', '.join(map(str, allowed))}")
    for key in ("sft_num_gpus", "rl_num_gpus", "eval_batch_size", "rl_grad_accum", "eval_data_parallel",
                "eval_tensor_parallel"):
        if key in values and (not isinstance(values[key], int) or values[key] < 1):
            bad(key, "must be a whole number >= 1", f"{key}: 1")
    for key, what, fix in machines.problems(values):
        bad(key, what, fix)
    if str(sources.get("num_machines", "")).startswith("env") and sources.get("main_process_ip", "default") == "default" \
            and values.get("num_machines", 1) > 1:
        bad("main_process_ip", f"{values['num_machines']} machines from the launcher's environment "
            f"({sources['num_machines']}), but no address of machine 0", "export MASTER_ADDR in the job script "
            "(SLURM: the first host of scontrol show hostnames $SLURM_JOB_NODELIST) or set main_process_ip")
    counts_ok = all(isinstance(values.get(k, 1), int) and values.get(k, 1) >= 1
                    for k in ("rl_num_gpus", "rl_grad_accum", "num_machines"))
    for key in SCHEDULES:
        if key not in values:
            continue
        try:  # the structure of every schedule
            grpo.check_stages(values[key], num_processes=None)
        except (ValueError, TypeError, AttributeError) as e:
            bad(key, str(e), "a list of stages like [{steps: 100, max_completion_length: 4096, num_generations: 16}]")
            continue
        # whole groups per optimizer step; the other two schedules become rl_stages only in their
        # ablation (checked there, with its batch)
        for i, st in enumerate(values[key] if key == "rl_stages" and counts_ok else [], 1):
            _, procs, accum, _ = rl_generation_batch(values, st)
            try:
                grpo.check_stages([st], values.get("rl_batch_size"), accum, procs)
            except ValueError as e:  # "stage 1: <what>; change <keys>"
                what, _, fix = str(e).split(": ", 1)[1].partition("; ")
                bad("rl_stages" if st.get("batch_size") else "rl_batch_size", f"stage {i}: {what}",
                    (fix or "change the batch") + " (the per-device batch may be smaller than a group)")
    if values.get("eval_backend") == "openai" and not values.get("eval_base_url") and "04_evaluate" in stages:
        bad("eval_backend", "the openai backend needs an endpoint", "set eval_base_url (e.g. http://localhost:8000/v1)")
    # paths and model references the selected stages read
    if "00_data" in stages and values.get("data_source") == "released":
        named = [k for k in ("rl_data_dir", "cold_data_dir") if values.get(k)]
        if not named:
            bad("data_source", "released data needs a folder", "set rl_data_dir and/or cold_data_dir")
        for key in named:
            if _exists(values, key, bad):
                _released_layout(values, key, bad)
    for stage, keys in PATHS.items():
        if stage in stages:
            for key in keys:
                if values.get(key):
                    _exists(values, key, bad)
    _made_earlier(values, stages, bad)
    if "04_evaluate" in stages:
        _benchmarks(values, stages, bad)
        _eval_engines(values, bad)
    for key, stage in (("base_model", "00_data"), ("sft_model", "02_cold_start_sft"), ("rl_start", "03_grpo_ptst")):
        ref = values.get(key)
        if stage in stages and ref and ref != "nano" and not models.is_stage_ref(ref) and not _is_model(ref):
            bad(key, "neither a local model folder (with config.json) nor a hub name (owner/name)",
                "a path to a saved model, or a hub name such as Qwen/Qwen2.5-VL-7B-Instruct")
    return out


def warnings(values: dict, stages: list[str]) -> list[str]:
    """What will not stop the run but changes what it does, one line each."""
    from visionr1 import tracking

    out = []
    if values.get("wandb_mode") == "online" and stages:
        missing = tracking.wandb_login_missing()
        if missing:
            out.append(f"wandb_mode is online but {missing}: every stage will log to W&B offline instead (sync "
                       f"later with `wandb sync`); log in first (`wandb login`, or export WANDB_API_KEY) to log online")
    out += _idle_eval_gpus(values, stages)
    n = values.get("num_machines", 1)
    if isinstance(n, int) and n > 1 and values.get("main_process_ip") in ("127.0.0.1", "localhost"):
        out.append(f"num_machines is {n} with main_process_ip {values['main_process_ip']}: only machines that are "
                   f"this one can reach machine 0 there (a test on one box); on a cluster set machine 0's address")
    return out


def _idle_eval_gpus(values: dict, stages: list[str]) -> list[str]:
    """A line when 04's engines leave GPUs of this machine idle (where it has CUDA)."""
    from visionr1 import eval_parallel

    n, tp = values.get("eval_data_parallel", 1), values.get("eval_tensor_parallel", 1)
    if "04_evaluate" not in stages or values.get("eval_backend") not in ("hf", "vllm") or \
            not all(isinstance(x, int) and x >= 1 for x in (n, tp)):
        return []
    gpus = eval_parallel.visible_gpus()
    if not gpus or n * tp >= len(gpus):
        return []
    return [f"04 answers on {n * tp} of the {len(gpus)} GPUs here (eval_data_parallel {n} x eval_tensor_parallel "
            f"{tp}); eval_data_parallel: {len(gpus) // tp} would use them all"]


def _exists(values: dict, key: str, bad) -> bool:
    if not resolve_path(str(values[key])).exists():
        bad(key, "does not exist", "download the data there or point the key at it")
        return False
    return True


def _released_layout(values: dict, key: str, bad) -> None:
    """The released folders hold what 00 reads, found without reading a row: an RL split
    (geometry3k parquet) in rl_data_dir; the cold_datasets entries in cold_data_dir's
    dataset_info.json (or the released files it describes)."""
    import warnings as _warnings

    from visionr1 import data_stage, reader, released_data

    root = resolve_path(values[key])
    if key == "rl_data_dir":
        if not any(reader.find_parquet_files(root, split) for split in data_stage.RL_SPLITS):
            bad(key, f"holds no {'/'.join(data_stage.RL_SPLITS)} split of geometry3k parquet files",
                f"point it at the Vision-R1-rl download (check it: python -m visionr1 data check {values[key]})")
        return
    try:
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore", reader.DataWarning)  # the README's entries assumed: 00 says so
            info = released_data.load_dataset_info(root)
    except (OSError, ValueError) as e:
        bad(key, str(e), f"python -m visionr1 data check {values[key]}")
        return
    missing = [n for n in values.get("cold_datasets") or [] if n not in info]
    if missing:
        bad("cold_datasets", f"{', '.join(missing)} not among the entries of {root} "
                             f"({', '.join(sorted(info)) or 'none'})",
            "name entries of its dataset_info.json")


def _source_run(values: dict, key: str) -> tuple[Path, bool]:
    """(folder of the run a stage reads earlier outputs from, whether that is this run)."""
    from visionr1 import env

    name = values.get(key) or values["run_name"]
    return env.run_dir(values["output_root"], name), name == values["run_name"]


def _made_earlier(values: dict, stages: list[str], bad) -> None:
    """Inputs an earlier stage writes (a key left empty, a model reference like "ci"): that stage
    runs now and writes them, or they are on disk already."""
    from visionr1 import models

    if "run_name" not in values or "output_root" not in values:
        return
    if "02_cold_start_sft" in stages and "sft_data" in values and not values.get("sft_data"):
        run = _source_run(values, "")[0]  # this run: 02 reads its own 01
        if "01_cold_start_data" not in stages and not (run / "01_cold_start_data" / "cold" / "sft.jsonl").exists():
            bad("sft_data", f"empty: 02 reads 01's cold/sft.jsonl, but 01 does not run and "
                            f"{run / '01_cold_start_data' / 'cold' / 'sft.jsonl'} does not exist",
                "set sft_data (e.g. the released Vision-R1-cold folder) or run 01_cold_start_data")
    if "03_grpo_ptst" in stages and "rl_data" in values and not values.get("rl_data"):
        run, here = _source_run(values, "rl_source_run")
        made = here and "00_data" in stages and (values.get("data_source") == "nano" or values.get("rl_data_dir"))
        if not made and not (run / "00_data" / "rl").exists():
            bad("rl_data", f"empty: 03 reads 00's rl/ folder, and {run / '00_data' / 'rl'} does not exist"
                           + ("" if not here or "00_data" not in stages else " nor does 00 write it (no rl_data_dir)"),
                "set rl_data_dir (00 then writes rl/) or rl_data, or run 00_data" if here else
                f"run {run.name} (rl_source_run) up to 00_data first, or set rl_data")
    # model references to stages ("base", "ci", "rl", "<run>:ci"): made by a stage of this run, or on disk
    refs = []
    if "02_cold_start_sft" in stages and "sft_model" in values:  # None: 00's base model
        refs.append(("sft_model", values["sft_model"] or "base", _source_run(values, "")))
    if "03_grpo_ptst" in stages and values.get("rl_start"):
        refs.append(("rl_start", values["rl_start"], _source_run(values, "rl_source_run")))
    if "04_evaluate" in stages and values.get("eval_backend") != "openai" and \
            isinstance(values.get("eval_models"), dict):
        for ref in values["eval_models"].values():  # 04 reads "rl" from this run, the others from eval_source_run
            refs.append(("eval_models", ref, _source_run(values, "" if ref == "rl" else "eval_source_run")))
    for key, ref, (run, here) in refs:
        if not isinstance(ref, str) or not models.is_stage_ref(ref):
            continue
        other, name = ref.split(":", 1) if ":" in ref else (None, ref)
        stage = models.STAGE_MODELS[name][0]
        if here and other is None and stage in stages:
            continue  # this run makes it before the stage that reads it
        try:
            models.resolve(ref, run, key=key)
        except (FileNotFoundError, KeyError, ValueError) as e:
            bad(key, str(e).removeprefix(f"{key}: "), f"run {stage} of that run first, or name a model folder")


def _benchmarks(values: dict, stages: list[str], bad) -> None:
    """Every benchmark 04 evaluates: a known name, and a file or folder in a layout its loader
    reads. The nano split's empty path means 00's test.jsonl, which exists only where 00 builds
    the nano task (data_source: nano), in this run or in eval_source_run."""
    from visionr1 import benchmarks

    named = values.get("eval_benchmarks")
    if not isinstance(named, dict) or not named:
        bad("eval_benchmarks", "no benchmark to evaluate", "name at least one, e.g. {mathvista: data/MathVista}")
        return
    for bench, path in named.items():
        if bench not in benchmarks.BENCHMARKS:
            bad("eval_benchmarks", "unknown benchmark", f"names from {', '.join(benchmarks.BENCHMARKS)}", bench)
            continue
        if not path:
            if bench != "nano":
                bad("eval_benchmarks", "no path", f"the local folder or file of the {bench} download", bench)
                continue
            run, here = _source_run(values, "eval_source_run")
            test = run / "00_data" / "test.jsonl"
            if here and "00_data" in stages:
                if values.get("data_source") != "nano":
                    bad("eval_benchmarks", f"\"\" means 00's test.jsonl, which 00 writes only for data_source: nano "
                                           f"(data_source is {values.get('data_source')!r})",
                        "name the paper's benchmarks instead, e.g. {mathvista: data/MathVista, mathverse: "
                        "data/MathVerse, mmmath: data/MM_Math, dynamath: data/DynaMath_Sample}", bench)
            elif not test.exists():
                bad("eval_benchmarks", f"\"\" means 00's test.jsonl, and {test} does not exist",
                    "run 00_data with data_source: nano first, give the nano split's path, or name other benchmarks",
                    bench)
            continue
        try:
            benchmarks.data_files(bench, resolve_path(str(path)))
        except (OSError, ValueError) as e:  # DataError is a ValueError
            bad("eval_benchmarks", str(e).removeprefix(f"{bench}: "),
                f"download {bench} there or point it at its file or folder (python -m visionr1 data check "
                f"{path}; docs/stages.md \"Evaluation (04)\" lists the layouts)", bench)


def _eval_engines(values: dict, bad) -> None:
    """04's engines: each backend's own rule, the GPUs they take against the GPUs this machine shows
    (where it has CUDA: eval_data_parallel x eval_tensor_parallel may not exceed them), and a
    tensor-parallel size that splits the model's attention heads as vLLM requires
    (vllm/config/model.py, verify_with_parallel_config)."""
    from visionr1 import eval_parallel

    backend = values.get("eval_backend")
    n, tp = values.get("eval_data_parallel", 1), values.get("eval_tensor_parallel", 1)
    if not all(isinstance(x, int) and x >= 1 for x in (n, tp)):
        return  # named above
    if backend == "openai" and n > 1:
        bad("eval_data_parallel", "the openai backend sends every request to one endpoint, which parallelizes on its "
            "own", "eval_data_parallel: 1 (start the server with --data-parallel-size instead)")
    if backend == "hf" and tp > 1:
        bad("eval_tensor_parallel", "HF generate runs each engine on one GPU",
            "eval_tensor_parallel: 1, and eval_data_parallel: the GPUs (one HF engine on each)")
    gpus = eval_parallel.visible_gpus() if backend in ("hf", "vllm") else []
    if gpus and n * tp > len(gpus):
        bad("eval_data_parallel", f"{n} engines x eval_tensor_parallel {tp} = {n * tp} GPUs, but this machine shows "
            f"{len(gpus)} (CUDA_VISIBLE_DEVICES={','.join(gpus)})",
            f"eval_data_parallel x eval_tensor_parallel <= {len(gpus)}, e.g. eval_data_parallel: "
            f"{len(gpus) // tp or 1}")
    if backend == "vllm" and tp > 1:
        for name, a in _eval_architectures(values):
            if not _splits(a, tp):
                sizes = [d for d in range(1, a.text_heads + 1) if _splits(a, d)]
                bad("eval_tensor_parallel", f"{name}'s attention heads ({a.text_heads}, {a.text_kv_heads} key/value, "
                    f"{a.vision_heads} in the vision tower) do not split over {tp} GPUs",
                    f"one of {', '.join(map(str, sizes))}")
                return


def _splits(a, tp: int) -> bool:
    """vLLM splits the query heads (text and vision) over `tp` GPUs, and the key/value heads too,
    or replicates them when the GPUs are a multiple of them."""
    kv = a.text_kv_heads
    return not (a.text_heads % tp or a.vision_heads % tp or (kv % tp and tp % kv))


def _eval_architectures(values: dict) -> list:
    """(name, shape) of each model 04 evaluates whose shape is known without a download: this run's
    models (base, ci, rl) have base_model's; a folder or a Qwen2.5-VL hub name its own."""
    from visionr1 import models, preflight

    refs = {values.get("base_model") if models.is_stage_ref(r) else r
            for r in (values.get("eval_models") or {}).values() if isinstance(r, str)}
    out = []
    for ref in sorted(r for r in refs if r):
        try:
            out.append(preflight.architecture(str(ref)))
        except preflight.PreflightError:
            pass  # unknown here: vLLM says so when it loads it
    return out


def _is_model(ref: str) -> bool:
    p = Path(ref).expanduser()
    if p.exists() or resolve_path(ref).exists():
        return (p / "config.json").exists() or (resolve_path(ref) / "config.json").exists()
    return bool(HUB_NAME.match(ref)) and not ref.startswith((".", "/", "~"))
