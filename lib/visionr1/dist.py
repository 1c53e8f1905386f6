"""Several training processes, one writer per file (docs/platform.md "Several processes").

Every file in a run folder is written by the main process; the other ranks wait at a barrier
before they read anything just written. On a machine without CUDA, several processes run as DDP
on gloo, launched with `torch.distributed.run` and `ACCELERATE_USE_CPU=true` (accelerate's own
`--cpu` launch starts one process only, and without the flag accelerate takes each torchrun
process for a world of one); with CUDA, `accelerate launch`. One process (the notebook kernel) is the same code with a
world of one: every call here is then a no-op.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _state():
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    # without `cpu`, accelerate takes torchrun's CPU processes for one process each (DistributedType.NO)
    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    """True on the process that writes files (rank 0, or the only process)."""
    return world_size() == 1 or _state().is_main_process


def wait() -> None:
    """Barrier: every rank waits here until all have arrived (no-op in one process)."""
    if world_size() > 1:
        _state().wait_for_everyone()


def gather(items: list) -> list:
    """Concatenate a list of picklable items from every rank, in rank order (collective)."""
    if world_size() == 1:
        return list(items)
    from accelerate.utils import gather_object

    return gather_object(list(items))


def launch_command(module: str, args: list[str], num_processes: int, cuda: bool | None = None) -> list[str]:
    """The command that runs `python -m MODULE ARGS` on `num_processes` processes: `accelerate
    launch` with CUDA (the DeepSpeed config comes from the params), `torch.distributed.run` on
    gloo without it (`--standalone` picks a free rendezvous port, so runs side by side do not collide).

    >>> launch_command("visionr1.sft", ["p.json"], 2, cuda=False)[1:5]
    ['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node']
    """
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    if cuda:
        return [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(num_processes),
                "--num_machines", "1", "--mixed_precision", "bf16", "-m", module, *args]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(num_processes),
            "-m", module, *args]


def launch(module: str, args: list[str], num_processes: int, log=print) -> None:
    """Run `python -m MODULE ARGS` on `num_processes` processes as a subprocess, streaming its log;
    raise (naming the command) when any rank fails."""
    import subprocess

    import torch

    cuda = torch.cuda.is_available()
    cmd = launch_command(module, [str(a) for a in args], num_processes, cuda)
    log("launching: " + " ".join(cmd))
    env = dict(os.environ)
    if not cuda:  # one core's share of threads per process; accelerate's multi-CPU mode
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // num_processes)))
        env["ACCELERATE_USE_CPU"] = "true"
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=env,
                          cwd=Path.cwd()) as proc:
        for line in proc.stdout:
            log(line.rstrip())
    if proc.returncode:
        raise RuntimeError(f"{num_processes}-process run exited with {proc.returncode}: {' '.join(cmd)}")
