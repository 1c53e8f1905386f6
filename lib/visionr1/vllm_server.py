"""The rollout server of `rl_rollout: vllm_server` (docs/recipe.md §4, docs/platform.md "Several
processes"): `trl vllm-serve` on GPUs of its own, started by 03 for each PTST stage on that stage's
start model, and stopped when the stage ends or fails.

`serving(...)` is the whole lifecycle, as a context manager:
- a port already taken is refused (a server left from another run would answer for another model);
- the command runs in a process group of its own under visionr1.dist's watchdog, so nothing is left
  running when the launching process dies, even by SIGKILL; its output goes to `log_path`
  (`stage<k>/vllm_server.log`);
- it waits until the server answers TRL's client as the trainer will (`/health`, then `/v1/models`
  naming the stage's model), at most `timeout_s`, and fails at once, with the log's last lines,
  when the server process exits first;
- on leaving (normally, on an exception, KeyboardInterrupt or SIGTERM): SIGTERM to the group,
  SIGKILL after a grace period, and the port is free again before the next stage starts.

Each stage's trainer runs in processes of its own even on one training GPU (grpo.launch): TRL's
VLLMClient keeps its weight-sync group (the trainer binds `vllm_group_port`) open until its process
exits (`atexit`, trl/generation/vllm_client.py), so a second stage in the same process would bind
the port again.

GPUs (`split_gpus`): the trainer takes the first rl_num_gpus visible GPUs, the server the next
rl_vllm_gpus, as rl_vllm_data_parallel replicas of rl_vllm_gpus / rl_vllm_data_parallel
tensor-parallel GPUs each.

How many GPUs should serve (an estimate, not a measurement: vLLM does not run on this project's
machines). 7B recipe, stage 1: 112 completions per step (7 prompts x 16), <= 4,096 new tokens,
~1,000 prompt tokens, assume ~2,000 generated on average; TRL's server mode generates, then trains
(no overlap), so a step costs generation + training.
- Decoding is memory-bound: a step of the batch reads the LLM's weights (15.2 GB bf16) and the KV
  cache (56 KiB per token: 28 layers x 2 x 4 KV heads x 128 x 2 bytes), at ~2.35 TB/s on an H100
  (70% of 3.35): ~12 ms at 112 sequences of ~2K context, ~8 ms once a few are left (+ ~1.5 ms of
  sampling and launch overhead). The longest completion (4,096 tokens: with 112 samples some reach
  the limit) is 4,096 steps in a row, so one GPU takes ~2,000 x 11 + 2,100 x 8 ms ~ 40 s. Data
  parallel halves the batch per GPU but not that chain (~36 s on 2); tensor parallel shortens each
  step (TP2 ~5.5-8.5 ms: ~28 s; TP4 ~4.6-6 ms: ~21 s).
- Training: 112 x 3,000 tokens = 336K tokens; policy forward + backward with recomputation 8 x
  7.6e9 x 336K = 2.0e16 FLOPs, reference forward 0.5e16 (+0.5e16 for old log-probs only with the
  IS correction on): ~2.7e16 with attention, at ~370 TFLOP/s per H100 (ZeRO-3, ~37% MFU): 10 s on
  7 GPUs, plus ~2-3 s of ZeRO-3 gathers and the weight sync to vLLM.
- Per step: 7 train + 1 serve ~40 + 13 = 53 s (0.47 s per completion; generation ~75% of the step,
  the trainers wait); 6 + 2 (TP2, 96 completions: 112 does not split over 6) ~28 + 12 = 40 s (0.42);
  4 + 4 (TP4, batch 14 x grad_accum 2 = 112) ~21 + 20 = 41 s (0.37). Stage 2 (8,192 x 8, ~3,000
  generated on average): 7 + 1 ~78 + 17 = 95 s (0.85); 6 + 2 ~56 + 17 = 73 s (0.76); 4 + 4 ~42 +
  29 = 71 s (0.63).
Check the split on the first steps of a real run: metrics.jsonl has `time/generation_s` and
`time/training_s` per step.
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from visionr1 import dist

GRACE_S = 30.0  # SIGTERM -> SIGKILL: vLLM frees its engine processes and GPU memory on SIGTERM
POLL_S = 1.0


@dataclass
class Server:
    url: str
    pid: int               # the watchdog's, which is also the process group's id
    log_path: Path
    gpus: list[str] | None
    seconds_to_ready: float


def split_gpus(n_train: int, n_serve: int, visible: list[str] | None = None) -> tuple[list[str], list[str]]:
    """(training GPUs, serving GPUs): the first `n_train` of the visible GPUs (CUDA_VISIBLE_DEVICES,
    else all that torch sees) and the next `n_serve`.

    >>> split_gpus(6, 2, ["0", "1", "2", "3", "4", "5", "6", "7"])
    (['0', '1', '2', '3', '4', '5'], ['6', '7'])
    """
    if visible is None:
        env = os.environ.get("CUDA_VISIBLE_DEVICES")
        if env is not None:
            visible = [g.strip() for g in env.split(",") if g.strip()]
        else:
            import torch

            visible = [str(i) for i in range(torch.cuda.device_count())]
    if n_train < 1 or n_serve < 1:
        raise ValueError(f"rl_num_gpus ({n_train}) and rl_vllm_gpus ({n_serve}) must both be >= 1")
    need = n_train + n_serve
    if len(visible) < need:
        raise ValueError(f"rl_rollout: vllm_server trains on rl_num_gpus = {n_train} GPUs and serves on "
                         f"rl_vllm_gpus = {n_serve} others: {need} GPUs, but {len(visible)} are visible "
                         f"({','.join(visible) or 'none'}); lower rl_num_gpus or rl_vllm_gpus, or use rl_rollout: hf")
    return visible[:n_train], visible[n_train:need]


LOCAL_HOSTS = ("0.0.0.0", "", "::", "127.0.0.1", "localhost", "::1")


def is_local(host: str) -> bool:
    """True when `rl_vllm_server_host` means this machine (03 starts the server); any other host is
    a server started on another machine, which 03 only waits for (`remote`).

    >>> is_local("0.0.0.0"), is_local("localhost"), is_local("gpu-node-7")
    (True, True, False)
    """
    return host in LOCAL_HOSTS


def client_host(host: str) -> str:
    """Where a client on this machine reaches a server bound to `host`."""
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


def port_free(host: str, port: int) -> bool:
    """True when a server could bind `host:port` now (as uvicorn does, with SO_REUSEADDR)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""


