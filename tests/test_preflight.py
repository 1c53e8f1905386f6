"""`python -m visionr1 preflight`: per-stage memory verdicts for 24 / 48 / 80 GB from the params and
the published Qwen2.5-VL configs, and its exit codes (0 fits, 1 does not, 2 unusable input)."""

from __future__ import annotations

import subprocess
import sys

from visionr1 import env, preflight, tiny_model

ONE_GPU, ONE_GPU_3B = "params/qwen2.5-vl-7b-1gpu-lora.yaml", "params/qwen2.5-vl-3b-1gpu-lora.yaml"


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
