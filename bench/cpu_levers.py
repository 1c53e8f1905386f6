"""What the CPU levers left untried by the nano recipe would buy: torch.compile and the attention
kernel, on a nano pretraining step (as nano_base.pretrain runs it, batch 16) and a sampled rollout
(64 completions, as 03 runs them), with where the time of each goes (torch.profiler, self time).

    .venv/bin/python bench/cpu_levers.py [--steps 40] [--tokens 192]

Random-init nano weights. Each figure is one timed pass after a warm-up (a compiled path's first
pass, compilation included, is printed apart). Every path here changes the float rounding, so a
recipe that took one of them would be another draw of the nano figures (docs/results.md).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.profiler import ProfilerActivity, profile

from visionr1 import compat, generation, nano_base, nano_task, tiny_model

GROUPS = {  # profiler op -> the share it is reported under
    "matmul": ("aten::mm", "aten::addmm", "aten::bmm"),
    "attention": ("aten::_scaled_dot_product_flash_attention_for_cpu",
                  "aten::_scaled_dot_product_flash_attention_for_cpu_backward"),
    "sampling": ("aten::exponential_", "aten::topk", "aten::sort", "aten::multinomial"),
}


def split(prof) -> str:
    """Shares of self CPU time: matmul, attention, sampling, and everything else (elementwise ops,
    copies, views: the per-op overhead of a 1.4M-parameter model)."""
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    shares = {g: sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in ops) / total
              for g, ops in GROUPS.items()}
    shares["other"] = 1 - sum(shares.values())
    return ", ".join(f"{g} {s:.0%}" for g, s in shares.items())


def pretraining(model_dir: str, steps: int, compiled: bool) -> tuple[float, float, str]:
    """(first 3 steps s, s/step over `steps`, where 10 more steps' time goes) of nano_base.pretrain's
    loop on 300 scenes."""
    torch.manual_seed(0)
    model, proc = tiny_model.load_model(model_dir), tiny_model.load_processor(model_dir)
    rng = random.Random(0)
    scenes = nano_task.generate(300, 0, "pretrain", (1, 1, 1), 0.5, 3)
    data = nano_base.Encoded(proc, nano_base.pretrain_examples(scenes, rng, 0.5, 3, 0.5))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    if compiled:
        model.model.language_model.compile(dynamic=True)

    def step():
        loss = model(**data.batch(rng.sample(range(len(data)), 16))).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    t0 = time.perf_counter()
    for _ in range(3):
        step()
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    per = (time.perf_counter() - t0) / steps
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(10):
            step()
    return warm, per, split(prof)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--tokens", type=int, default=192)
    a = ap.parse_args()
    print(f"torch threads: {torch.get_num_threads()}")
    compat.sdpa_gqa_without_grad()
    compat.kv_cache_in_place_without_grad()
    with tempfile.TemporaryDirectory() as d:
        tiny_model.build_tiny(d, size="nano", seed=0)
        print(f"\npretraining step, batch 16, {a.steps} steps")
        for compiled in (False, True):
            warm, per, where = pretraining(d, a.steps, compiled)
            print(f"  {'language model compiled (dynamic)' if compiled else 'eager':36s} "
                  f"{per:.4f} s/step   first 3 steps {warm:.1f} s   ({where})")

        model, proc = tiny_model.load_model(d), tiny_model.load_processor(d)
        proc.tokenizer.padding_side = "left"
        samples = nano_task.generate(64, 0, "test")
        enc = proc(text=[generation.chat_prompt(proc, s.question) for s in samples],
                   images=[s.image for s in samples], return_tensors="pt", padding=True)

        def rollout(backend=SDPBackend.FLASH_ATTENTION):
            torch.manual_seed(0)
            t0 = time.perf_counter()
            with torch.no_grad(), sdpa_kernel(backend):
                model.generate(**enc, max_new_tokens=a.tokens, min_new_tokens=a.tokens, do_sample=True, temperature=1.0)
            return time.perf_counter() - t0

        print(f"\nsampled rollout, 64 x {a.tokens} tokens")
        rollout()
        print(f"  {'eager, flash attention (as 03 runs)':36s} {rollout():.3f} s")
        print(f"  {'eager, math attention':36s} {rollout(SDPBackend.MATH):.3f} s")
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            rollout()
        print(f"  where the eager rollout's time goes: {split(prof)}")
        model.model.language_model.compile(dynamic=True)
        first = rollout()
        print(f"  {'language model compiled (dynamic)':36s} {rollout():.3f} s   first pass {first:.1f} s")


if __name__ == "__main__":
    main()
