"""Where things live: the project root, run folders, and caches kept out of $HOME.

W&B, Hugging Face, Jupyter, IPython and matplotlib write config and caches under $HOME unless
told otherwise (docs/platform.md); `setup_environment` points them into the project's `.cache/`
(git-ignored) and sets W&B's mode: the params' `wandb_mode` when a stage passes it (the trainers
and every process they launch read WANDB_MODE), offline when nothing chose one.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(os.environ.get("VISIONR1_ROOT", Path(__file__).resolve().parents[2]))
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"


def cache_dir() -> Path:
    return PROJECT_ROOT / ".cache"


def run_dir(output_root: str | Path, run_name: str) -> Path:
    """outputs/<run_name>/ (a relative `output_root` is taken from the project root)."""
    root = Path(output_root)
    return (root if root.is_absolute() else PROJECT_ROOT / root) / run_name


def stage_dir(output_root: str | Path, run_name: str, stage: str) -> Path:
    """outputs/<run_name>/<stage>/, created if missing."""
    d = run_dir(output_root, run_name) / stage
    d.mkdir(parents=True, exist_ok=True)
    return d


def setup_environment(wandb_mode: str | None = None) -> dict[str, str]:
    """Point every cache into `.cache/` and set W&B's mode; returns what it set.

    `wandb_mode` (each stage passes its params value) wins over any WANDB_MODE already in the
    environment, the runner's own default included: the params say how a run logs. "online"
    without a W&B login becomes "offline", with a warning (visionr1.tracking.effective_mode),
    instead of failing in the trainer hours into a run. Without `wandb_mode` an exported
    WANDB_MODE is kept, else offline. Other values the user already exported are kept, so a
    researcher can share a Hugging Face cache (`HF_HOME=...`).
    """
    c = cache_dir()
    wanted = {
        "HF_HOME": c / "huggingface",
        "WANDB_DIR": c / "wandb",
        "WANDB_DATA_DIR": c / "wandb" / "data",
        "WANDB_CACHE_DIR": c / "wandb" / "cache",
        "WANDB_CONFIG_DIR": c / "wandb" / "config",
        "MPLCONFIGDIR": c / "matplotlib",
        "IPYTHONDIR": c / "ipython",
        "JUPYTER_CONFIG_DIR": c / "jupyter" / "config",
        "JUPYTER_DATA_DIR": c / "jupyter" / "data",
        "JUPYTER_RUNTIME_DIR": c / "jupyter" / "runtime",
        "TRITON_CACHE_DIR": c / "triton",
        "TORCHINDUCTOR_CACHE_DIR": c / "torchinductor",
    }
    done: dict[str, str] = {}
    for key, path in wanted.items():
        if key not in os.environ:
            Path(path).mkdir(parents=True, exist_ok=True)
            os.environ[key] = done[key] = str(path)
    if wandb_mode:
        from visionr1 import tracking

        os.environ["WANDB_MODE"] = done["WANDB_MODE"] = tracking.effective_mode(wandb_mode)
    for key, value in {"WANDB_MODE": "offline", "WANDB_SILENT": "true",
                       "TOKENIZERS_PARALLELISM": "false", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}.items():
        if key not in os.environ:
            os.environ[key] = done[key] = value
    return done
