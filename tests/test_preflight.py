"""`python -m visionr1 preflight`: per-stage memory verdicts for 24 / 48 / 80 GB from the params and
the published Qwen2.5-VL configs, and its exit codes (0 fits, 1 does not, 2 unusable input)."""

from __future__ import annotations

import subprocess
import sys

from visionr1 import env, preflight, tiny_model

ONE_GPU, ONE_GPU_3B = "params/qwen2.5-vl-7b-1gpu-lora.yaml", "params/qwen2.5-vl-3b-1gpu-lora.yaml"
EIGHT = "params/qwen2.5-vl-7b-8gpu.yaml"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "visionr1", "preflight", *args], cwd=env.PROJECT_ROOT,
                          capture_output=True, text=True, timeout=300)


def test_published_sizes_have_their_published_parameter_counts():
    # model cards: 3.75B, 8.29B, 33.5B, 73.4B (Qwen/Qwen2.5-VL-*-Instruct safetensors totals)
    published = {"3B": 3.75e9, "7B": 8.29e9, "32B": 33.5e9, "72B": 73.4e9}
    for size, arch in preflight.QWEN25_VL.items():
        assert abs(preflight.n_params(arch) / published[size] - 1) < 0.005, size


def test_a_local_model_folder_is_read_from_its_config(tiny_model_dir):
    name, arch = preflight.architecture(str(tiny_model_dir))
    assert arch.text_hidden == tiny_model.SIZES["test"].text_hidden
    assert preflight.n_params(arch) == tiny_model.n_params(tiny_model.load_model(tiny_model_dir))


def test_one_gpu_7b_fits_48_but_not_24_and_says_which_stage_and_by_how_much():
    ok = run(ONE_GPU, "--gpu-gib", "48")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    for label in ("02 SFT", "03 RL stage 1", "03 RL stage 2"):
        assert label in ok.stdout
    short = run(ONE_GPU, "--gpu-gib", "24")
    assert short.returncode == 1
    assert "PROBLEM: 03 RL stage 1 (2048 x 8, lora) does not fit 24 GiB" in short.stdout and "GiB short" in short.stdout


def test_the_3b_variant_fits_24_and_ablations_compose_on_the_one_gpu_file():
    assert run(ONE_GPU, ONE_GPU_3B, "--gpu-gib", "24").returncode == 0
    zero = run(ONE_GPU, "params/ablation-zero.yaml", "--gpu-gib", "48")
    assert zero.returncode == 0, zero.stdout + zero.stderr
    assert "03 RL stage 1" in zero.stdout and "02 SFT" not in zero.stdout  # the ablation skips 02


def test_full_fine_tuning_on_one_gpu_does_not_fit_80():
    r = run(ONE_GPU, "--set", "rl_lora_r=0", "--gpu-gib", "80")
    assert r.returncode == 1 and "03 RL stage 1 (2048 x 8, full) does not fit 80 GiB" in r.stdout


def test_unusable_input_exits_2():
    r = run(ONE_GPU, "--set", "base_model=some/unknown-model")
    assert r.returncode == 2 and "cannot tell the architecture of model 'some/unknown-model'" in r.stderr
    assert run(ONE_GPU, "--set", "no_such_key=1").returncode == 2


# Qwen2.5-VL-7B's published config (config.json of Qwen/Qwen2.5-VL-7B-Instruct): text hidden 3584, 28 layers,
# MLP 18944, vocab 152064, 28 heads / 4 KV heads (KV width 512); vision depth 32, hidden 1280, MLP 3420,
# patch 14, merge 2 (one merged token = 28 x 28 pixels = 4 patches)
H, L, I, V, KV = 3584, 28, 18944, 152064, 3584 * 4 // 28
VH, VD, VI = 1280, 32, 3420


def test_the_7b_config_is_the_published_one():
    a = preflight.QWEN25_VL["7B"]
    assert (a.text_hidden, a.text_layers, a.text_intermediate, a.vocab_size, a.text_heads, a.text_kv_heads) == \
        (H, L, I, V, 28, 4)
    assert (a.vision_depth, a.vision_hidden, a.vision_intermediate) == (VD, VH, VI)
    assert preflight.MERGED_PIXELS == (14 * 2) ** 2


