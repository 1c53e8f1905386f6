"""How PTST stages are set up and launched (visionr1.grpo): batches smaller than a group with
gradient accumulation, one walk through the prompts across stages, TRL's vLLM importance sampling
set from params, and with `rollout: vllm_server` one vLLM server per stage on that stage's start
model (the fake server of tests/fake_vllm_server.py; the trainer is faked there: vLLM does not
run on CPU)."""

from __future__ import annotations

import json
import re
import sys
import urllib.request
from pathlib import Path

import pytest

from test_grpo import metrics, params, rl_data, spread_reward_set  # noqa: F401 - fixtures
from visionr1 import checkpoints, dist, grpo, tiny_model, vllm_server

FAKE = str(Path(__file__).parent / "fake_vllm_server.py")


def test_a_batch_smaller_than_a_group_builds_with_gradient_accumulation():
    stage = {"steps": 1, "max_completion_length": 8, "num_generations": 16}
    p = grpo.GRPOParams(model="m", data="d", output_dir="o", stages=[stage], batch_size=4, grad_accum=4)
    cfg = grpo.grpo_config(p, stage, Path("o"), num_processes=1)
    assert (cfg.per_device_train_batch_size, cfg.gradient_accumulation_steps) == (4, 4)
    assert (cfg.generation_batch_size, cfg.steps_per_generation) == (16, 4), "one group per optimizer step"
    assert grpo.prompts_per_step(cfg) == 1
    p.grad_accum = 3
    with pytest.raises(ValueError, match=r"stage 1: per-device batch 4 x 1 process\(es\) x grad_accum 3 = 12 "
                                         r"completions per step is not a multiple of num_generations 16"):
        grpo.grpo_config(p, stage, Path("o"), num_processes=1)
    # the number of processes counts: 4 x 2 x 2 = 16 holds a group, 4 x 3 x 1 = 12 does not
    grpo.check_stages([stage], batch_size=4, grad_accum=2, num_processes=2)
    with pytest.raises(ValueError, match="x 3 process"):
        grpo.check_stages([stage], batch_size=4, grad_accum=1, num_processes=3)
    # params alone (processes unknown until launch) do not refuse it
    grpo.GRPOParams(model="m", data="d", output_dir="o", stages=[stage], batch_size=4, grad_accum=1)


def test_importance_sampling_is_off_unless_named_and_recorded_as_set():
    stage = {"steps": 1, "max_completion_length": 8, "num_generations": 2}
    p = grpo.GRPOParams(model="m", data="d", output_dir="o", stages=[stage], rollout="vllm_server")
    cfg = grpo.grpo_config(p, stage, Path("o"), num_processes=1)
    assert cfg.use_vllm and cfg.vllm_importance_sampling_correction is False, "the paper trained without it"
    p = grpo.GRPOParams(model="m", data="d", output_dir="o", stages=[stage], rollout="vllm_server",
                        vllm_is_correction="token_truncate", vllm_is_cap=2.0)
    cfg = grpo.grpo_config(p, stage, Path("o"), num_processes=1)
    assert (cfg.vllm_importance_sampling_correction, cfg.vllm_importance_sampling_mode,
            cfg.vllm_importance_sampling_clip_max) == (True, "token_truncate", 2.0)
    with pytest.raises(ValueError, match="vllm_is_correction must be one of none, sequence_mask"):
        grpo.GRPOParams(model="m", data="d", output_dir="o", stages=[stage], vllm_is_correction="on")


def stage_prompts(sampler, prompts_per_step: int, steps: int) -> list[int]:
    """The prompts a trainer reads in `steps` steps (mini_repeat_count 4, repeat_count 1: each
    prompt's group arrives as a run of 4 copies)."""
    from itertools import islice

    return list(islice(sampler, 0, 4 * prompts_per_step * steps, 4))


