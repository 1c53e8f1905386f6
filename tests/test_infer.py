"""`python -m visionr1 infer` on the tiny model with an image; the `serve` command line."""

from __future__ import annotations

import subprocess
import sys

from visionr1 import nano_task


def test_infer_streams_an_answer_for_an_image(tmp_path, tiny_model_dir):
    img = tmp_path / "scene.png"
    nano_task.generate(1, 0, "test")[0].image.save(img)
    proc = subprocess.run([sys.executable, "-m", "visionr1", "infer", "--model", str(tiny_model_dir), "--image", str(img),
                           "--prompt", "How many red shapes are there?", "--max-new-tokens", "12"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(proc.stdout.strip()) > 0  # the random tiny model says something, streamed to stdout


def test_infer_missing_image_is_a_clear_error(tiny_model_dir):
    proc = subprocess.run([sys.executable, "-m", "visionr1", "infer", "--model", str(tiny_model_dir), "--image",
                           "nope.png", "--prompt", "x"], capture_output=True, text=True)
    assert proc.returncode == 2 and "image not found: nope.png" in proc.stderr


def test_serve_command_has_the_seed_flags():
    proc = subprocess.run([sys.executable, "-m", "visionr1", "serve", "--model", "outputs/run/final", "--dry-run"],
                          capture_output=True, text=True, check=True)
    cmd = proc.stdout.strip()
    assert cmd.startswith("vllm serve outputs/run/final --dtype bfloat16")
    assert "--served-model-name vision-r1" in cmd and "--limit-mm-per-prompt" in cmd and '"image": 5' in cmd
