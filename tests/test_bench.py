"""bench/gpu_check.py runs end to end on CPU with the test-size tiny model, so it is ready for a GPU."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from visionr1 import env

pytestmark = pytest.mark.slow  # about a minute of CPU training and generation


def test_gpu_check_runs_on_cpu_with_a_tiny_config(tmp_path):
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run([sys.executable, "bench/gpu_check.py", "--size", "tiny", "--steps", "1", "--max-pixels",
                           "50176", "--cutoff", "512", "--new-tokens", "16", "--out", str(out)],
                          cwd=env.PROJECT_ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rep = json.loads(out.read_text())
    phases = {p["phase"]: p for p in rep["phases"]}
    assert set(phases) == {"sft_lora", "grpo_hf"} and rep["skipped"]  # ZeRO-3 needs deepspeed and CUDA
    assert phases["sft_lora"]["steps"] == 1 and phases["sft_lora"]["tokens_per_s"] > 0
    g = phases["grpo_hf"]
    assert g["completion_mean_length"] == 16, "completions forced to their full length"
    assert set(g["split_s"]) == {"generation", "reward", "training"} and g["completion_tokens_per_s"] > 0
    for p in rep["phases"]:
        assert p["estimate"]["total"] > 0
    # preflight judged each phase with its images (50,176 pixels: 8 x 8 = 64 merged tokens) and, for
    # GRPO, only the completion scored by the LM head
    assert phases["sft_lora"]["setup"]["image_tokens"] == g["setup"]["image_tokens"] == 64
    assert g["setup"]["loss_tokens"] == 16 and g["setup"]["seq"] == 64 + 1024 + 16
    assert phases["sft_lora"]["setup"]["loss_tokens"] is None
