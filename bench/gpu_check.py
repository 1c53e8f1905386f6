"""What a step costs at real size: SFT (LoRA, and full bf16 under DeepSpeed ZeRO-3 in one process)
and GRPO (HF generation, G = 8) on a random-init Qwen2.5-VL of a published size, with real-size
images; tokens/s, MFU, peak memory and the split of each step, checked against preflight's estimate.

    python bench/gpu_check.py                       # one GPU: Qwen2.5-VL-7B shape, ~1 MP images (< 8 min on an H200)
    python bench/gpu_check.py --size tiny --steps 1 # CPU: the same code on the test-size tiny model (tests/test_bench.py)

Needs torch, transformers, accelerate, peft, trl, datasets (and deepspeed for the ZeRO-3 phase, which
is skipped with a note when deepspeed or CUDA is missing); not vLLM. The weights are random: speed and
memory are what is measured (the nano tokenizer feeds the real-size embeddings). The model's config
values are the published ones, written in visionr1.preflight.QWEN25_VL. GRPO completions are forced
to their full length (`min_new_tokens`): a random model would otherwise stop at random.
Prints one JSON report (also written to --out) and a table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch

from visionr1 import grpo, nano_task, preflight, released_data, sft, tiny_model, training

PEAK_BF16_FLOPS = 790e12  # H200 / H100 SXM dense bf16, the MFU denominator


def build(size: str, out: Path, max_pixels: int) -> tuple[Path, object]:
    """A random-init model of `size` saved to `out` (bf16 on GPU), with the nano processor at `max_pixels`."""
    spec = tiny_model.SIZES["test"] if size == "tiny" else preflight.QWEN25_VL[size]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    t0 = time.perf_counter()
    with torch.device(device):  # initialise on the GPU: an 8B model initialised on CPU takes minutes
        tiny_model.build_tiny(out, spec=spec, min_pixels=3136, max_pixels=max_pixels, dtype=dtype)
    print(f"built {size} in {time.perf_counter() - t0:.0f} s at {out}", flush=True)
    return out, spec


def write_data(d: Path, n: int, image_side: int, answer_words: int) -> tuple[Path, Path]:
    """SFT rows (a long CoT-shaped answer) and an RL parquet, from nano scenes rendered at `image_side`."""
    samples = nano_task.generate(n, seed=0, split="rl")
    img_dir = d / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for s in samples:
        path = img_dir / f"{s.id}.png"
        s.image.resize((image_side, image_side)).save(path)
        cot = " ".join(["Counting the shapes in each row of the grid, one cell at a time."] * (answer_words // 12))
        rows.append({"id": s.id, "images": [str(path)], "messages": [
            {"role": "user", "content": "<image>" + s.question},
            {"role": "assistant", "content": f"<think> {cot} </think><answer> {s.answer} </answer>"}]})
    sft_data = d / "sft.jsonl"
    sft_data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recs = [{**r, "images": [r["images"][0].resize((image_side, image_side))]}
            for r in nano_task.geometry3k_records(samples)]
    released_data.write_geometry3k_parquet(recs, d / "rl" / "train.parquet")
    return sft_data, d / "rl"


def image_tokens(args) -> int:
    """Merged vision tokens of each bench image: a square of side `square_side(args)`, which the
    processor keeps (a multiple of 28 within max_pixels), one token per 28 x 28 pixels."""
    return (square_side(args) // 28) ** 2


def square_side(args) -> int:
    return int(args.max_pixels ** 0.5) // 28 * 28


def peak_reset() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None


def sft_phase(name: str, model: Path, data: Path, out: Path, args, method: str, deepspeed: str | None) -> dict:
    peak_reset()
    p = sft.SFTParams(model=str(model), data=str(data), output_dir=str(out), method=method, max_steps=args.steps,
                      batch_size=1, grad_accum=1, cutoff_len=args.cutoff, min_pixels=3136, max_pixels=args.max_pixels,
                      bf16=torch.cuda.is_available(), gradient_checkpointing=True, save_steps=10**6, lora_r=64,
                      lora_alpha=128, learning_rate=1e-5, deepspeed=deepspeed, warmup_ratio=0.0)
    t0 = time.perf_counter()
    s = sft.train(p, log=lambda *a: None)
    wall = time.perf_counter() - t0
    steps = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
    tokens = s["tokens_mean"] * args.steps
    n = preflight.n_params(preflight.architecture(str(model))[1])
    step_s = s["s_per_step"]
    # as 02's pre-flight counts a sample: its image's vision tokens, every token scored
    setup = preflight.Setup(method=method, n_gpus=1, zero=3 if deepspeed else 0,
                            offload=bool(deepspeed and "offload" in deepspeed), batch=1, seq=int(s["tokens_max"]),
                            gradient_checkpointing=True, bf16=torch.cuda.is_available(),
                            image_tokens=image_tokens(args), loss_tokens=None)
    return {"phase": name, "steps": len(steps), "s_per_step": step_s, "wall_s": round(wall, 1),
            "tokens_per_step": s["tokens_mean"], "tokens_per_s": round(s["tokens_mean"] / step_s, 1),
            "mfu": round(6 * n * tokens / (step_s * args.steps) / PEAK_BF16_FLOPS, 4), "peak_gib": peak_gib(),
            "setup": asdict(setup), "estimate": preflight.estimate_gib(preflight.architecture(str(model))[1], setup)}


def grpo_phase(model: Path, rl: Path, out: Path, args) -> dict:
    peak_reset()
    forced = grpo.generation_kwargs

    def full_length(p, ids):  # a random model stops at random: force every completion to the limit
        return {**forced(p, ids), "min_new_tokens": args.new_tokens}

    grpo.generation_kwargs = full_length
    try:
        p = grpo.GRPOParams(model=str(model), data=str(rl), output_dir=str(out), stages=[
            {"steps": args.steps, "max_completion_length": args.new_tokens, "num_generations": 8}], batch_size=8,
            learning_rate=1e-6, max_pixels=args.max_pixels, bf16=torch.cuda.is_available(),
            gradient_checkpointing=True, save_steps=10**6, sample_every=0, truncated="keep")
        s = grpo.train(p, log=lambda *a: None)
    finally:
        grpo.generation_kwargs = forced
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if '"reward"' in x]
    mean = lambda k: round(sum(r[k] for r in recs) / len(recs), 3)  # noqa: E731
    step = mean("time/step_s")
    arch = preflight.architecture(str(model))[1]
    # as 03's pre-flight counts a rollout: the image, the text allowance and the completion, which
    # alone the LM head scores
    setup = preflight.Setup(method="full", n_gpus=1, zero=0, offload=False, batch=8,
                            seq=image_tokens(args) + preflight.RL_TEXT_TOKENS + args.new_tokens,
                            gradient_checkpointing=True, bf16=torch.cuda.is_available(), reference=True, kv_cache=True,
                            image_tokens=image_tokens(args), loss_tokens=args.new_tokens)
    return {"phase": "grpo_hf", "steps": len(recs), "s_per_step": step,
            "split_s": {k: mean(f"time/{k}_s") for k in ("generation", "reward", "training")},
            "completion_mean_length": mean("completions/mean_length"),
            "completion_tokens_per_s": round(8 * mean("completions/mean_length") / mean("time/generation_s"), 1),
            "mfu": round(mean("compute/flops") / step / PEAK_BF16_FLOPS, 4), "peak_gib": peak_gib(),
            "setup": asdict(setup), "estimate": preflight.estimate_gib(arch, setup), "train_seconds": s["train_seconds"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="7B", choices=["tiny", *preflight.QWEN25_VL])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--max-pixels", type=int, default=1003520)   # 1280 merged image tokens
    ap.add_argument("--cutoff", type=int, default=4096)
    ap.add_argument("--new-tokens", type=int, default=1024)
    ap.add_argument("--phases", default="sft_lora,sft_zero3,grpo_hf")
    ap.add_argument("--out", default="gpu_check.json")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    cuda = torch.cuda.is_available()
    side = square_side(args)
    report = {"date": time.strftime("%Y-%m-%d"), "device": torch.cuda.get_device_name() if cuda else "cpu",
              "size": args.size, "image_pixels": side * side, "phases": [], "skipped": []}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        model, _ = build(args.size, d / "model", args.max_pixels)
        sft_data, rl = write_data(d, 16, side, answer_words=args.cutoff // 4)
        phases = args.phases.split(",")
        if "sft_lora" in phases:
            report["phases"].append(sft_phase("sft_lora", model, sft_data, d / "sft_lora", args, "lora", None))
        if "sft_zero3" in phases:
            try:
                import deepspeed  # noqa: F401
            except ImportError:
                report["skipped"].append("sft_zero3: deepspeed is not installed")
            else:
                if not cuda:
                    report["skipped"].append("sft_zero3: needs CUDA")
                else:  # one process: DeepSpeed still wants a (single-member) process group
                    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29533", "RANK": "0",
                                       "LOCAL_RANK": "0", "WORLD_SIZE": "1"})
                    report["phases"].append(sft_phase("sft_full_zero3_offload", model, sft_data, d / "sft_full", args,
                                                      "full", training.deepspeed_config("zero3_offload")))
        if "grpo_hf" in phases:
            report["phases"].append(grpo_phase(model, rl, d / "grpo", args))
    for ph in report["phases"]:
        ph["estimate_over_measured"] = (round(ph["estimate"]["total"] / ph["peak_gib"], 2)
                                        if ph.get("peak_gib") else None)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print(f"\n{'phase':26} {'s/step':>8} {'tok/s':>9} {'MFU':>7} {'peak GiB':>9} {'est GiB':>8}")
    for ph in report["phases"]:
        tps = ph.get("tokens_per_s", ph.get("completion_tokens_per_s"))
        print(f"{ph['phase']:26} {ph['s_per_step']:>8} {tps:>9} {ph['mfu']:>7} {str(ph['peak_gib']):>9} "
              f"{ph['estimate']['total']:>8}")
    for s in report["skipped"]:
        print("skipped:", s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
