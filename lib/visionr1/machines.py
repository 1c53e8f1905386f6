"""Several machines (docs/multiprocess.md "Several machines"): where a run's training launches span
more than one box, through the engine used on one (accelerate + DeepSpeed, or torch.distributed on
gloo without CUDA; torch.distributed's static rendezvous).

The run is started on every machine with the same params and its own `machine_rank` (or under a
launcher that says it: SLURM, torchrun). Machine 0 runs the pipeline as on one machine: the
notebooks, every file of the run folder, every decision (which stages run, resume, skip). Each
time a stage launches training (02's SFT, each PTST stage of 03) it announces the launch through
the run's coordinator, a `torch.distributed.TCPStore` the runner of machine 0 holds at
`main_process_ip:main_process_port` for the whole run; the runners of the other machines `follow`:
they join each announced launch with their node rank (the same entry point and params file, on
`sft_num_gpus` / `rl_num_gpus` processes of their own) and write nothing. Global rank 0, the one
writer of docs/multiprocess.md, is on machine 0. The output folder must be one shared filesystem
(every rank reads the data, the start weights and stage k-1's final from it): a follower checks it
reads machine 0's token from the run folder before it joins anything.

Precedence of the settings: a params file or `--set` wins; keys left at their defaults are taken
from the environment of an existing launcher (`from_environment`): SLURM first (SLURM_NNODES,
SLURM_NODEID, and MASTER_ADDR / MASTER_PORT when the batch script exports them), then torchrun's
(the runner started as one torchrun process per machine: GROUP_RANK, WORLD_SIZE / LOCAL_WORLD_SIZE,
MASTER_ADDR; the coordinator then takes MASTER_PORT + 1, since torchrun's own store holds
MASTER_PORT); else one machine.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

KEYS = ("num_machines", "machine_rank", "main_process_ip", "main_process_port")
# where a run executes, not what it computes: left out of a stage's params hash (runner._hash), so a
# resumed run on other nodes (another SLURM allocation) is the same run
PLACEMENT_KEYS = ("machine_rank", "main_process_ip", "main_process_port")
# what torchrun sets in the processes it starts; cleared before the runner starts kernels or launches
# (a kernel that saw WORLD_SIZE would take itself for one rank of a process group)
TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE",
                 "ROLE_RANK", "ROLE_WORLD_SIZE", "ROLE_NAME", "MASTER_ADDR", "MASTER_PORT",
                 "TORCHELASTIC_RESTART_COUNT", "TORCHELASTIC_MAX_RESTARTS", "TORCHELASTIC_RUN_ID",
                 "TORCHELASTIC_USE_AGENT_STORE", "TORCHELASTIC_ERROR_FILE", "TORCH_NCCL_ASYNC_ERROR_HANDLING")
POLL_S = 1.0  # how often a follower asks the coordinator for the next launch
CONNECT_TIMEOUT_S = 1800  # how long a follower waits for machine 0's runner to come up


@dataclass(frozen=True)
class Machines:
    """The machines one run spans: `num` of them, this one's `rank`, and machine 0's address
    (`ip`, and `port`: the coordinator's; each launch's rendezvous takes a port of its own)."""

    num: int = 1
    rank: int = 0
    ip: str = "127.0.0.1"
    port: int = 29500

    @classmethod
    def from_values(cls, v: dict) -> "Machines":
        """From a stage's params (the four KEYS; absent ones at their defaults)."""
        return cls(int(v.get("num_machines", 1)), int(v.get("machine_rank", 0)),
                   str(v.get("main_process_ip", "127.0.0.1")), int(v.get("main_process_port", 29500)))

    @property
    def several(self) -> bool:
        return self.num > 1


# ---------------------------------------------------------------------------------------------
# An existing launcher's environment
# ---------------------------------------------------------------------------------------------
def from_environment(environ: dict | None = None) -> tuple[dict, str] | None:
    """({key: value} for the KEYS an existing launcher's environment sets, the launcher's name), or
    None when it names one machine or none. SLURM before torchrun (see the module docstring).

    >>> from_environment({"SLURM_NNODES": "4", "SLURM_NODEID": "2", "MASTER_ADDR": "node01"})
    ({'num_machines': 4, 'machine_rank': 2, 'main_process_ip': 'node01'}, 'SLURM')
    >>> from_environment({"GROUP_RANK": "1", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "1",
    ...                   "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29400"})
    ({'num_machines': 2, 'machine_rank': 1, 'main_process_ip': '10.0.0.1', 'main_process_port': 29401}, 'torchrun')
    >>> from_environment({"SLURM_NNODES": "1", "SLURM_NODEID": "0"}) is None
    True
    """
    e = os.environ if environ is None else environ
    if e.get("SLURM_NNODES") and e.get("SLURM_NODEID") is not None and int(e["SLURM_NNODES"]) > 1:
        out = {"num_machines": int(e["SLURM_NNODES"]), "machine_rank": int(e["SLURM_NODEID"])}
        if e.get("MASTER_ADDR"):
            out["main_process_ip"] = e["MASTER_ADDR"]
        if e.get("MASTER_PORT"):
            out["main_process_port"] = int(e["MASTER_PORT"])
        return out, "SLURM"
    if e.get("GROUP_RANK") is not None and e.get("WORLD_SIZE") and e.get("LOCAL_WORLD_SIZE"):
        nodes = int(e["WORLD_SIZE"]) // max(1, int(e["LOCAL_WORLD_SIZE"]))
        if nodes > 1:
            out = {"num_machines": nodes, "machine_rank": int(e["GROUP_RANK"])}
            if e.get("MASTER_ADDR"):
                out["main_process_ip"] = e["MASTER_ADDR"]
            if e.get("MASTER_PORT"):  # torchrun's agent store holds MASTER_PORT itself
                out["main_process_port"] = int(e["MASTER_PORT"]) + 1
            return out, "torchrun"
    return None