def test_activations_of_rl_stage_2_by_hand():
    """The stage that ran out of memory on 80 GB: per GPU 16 sequences of 1,280 image + 1,024 text +
    8,192 completion tokens, full fine-tuning, gradient checkpointing, bf16."""
    s = preflight.Setup(method="full", n_gpus=7, zero=3, offload=False, batch=16, seq=1280 + 1024 + 8192,
                        gradient_checkpointing=True, reference=True, image_tokens=1280, loss_tokens=8192)
    act = preflight.activation_bytes(preflight.QWEN25_VL["7B"], s)
    tokens, patches, scored = 16 * 10496, 16 * 4 * 1280, 16 * 8192
    assert act["text_stored"] == tokens * 2 * H * L == tokens * 200_704
    # one layer recomputed: normed input, q, k, v, attention output, residual, normed copy, gate, up, product
    assert act["text_layer"] == tokens * 2 * (H + H + KV + KV + H + H + H + 3 * I) == tokens * 151_552
    assert act["vision_stored"] == patches * 2 * VH * VD == patches * 81_920
    assert act["vision_block"] == patches * 2 * (7 * VH + 3 * VI) == patches * 38_440
    # TRL's fused LM head: one 4,096 x 32,768 bf16 tile, fp32 gradients of the scored hidden states and of the head
    assert act["lm_head"] == 4096 * 32768 * 2 + scored * H * 4 + V * H * 4
    assert act["total"] == act["text_stored"] + act["vision_stored"] + act["text_layer"]  # the largest working set
    assert round(act["total"] / 2**30, 1) == 61.3
    # the old model (2 x hidden x layers per token, nothing else) saw 31.4 GiB of it
    assert round(tokens * 2 * H * L / 2**30, 1) == 31.4
    mem = preflight.estimate_gib(preflight.QWEN25_VL["7B"], s)
    static = preflight.n_params(preflight.QWEN25_VL["7B"]) * (2 + 2 + 12 + 2) / 7  # weights, grads, Adam, reference
    assert mem["total"] == round(((static + act["total"]) * 1.1 + 1.5 * 2**30) / 2**30, 1) == 90.8
    assert not preflight.fits(mem, 80)[0]


def test_without_checkpointing_every_layer_keeps_its_working_set_and_lora_freezes_the_tower():
    a = preflight.QWEN25_VL["7B"]
    s = preflight.Setup(method="lora", n_gpus=1, zero=0, offload=False, batch=2, seq=1000, gradient_checkpointing=False,
                        image_tokens=256)
    act = preflight.activation_bytes(a, s)
    assert act["text_stored"] == 2000 * L * (2 * H + 151_552) and act["text_layer"] == 0
    assert act["vision_stored"] == act["vision_block"] == 0  # no grad flows into a frozen tower
    assert act["lm_head"] == 2000 * 32768 * 2 + 2000 * H * 4  # the head is frozen too: no weight gradient


def test_the_kv_cache_of_hf_generate_and_the_training_pass_do_not_coexist():
    a = preflight.QWEN25_VL["7B"]
    s = preflight.Setup(method="lora", n_gpus=1, zero=0, offload=False, batch=8, seq=3584, gradient_checkpointing=True,
                        kv_cache=True)
    mem = preflight.estimate_gib(a, s)
    assert mem["kv_cache"] == round(8 * 3584 * L * 2 * KV * 2 / 2**30, 1) and mem["kv_cache"] < mem["activations"]
    static = preflight.n_params(a) * (2 + 0.01 * 14)
    act = preflight.activation_bytes(a, s)["total"]
    assert mem["total"] == round(((static + act) * 1.1 + 1.5 * 2**30) / 2**30, 1)


def test_the_shipped_recipes_fit_their_gpus_with_margin():
    """Every training stage under 80% of the GPU it is written for, by preflight's own numbers."""
    for files, gpu in (([EIGHT], 80), ([ONE_GPU], 48), ([ONE_GPU, ONE_GPU_3B], 24)):
        r = run(*files, "--gpu-gib", str(gpu))
        assert r.returncode == 0, r.stdout + r.stderr
        totals = [float(line.split()[-4]) for line in r.stdout.splitlines() if line.startswith(("02 ", "03 "))]
        assert len(totals) == 3 and max(totals) < 0.8 * gpu, (files, totals)
