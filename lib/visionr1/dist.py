"""Several training processes, one writer per file (docs/platform.md "Several processes").

Every file in a run folder is written by the main process; the other ranks wait at a barrier
before they read anything just written. On a machine without CUDA, several processes run as DDP
on gloo, launched with `torch.distributed.run` and `ACCELERATE_USE_CPU=true` (accelerate's own
`--cpu` launch starts one process only, and without the flag accelerate takes each torchrun
process for a world of one); with CUDA, `accelerate launch`. One process (the notebook kernel) is the same code with a
world of one: every call here is then a no-op. Several machines: each launch spans all of them
(`launch_command`'s `machines`; machine 0 announces it, the others `join`: visionr1.machines), and
"main" is global rank 0, on machine 0.

Launched processes die with the process that launched them: each command runs in a process group of
its own under a small watchdog (`python -m visionr1.dist --watch`), which ends the whole group when
the launcher exits, even by SIGKILL, and when the group is told to stop (`start` / `stop`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

DEFAULT_TIMEOUT_S = 1800  # transformers' TrainingArguments.ddp_timeout default
_timeout_s = DEFAULT_TIMEOUT_S


def init(timeout_s: int | None = None):
    """Create the process group now, with `timeout_s` (seconds a collective or barrier may wait;
    default: TrainingArguments' ddp_timeout default). Call it before the first barrier with the
    timeout the trainer's `ddp_timeout` will name: the group exists from then on, and the trainer's
    own state cannot change its timeout. No-op in one process."""
    global _timeout_s
    if timeout_s:
        _timeout_s = int(timeout_s)
    return _state() if world_size() > 1 else None


def _state():
    from datetime import timedelta

    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    # without `cpu`, accelerate takes torchrun's CPU processes for one process each (DistributedType.NO);
    # the timeout applies only where this call creates the group (the first one)
    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"), timeout=timedelta(seconds=_timeout_s))


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


def close() -> None:
    """End this process's process group, if there is one: every launched entry point calls it last.
    A group left to the interpreter's teardown can abort the process after its work is done
    (SIGABRT, "terminate called without an active exception": a torch.distributed thread destroyed
    while running; seen on 2 machines on localhost, torch 2.13), which fails the launch."""
    import torch.distributed as td

    if td.is_available() and td.is_initialized():
        td.destroy_process_group()


def free_port() -> int:
    """A TCP port nobody listens on now (the OS picks it)."""
    import socket

    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def accelerate_config() -> str:
    """Path of the shipped `accelerate launch` config (visionr1/configs/accelerate.yaml)."""
    from importlib import resources

    return str(resources.files("visionr1") / "configs" / "accelerate.yaml")


def launch_command(module: str, args: list[str], num_processes: int, cuda: bool | None = None, *,
                   mixed_precision: str = "no", main_process_port: int | None = None, machines=None) -> list[str]:
    """The command that runs `python -m MODULE ARGS` on `num_processes` processes (per machine): plain
    `python` for one on one machine; `accelerate launch` with CUDA, with the shipped config (not
    whatever default config the machine has), a rendezvous port of its own (`main_process_port`,
    default: a free one) and `mixed_precision` ("no": the trainer's bf16 flag decides; accelerate's
    "bf16" would also turn an fp32 run into bf16); `torch.distributed.run` on gloo without CUDA
    (`--standalone` picks a free rendezvous port, so runs side by side do not collide).

    `machines` (visionr1.machines.Machines) spanning several: this machine's part of one launch over
    all of them, joined at machine 0's address on `main_process_port` (required: every machine must
    name the same one): accelerate's `--num_machines --machine_rank --main_process_ip` with
    `--num_processes` counting every machine's processes, or torch.distributed.run's `--nnodes
    --node_rank --master_addr --master_port`; global rank 0 is on machine 0.

    >>> launch_command("visionr1.sft", ["p.json"], 2, cuda=False)[1:5]
    ['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node']
    >>> launch_command("visionr1.grpo", ["p.json"], 1)[1:]
    ['-m', 'visionr1.grpo', 'p.json']
    """
    several = machines is not None and machines.num > 1
    if num_processes == 1 and not several:
        return [sys.executable, "-m", module, *args]
    if several and not main_process_port:
        raise ValueError("a launch over several machines needs the rendezvous port machine 0 announced")
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    if cuda:
        nodes = ["--num_machines", "1"] if not several else [
            "--num_machines", str(machines.num), "--machine_rank", str(machines.rank),
            "--main_process_ip", machines.ip]
        total = num_processes * (machines.num if several else 1)  # accelerate counts every machine's processes
        return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", accelerate_config(),
                "--num_processes", str(total), *nodes, "--mixed_precision", mixed_precision,
                "--main_process_port", str(main_process_port or free_port()), "-m", module, *args]
    where = ["--standalone"] if not several else [
        "--nnodes", str(machines.num), "--node_rank", str(machines.rank), "--master_addr", machines.ip,
        "--master_port", str(main_process_port)]
    return [sys.executable, "-m", "torch.distributed.run", *where, "--nproc_per_node", str(num_processes),
            "-m", module, *args]


def launch(module: str, args: list[str], num_processes: int, log=print, *, mixed_precision: str = "no",
           env: dict[str, str] | None = None, machines=None) -> None:
    """Run `python -m MODULE ARGS` on `num_processes` processes as a subprocess (`env`: variables
    set for it, e.g. CUDA_VISIBLE_DEVICES), streaming its log; raise (naming the command) when any
    rank fails. The processes end with this call: on an exception here (KeyboardInterrupt, SIGTERM)
    and when this process dies (`start`).

    `machines` spanning several (this is machine 0, the one that runs the notebooks): the launch is
    announced through the run's coordinator (visionr1.machines) with a rendezvous port picked here,
    and the other machines join it with their ranks (`join`)."""
    import torch

    cuda = torch.cuda.is_available()
    args = [str(a) for a in args]
    port = None
    if machines is not None and machines.num > 1:
        from visionr1 import machines as mach

        if machines.rank != 0:
            raise RuntimeError(f"machine {machines.rank} launched a stage: only machine 0 runs the notebooks, the "
                               f"others follow its launches (python -m visionr1 run ... with machine_rank > 0)")
        port = free_port()
        n = mach.announce(machines, {"module": module, "args": args, "num_processes": num_processes,
                                     "mixed_precision": mixed_precision, "port": port, "cuda": cuda})
        log(f"launch {n} announced to the other {machines.num - 1} machine(s) (rendezvous {machines.ip}:{port})")
    cmd = launch_command(module, args, num_processes, cuda, mixed_precision=mixed_precision, main_process_port=port,
                         machines=machines)
    run_launch(cmd, num_processes, cuda, log, env)


def join(ticket: dict, machines, log=print) -> None:
    """A machine of rank > 0: its part of the launch machine 0 announced (`ticket`, see `launch`), on
    all its visible GPUs up to the ticket's processes per machine (no vLLM server here: machine 0
    serves)."""
    import torch

    cuda = torch.cuda.is_available()
    if cuda != ticket.get("cuda", cuda):
        raise RuntimeError(f"machine {machines.rank} {'has' if cuda else 'lacks'} CUDA and machine 0 "
                           f"{'does' if ticket['cuda'] else 'does not'}: the machines must be alike")
    cmd = launch_command(ticket["module"], ticket["args"], ticket["num_processes"], cuda,
                         mixed_precision=ticket["mixed_precision"], main_process_port=ticket["port"],
                         machines=machines)
    run_launch(cmd, ticket["num_processes"], cuda, log, None)


def run_launch(cmd: list[str], num_processes: int, cuda: bool, log=print, env: dict[str, str] | None = None) -> None:
    """Run a launcher command under the watchdog (`start`), streaming its log; raise on failure."""
    log("launching: " + " ".join(cmd) + "".join(f" ({k}={v})" for k, v in (env or {}).items()))
    env = {**os.environ, **(env or {})}
    # the ranks' stdout is this pipe: unbuffered, their log and progress lines arrive as written,
    # not in blocks of 8 KB or at exit
    env.setdefault("PYTHONUNBUFFERED", "1")
    if not cuda:  # one core's share of threads per process (of this machine); accelerate's multi-CPU mode
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // num_processes)))
        env["ACCELERATE_USE_CPU"] = "true"
    with sigterm_raises():
        proc = start(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=env,
                     cwd=Path.cwd())
        try:
            for line in proc.stdout:
                log(line.rstrip())
            proc.wait()
        finally:
            stop(proc)
            proc.stdout.close()
    if proc.returncode:
        raise RuntimeError(f"{num_processes}-process run exited with {proc.returncode}: {' '.join(cmd)}")


# ---------------------------------------------------------------------------------------------
# Child processes that die with this one
# ---------------------------------------------------------------------------------------------
WATCH_POLL_S = 0.2  # how often the watchdog looks for its parent


def start(cmd: list[str], *, grace_s: float = 30.0, **popen) -> subprocess.Popen:
    """Start `cmd` in a new process group under a watchdog (`python -m visionr1.dist --watch`), which
    leads the group and
    - ends it (SIGTERM to every process in it, SIGKILL after `grace_s`) when this process dies, by
      any signal, SIGKILL included (it polls its parent; no PR_SET_PDEATHSIG, which fires when the
      starting *thread* exits), or when it is told to stop (`stop`, or SIGTERM / SIGINT to the group);
    - exits with `cmd`'s status, after killing whatever `cmd` left running in the group.
    `popen`: subprocess.Popen's arguments (stdout, env, ...), passed on to `cmd`."""
    watch = [sys.executable, "-m", "visionr1.dist", "--watch", str(os.getpid()), str(grace_s), "--", *map(str, cmd)]
    return subprocess.Popen(watch, start_new_session=True, **popen)


