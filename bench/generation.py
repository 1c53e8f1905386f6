"""HF generation speed on the nano model under the two CPU generation workarounds of visionr1.compat
(`sdpa_gqa_without_grad`, `kv_cache_in_place_without_grad`), each added to the one before: sampled
rollouts as 03 runs them (64 completions per step) and greedy evaluation batches (32, as
generation.evaluate_models runs them). Random-init nano weights, a fixed number of new tokens; the
best of `--repeats` runs, and whether each path gave the same tokens as transformers' own.

    .venv/bin/python bench/generation.py [--tokens 192] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from transformers import cache_utils
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
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    print(f"torch threads: {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as d:
        tiny_model.build_tiny(d, size="nano", seed=0)
        model, proc = tiny_model.load_model(d), tiny_model.load_processor(d)
        proc.tokenizer.padding_side = "left"
        samples = nano_task.generate(64, 0, "test")
        compat.sdpa_gqa_without_grad()
        compat.kv_cache_in_place_without_grad()
        gqa, update = sdpa_attention.use_gqa_in_sdpa, cache_utils.DynamicLayer.update
        paths = {"transformers": (gqa.original, update.original), "+ enable_gqa": (gqa, update.original),
                 "+ in-place KV cache": (gqa, update)}
        print(f"{'case':22s} " + " ".join(f"{p + ' tok/s':>25s}" for p in paths) + f" {'speed-up':>8s} {'same tokens':>11s}")
        for name, n, sample in (("sampled rollouts x64", 64, True), ("greedy eval x32", 32, False)):
            enc = proc(text=[generation.chat_prompt(proc, s.question) for s in samples[:n]],
                       images=[s.image for s in samples[:n]], return_tensors="pt", padding=True)
            times, seqs = [], []
            for use_gqa, layer_update in paths.values():
                sdpa_attention.use_gqa_in_sdpa, cache_utils.DynamicLayer.update = use_gqa, layer_update
                t, s = timed(model, enc, a.tokens, sample, a.repeats)
                times.append(t)
                seqs.append(s)
            sdpa_attention.use_gqa_in_sdpa, cache_utils.DynamicLayer.update = gqa, update
            tok = n * a.tokens
            same = all(torch.equal(seqs[0], s) for s in seqs[1:])
            print(f"{name:22s} " + " ".join(f"{tok / t:>25,.0f}" for t in times)
                  + f" {times[0] / times[-1]:>7.2f}x {str(same):>11s}")


if __name__ == "__main__":
    main()
