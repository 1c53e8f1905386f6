"""GRPO under PTST on the test-size tiny model: stage changes, resume after a kill, a failing
grader, and the pieces (params, stages, the plain-torch logprob head)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from visionr1 import checkpoints, compat, grading, grpo, nano_task, released_data, rewards, tiny_model

SPREAD_REWARD = """
from visionr1 import rewards

def spread_reward(completions, **kw):
    # varies within a group, so advantages and gradients are never all zero
    return [float(len(rewards.completion_text(c)) % 3) for c in completions]

rewards.REWARD_SETS["spread"] = [(spread_reward, 1.0)]
"""


@pytest.fixture(scope="module")
def rl_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("rl")
    samples = nano_task.generate(24, seed=3, split="rl")
    released_data.write_geometry3k_parquet(nano_task.geometry3k_records(samples), d / "train.parquet")
    return d


@pytest.fixture()
def spread_reward_set():
    ns: dict = {}
    exec(SPREAD_REWARD, ns)
    yield "spread"
    rewards.REWARD_SETS.pop("spread", None)


def params(model, data, out, stages, **kw) -> grpo.GRPOParams:
    return grpo.GRPOParams(model=str(model), data=str(data), output_dir=str(out), stages=stages,
                           learning_rate=kw.pop("learning_rate", 1e-2), max_pixels=50176, save_steps=kw.pop("save_steps", 100),
                           sample_every=kw.pop("sample_every", 1), truncated=kw.pop("truncated", "keep"), **kw)


def metrics(out) -> list[dict]:
    """Per-step records (the trainer's end-of-training summary lines left out)."""
    rows = [json.loads(x) for x in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "reward" in r]


def test_stage_change_applies_length_generations_and_previous_weights(tiny_model_dir, rl_data, tmp_path,
                                                                     spread_reward_set):
    stages = [{"steps": 2, "max_completion_length": 6, "num_generations": 4},
              {"steps": 2, "max_completion_length": 10, "num_generations": 2, "batch_size": 4}]
    s = grpo.train(params(tiny_model_dir, rl_data, tmp_path / "rl", stages, reward=spread_reward_set), log=lambda *a: None)
    one, two = s["stages"]
    start = checkpoints.weights_sha(tiny_model.load_model(tiny_model_dir))
    assert one["start_sha"] == start and one["final_sha"] != start, "stage 1 starts from the model and trains it"
    assert two["start_sha"] == one["final_sha"], "stage 2 starts from stage 1's final weights"
    assert two["start_from"].endswith("stage1/final")
    assert (two["trainer_max_completion_length"], two["trainer_num_generations"]) == (10, 2)
    assert (one["trainer_max_completion_length"], one["trainer_num_generations"]) == (6, 4)
    rows = metrics(tmp_path / "rl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and [r["stage"] for r in rows] == [1, 1, 2, 2]
    assert max(r["completions/max_length"] for r in rows if r["stage"] == 1) <= 6
    assert max(r["completions/max_length"] for r in rows if r["stage"] == 2) > 6  # the new limit applies
    for r in rows:  # the logged figures the issue lists
        for key in ("reward", "completions/mean_length", "completions/clipped_ratio", "frac_reward_zero_std", "kl",
                    "entropy", "time/generation_s", "time/reward_s", "time/training_s"):
            assert key in r, key
    assert checkpoints.weights_sha(tiny_model.load_model(s["final_model"])) == two["final_sha"]
    # compute from the token counts: generation 2 + reference forward 2 (beta > 0) + forward and
    # backward 6 = 10 x params x (prompt + completion tokens) per step
    n_params = tiny_model.n_params(tiny_model.load_model(tiny_model_dir))
    for r in rows:
        assert r["compute/tokens"] > 4 * r["completions/mean_length"]  # 4 completions per step, with their prompts
        assert r["compute/flops"] == 10 * n_params * r["compute/tokens"]
    assert s["train_flops"] == sum(r["compute/flops"] for r in rows) and s["train_tokens"] == sum(r["compute/tokens"] for r in rows)
    samples = [json.loads(x) for x in (tmp_path / "rl" / "samples.jsonl").read_text().splitlines()]
    assert {x["step"] for x in samples} == {1, 2, 3, 4} and all("spread_reward" in x["rewards"] for x in samples)
    # a finished run is not trained again
    again = grpo.train(params(tiny_model_dir, rl_data, tmp_path / "rl", stages, reward=spread_reward_set),
                       log=lambda *a: None)
    assert [r["final_sha"] for r in again["stages"]] == [one["final_sha"], two["final_sha"]]
    assert len(metrics(tmp_path / "rl")) == 4


def test_lora_rl_merges_each_stage_and_the_next_stage_starts_from_the_merge(tiny_model_dir, rl_data, tmp_path,
                                                                          spread_reward_set):
    """The one-GPU recipe's RL: LoRA adapters per stage, merged into the stage's final weights."""
    stages = [{"steps": 2, "max_completion_length": 6, "num_generations": 4},
              {"steps": 2, "max_completion_length": 8, "num_generations": 2}]
    s = grpo.train(params(tiny_model_dir, rl_data, tmp_path / "rl", stages, reward=spread_reward_set, lora_r=4,
                          lora_alpha=8), log=lambda *a: None)
    one, two = s["stages"]
    start = checkpoints.weights_sha(tiny_model.load_model(tiny_model_dir))
    assert one["start_sha"] == start and one["final_sha"] != start, "the merged adapter changed the weights"
    assert two["start_sha"] == one["final_sha"] != two["final_sha"]
    assert (tmp_path / "rl" / "stage1" / "adapter" / "adapter_model.safetensors").exists()
    final = tiny_model.load_model(s["final_model"])  # a plain model: no adapter needed to load it
    assert checkpoints.weights_sha(final) == two["final_sha"]


def test_run_killed_mid_stage_resumes_with_its_weights(tiny_model_dir, rl_data, tmp_path, spread_reward_set):
    stages = [{"steps": 40, "max_completion_length": 6, "num_generations": 2}]
    p = params(tiny_model_dir, rl_data, tmp_path / "rl", stages, reward=spread_reward_set, save_steps=2)
    (tmp_path / "p.json").write_text(json.dumps(p.__dict__))
    script = tmp_path / "run.py"
    script.write_text(SPREAD_REWARD + "\nimport sys\nfrom visionr1 import grpo\n"
                      "if __name__ == '__main__':\n    sys.exit(grpo.main(sys.argv[1:]))\n")
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "p.json")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    stage = tmp_path / "rl" / "stage1"
    deadline = time.time() + 240
    while time.time() < deadline and not (stage / "checkpoint-4" / "trainer_state.json").exists():
        assert proc.poll() is None, "the training process died on its own"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    ck = checkpoints.newest_checkpoint(stage)
    assert ck is not None and int(ck.name.split("-")[1]) >= 4
    assert not (stage / "final").exists()
    ck_sha = checkpoints.weights_sha(tiny_model.load_model(ck))
    assert ck_sha != checkpoints.weights_sha(tiny_model.load_model(tiny_model_dir))

    p.stages = [{"steps": int(ck.name.split("-")[1]) + 2, "max_completion_length": 6, "num_generations": 2}]
    with pytest.raises(ValueError, match="stages changed"):  # other params: refused, not silently continued
        grpo.train(p, log=lambda *a: None)
    p.stages = stages
    s = grpo.train(p, log=lambda *a: None)
    rec = s["stages"][0]
    assert rec["resumed_from"] == str(ck) and rec["start_sha"] == ck_sha, "the checkpoint's weights came back"
    assert rec["steps_done"] == 40
    steps = [r["step"] for r in metrics(tmp_path / "rl")]
    assert steps[-1] == 40 and set(range(1, 41)) <= set(steps)


def test_an_exception_while_scoring_one_completion_does_not_kill_the_step(tiny_model_dir, rl_data, tmp_path,
                                                                         monkeypatch):
    real, calls = grading.grade, {"n": 0}

    def flaky(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("grader blew up")
        return real(*a, **kw)

    monkeypatch.setattr(grading, "grade", flaky)
    before = grading.STATS["errors"]
    stages = [{"steps": 2, "max_completion_length": 6, "num_generations": 2}]
    s = grpo.train(params(tiny_model_dir, rl_data, tmp_path / "rl", stages), log=lambda *a: None)
    assert s["stages"][0]["steps_done"] == 2 and len(metrics(tmp_path / "rl")) == 2
    assert grading.STATS["errors"] > before


def test_truncated_zero_scores_a_cut_completion_zero():
    p = grpo.GRPOParams(model="m", data="d", output_dir="o", stages=[{"steps": 1, "max_completion_length": 3,
                                                                     "num_generations": 2}], truncated="zero")
    funcs, weights = grpo.trainer_rewards(p, 3, eos_ids={0})
    fmt = funcs[1]  # format_reward, logged at weight 0
    good = "<think>x</think><answer>4</answer>"
    assert fmt([good, good], completion_ids=[[5, 6, 7], [5, 6, 0]]) == [0.0, 1.0]
    assert fmt(["<think>x</think><|image_pad|><answer>4</answer>"], completion_ids=[[5, 0]]) == [1.0]


def test_stage_schedule_errors_name_the_stage():
    with pytest.raises(ValueError, match=r"stage 2 .*missing max_completion_length, num_generations; unknown max_len"):
        grpo.check_stages([{"steps": 1, "max_completion_length": 8, "num_generations": 2},
                           {"steps": 1, "max_len": 8}])
    with pytest.raises(ValueError, match="num_generations must be >= 2"):
        grpo.check_stages([{"steps": 1, "max_completion_length": 8, "num_generations": 1}])
    with pytest.raises(ValueError, match="not a multiple"):
        grpo.check_stages([{"steps": 1, "max_completion_length": 8, "num_generations": 4, "batch_size": 6}])
    with pytest.raises(ValueError, match="rollout must be one of"):
        grpo.GRPOParams(model="m", data="d", output_dir="o", rollout="vllm")


def test_colocated_vllm_is_refused_with_the_reason_and_the_way_out():
    # TRL 1.15 sends colocated vLLM 0.31 prompts whose image pads are already expanded (TRL #6294)
    with pytest.raises(ValueError, match=r"(?s)vllm_colocate is refused.*#6294.*rl_rollout: vllm_server"):
        grpo.GRPOParams(model="m", data="d", output_dir="o", rollout="vllm_colocate")


def test_vllm_gets_the_trainers_image_budget_and_the_stages_context_length():
    p = grpo.GRPOParams(model="ci", data="d", output_dir="o", rollout="vllm_server", min_pixels=3136,
                        max_pixels=1003520, stages=[{"steps": 1, "max_completion_length": 4096, "num_generations": 16},
                                                    {"steps": 1, "max_completion_length": 8192, "num_generations": 8}])
    cmd = grpo.server_command(p)
    # 1280 merged image tokens + 1024 for the question and template + the longest completion
    assert cmd[cmd.index("--max-model-len") + 1] == str(1280 + 1024 + 8192)
    assert json.loads(cmd[cmd.index("--mm-processor-kwargs") + 1]) == {"min_pixels": 3136, "max_pixels": 1003520}
    cfg = grpo.grpo_config(p, p.stages[0], Path("o"))
    assert cfg.vllm_max_model_length == 1280 + 1024 + 8192 and cfg.vllm_mode == "server"


def test_torch_logprob_head_matches_log_softmax():
    torch.manual_seed(0)
    h, w, b = torch.randn(7, 5, requires_grad=True), torch.randn(11, 5), torch.randn(11)
    t = torch.randint(0, 11, (7,))
    logp, ent, _, _, top1 = compat.TorchChunkedLogProb.apply(h, w, b, t, 0.7, 4096, None, 1.0,
                                                         ("log_probs", "entropy", "is_top1"))
    ref = torch.log_softmax((h @ w.T + b) / 0.7, -1)
    assert torch.allclose(logp, ref.gather(-1, t[:, None]).squeeze(-1), atol=1e-5)
    assert torch.allclose(ent, -(ref.exp() * ref).sum(-1), atol=1e-5)
    assert torch.equal(top1, ref.argmax(-1) == t)
    logp.sum().backward()
    assert h.grad is not None and torch.isfinite(h.grad).all()


def test_ablation_files_compose_on_a_run():
    from visionr1 import env
    from visionr1.params import declarations, resolve
    from visionr1.runner import stage_notebooks

    decls = declarations(stage_notebooks(env.NOTEBOOKS_DIR))
    root = env.PROJECT_ROOT / "params"
    zero = resolve([root / "nano.yaml", root / "ablation-zero.yaml"], [], decls).values
    assert (zero["run_name"], zero["rl_source_run"], zero["rl_start"], zero["rl_reward"]) == ("nano-zero", "nano", "base", "zero")
    assert zero["rl_stages"] == resolve([root / "nano.yaml"], [], decls).values["rl_zero_stages"]
    assert zero["rl_system_prompt"] == "r1-zero" and len(zero["rl_stages"]) == 1
    long = resolve([root / "qwen2.5-vl-7b-8gpu.yaml", root / "ablation-long.yaml"], [], decls).values
    assert long["run_name"] == "qwen2.5-vl-7b-long" and long["rl_stages"] == [  # 4 per GPU: 16K x 8 needs > 80 GB
        {"steps": 300, "max_completion_length": 16384, "num_generations": 4, "batch_size": 4}]


def test_sft_control_gets_rl_compute_not_rl_time(tiny_model_dir, tmp_path):
    from test_sft import write_nano_sft

    from visionr1 import sft

    data = write_nano_sft(tmp_path, 16)
    p = sft.SFTParams(model=str(tiny_model_dir), data=str(data), output_dir=str(tmp_path / "ci"), learning_rate=1e-3,
                      max_steps=2, batch_size=4, grad_accum=1, save_steps=100, cutoff_len=1024, max_pixels=50176)
    ci = sft.train(p, log=lambda *a: None)
    (tmp_path / "ci" / "sft_params.json").write_text(json.dumps(p.__dict__))
    step_flops = 6 * tiny_model.n_params(tiny_model.load_model(ci["final_model"])) * ci["tokens_mean"] * 4
    ctl = grpo.sft_control(tmp_path / "ci" / "sft_params.json", ci["final_model"], tmp_path / "ctl",
                           flops=3.4 * step_flops, log=lambda *a: None)
    assert ctl["steps"] == 3 and ctl["flops"] == pytest.approx(3 * step_flops)
