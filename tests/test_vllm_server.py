"""The vLLM server's lifecycle (visionr1.vllm_server) with a fake TRL-protocol server
(tests/fake_vllm_server.py) run as a real subprocess: started, waited for, stopped, port freed,
log written; no process left behind when the block fails, the parent is sent SIGTERM or killed
with SIGKILL; the GPU split. Each case takes a second or two."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from visionr1 import dist, vllm_server

FAKE = str(Path(__file__).parent / "fake_vllm_server.py")
HOST = "127.0.0.1"


def fake(port: int, model: str = "m", *extra: str) -> list[str]:
    return [sys.executable, FAKE, "--model", model, "--host", HOST, "--port", str(port), *extra]


def pids_in(log: Path) -> list[int]:
    """The fake server's pid and its worker's, from the first line it prints."""
    deadline = time.time() + 20
    while time.time() < deadline:
        m = re.search(r"pid=(\d+) worker=(\d+|None)", log.read_text() if log.exists() else "")
        if m:
            return [int(x) for x in m.groups() if x != "None"]
        time.sleep(0.05)
    raise AssertionError(f"no pid line in {log}")


def gone(pids: list[int], within: float = 10.0) -> bool:
    deadline = time.time() + within
    while time.time() < deadline:
        if not any(dist.alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def test_server_is_started_waited_for_stopped_and_its_port_freed(tmp_path):
    port, log, lines = dist.free_port(), tmp_path / "stage1" / "vllm_server.log", []
    with vllm_server.serving(fake(port, "ci", "--delay", "1.5", "--worker"), host=HOST, port=port, log_path=log,
                             gpus=["3"], model="ci", timeout_s=30, log=lines.append) as srv:
        # answering as the trainer's VLLMClient needs it, once the block starts
        with urllib.request.urlopen(f"{srv.url}/get_world_size") as r:
            assert json.loads(r.read()) == {"world_size": 1}
        assert srv.seconds_to_ready >= 1.0, "waited while the model 'loaded'"
        pids = pids_in(log)
        assert len(pids) == 2 and all(dist.alive(p) for p in pids)
        assert not vllm_server.port_free(HOST, port)
    assert gone(pids, within=0.1), "the server and its worker are gone when the block ends"
    assert vllm_server.port_free(HOST, port)
    text = log.read_text()
    assert "GPUs 3:" in text and "listening on" in text and "request" in text
    assert any("stopped" in x for x in lines)


def test_a_server_that_dies_fails_at_once_with_its_log(tmp_path):
    port, log = dist.free_port(), tmp_path / "vllm_server.log"
    t0 = time.time()
    with pytest.raises(RuntimeError, match=r"(?s)exited with 3 before answering.*CUDA out of memory"):
        with vllm_server.serving(fake(port, "m", "--exit-code", "3"), host=HOST, port=port, log_path=log,
                                 timeout_s=300, log=lambda *a: None):
            pytest.fail("the block must not run")
    assert time.time() - t0 < 20, "not the 300 s timeout"


def test_a_server_that_never_answers_is_stopped_after_the_timeout(tmp_path):
    port, log = dist.free_port(), tmp_path / "vllm_server.log"
    with pytest.raises(RuntimeError, match=r"did not answer .* within 2 s"):
        with vllm_server.serving(fake(port, "m", "--delay", "600", "--worker"), host=HOST, port=port, log_path=log,
                                 timeout_s=2, log=lambda *a: None):
            pass
    assert gone(pids_in(log), within=0.1)


def test_a_server_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path):
    port, log = dist.free_port(), tmp_path / "vllm_server.log"
    t0 = time.time()
    with vllm_server.serving(fake(port, "m", "--ignore-sigterm"), host=HOST, port=port, log_path=log,
                             timeout_s=30, grace_s=1.0, log=lambda *a: None):
        pids = pids_in(log)
        t0 = time.time()
    assert gone(pids, within=0.1) and time.time() - t0 < 15
    assert vllm_server.port_free(HOST, port)


def test_an_error_in_the_block_stops_the_server(tmp_path):
    port, log = dist.free_port(), tmp_path / "vllm_server.log"
    with pytest.raises(ZeroDivisionError):
        with vllm_server.serving(fake(port, "m", "--worker"), host=HOST, port=port, log_path=log, timeout_s=30,
                                 log=lambda *a: None):
            pids = pids_in(log)
            1 / 0
    assert gone(pids, within=0.1) and vllm_server.port_free(HOST, port)


def test_a_taken_port_or_another_model_is_refused(tmp_path):
    port = dist.free_port()
    with socket.socket() as s:
        s.bind((HOST, port))
        s.listen()
        with pytest.raises(RuntimeError, match=f"port {port} on {HOST} is taken"):
            with vllm_server.serving(fake(port), host=HOST, port=port, log_path=tmp_path / "a.log",
                                     log=lambda *a: None):
                pass
    # a server answering for another model (stage 1's start, while stage 2 needs stage1/final)
    with pytest.raises(RuntimeError, match=r"serves \['base'\], not stage1/final"):
        with vllm_server.serving(fake(port, "base"), host=HOST, port=port, log_path=tmp_path / "b.log",
                                 model="stage1/final", timeout_s=30, log=lambda *a: None):
            pass
    assert vllm_server.port_free(HOST, port)


# SIGINT handled as in a terminal even where pytest itself was started in the background (a shell's
# `cmd &` starts it with SIGINT ignored, inherited by this child, and Python keeps an ignored SIGINT)
MANAGER = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
from visionr1 import vllm_server
cmd = {cmd!r}
with vllm_server.serving(cmd, host={host!r}, port={port}, log_path={log!r}, timeout_s=30, log=lambda *a: None):
    print("ready", flush=True)
    time.sleep(600)
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_no_server_outlives_the_process_that_started_it(tmp_path, sig):
    """The manager in a child python process, sent SIGKILL (nothing of it runs again: the watchdog
    ends the server), SIGTERM or SIGINT (its cleanup runs, then it dies of the signal)."""
    port, log = dist.free_port(), tmp_path / "vllm_server.log"
    script = textwrap.dedent(MANAGER.format(cmd=fake(port, "m", "--worker"), host=HOST, port=port, log=str(log)))
    mgr = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert mgr.stdout.readline().strip() == "ready"
        pids = pids_in(log)
        assert all(dist.alive(p) for p in pids)
        mgr.send_signal(sig)
        rc = mgr.wait(90)  # its cleanup may wait out the server's 30 s SIGTERM grace on a loaded machine
        assert gone(pids), f"server processes {pids} outlived their manager ({sig!r})"
        assert vllm_server.port_free(HOST, port)
        if sig == signal.SIGTERM:
            assert rc == -signal.SIGTERM, "after its cleanup the manager dies of SIGTERM, as it would have"
    finally:
        if mgr.poll() is None:
            mgr.kill()


def test_gpus_split_between_trainer_and_server(monkeypatch):
    assert vllm_server.split_gpus(7, 1, [str(i) for i in range(8)]) == ([str(i) for i in range(7)], ["7"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6")
    assert vllm_server.split_gpus(1, 2) == (["4"], ["5", "6"])
    with pytest.raises(ValueError, match=r"rl_num_gpus = 2 .* rl_vllm_gpus = 2 others: 4 GPUs, but 3 are visible"):
        vllm_server.split_gpus(2, 2)


def test_the_watchdog_passes_the_exit_status_on(tmp_path):
    proc = dist.start([sys.executable, "-c", "import sys; print('hi'); sys.exit(7)"], stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=30)
    assert (proc.returncode, out.strip()) == (7, "hi")
    assert dist.stop(proc) == 7
