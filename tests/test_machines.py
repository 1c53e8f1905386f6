"""Several machines (visionr1.machines, docs/multiprocess.md "Several machines"): the launch commands
over machines, an existing launcher's environment, the checks, machine 0 announcing launches and the
others following without writing, a vLLM server on another machine. Seconds each; the pipeline over
two "machines" on localhost is in tests/test_pipeline.py."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from visionr1 import dist, machines, runner, validate, vllm_server
from visionr1.machines import Machines


def opts(cmd: list[str]) -> dict:
    """The launcher's `--flag value` pairs (up to the module's `-m`)."""
    end = len(cmd) - 1 - cmd[::-1].index("-m")
    flags = cmd[3:end]
    return {flags[i]: flags[i + 1] for i in range(0, len(flags) - 1) if flags[i].startswith("--")
            and not flags[i + 1].startswith("--")}


def test_cpu_launch_over_machines_is_torchrun_with_node_rank_and_master():
    cmd = dist.launch_command("visionr1.grpo", ["p.json", "--stage", "1"], 2, cuda=False, main_process_port=29611,
                              machines=Machines(3, 2, "10.0.0.1", 29500))
    assert cmd[1:3] == ["-m", "torch.distributed.run"] and "--standalone" not in cmd
    assert cmd[-5:] == ["-m", "visionr1.grpo", "p.json", "--stage", "1"]
    assert opts(cmd) == {"--nnodes": "3", "--node_rank": "2", "--master_addr": "10.0.0.1", "--master_port": "29611",
                         "--nproc_per_node": "2"}
    # one process per machine still launches (it is one rank of a larger world)
    one = dist.launch_command("m", [], 1, cuda=False, main_process_port=1234, machines=Machines(2, 1))
    assert opts(one)["--nproc_per_node"] == "1" and opts(one)["--node_rank"] == "1"
    with pytest.raises(ValueError, match="rendezvous port"):  # every machine must name machine 0's
        dist.launch_command("m", [], 1, cuda=False, machines=Machines(2, 1))


def test_gpu_launch_over_machines_counts_every_machines_processes():
    cmd = dist.launch_command("visionr1.sft", ["p.json"], 8, cuda=True, main_process_port=29611,
                              machines=Machines(4, 3, "node01", 29500))
    o = opts(cmd)
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"]
    # accelerate's --num_processes is the total; it launches num_processes / num_machines per machine
    assert (o["--num_processes"], o["--num_machines"], o["--machine_rank"]) == ("32", "4", "3")
    assert (o["--main_process_ip"], o["--main_process_port"]) == ("node01", "29611")
    # one machine: as before
    single = opts(dist.launch_command("visionr1.sft", ["p.json"], 8, cuda=True, machines=Machines()))
    assert single["--num_machines"] == "1" and "--machine_rank" not in single


@pytest.mark.parametrize("environ, found", [
    ({}, None),  # no launcher: one machine
    ({"SLURM_NNODES": "1", "SLURM_NODEID": "0", "MASTER_ADDR": "n1"}, None),  # a one-node job
    ({"SLURM_NNODES": "2", "SLURM_NODEID": "1", "MASTER_ADDR": "n1", "MASTER_PORT": "29700"},
     ({"num_machines": 2, "machine_rank": 1, "main_process_ip": "n1", "main_process_port": 29700}, "SLURM")),
    # the runner started by torchrun, one process per machine: its own store holds MASTER_PORT
    ({"GROUP_RANK": "0", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "1", "MASTER_ADDR": "n1", "MASTER_PORT": "29400"},
     ({"num_machines": 4, "machine_rank": 0, "main_process_ip": "n1", "main_process_port": 29401}, "torchrun")),
    # SLURM first when both are there (torchrun inside a SLURM job step)
    ({"SLURM_NNODES": "2", "SLURM_NODEID": "1", "GROUP_RANK": "0", "WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "2"},
     ({"num_machines": 2, "machine_rank": 1}, "SLURM")),
])
def test_an_existing_launchers_environment(environ, found):
    assert machines.from_environment(environ) == found


def test_params_set_explicitly_win_over_the_environment():
    values = {"num_machines": 1, "machine_rank": 0, "main_process_ip": "127.0.0.1", "main_process_port": 29500}
    sources = {k: "default" for k in values} | {"main_process_ip": "--set"}
    values["main_process_ip"] = "10.1.1.1"
    env = {"SLURM_NNODES": "2", "SLURM_NODEID": "1", "MASTER_ADDR": "n1", "MASTER_PORT": "29700"}
    assert machines.apply_environment(values, sources, env) == "SLURM"
    assert values == {"num_machines": 2, "machine_rank": 1, "main_process_ip": "10.1.1.1", "main_process_port": 29700}
    assert sources["machine_rank"] == "env (SLURM)" and sources["main_process_ip"] == "--set"
    assert validate.problems(values, sources, []) == []
    # a SLURM job that does not say where machine 0 is: the followers would wait at 127.0.0.1
    values = {"num_machines": 1, "machine_rank": 0, "main_process_ip": "127.0.0.1", "main_process_port": 29500}
    sources = {k: "default" for k in values}
    machines.apply_environment(values, sources, {"SLURM_NNODES": "2", "SLURM_NODEID": "0"})
    found = validate.problems(values, sources, [])
    assert len(found) == 1 and found[0].startswith("main_process_ip") and "export MASTER_ADDR" in found[0], found


@pytest.mark.parametrize("sets, key", [
    ({"num_machines": 0}, "num_machines"),
    ({"num_machines": 2, "machine_rank": 2}, "machine_rank"),
    ({"num_machines": 2, "machine_rank": -1}, "machine_rank"),
    ({"main_process_port": 70000}, "main_process_port"),
    ({"num_machines": 2, "main_process_ip": ""}, "main_process_ip"),
])
def test_machine_settings_are_checked(sets, key):
    values = {"num_machines": 1, "machine_rank": 0, "main_process_ip": "127.0.0.1", "main_process_port": 29500, **sets}
    found = validate.problems(values, {}, [])
    assert len(found) == 1 and found[0].startswith(key), found


def test_rl_batch_counts_the_processes_of_every_machine():
    stage = {"steps": 1, "max_completion_length": 8, "num_generations": 8}
    assert validate.rl_generation_batch({"rl_num_gpus": 2, "num_machines": 2, "rl_batch_size": 2}, stage) == (2, 4, 1, 8)
    found = validate.problems({"rl_stages": [stage], "rl_num_gpus": 3, "num_machines": 2, "rl_batch_size": 1,
                               "rl_grad_accum": 1}, {}, [])
    assert any("1 x 6 process(es)" in x for x in found), found


def test_where_a_run_executes_is_not_part_of_a_stages_params_hash():
    base = {"seed": 0, "num_machines": 2, "machine_rank": 0, "main_process_ip": "n1", "main_process_port": 29500}
    moved = {**base, "machine_rank": 1, "main_process_ip": "n7", "main_process_port": 29999}
    assert runner._hash(base) == runner._hash(moved)  # the same run on another allocation
    assert runner._hash(base) != runner._hash({**base, "num_machines": 4})  # another world: another run


# ---------------------------------------------------------------------------------------------
# Machine 0 announces, the others follow
# ---------------------------------------------------------------------------------------------
def snapshot(folder: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def follow_in_thread(m: Machines, run_dir: Path):
    joined, result = [], {}

    def body():
        try:
            result["ok"] = machines.follow(m, run_dir, lambda ticket, mm, log: joined.append((ticket, mm.rank)),
                                           log=lambda *a: None)
        except Exception as e:  # noqa: BLE001 - handed to the test
            result["error"] = e
    t = threading.Thread(target=body, daemon=True)
    t.start()
    return t, joined, result


def test_followers_join_each_announced_launch_in_order_and_write_nothing(tmp_path):
    m0 = Machines(2, 0, "127.0.0.1", dist.free_port())
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with machines.Coordinator(m0) as c:
        (run_dir / "run_state.json").write_text(json.dumps({"machines_token": c.token}))  # what the runner writes
        before = snapshot(tmp_path)
        t, joined, result = follow_in_thread(Machines(2, 1, "127.0.0.1", m0.port), run_dir)
        for k in (1, 2):
            machines.announce(m0, {"module": "visionr1.grpo", "args": ["p.json", "--stage", str(k)], "port": 100 + k})
    t.join(30)
    assert result == {"ok": True}
    assert [(tk["args"][-1], tk["port"], rank) for tk, rank in joined] == [("1", 101, 1), ("2", 102, 1)]
    assert snapshot(tmp_path) == before, "a follower writes nothing"


def test_a_follower_refuses_a_run_folder_it_does_not_share_and_stops_when_machine_0_fails(tmp_path):
    m0 = Machines(2, 0, "127.0.0.1", dist.free_port())
    with machines.Coordinator(m0):  # the follower's own folder holds no token: not the same filesystem
        with pytest.raises(RuntimeError, match="shared filesystem"):
            machines.follow(Machines(2, 1, "127.0.0.1", m0.port), tmp_path, dist.join, log=lambda *a: None)
    m0 = Machines(2, 0, "127.0.0.1", dist.free_port())
    with pytest.raises(KeyError):
        with machines.Coordinator(m0) as c:
            (tmp_path / "run_state.json").write_text(json.dumps({"machines_token": c.token}))
            t, joined, result = follow_in_thread(Machines(2, 1, "127.0.0.1", m0.port), tmp_path)
            raise KeyError("a stage of machine 0 failed")
    t.join(30)
    assert result == {"ok": False} and joined == []


def test_a_machine_of_rank_above_0_launches_nothing_itself():
    with pytest.raises(RuntimeError, match="only machine 0 runs the notebooks"):
        dist.launch("m", [], 1, log=lambda *a: None, machines=Machines(2, 1, "127.0.0.1", 29500))


def test_two_machines_on_localhost_form_one_world(module_dir, tmp_path):
    """Machine 0's launch (announced) and machine 1's join meet in one gloo world of 2 ranks, global
    rank 0 on machine 0."""
    (module_dir / "world_probe.py").write_text(textwrap.dedent("""
        import os, torch.distributed as td
        from visionr1 import dist
        dist.init(60)
        ranks = dist.gather([(td.get_rank(), os.environ["GROUP_RANK"])])
        print(f"rank {td.get_rank()} of {td.get_world_size()} main={dist.is_main()} world={ranks}", flush=True)
        dist.close()
    """))
    m0 = Machines(2, 0, "127.0.0.1", dist.free_port())
    lines0, lines1 = [], []
    with machines.Coordinator(m0) as c:
        (tmp_path / "run_state.json").write_text(json.dumps({"machines_token": c.token}))
        follower = threading.Thread(target=machines.follow, daemon=True, args=(
            Machines(2, 1, "127.0.0.1", m0.port), tmp_path, dist.join, lines1.append))
        follower.start()
        try:
            dist.launch("world_probe", [], 1, log=lines0.append, machines=m0)
        except RuntimeError:
            print("\n".join(lines0[-60:]), "\n----\n", "\n".join(lines1[-60:]))  # both machines' logs
            raise
    follower.join(60)
    world = "world=[(0, '0'), (1, '1')]"
    assert any(f"rank 0 of 2 main=True {world}" in x for x in lines0), lines0[-20:]
    assert any(f"rank 1 of 2 main=False {world}" in x for x in lines1), lines1[-20:]


@pytest.fixture()
def module_dir(tmp_path, monkeypatch):
    d = tmp_path / "mods"
    d.mkdir()
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(d), os.environ.get("PYTHONPATH", "")]))
    return d


# ---------------------------------------------------------------------------------------------
# Dry run and the runner on several machines
# ---------------------------------------------------------------------------------------------
def test_dry_run_shows_each_machines_launch_and_what_the_others_do(tmp_path, capsys):
    sets = [f"output_root={tmp_path}", "num_machines=2", "main_process_ip=10.0.0.1", "sft_num_gpus=2",
            "rl_num_gpus=2", "rl_batch_size=2", "skip_stages=[00_data, 01_cold_start_data, 04_evaluate, 05_curves]"]
    runner.dry_run(["params/smoke.yaml"], sets)
    out = capsys.readouterr().out
    assert "machine 0 of 2: runs every stage below" in out
    for r in (0, 1):
        assert f"machine {r}: CUDA_VISIBLE_DEVICES=0,1 python -m accelerate.commands.launch" in out
        assert f"--num_processes 4 --num_machines 2 --machine_rank {r} --main_process_ip 10.0.0.1" in out
        assert f"train, machine {r}: CUDA_VISIBLE_DEVICES=0,1" in out
    assert "2 per device x 4 process(es)" in out
    runner.dry_run(["params/smoke.yaml"], sets + ["machine_rank=1"], overwrite=True)
    captured = capsys.readouterr()
    assert "machine 1 of 2: runs no notebook and writes nothing" in captured.out
    assert "--overwrite on a machine of machine_rank > 0" in captured.err


def test_a_follower_run_writes_no_run_folder(tmp_path, monkeypatch):
    """`run` on machine rank 1 validates, then only follows: no params.yaml, no run_state.json."""
    seen = {}
    monkeypatch.setattr(machines, "follow", lambda m, run_dir, run_launch, log: seen.setdefault("m", m) and True)
    out = runner.run(["params/smoke.yaml"], [f"output_root={tmp_path}", "num_machines=2", "machine_rank=1",
                                             "main_process_port=29777"], log=lambda *a: None)
    assert seen["m"] == Machines(2, 1, "127.0.0.1", 29777) and out == tmp_path / "smoke"
    assert not any(tmp_path.iterdir()), "machine 1 wrote into the run folder"


# ---------------------------------------------------------------------------------------------
# A vLLM server on another machine
# ---------------------------------------------------------------------------------------------
def test_a_server_on_another_machine_is_waited_for_not_started():
    class Health(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *a):
            pass

    assert vllm_server.is_local("0.0.0.0") and not vllm_server.is_local("gpu-node-7")
    httpd = ThreadingHTTPServer(("127.0.0.2", 0), Health)  # 127.0.0.2: not a name `is_local` knows
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        host, port = httpd.server_address
        assert not vllm_server.is_local(host)
        with vllm_server.remote(host, port, timeout_s=10, poll_s=0.1, log=lambda *a: None) as s:
            assert s.url == f"http://{host}:{port}" and s.pid == 0
    finally:
        httpd.shutdown()
    with pytest.raises(RuntimeError, match="no vLLM server answered .* start it on"):
        with vllm_server.remote("127.0.0.2", dist.free_port(), timeout_s=0.5, poll_s=0.1, log=lambda *a: None):
            pass


def test_the_server_command_for_another_machine_listens_on_every_interface():
    from visionr1 import grpo

    p = grpo.GRPOParams(model="m", data="d", output_dir="o", stages=[{"steps": 1, "max_completion_length": 8,
                                                                      "num_generations": 2}],
                        rollout="vllm_server", vllm_server_host="gpu-node-7")
    cmd = grpo.server_command(p)
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    assert sys.executable == cmd[0]


MACHINE_PARAMS = ('run_name: str = "t"  # run\noutput_root: str = "outputs"  # root\nfail: bool = False  # fail after the launch\n'
                  'num_machines: int = 1  # machines\nmachine_rank: int = 0  # this one\n'
                  'main_process_ip: str = "127.0.0.1"  # machine 0\nmain_process_port: int = 29500  # coordinator\n')


def test_the_runners_of_two_machines_run_one_pipeline(module_dir, tmp_path):
    """Machine 0's runner runs the notebooks (a stage's launch announced from its kernel); machine 1's
    runner (another process) joins that launch, writes nothing, and ends with machine 0's run: 0 when
    it succeeds, 1 when a stage fails."""
    import nbformat
    import subprocess

    (module_dir / "world_probe.py").write_text(textwrap.dedent("""
        import os, torch.distributed as td
        from visionr1 import dist
        dist.init(60)
        print(f"rank {td.get_rank()} of {td.get_world_size()} on machine {os.environ['GROUP_RANK']}", flush=True)
        dist.close()
    """))
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    for name, body in (("00_prepare", "print('machine 0 only')"),
                       ("01_train", "from visionr1 import dist, machines\n"
                                    "dist.launch('world_probe', [], 1, machines=machines.Machines.from_values(globals()))\n"
                                    "assert not fail, 'failed on purpose'")):
        nb = nbformat.v4.new_notebook()
        cell = nbformat.v4.new_code_cell(MACHINE_PARAMS)
        cell.metadata["tags"] = ["parameters"]
        nb.cells = [cell, nbformat.v4.new_code_cell(body)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, str(nbs / f"{name}.ipynb"))
    for fail, rc in ((False, 0), (True, 1)):
        out = tmp_path / f"out-{fail}"
        sets = ["--notebooks", str(nbs), "--set", f"output_root={out}", "--set", "num_machines=2", "--set",
                f"main_process_port={dist.free_port()}", "--set", f"fail={str(fail).lower()}"]
        follower = subprocess.Popen([sys.executable, "-m", "visionr1", "run", *sets, "--set", "machine_rank=1"],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            assert runner.main(sets) == rc
            log, _ = follower.communicate(timeout=60)
        finally:
            if follower.poll() is None:
                follower.kill()
        assert follower.returncode == rc, log[-2000:]
        assert log.count("joining launch") == 1 and "rank 1 of 2 on machine 1" in log, log[-2000:]
        assert "machine 0 only" not in log
        state = json.loads((out / "t" / "run_state.json").read_text())
        assert state["machines"] == 2 and state["stages"]["00_prepare"]["status"] == "done"


def test_03_with_a_server_on_another_machine_starts_none_and_trains_on_every_local_gpu(tmp_path, monkeypatch):
    from visionr1 import grpo

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *a):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.2", 0), Health)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    launched = []

    def fake_launch(module, args, num_processes, log=print, *, mixed_precision="no", env=None, machines=None):
        k = int(args[args.index("--stage") + 1])
        launched.append((k, num_processes, env, machines))
        final = tmp_path / "rl" / f"stage{k}" / "final"
        final.mkdir(parents=True)
        (final / "stage.json").write_text(json.dumps({"stage": k, "steps": 1, "seconds": 1.0, "prompts": 8}))
        (tmp_path / "rl" / "metrics.jsonl").touch()

    monkeypatch.setattr(dist, "launch", fake_launch)
    monkeypatch.setattr(grpo, "_copy_model", lambda src, dst: None)
    monkeypatch.setattr(vllm_server, "serving", lambda *a, **k: pytest.fail("a server was started here"))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    stages = [{"steps": 1, "max_completion_length": 6, "num_generations": 4}] * 2
    p = grpo.GRPOParams(model="m", data="d", output_dir=str(tmp_path / "rl"), stages=stages, batch_size=1,
                        rollout="vllm_server", vllm_server_host="127.0.0.2", vllm_server_port=httpd.server_address[1],
                        vllm_server_timeout=10)
    (tmp_path / "p.json").write_text(json.dumps(p.__dict__))
    m = Machines(2, 0, "127.0.0.1", 29500)
    try:
        grpo.launch(tmp_path / "p.json", 2, log=lambda *a: None, machines=m)
    finally:
        httpd.shutdown()
    # every local GPU trains (no CUDA_VISIBLE_DEVICES split), each launch over both machines
    assert launched == [(1, 2, None, m), (2, 2, None, m)]
    with pytest.raises(ValueError, match="1 x 6 process"):  # batch 1 x 3 per machine x 2 machines: not whole groups
        grpo.launch(tmp_path / "p.json", 3, log=lambda *a: None, machines=m)
