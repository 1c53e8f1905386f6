"""The launcher of several processes (visionr1.dist): the command it builds, the process group's
timeout, and launched processes that end with their launcher. Two CPU processes on gloo each
(`torch.distributed.run`), a few seconds."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from visionr1 import dist


def test_the_gpu_launch_names_its_config_its_own_port_and_the_trainers_precision():
    from accelerate.commands.config.config_args import load_config_from_file

    cmd = dist.launch_command("visionr1.grpo", ["p.json", "--stage", "2"], 7, cuda=True)
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"] and cmd[-4:] == ["visionr1.grpo", "p.json", "--stage", "2"]
    opt = {cmd[i]: cmd[i + 1] for i in range(3, cmd.index("-m", 3), 2)}
    assert opt["--num_processes"] == "7" and opt["--num_machines"] == "1"
    # "no": TrainingArguments' bf16 flag decides; a forced "bf16" would also make an fp32 run bf16
    assert opt["--mixed_precision"] == "no"
    bf16 = dist.launch_command("m", [], 2, cuda=True, mixed_precision="bf16")
    assert bf16[bf16.index("--mixed_precision") + 1] == "bf16"
    # a port of its own (accelerate's default 29500 collides with a second run), the shipped config
    # (not whatever ~/.cache/huggingface/accelerate/default_config.yaml holds)
    assert 1024 < int(opt["--main_process_port"]) < 65536
    cfg = load_config_from_file(opt["--config_file"])
    assert (cfg.distributed_type.value, cfg.num_machines, cfg.mixed_precision) == ("MULTI_GPU", 1, "no")
    # one process: plain python, no launcher
    assert dist.launch_command("visionr1.grpo", ["p.json"], 1, cuda=True) == [sys.executable, "-m", "visionr1.grpo",
                                                                             "p.json"]


@pytest.fixture()
def module_dir(tmp_path, monkeypatch):
    """A folder on every launched process's PYTHONPATH, for test modules."""
    d = tmp_path / "mods"
    d.mkdir()
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(d), os.environ.get("PYTHONPATH", "")]))
    return d


def test_the_process_group_gets_the_configured_timeout(module_dir):
    """`dist.init(timeout)` creates the group before anything else (as grpo.train does before its
    first barrier) with that timeout; TrainingArguments' own state later cannot change it."""
    (module_dir / "timeout_probe.py").write_text(textwrap.dedent("""
        import torch, torch.distributed as td
        from visionr1 import dist
        dist.init(77)
        assert dist.is_main() == (td.get_rank() == 0)
        from transformers import TrainingArguments
        TrainingArguments(output_dir="/tmp/unused", ddp_timeout=5, use_cpu=True)  # too late to change it
        timeout = td.group.WORLD._get_backend(torch.device("cpu")).options._timeout
        print(f"rank {td.get_rank()} of {td.get_world_size()}: timeout {timeout.total_seconds():.0f} s", flush=True)
    """))
    lines = []
    dist.launch("timeout_probe", [], 2, log=lines.append)
    found = sorted(m.group(0) for x in lines for m in [re.search(r"rank \d of 2: timeout \d+ s", x)] if m)
    assert found == ["rank 0 of 2: timeout 77 s", "rank 1 of 2: timeout 77 s"], lines[-20:]


LAUNCHER = """
import sys
from visionr1 import dist
dist.launch("sleeper", [], 2, log=lambda line: print(line, flush=True))
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_launched_ranks_end_with_their_launcher(module_dir, sig):
    (module_dir / "sleeper.py").write_text("import os, time\nprint(f'rank pid={os.getpid()}', flush=True)\n"
                                           "time.sleep(600)\n")
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER], stdout=subprocess.PIPE, text=True)
    pids, seen = [], []
    try:
        deadline = time.time() + 120
        while len(pids) < 2 and time.time() < deadline:
            line = launcher.stdout.readline()
            if not line:  # the launcher ended: its output says why
                break
            seen.append(line)
            # both ranks write to one pipe: under load their lines may arrive run together
            pids += [int(p) for p in re.findall(r"rank pid=(\d+)", line)]
        assert len(pids) == 2 and all(dist.alive(p) for p in pids), seen[-20:]
        launcher.send_signal(sig)
        launcher.wait(60)
        deadline = time.time() + 30
        while any(dist.alive(p) for p in pids) and time.time() < deadline:
            time.sleep(0.1)
        assert not any(dist.alive(p) for p in pids), f"ranks {pids} outlived their launcher ({sig!r})"
    finally:
        if launcher.poll() is None:
            launcher.kill()
        for p in pids:
            if dist.alive(p):
                os.kill(p, signal.SIGKILL)


def test_a_failing_rank_fails_the_launch_with_the_command(module_dir):
    (module_dir / "failing.py").write_text("import sys\nsys.exit(3)\n")
    with pytest.raises(RuntimeError, match=r"2-process run exited with \d+: .*torch.distributed.run.* failing"):
        dist.launch("failing", [], 2, log=lambda *a: None)
    assert Path(dist.accelerate_config()).exists()
