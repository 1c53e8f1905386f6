"""W&B mirroring of a stage's metrics. Offline by default: runs land in outputs/<run>/wandb/ and
can be synced later with `wandb sync`; nothing depends on W&B being reachable (docs/style.md §9).

The params' `wandb_mode` decides (env.setup_environment exports it for the trainers and the
processes they launch). "online" needs a login: an API key in WANDB_API_KEY (or an identity
token file in WANDB_IDENTITY_TOKEN_FILE) or in the netrc file for the W&B host, where `wandb
login` puts it. Without one, wandb.init fails in a headless run; here the stage logs offline
instead and says so, and `python -m visionr1 run --dry-run` warns before anything runs.
"""

from __future__ import annotations

import netrc
import os
import sys
from pathlib import Path
from urllib.parse import urlparse

DEFAULT_HOST = "https://api.wandb.ai"


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


def netrc_path() -> Path:
    """The netrc file wandb reads: $NETRC, else ~/.netrc (or ~/_netrc where only that exists)."""
    if os.environ.get("NETRC"):
        return Path(os.environ["NETRC"]).expanduser()
    unix, windows = Path("~/.netrc").expanduser(), Path("~/_netrc").expanduser()
    return windows if windows.exists() and not unix.exists() else unix


def wandb_login_missing() -> str | None:
    """None when a W&B login is at hand for the host (WANDB_BASE_URL or api.wandb.ai), else what
    is missing, in words. Reads the environment and the netrc file only: no network, no wandb import."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return None
    host = urlparse(os.environ.get("WANDB_BASE_URL") or DEFAULT_HOST).hostname or "api.wandb.ai"
    path = netrc_path()
    try:
        if path.is_file() and netrc.netrc(str(path)).authenticators(host):
            return None
    except (netrc.NetrcParseError, OSError) as e:
        return f"{path} cannot be read ({e})"
    return f"no W&B login (WANDB_API_KEY is not set and {path} has no entry for {host})"


def effective_mode(mode: str, warn=None) -> str:
    """The mode W&B can run in: "online" without a login becomes "offline", said on stderr
    (or through `warn`); every other mode is kept."""
    if mode == "online":
        missing = wandb_login_missing()
        if missing:
            (warn or (lambda m: print(m, file=sys.stderr)))(
                f"W&B: wandb_mode is online but {missing}; logging offline instead (`wandb sync` later)")
            return "offline"
    return mode


def log_stage(run_dir: Path, run_name: str, stage: str, mode: str, config: dict, metrics: dict,
              images: dict[str, Path] | None = None) -> str | None:
    """Log a finished stage's metrics (and PNGs) as one W&B run; returns its folder, or None."""
    if mode == "disabled":
        return None
    import wandb

    run = wandb.init(project="visionr1", name=f"{run_name}/{stage}", group=run_name, job_type=stage,
                     dir=str(run_dir), mode=effective_mode(mode), config=config, reinit="finish_previous")
    try:
        run.log({**scalars(metrics), **{k: wandb.Image(str(p)) for k, p in (images or {}).items()}})
        return run.dir
    finally:
        run.finish()
