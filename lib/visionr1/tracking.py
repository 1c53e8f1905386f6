"""W&B mirroring of a stage's metrics. Offline by default: runs land in outputs/<run>/wandb/ and
can be synced later with `wandb sync`; nothing depends on W&B being reachable (docs/style.md §9)."""

from __future__ import annotations

from pathlib import Path


def scalars(metrics: dict, prefix: str = "") -> dict[str, float]:
    """Flatten nested metrics to `a/b` keys, keeping numbers only (W&B summary-friendly)."""
    out: dict[str, float] = {}
    for k, v in metrics.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(scalars(v, key + "/"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[key] = v
    return out


def log_stage(run_dir: Path, run_name: str, stage: str, mode: str, config: dict, metrics: dict,
              images: dict[str, Path] | None = None) -> str | None:
    """Log a finished stage's metrics (and PNGs) as one W&B run; returns its folder, or None."""
    if mode == "disabled":
        return None
    import wandb

    run = wandb.init(project="visionr1", name=f"{run_name}/{stage}", group=run_name, job_type=stage,
                     dir=str(run_dir), mode=mode, config=config, reinit="finish_previous")
    try:
        run.log({**scalars(metrics), **{k: wandb.Image(str(p)) for k, p in (images or {}).items()}})
        return run.dir
    finally:
        run.finish()
