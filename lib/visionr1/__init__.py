"""Vision-R1 workbench: the package the stage notebooks import (docs/architecture.md has a table
of every module, which stage uses it, and how data flows from stage to stage).

Finding a concept by its name:
  params, validate    the params files and their checks; runner: the stages with papermill
  models              model references (base, ci, rl, <run>:ref) -> paths
  nano_task, nano_base, tiny_model   the nano task, its base model, tiny Qwen2.5-VL built offline
  reader, released_data, data_stage  the one file reader; Vision-R1-rl/-cold formats; 00 and `data check`
  teachers, cold_start, prompts/     modality bridging (01)
  training, sft, grpo, rewards       SFT (02), GRPO under PTST with HFRRF (03); compat: pinned-library workarounds
  grading, scoring, benchmarks/      answer grading; the benchmarks, one module each (04)
  backends, evaluate, generation     HF / vLLM / OpenAI-compatible generation; 04's evaluation
  curves, plots       figures (05)
"""

import os as _os

__version__ = "0.1.0"

# In the runner's papermill kernels (it sets VISIONR1_HEADLESS) progress bars are text streamed to
# the terminal's log: tqdm.auto would draw ipywidgets there, which nobody sees. Set before any
# module here runs `from tqdm.auto import tqdm`. Training, pretraining and evaluation print
# time-throttled lines there instead of bars (visionr1.training.progress, TrainingProgress).
if _os.environ.get("VISIONR1_HEADLESS"):
    import tqdm.auto as _auto
    import tqdm.std as _std

    _auto.tqdm = _std.tqdm
