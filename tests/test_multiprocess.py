"""Several training processes on CPU (DDP on gloo, `torch.distributed.run`): one writer per file,
barriers before reads, samples gathered with their own rewards, one process group per PTST stage,
LoRA merged from the saved adapter. The 2-process smoke chain is in test_pipeline.py."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest
import torch

from test_grpo import rl_data  # noqa: F401 - the fixture: 24 nano RL prompts as Vision-R1-rl parquet

from visionr1 import checkpoints, dist, grpo, rewards, sft, tiny_model

pytestmark = pytest.mark.slow  # each case launches 2 processes (about a minute on 2 cores)




def test_launch_command_uses_torchrun_on_cpu_and_accelerate_on_gpu():
    cpu = dist.launch_command("visionr1.grpo", ["p.json", "--stage", "2"], 2, cuda=False)
    assert cpu[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    assert cpu[-5:] == ["-m", "visionr1.grpo", "p.json", "--stage", "2"]
    gpu = dist.launch_command("visionr1.sft", ["p.json"], 8, cuda=True)
    assert "accelerate.commands.launch" in gpu and gpu[gpu.index("--num_processes") + 1] == "8"


@pytest.fixture()
def spread_reward_everywhere(tmp_path, monkeypatch):
    """The `spread` reward set (test_grpo.py: it varies within a group, so RL changes the weights and
    a reward recorded next to the wrong completion shows) registered in every launched process too:
    Python imports `sitecustomize` from PYTHONPATH at start-up."""
    from test_grpo import SPREAD_REWARD

    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SPREAD_REWARD)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    exec(SPREAD_REWARD, {})
    yield "spread"
    rewards.REWARD_SETS.pop("spread", None)


def test_two_process_grpo_logs_each_step_once_and_each_stage_reads_the_finished_last(tiny_model_dir, rl_data,
                                                                                   tmp_path, spread_reward_everywhere):
    stages = [{"steps": 2, "max_completion_length": 6, "num_generations": 4},
              {"steps": 2, "max_completion_length": 10, "num_generations": 2}]
    p = grpo.GRPOParams(model=str(tiny_model_dir), data=str(rl_data), output_dir=str(tmp_path / "rl"), stages=stages,
                        learning_rate=1e-2, max_pixels=50176, save_steps=100, sample_every=1, truncated="keep",
                        batch_size=4, reward=spread_reward_everywhere)
    (tmp_path / "p.json").write_text(json.dumps(p.__dict__))
    lines = []
    s = grpo.launch(tmp_path / "p.json", 2, log=lines.append)
    assert sum("--stage" in x and "launching" in x for x in lines) == 2, "one process group per PTST stage"
    one, two = s["stages"]
    assert s["num_processes"] == 2 and one["num_processes"] == two["num_processes"] == 2 and s["prompts"] == 24
    # every rank loaded stage 1's finished weights for stage 2 (nobody read them while being written)
    assert two["start_from"].endswith("stage1/final") and two["start_sha"] == one["final_sha"]
    assert two["loaded_sha"] == [one["final_sha"]] * 2 and one["trained_sha"] == [one["final_sha"]] * 2
    assert one["final_sha"] != one["start_sha"] and two["final_sha"] != two["start_sha"], "both stages trained"
    assert checkpoints.saved_weights_sha(s["final_model"]) == two["final_sha"]
    out = tmp_path / "rl"
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "reward" in r] == [1, 2, 3, 4], "each step logged once, by the main process"
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]  # every line parses
    # batch 4 per rank: each step's completions of both ranks, gathered and written once
    assert Counter((x["step"], x["rank"]) for x in samples) == {(st, r): 4 for st in (1, 2, 3, 4) for r in (0, 1)}
    for x in samples:  # each completion keeps its own reward (not the one at its index on rank 0)
        assert x["rewards"]["spread_reward"] == float(len(x["completion"]) % 3), x
    assert len({x["rewards"]["spread_reward"] for x in samples}) > 1
    assert json.loads((out / "trained_with.json").read_text())["stages"] == stages
    # a finished run launched again trains nothing
    again = grpo.launch(tmp_path / "p.json", 2, log=lines.append)
    assert [r["final_sha"] for r in again["stages"]] == [one["final_sha"], two["final_sha"]]
    assert sum("launching" in x for x in lines) == 2


def test_two_process_lora_sft_merges_the_saved_adapter_on_the_main_process(tiny_model_dir, tmp_path):
    from peft import PeftModel

    from test_sft import write_nano_sft

    data = write_nano_sft(tmp_path, 16)
    p = sft.SFTParams(model=str(tiny_model_dir), data=str(data), output_dir=str(tmp_path / "sft"), method="lora",
                      max_steps=3, batch_size=2, grad_accum=1, cutoff_len=1024, max_pixels=50176, save_steps=100,
                      learning_rate=1e-2, lora_r=4, lora_alpha=8, lora_dropout=0.0)
    (tmp_path / "p.json").write_text(json.dumps(p.__dict__))
    sft.launch(tmp_path / "p.json", 2, log=lambda *a: None)
    out = tmp_path / "sft"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_processes"] == 2 and summary["steps"] == 3
    merged = tiny_model.load_model(out / "final")
    expected = PeftModel.from_pretrained(tiny_model.load_model(tiny_model_dir), str(out / "adapter")).merge_and_unload()
    assert checkpoints.weights_sha(merged) == checkpoints.weights_sha(expected), "final = base + saved adapter"
    assert checkpoints.weights_sha(merged) != checkpoints.weights_sha(tiny_model.load_model(tiny_model_dir))
    ids = torch.tensor([[1, 2, 3, 4]])
    assert torch.allclose(merged(input_ids=ids).logits, expected(input_ids=ids).logits, atol=1e-5)
    logged = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "loss" in r] == [1, 2, 3], "one writer: each step logged once"