def test_each_stage_continues_through_the_prompts_where_trl_would_start_over():
    from trl.trainer.utils import RepeatSampler

    data = list(range(10))  # 10 prompts; stage 1 reads 3 steps x 2 prompts, stage 2 4 steps x 2
    kw = dict(mini_repeat_count=4, batch_size=2, repeat_count=1, shuffle=True, seed=0)
    trl_one = stage_prompts(RepeatSampler(data, **kw), 2, 3)
    trl_two = stage_prompts(RepeatSampler(data, **kw), 2, 4)
    assert trl_two[:6] == trl_one, "TRL: a new trainer per stage starts the same permutation again"

    one = stage_prompts(grpo.prompt_sampler(data, start=0, **kw), 2, 3)
    two = stage_prompts(grpo.prompt_sampler(data, start=6, **kw), 2, 4)
    assert one == trl_one, "stage 1 reads what TRL's sampler would"
    assert not set(one) & set(two[:4]), "stage 2 reads the 4 prompts stage 1 did not ..."
    assert set(one) | set(two) == set(data), "... then the next pass: 14 reads cover all 10 prompts"
    # (a stage that crosses into the next pass may meet a prompt twice: 8 reads, 7 distinct here)
    rec = grpo.prompt_record(10, 0, True, 6, 8)
    assert rec == {"prompt_stream": [6, 14], "distinct_prompts": len(set(two)), "new_prompts": 4}
    # the trainer's passes (set_epoch) read consecutive stretches; a pass read again reads the same
    s = grpo.prompt_sampler(data, start=6, **kw)
    s.set_epoch(1)
    second = stage_prompts(s, 2, 5)
    order = grpo.prompt_order(10, 0)
    assert second == [order(p) for p in range(16, 26)]
    s.set_epoch(1)
    assert stage_prompts(s, 2, 5) == second


def test_two_stages_with_accumulation_read_disjoint_prompts(tiny_model_dir, rl_data, tmp_path,
                                                            spread_reward_set, monkeypatch):
    """A real 2-stage run: stage 1's per-device batch (2) is half a group (G = 4), made whole by
    gradient accumulation; stage 2 reads the prompts after stage 1's. Its weights are hashed as a
    7B's are (the main process alone, from the saved files): the start model once, then each
    stage's final once, which stage 2 finds again as its start without reading it."""
    monkeypatch.setattr(grpo, "PER_RANK_SHA_MAX_PARAMS", 0)
    hashed, files_sha = [], checkpoints.files_sha
    monkeypatch.setattr(checkpoints, "files_sha", lambda files: hashed.append(files[0].parent) or files_sha(files))
    stages = [{"steps": 2, "max_completion_length": 6, "num_generations": 4, "batch_size": 2},
              {"steps": 2, "max_completion_length": 6, "num_generations": 2, "batch_size": 2}]
    s = grpo.train(params(tiny_model_dir, rl_data, tmp_path / "rl", stages, reward=spread_reward_set, grad_accum=2),
                   log=lambda *a: None)
    one, two = s["stages"]
    assert hashed == [tiny_model_dir, tmp_path / "rl" / "stage1" / "final", tmp_path / "rl" / "stage2" / "final"]
    assert two["start_sha"] == one["final_sha"] != one["start_sha"] and one["loaded_sha"] is None
    assert one["trainer_batch"] == {"per_device": 2, "grad_accum": 2, "generation_batch": 4}
    assert (one["prompt_stream"], two["prompt_stream"]) == ([0, 2], [2, 6]), "1 prompt per step, then 2"
    assert (one["new_prompts"], two["new_prompts"], s["distinct_prompts"]) == (2, 4, 6)
    assert one["vllm_is_correction"] == two["vllm_is_correction"] == "none"
    samples = [json.loads(x) for x in (tmp_path / "rl" / "samples.jsonl").read_text().splitlines()]
    ids = {k: {x["id"] for x in samples if x["stage"] == k} for k in (1, 2)}
    rows = grpo.load_rows(rl_data)
    order = grpo.prompt_order(len(rows), 0)
    assert ids[1] == {rows[order(p)]["id"] for p in range(0, 2)}
    assert ids[2] == {rows[order(p)]["id"] for p in range(2, 6)}
    assert not ids[1] & ids[2], "stage 2 does not re-train on stage 1's prompts"
    assert [r["step"] for r in metrics(tmp_path / "rl")] == [1, 2, 3, 4]