def apply_environment(values: dict, sources: dict, environ: dict | None = None) -> str | None:
    """Fill the KEYS still at their defaults from an existing launcher's environment, in place
    (`sources` then names it, e.g. "env (SLURM)"); returns the launcher's name, or None. Under
    torchrun, its per-process variables are removed from this process's environment (the kernels
    and launches inherit it)."""
    found = from_environment(environ)
    if found is None:
        return None
    taken, launcher = found
    for key, value in taken.items():
        if sources.get(key, "default") == "default":
            values[key], sources[key] = value, f"env ({launcher})"
    if launcher == "torchrun" and environ is None:
        for var in TORCHRUN_VARS:
            os.environ.pop(var, None)
    return launcher


def problems(values: dict) -> list[tuple[str, str, str]]:
    """(key, what is wrong, fix) for the KEYS of resolved params."""
    out = []
    n, r, port = values.get("num_machines", 1), values.get("machine_rank", 0), values.get("main_process_port", 29500)
    if not isinstance(n, int) or n < 1:
        out.append(("num_machines", "must be a whole number >= 1", "num_machines: 1 (one machine)"))
    elif not isinstance(r, int) or not 0 <= r < n:
        out.append(("machine_rank", f"must be 0 .. num_machines - 1 = {n - 1}",
                    "start machine 0 with machine_rank 0 and each other machine with its own rank"))
    if not isinstance(port, int) or not 0 < port < 65536:
        out.append(("main_process_port", "not a TCP port", "a free port on machine 0, e.g. 29500"))
    if isinstance(n, int) and n > 1 and not values.get("main_process_ip"):
        out.append(("main_process_ip", "empty", "the address at which the other machines reach machine 0"))
    return out


# ---------------------------------------------------------------------------------------------
# The coordinator: machine 0 announces each launch, the others follow
# ---------------------------------------------------------------------------------------------
def _store(m: Machines, master: bool, timeout_s: float):
    import torch.distributed as tdist

    return tdist.TCPStore(m.ip, m.port, None, master, timedelta(seconds=timeout_s), wait_for_workers=False)


class Coordinator:
    """Machine 0's side, held by its runner for the whole run (`with Coordinator(m, run_dir):`):
    the store the launches are announced in, and the run folder's token (`machines_token` in
    run_state.json, written by the runner) that proves a follower sees the same folder. Leaving
    announces the end (`ok`: whether the run succeeded), so the followers stop."""

    def __init__(self, m: Machines, token: str | None = None):
        self.m, self.token = m, token or secrets.token_hex(8)
        self.store = None

    def __enter__(self) -> "Coordinator":
        try:
            self.store = _store(self.m, True, 60)
        except RuntimeError as e:
            raise RuntimeError(f"machine 0 cannot hold the run's coordinator on port {self.m.port} "
                               f"(main_process_port): {e}; pick a free port") from None
        self.store.set("token", self.token)
        return self

    def end(self, ok: bool) -> None:
        n = self.store.add("launches", 1)
        self.store.set(f"launch/{n}", json.dumps({"end": True, "ok": ok}))

    def __exit__(self, exc_type, exc, tb) -> None:
        self.end(exc_type is None)
        # followers read the end marker within POLL_S; the store goes with this process
        time.sleep(3 * POLL_S)
        self.store = None


def announce(m: Machines, ticket: dict) -> int:
    """Machine 0 (a stage's kernel): publish one launch (`ticket`: module, args, processes per
    machine, mixed precision, rendezvous port) for the followers; returns its number."""
    store = _store(m, False, 60)
    n = store.add("launches", 1)
    store.set(f"launch/{n}", json.dumps(ticket))
    return n


def follow(m: Machines, run_dir: Path, run_launch, log=print) -> bool:
    """A machine of rank > 0: join every launch machine 0 announces, until it announces the end;
    returns whether machine 0's run succeeded. Writes nothing: the run folder is machine 0's.
    `run_launch(ticket, m, log)`: how a launch is joined (the runner passes dist.join)."""
    log(f"machine {m.rank} of {m.num}: following machine 0 at {m.ip}:{m.port}")
    store = _store(m, False, CONNECT_TIMEOUT_S)
    token = store.get("token").decode()
    state = Path(run_dir) / "run_state.json"
    seen = json.loads(state.read_text()).get("machines_token") if state.exists() else None
    if seen != token:
        raise RuntimeError(f"machine {m.rank} does not see machine 0's run folder: {state} "
                           f"{'holds another token' if state.exists() else 'does not exist'}. output_root must be "
                           f"one shared filesystem, at the same path on every machine")
    n = 0
    while True:
        n += 1
        while not store.check([f"launch/{n}"]):
            time.sleep(POLL_S)
        ticket = json.loads(store.get(f"launch/{n}"))
        if ticket.get("end"):
            log(f"machine {m.rank}: machine 0's run {'finished' if ticket['ok'] else 'FAILED'}")
            return bool(ticket["ok"])
        log(f"machine {m.rank}: joining launch {n}: python -m {ticket['module']} {' '.join(ticket['args'])}")
        run_launch(ticket, m, log)
