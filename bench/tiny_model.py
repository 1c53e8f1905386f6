"""Tiny Qwen2.5-VL sizes, build and load times, and one greedy generation, per size.

    .venv/bin/python bench/tiny_model.py
"""

from __future__ import annotations

import tempfile
import time

import torch

from visionr1 import generation, nano_task, tiny_model


def main() -> None:
    sample = nano_task.generate(1, 0, "test")[0]
    print(f"{'size':6s} {'params':>10s} {'disk MB':>8s} {'build s':>8s} {'load s':>7s} {'gen 16 tok s':>12s}")
    for size in tiny_model.SIZES:
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            tiny_model.build_tiny(d, size=size)
            build = time.perf_counter() - t0
            t0 = time.perf_counter()
            model, proc = tiny_model.load_model(d), tiny_model.load_processor(d)
            load = time.perf_counter() - t0
            enc = proc(text=[generation.chat_prompt(proc, sample.question)], images=[sample.image], return_tensors="pt")
            t0 = time.perf_counter()
            with torch.no_grad():
                model.generate(**enc, max_new_tokens=16, min_new_tokens=16, do_sample=False)
            gen = time.perf_counter() - t0
            print(f"{size:6s} {tiny_model.n_params(model):>10,d} {tiny_model.folder_size_mb(d):>8.1f} "
                  f"{build:>8.2f} {load:>7.2f} {gen:>12.3f}")


if __name__ == "__main__":
    main()
