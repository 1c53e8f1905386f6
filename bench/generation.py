"""HF generation speed on the nano model, with and without compat.sdpa_gqa_without_grad: sampled
rollouts as 03 runs them (64 completions per step) and greedy evaluation batches (32, as
generation.evaluate_models runs them). Random-init nano weights, a fixed number of new tokens.

    .venv/bin/python bench/generation.py [--tokens 192] [--repeats 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from transformers.integrations import sdpa_attention

from visionr1 import compat, generation, nano_task, tiny_model


def timed(model, enc, tokens: int, sample: bool, repeats: int) -> tuple[float, torch.Tensor]:
    best, seqs = float("inf"), None
    for _ in range(repeats):
        torch.manual_seed(0)
        t0 = time.perf_counter()
        with torch.no_grad():
            seqs = model.generate(**enc, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=sample,
                                  temperature=1.0 if sample else None)
        best = min(best, time.perf_counter() - t0)
    return best, seqs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=192)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    print(f"torch threads: {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as d:
        tiny_model.build_tiny(d, size="nano", seed=0)
        model, proc = tiny_model.load_model(d), tiny_model.load_processor(d)
        proc.tokenizer.padding_side = "left"
        samples = nano_task.generate(64, 0, "test")
        compat.sdpa_gqa_without_grad()
        patched = sdpa_attention.use_gqa_in_sdpa
        print(f"{'case':24s} {'repeat_kv tok/s':>15s} {'enable_gqa tok/s':>16s} {'speed-up':>8s} {'same tokens':>11s}")
        for name, n, sample in (("sampled rollouts x64", 64, True), ("greedy eval x32", 32, False)):
            enc = proc(text=[generation.chat_prompt(proc, s.question) for s in samples[:n]],
                       images=[s.image for s in samples[:n]], return_tensors="pt", padding=True)
            sdpa_attention.use_gqa_in_sdpa = patched.original
            t_old, old = timed(model, enc, a.tokens, sample, a.repeats)
            sdpa_attention.use_gqa_in_sdpa = patched
            t_new, new = timed(model, enc, a.tokens, sample, a.repeats)
            tok = n * a.tokens
            print(f"{name:24s} {tok / t_old:>15,.0f} {tok / t_new:>16,.0f} {t_old / t_new:>7.2f}x "
                  f"{str(torch.equal(old, new)):>11s}")


if __name__ == "__main__":
    main()
