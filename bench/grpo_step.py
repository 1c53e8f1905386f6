"""GRPO step time split into generation, reward and training, and peak memory, for a model size.

    .venv/bin/python bench/grpo_step.py --size nano --steps 12                      # CPU, the nano CI model's size
    python bench/grpo_step.py --size 3b --steps 6 --max-len 512 --generations 8     # one GPU, bf16, random init

Sizes other than nano/test are random-init Qwen2.5-VL models built from the published configs' dimensions
(weights do not matter for speed; a random model never stops, so every completion runs to --max-len: the
worst case). The processor and tokenizer are the tiny model's (same image processor as Qwen2.5-VL).
HF generate does the rollouts (vLLM is the GPU params' choice; its wheel cannot reach the bench machine).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from visionr1 import grpo, nano_task, released_data, tiny_model

REAL = {  # text (hidden, layers, heads, kv heads, intermediate), vision (depth, hidden, heads, intermediate)
    "3b": dict(text=(2048, 36, 16, 2, 11008), vision=(32, 1280, 16, 3420), vocab=151936, tie=True),
    "7b": dict(text=(3584, 28, 28, 4, 18944), vision=(32, 1280, 16, 3420), vocab=152064, tie=False),
}


def build(size: str, out: Path) -> Path:
    if size in tiny_model.SIZES:
        return tiny_model.build_tiny(out, size=size)
    tiny_model.build_tiny(out, size="test")  # tokenizer and processor
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    d = REAL[size]
    h, layers, heads, kv, inter = d["text"]
    depth, vh, vheads, vinter = d["vision"]
    cfg = json.loads((out / "config.json").read_text())
    cfg["text_config"].pop("layer_types", None)
    cfg["text_config"].update(hidden_size=h, num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv,
                              intermediate_size=inter, vocab_size=d["vocab"], max_window_layers=layers,
                              max_position_embeddings=32768, tie_word_embeddings=d["tie"],
                              rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]})
    cfg["vision_config"].update(depth=depth, hidden_size=vh, num_heads=vheads, intermediate_size=vinter,
                                out_hidden_size=h, fullatt_block_indexes=[7, 15, 23, 31])
    cfg["tie_word_embeddings"] = d["tie"]
    config = Qwen2_5_VLConfig(**{k: v for k, v in cfg.items() if k not in ("architectures", "transformers_version")})
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = Qwen2_5_VLForConditionalGeneration(config).to(torch.bfloat16)
    model.save_pretrained(out)
    del model
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="nano", choices=[*tiny_model.SIZES, *REAL])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--batch", type=int, default=None, help="completions per step (default: one group)")
    ap.add_argument("--model", default=None, help="an existing model folder instead of building one")
    a = ap.parse_args()
    gpu = torch.cuda.is_available()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        model = a.model or str(build(a.size, tmp / "model"))
        print(f"model {a.size}: built in {time.perf_counter() - t0:.0f} s")
        released_data.write_geometry3k_parquet(nano_task.geometry3k_records(nano_task.generate(200, 0, "rl")),
                                         tmp / "rl" / "train.parquet")
        p = grpo.GRPOParams(model=model, data=str(tmp / "rl"), output_dir=str(tmp / "out"), bf16=gpu,
                            gradient_checkpointing=gpu and a.size in REAL, learning_rate=1e-6, max_pixels=50176,
                            stages=[{"steps": a.steps, "max_completion_length": a.max_len,
                                     "num_generations": a.generations}], batch_size=a.batch, truncated="keep",
                            save_steps=10**6, sample_every=0)
        if gpu:
            torch.cuda.reset_peak_memory_stats()
        grpo.train(p, log=lambda *x: None)
        rows = [json.loads(x) for x in (tmp / "out" / "metrics.jsonl").read_text().splitlines() if '"reward"' in x]
        rows = rows[1:] or rows  # the first step pays for warm-up
        mean = lambda k: sum(r[k] for r in rows) / len(rows)  # noqa: E731
        print(json.dumps({"size": a.size, "device": torch.cuda.get_device_name() if gpu else "cpu",
                          "completions_per_step": a.batch or a.generations, "max_len": a.max_len,
                          "mean_completion_tokens": round(mean("completions/mean_length"), 1),
                          "s_per_step": round(mean("time/step_s"), 3),
                          "generation_s": round(mean("time/generation_s"), 3), "reward_s": round(mean("time/reward_s"), 4),
                          "training_s": round(mean("time/training_s"), 3),
                          "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1) if gpu else None}))


if __name__ == "__main__":
    main()