def test_saved_weights_are_read_again_only_when_their_files_change(tiny_model_dir, tmp_path, monkeypatch):
    import shutil

    import torch

    hashed, files_sha = [], checkpoints.files_sha
    monkeypatch.setattr(checkpoints, "files_sha", lambda files: hashed.append(files[0].parent) or files_sha(files))
    model, cache = tmp_path / "m", tmp_path / "weights_sha.json"
    shutil.copytree(tiny_model_dir, model)
    first = checkpoints.saved_weights_sha(model, cache)
    assert checkpoints.saved_weights_sha(model, cache) == first and len(hashed) == 1, "unchanged: read once"
    m = tiny_model.load_model(model)
    with torch.no_grad():
        next(m.parameters()).add_(1.0)
    m.save_pretrained(model)  # the same folder, new weights
    assert checkpoints.saved_weights_sha(model, cache) == checkpoints.weights_sha(m) != first and len(hashed) == 2
    assert checkpoints.saved_weights_sha(model) == checkpoints.weights_sha(m) and len(hashed) == 3, "no cache: read"


# ---------------------------------------------------------------------------------------------
# One vLLM server per stage (fake server, fake trainer)
# ---------------------------------------------------------------------------------------------
@pytest.fixture()
def fake_stage_runs(monkeypatch, tmp_path):
    """grpo.server_command -> the fake server; dist.launch -> a stand-in for the stage's trainer that
    asks the server which model it serves (as TRL's client does first), then writes the stage's
    record. Returns the list of what each stage saw."""
    seen, real = [], grpo.server_command

    def fake_command(p, model=None):
        seen.append({"real_command": real(p, model)})
        return [sys.executable, FAKE, "--model", model, "--host", "127.0.0.1", "--port", str(p.vllm_server_port),
                "--worker"]

    monkeypatch.setattr(grpo, "server_command", fake_command)

    def fake_launch(module, args, num_processes, log=print, *, mixed_precision="no", env=None, machines=None):
        p = grpo.GRPOParams.from_json(args[0])
        k = int(args[args.index("--stage") + 1])
        with urllib.request.urlopen(f"http://127.0.0.1:{p.vllm_server_port}/v1/models") as r:
            served = json.loads(r.read())["data"][0]["id"]
        log_text = (Path(p.output_dir) / f"stage{k}" / "vllm_server.log").read_text()
        seen[-1].update({"stage": k, "served": served, "env": env, "num_processes": num_processes,
                         "server_pid": [int(x) for x in re.findall(r"pid=(\d+)", log_text)]})
        if getattr(fake_launch, "fail_stage", None) == k:
            raise RuntimeError(f"stage {k} crashed")
        final = Path(p.output_dir) / f"stage{k}" / "final"
        final.mkdir(parents=True)
        (Path(p.output_dir) / "metrics.jsonl").touch()
        (final / "stage.json").write_text(json.dumps({"stage": k, "steps": 1, "seconds": 1.0, "prompts": 24}))

    monkeypatch.setattr(dist, "launch", fake_launch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    return seen, fake_launch


def vllm_params(tmp_path, **kw) -> grpo.GRPOParams:
    stages = [{"steps": 1, "max_completion_length": 6, "num_generations": 2}] * 2
    return grpo.GRPOParams(model=str(tmp_path / "ci"), data="d", output_dir=str(tmp_path / "rl"), stages=stages,
                           rollout="vllm_server", vllm_server_host="127.0.0.1", vllm_server_port=dist.free_port(),
                           vllm_server_timeout=60, **kw)


def test_one_process_vllm_server_run_starts_a_server_per_stage_on_its_start_model(tmp_path, fake_stage_runs):
    seen, _ = fake_stage_runs
    p = vllm_params(tmp_path, vllm_gpus=2, vllm_data_parallel=1)
    s = grpo.train(p, log=lambda *a: None)  # one process: each stage launched on its own, beside its server
    assert [x["served"] for x in seen] == [p.model, str(tmp_path / "rl" / "stage1" / "final")]
    assert all(x["env"] == {"CUDA_VISIBLE_DEVICES": "0"} and x["num_processes"] == 1 for x in seen)
    for k, x in enumerate(seen, 1):
        log = (tmp_path / "rl" / f"stage{k}" / "vllm_server.log").read_text()
        assert "GPUs 1,2:" in log and "listening on" in log
        cmd = x["real_command"]
        assert cmd[cmd.index("--model") + 1] == x["served"]
        assert (cmd[cmd.index("--tensor-parallel-size") + 1], cmd[cmd.index("--data-parallel-size") + 1]) == ("2", "1")
        assert x["server_pid"] and not any(dist.alive(pid) for pid in x["server_pid"]), "stopped with its stage"
    assert vllm_server.port_free("127.0.0.1", p.vllm_server_port)
    assert s["final_model"].endswith("final") and len(s["stages"]) == 2
    assert json.loads((tmp_path / "rl" / "grpo_params.json").read_text())["rollout"] == "vllm_server"


def test_a_failing_stage_stops_its_server_and_the_run_resumes_at_that_stage(tmp_path, fake_stage_runs):
    seen, fake_launch = fake_stage_runs
    p = vllm_params(tmp_path)
    (tmp_path / "p.json").write_text(json.dumps(p.__dict__))
    fake_launch.fail_stage = 2
    with pytest.raises(RuntimeError, match="stage 2 crashed"):
        grpo.launch(tmp_path / "p.json", 2, log=lambda *a: None)
    assert [x["stage"] for x in seen] == [1, 2] and seen[0]["env"] == {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert not any(dist.alive(pid) for pid in seen[1]["server_pid"])
    assert vllm_server.port_free("127.0.0.1", p.vllm_server_port)
    fake_launch.fail_stage = None
    grpo.launch(tmp_path / "p.json", 2, log=lambda *a: None)
    assert [x["stage"] for x in seen] == [1, 2, 2], "stage 1 is not served or trained again"
    with pytest.raises(ValueError, match="rl_num_gpus = 3 .* 4 GPUs, but 3 are visible"):
        grpo.launch(tmp_path / "p.json", 3, log=lambda *a: None)


@pytest.mark.slow
def test_one_process_launch_runs_each_stage_in_a_process_of_its_own(tiny_model_dir, rl_data, tmp_path):
    """The path `rollout: vllm_server` takes on one training GPU, here with HF rollouts: each stage in
    a fresh `python -m visionr1.grpo PARAMS --stage K`, stage 2 reading the prompts after stage 1's
    (from stage 1's record, across processes). About 30 s."""
    stages = [{"steps": 2, "max_completion_length": 6, "num_generations": 2},
              {"steps": 1, "max_completion_length": 6, "num_generations": 2, "batch_size": 4}]
    p = params(tiny_model_dir, rl_data, tmp_path / "rl", stages)
    (tmp_path / "p.json").write_text(json.dumps(p.__dict__))
    lines = []
    s = grpo.launch(tmp_path / "p.json", 1, log=lines.append)
    launched = [x for x in lines if x.startswith("launching:")]
    assert len(launched) == 2 and all("torch.distributed.run" not in x and "accelerate" not in x for x in launched)
    one, two = s["stages"]
    assert one["num_processes"] == two["num_processes"] == 1
    assert (one["prompt_stream"], two["prompt_stream"]) == ([0, 2], [2, 4])
    assert two["start_sha"] == one["final_sha"] and s["distinct_prompts"] == 4


def test_the_reference_model_loads_with_the_policys_attention(monkeypatch):
    """TRL builds the KL reference model from `model_init_kwargs`: on a GPU box with flash-attn it
    gets flash_attention_2 like the policy; on CPU it gets transformers' default."""
    import torch
    import transformers.training_args

    monkeypatch.setattr(transformers.training_args, "is_torch_bf16_gpu_available", lambda: True)  # bf16 on CPU
    stage = {"steps": 1, "max_completion_length": 8, "num_generations": 2}
    p = grpo.GRPOParams(model="m", data="d", output_dir="o", stages=[stage], bf16=True)
    assert "attn_implementation" not in grpo.grpo_config(p, stage, Path("o"), num_processes=1).model_init_kwargs
    # what tiny_model.attn_implementation answers on a GPU box with flash-attn (tests/test_tiny_model.py)
    monkeypatch.setattr(grpo.tiny_model, "attn_implementation",
                        lambda dtype: "flash_attention_2" if dtype == torch.bfloat16 else None)
    kw = grpo.grpo_config(p, stage, Path("o"), num_processes=1).model_init_kwargs
    assert kw == {"dtype": torch.bfloat16, "attn_implementation": "flash_attention_2"}