def wait_until_ready(url: str, proc, log_path: Path, timeout_s: float, model: str | None = None,
                     poll_s: float = POLL_S) -> float:
    """Poll `url`/health until it answers 200 and `/v1/models` lists `model` (when given); return
    the seconds it took. Raise RuntimeError with the log's tail when `proc` exits first or
    `timeout_s` passes."""
    t0 = time.monotonic()
    while True:
        rc = proc.poll()
        if rc is not None:
            raise RuntimeError(f"the vLLM server exited with {rc} before answering at {url}; last lines of "
                               f"{log_path}:\n{log_tail(log_path)}")
        try:
            status, _ = _get(f"{url}/health")
            if status == 200:
                status, body = _get(f"{url}/v1/models")
                served = [m.get("id") for m in json.loads(body or b"{}").get("data", [])] if status == 200 else []
                if model is None or model in served:
                    return time.monotonic() - t0
                if served:
                    raise RuntimeError(f"{url} serves {served}, not {model}: another server holds the port")
        except (urllib.error.URLError, ConnectionError, socket.timeout, json.JSONDecodeError):
            pass  # not listening yet
        if time.monotonic() - t0 > timeout_s:
            raise RuntimeError(f"the vLLM server did not answer at {url} within {timeout_s:.0f} s "
                               f"(rl_vllm_server_timeout); last lines of {log_path}:\n{log_tail(log_path)}")
        time.sleep(poll_s)


@contextmanager
def serving(cmd: list[str], *, host: str, port: int, log_path: str | Path, gpus: list[str] | None = None,
            model: str | None = None, timeout_s: float = 1200.0, grace_s: float = GRACE_S, log=print):
    """Run the server `cmd` (it listens on `host:port`) on `gpus` (CUDA_VISIBLE_DEVICES; None: as
    inherited) while the block runs; yields a Server once it answers (see the module docstring)."""
    if not port_free(host, port):
        raise RuntimeError(f"port {port} on {host} is taken: a vLLM server left from an earlier run? "
                           f"(`ss -ltnp 'sport = :{port}'` names the process); stop it or set rl_vllm_server_port")
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if gpus is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    url = f"http://{client_host(host)}:{port}"
    with dist.sigterm_raises(), log_path.open("ab") as out:
        out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} GPUs {','.join(gpus) if gpus else 'inherited'}: "
                  f"{' '.join(map(str, cmd))}\n".encode())
        out.flush()
        proc = dist.start(cmd, grace_s=grace_s, stdout=out, stderr=out, env=env)
        log(f"vLLM server: pid {proc.pid}, GPUs {','.join(gpus) if gpus else 'inherited'}, log {log_path}")
        try:
            seconds = wait_until_ready(url, proc, log_path, timeout_s, model)
            log(f"vLLM server: answering at {url} after {seconds:.0f} s")
            yield Server(url, proc.pid, log_path, gpus, round(seconds, 1))
        finally:
            rc = dist.stop(proc, grace_s)
            deadline = time.monotonic() + 30
            while not port_free(host, port) and time.monotonic() < deadline:
                time.sleep(0.2)
            log(f"vLLM server: stopped ({rc})" + ("" if port_free(host, port) else f"; port {port} still taken"))


@contextmanager
def remote(host: str, port: int, *, timeout_s: float = 1200.0, poll_s: float = POLL_S, log=print):
    """A server started elsewhere (`trl vllm-serve ... --host 0.0.0.0 --port PORT` on another
    machine): wait until it answers at `host:port` (`/health`), at most `timeout_s`, then yield its
    Server record (pid 0: not ours to stop). The model it was started on does not matter much: TRL
    sends the trainer's weights before the first generation of every stage; its architecture and
    image budget must be the run's (grpo.server_command prints the command to start it with)."""
    url = f"http://{host}:{port}"
    t0 = time.monotonic()
    log(f"vLLM server: waiting for the one at {url} (rl_vllm_server_host names another machine)")
    while True:
        try:
            if _get(f"{url}/health")[0] == 200:
                break
        except (urllib.error.URLError, ConnectionError, socket.timeout, OSError):
            pass
        if time.monotonic() - t0 > timeout_s:
            raise RuntimeError(f"no vLLM server answered at {url} within {timeout_s:.0f} s (rl_vllm_server_timeout): "
                               f"start it on {host} first (the command: python -m visionr1 run PARAMS --dry-run)")
        time.sleep(poll_s)
    seconds = time.monotonic() - t0
    log(f"vLLM server: answering at {url} after {seconds:.0f} s")
    yield Server(url, 0, Path("/dev/null"), None, round(seconds, 1))