def stop(proc: subprocess.Popen, grace_s: float = 30.0) -> int:
    """End a process group started by `start`: SIGTERM to all of it, SIGKILL after `grace_s`;
    returns once no process of the group is left (its exit status, or the signal's negative)."""
    group = proc.pid
    if proc.poll() is None:
        _signal_group(group, signal.SIGTERM)
        try:
            proc.wait(grace_s + 5)  # the watchdog waits `grace_s` for its command, then kills the rest
        except subprocess.TimeoutExpired:
            _signal_group(group, signal.SIGKILL)
            proc.wait()
    deadline = time.monotonic() + 10
    while group_members(group) and time.monotonic() < deadline:  # anything that outlived its watchdog
        _signal_group(group, signal.SIGKILL)
        time.sleep(0.05)
    if group_members(group):
        raise RuntimeError(f"processes {sorted(group_members(group))} of group {group} survived SIGKILL")
    return proc.returncode


def alive(pid: int) -> bool:
    """True while process `pid` runs (a zombie, dead but not yet reaped, is not alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _state_letter(pid) not in ("Z", "X")


def group_members(group: int) -> set[int]:
    """Live processes of process group `group` (read from /proc on Linux)."""
    if not Path("/proc/self/stat").exists():
        try:
            os.killpg(group, 0)
            return {group}
        except ProcessLookupError:
            return set()
    out = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.getpgid(int(name)) == group and alive(int(name)):
                    out.add(int(name))
            except ProcessLookupError:
                pass
    return out


def _state_letter(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]  # the field after "(command name)"


def _signal_group(group: int, sig: int) -> None:
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        pass


class Terminated(BaseException):
    """SIGTERM arrived while `sigterm_raises` was active (a BaseException, like KeyboardInterrupt)."""


_sigterm_depth = 0


@contextmanager
def sigterm_raises():
    """Inside, SIGTERM raises Terminated, so the `finally` blocks that stop child processes run;
    leaving with it, the signal is delivered again to its former handler (by default the process
    then dies of it, as it would have). Main thread only (elsewhere a no-op); nestable."""
    global _sigterm_depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _sigterm_depth:  # the outermost one handles it
        _sigterm_depth += 1
        try:
            yield
        finally:
            _sigterm_depth -= 1
        return

    def raise_terminated(signum, frame):
        raise Terminated("SIGTERM")

    old = signal.signal(signal.SIGTERM, raise_terminated)
    _sigterm_depth = 1
    try:
        yield
    except Terminated:
        signal.signal(signal.SIGTERM, old)
        os.kill(os.getpid(), signal.SIGTERM)  # the former handler's turn (default: die of it)
        raise
    finally:
        _sigterm_depth = 0
        signal.signal(signal.SIGTERM, old)


def _watch(parent: int, grace_s: float, cmd: list[str]) -> int:
    """The watchdog `start` runs: `cmd` in this process group, ended with the parent (see `start`)."""
    asked: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: asked.append(signum))
    child = subprocess.Popen(cmd)
    while child.poll() is None and not asked and os.getppid() == parent:
        try:
            child.wait(WATCH_POLL_S)
        except subprocess.TimeoutExpired:
            pass
    if child.poll() is None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        os.killpg(0, signal.SIGTERM)  # the command and whatever it started
        try:
            child.wait(grace_s)
        except subprocess.TimeoutExpired:
            pass
    for pid in group_members(os.getpgrp()) - {os.getpid()}:  # leftovers, and a command that ignored SIGTERM
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    rc = child.wait()
    return 128 - rc if rc < 0 else rc


if __name__ == "__main__":
    if sys.argv[1:2] != ["--watch"] or "--" not in sys.argv:
        sys.exit("usage: python -m visionr1.dist --watch PARENT_PID GRACE_S -- COMMAND ...")
    sep = sys.argv.index("--")
    sys.exit(_watch(int(sys.argv[2]), float(sys.argv[3]), sys.argv[sep + 1:]))
