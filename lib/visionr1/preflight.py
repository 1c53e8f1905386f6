"""Will it fit? Per-GPU memory of every training stage of a params file, before anything runs.

`python -m visionr1 preflight PARAMS... [--set k=v] [--gpu-gib G ...]` prints, for each stage that
trains (02's SFT, each PTST stage of 03), an estimate per GPU and whether it fits in 24, 48 and 80
GiB (or the sizes given). It needs no download: the published configs of the Qwen2.5-VL sizes are
written below, and a local model folder is read from its config.json. Token lengths come from the
local SFT data when the data and the model's processor are on disk (02's own pre-flight), otherwise
from stated assumptions (the cutoff for SFT; for RL the largest image at `rl_max_pixels` plus
1,024 text tokens plus the stage's completion length). Exit 0: everything fits every size asked
for; 1: something does not (the stage and the shortfall are named); 2: unusable input.

The memory model (weights, gradients, Adam, activations, KV cache, a reference copy) is
`estimate_gib`, the one used by 02's own pre-flight too (`sft_data`: every sample's tokens against
the cutoff), and `python -m visionr1 run ... --dry-run` shows it per stage. Its activations
(`activation_bytes`) are counted from first principles: the stored layer inputs, one recomputed
layer's working set (the MLP's 3 x intermediate width dominates it), the vision tower's patches
and TRL's fused LM head. bench/gpu_check.py measures peaks on a GPU to check it against (not yet
done for this model of the activations: no GPU was at hand when it was written).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from visionr1.tiny_model import SIZES, TinySize

GIB = 2**30
DEFAULT_GPU_GIB = (24.0, 48.0, 80.0)
RL_TEXT_TOKENS = 1024  # the RL prompt's text and template, an allowance (RL questions are short)
MERGED_PIXELS = 28 * 28  # pixels per merged vision token (14 x 14 patches, merged 2 x 2)

# Published configs of Qwen2.5-VL (config.json of Qwen/Qwen2.5-VL-{3B,7B,32B,72B}-Instruct): the text
# model's shape, and the vision tower every size shares (32 blocks of width 1280, SwiGLU 3420).
_VISION = dict(vision_hidden=1280, vision_depth=32, vision_heads=16, vision_intermediate=3420)
QWEN25_VL: dict[str, TinySize] = {
    "3B": TinySize(vocab_size=151936, text_hidden=2048, text_layers=36, text_heads=16, text_kv_heads=2,
                   text_intermediate=11008, tie_word_embeddings=True, max_position_embeddings=128000, **_VISION),
    "7B": TinySize(vocab_size=152064, text_hidden=3584, text_layers=28, text_heads=28, text_kv_heads=4,
                   text_intermediate=18944, tie_word_embeddings=False, max_position_embeddings=128000, **_VISION),
    "32B": TinySize(vocab_size=152064, text_hidden=5120, text_layers=64, text_heads=40, text_kv_heads=8,
                    text_intermediate=27648, tie_word_embeddings=False, max_position_embeddings=128000, **_VISION),
    "72B": TinySize(vocab_size=152064, text_hidden=8192, text_layers=80, text_heads=64, text_kv_heads=8,
                    text_intermediate=29568, tie_word_embeddings=False, max_position_embeddings=128000, **_VISION),
}


class PreflightError(ValueError):
    """Input preflight cannot use (exit 2)."""


def n_params(a: TinySize) -> int:
    """Parameters of a Qwen2.5-VL of this shape: attention (GQA), SwiGLU MLPs, embeddings, the
    vision tower and its 2x2 merger.

    >>> round(n_params(QWEN25_VL["7B"]) / 1e9, 1), round(n_params(QWEN25_VL["72B"]) / 1e9, 1)
    (8.3, 73.4)
    """
    h, kv, vi = a.text_hidden, a.text_hidden * a.text_kv_heads // a.text_heads, a.vision_intermediate
    # per layer: q, k, v (with biases), o, SwiGLU, two RMSNorms; embeddings (+ LM head unless tied); final norm
    text = a.text_layers * (2 * h * h + 2 * h * kv + h + 2 * kv + 3 * h * a.text_intermediate + 2 * h) + \
        a.vocab_size * h * (1 if a.tie_word_embeddings else 2) + h
    v = a.vision_hidden
    # 14 x 14 x 2 (frames) x 3 patch embedding; per block: qkv + proj (with biases), SwiGLU (with
    # biases), two norms; the merger: norm, (4v -> 4v -> text hidden) MLP with biases
    vision = 3 * 2 * 14 * 14 * v + a.vision_depth * (4 * v * v + 4 * v + 3 * v * vi + 2 * vi + v + 2 * v) + \
        v + (4 * v) ** 2 + 4 * v + 4 * v * h + h
    return int(text + vision)


def architecture(ref: str) -> tuple[str, TinySize]:
    """(name, shape) of a model reference: a local folder (its config.json), "nano" (the nano base
    model), or a hub name naming a Qwen2.5-VL size ("Qwen/Qwen2.5-VL-7B-Instruct")."""
    if ref == "nano":
        return "nano", SIZES["nano"]
    cfg = Path(ref) / "config.json"
    if cfg.exists():
        c = json.loads(cfg.read_text())
        t, v = c.get("text_config", c), c.get("vision_config", {})
        return str(ref), TinySize(
            vocab_size=t["vocab_size"], text_hidden=t["hidden_size"], text_layers=t["num_hidden_layers"],
            text_heads=t["num_attention_heads"], text_kv_heads=t["num_key_value_heads"],
            text_intermediate=t["intermediate_size"], vision_hidden=v.get("hidden_size", 1280),
            vision_depth=v.get("depth", 32), vision_heads=v.get("num_heads", 16),
            vision_intermediate=v.get("intermediate_size", 3420),
            tie_word_embeddings=bool(c.get("tie_word_embeddings", t.get("tie_word_embeddings", False))),
            max_position_embeddings=t.get("max_position_embeddings", 128000))
    m = re.search(r"qwen2\.5-vl-(\d+)b", str(ref).lower())
    if m and f"{m.group(1)}B" in QWEN25_VL:
        return f"Qwen2.5-VL-{m.group(1)}B", QWEN25_VL[f"{m.group(1)}B"]
    raise PreflightError(f"cannot tell the architecture of model {ref!r}: give a local folder with config.json, "
                         f"or a Qwen2.5-VL hub name of a known size ({', '.join(QWEN25_VL)})")


@dataclass
class Setup:
    """How one stage trains, as far as memory is concerned."""
    method: str              # full | lora | unsloth
    n_gpus: int
    zero: int                # 0 (none / DDP), 2 or 3
    offload: bool
    batch: int               # sequences per device per forward (the per-device micro-batch)
    seq: int                 # tokens per sequence (image + text + completion)
    gradient_checkpointing: bool
    bf16: bool = True
    reference: bool = False  # a frozen copy for the KL term (full-parameter RL with beta > 0)
    kv_cache: bool = False   # HF generate on the training GPU keeps a KV cache for the batch
    vllm_share: float = 0.0  # share of the GPU a colocated vLLM takes
    image_tokens: int = 0    # merged vision tokens of each sequence's image (4 patches each in the vision tower)
    loss_tokens: int | None = None  # tokens per sequence the LM head scores (RL: the completion; None: seq)


# TRL 1.15's fused LM head (trl/kernels/chunked_logprob.py): tiles of 4,096 tokens x 32,768 vocabulary
LM_HEAD_TILE = (4096, 32768)


def activation_bytes(a: TinySize, s: Setup) -> dict[str, float]:
    """Per-GPU bytes of activations in one training forward and backward, by part.

    Elements are 2 bytes (bf16; 4 in fp32), per token of the micro-batch (`batch` sequences of
    `seq` tokens) unless said otherwise; h = text hidden, kv = h x kv_heads / heads, I = MLP width,
    L = layers; attention is a fused kernel (flash / SDPA), which keeps no seq x seq matrix.

    Language model. One decoder layer's working set W, the tensors its backward needs: the
    normed input (h), q, k, v (h + 2 kv), the attention output (h), the residual sum entering
    the MLP (h), its normed copy (h), and the SwiGLU MLP's gate, up and their product
    (3 x I): W = 5h + 2kv + 3I. Without gradient checkpointing every layer keeps its input and
    W: L x (h + W). With it, only each layer's input is kept (L x h) and one layer at a time is
    recomputed during the backward, holding W: L x h + W. For Qwen2.5-VL-7B that is 2 x 3584 x 28
    = 200,704 B stored plus 2 x (5 x 3584 + 2 x 512 + 3 x 18944) = 151,552 B recomputed per token:
    the recomputed layer is three quarters as large again as everything stored, because its MLP
    is 5.3 x wider than the hidden state.

    Vision tower (trained only by full fine-tuning: LoRA adapts the language model and the tower
    stays frozen, so nothing of it is kept for a backward). Each image is `image_tokens` merged
    tokens = 4 x image_tokens patches of 14 x 14 pixels; a block's working set is 7 vh + 3 vI
    per patch (no grouped KV: k and v are vh wide each). With checkpointing: patches x vh x
    depth stored plus one block's working set; without: depth x (vh + 7 vh + 3 vI). At 1,003,520
    pixels (1,280 tokens, 5,120 patches) that is 5,120 x 2 x 1280 x 32 = 0.39 GiB per image
    stored, plus 5,120 x 2 x (7 x 1280 + 3 x 3420) = 0.18 GiB while a block is recomputed.

    LM head. TRL's fused head projects the scored tokens N (`loss_tokens` per sequence) in
    tiles of 4,096 tokens x 32,768 vocabulary entries (one tile live), and its backward
    accumulates the gradient of those N hidden states in fp32 (N x h x 4 B) and, when the head
    is trained (full fine-tuning), the head's weight gradient in fp32 (vocab x h x 4 B).

    The backward visits the LM head, then the text layers, then the vision blocks: one of the
    three working sets is live at a time, on top of everything stored. So activations = text
    stored + vision stored + the largest working set.
    """
    e = 2 if s.bf16 else 4
    h, L, inter = a.text_hidden, a.text_layers, a.text_intermediate
    kv = h * a.text_kv_heads // a.text_heads
    vh, vd, vi = a.vision_hidden, a.vision_depth, a.vision_intermediate
    tokens = s.batch * s.seq
    patches = s.batch * 4 * s.image_tokens
    layer_ws = e * (5 * h + 2 * kv + 3 * inter)      # per token
    block_ws = e * (7 * vh + 3 * vi)                 # per patch
    if s.gradient_checkpointing:
        text_stored, text_ws = tokens * e * h * L, tokens * layer_ws
    else:
        text_stored, text_ws = tokens * L * (e * h + layer_ws), 0
    full = s.method == "full"
    if not full:
        vision_stored, vision_ws = 0, 0
    elif s.gradient_checkpointing:
        vision_stored, vision_ws = patches * e * vh * vd, patches * block_ws
    else:
        vision_stored, vision_ws = patches * vd * (e * vh + block_ws), 0
    scored = s.batch * (s.seq if s.loss_tokens is None else s.loss_tokens)
    lm_ws = min(scored, LM_HEAD_TILE[0]) * min(a.vocab_size, LM_HEAD_TILE[1]) * e + scored * h * 4 + \
        (a.vocab_size * h * 4 if full else 0)
    return {"text_stored": text_stored, "text_layer": text_ws, "vision_stored": vision_stored,
            "vision_block": vision_ws, "lm_head": lm_ws,
            "total": text_stored + vision_stored + max(text_ws, vision_ws, lm_ws)}


def estimate_gib(a: TinySize, s: Setup) -> dict:
    """Per-GPU memory, GiB. Weights 2 B/param in bf16 (4 in fp32); full fine-tuning adds gradients
    (2 B) and Adam moments + fp32 master weights (12 B) per trainable parameter; LoRA trains about
    1%. ZeRO shards optimizer states (stage 1+), gradients (2+) and weights (3) over the GPUs.
    Activations: `activation_bytes` (text layers, the vision tower, TRL's fused LM head). The KV
    cache of HF generate, batch x seq x layers x 2 x kv_heads x head_dim x 2 B, lives during the
    rollout and is freed before the training pass: the larger of the two counts. +10%
    fragmentation, +1.5 GiB CUDA context.
    """
    p = n_params(a)
    shard = lambda x, stage: x / s.n_gpus if s.zero >= stage else x  # noqa: E731
    lora = s.method in ("lora", "unsloth", "lora_fast")
    trainable = p * (0.01 if lora else 1.0)
    act = activation_bytes(a, s)
    out = {
        "weights": shard((2 if s.bf16 else 4) * p, 3),
        "grads": shard(2 * trainable, 2),
        "optimizer": 0.0 if s.offload else shard(12 * trainable, 1),
        "reference": shard(2 * p, 3) if s.reference and not lora else 0.0,
        "activations": act["total"],
        "kv_cache": (s.batch * s.seq * a.text_layers * 2 * a.text_hidden * a.text_kv_heads // a.text_heads * 2
                     if s.kv_cache else 0.0),
    }
    static = out["weights"] + out["grads"] + out["optimizer"] + out["reference"]
    total = (static + max(out["activations"], out["kv_cache"])) * 1.1 + 1.5 * GIB
    out = {k: round(v / GIB, 1) for k, v in out.items()}
    out.update({f"act_{k}": round(v / GIB, 1) for k, v in act.items() if k != "total"})
    out["total"] = round(total / GIB, 1)
    out["vllm_share"] = s.vllm_share  # of the GPU, whatever its size
    return out


VLLM_GPU_MEMORY_UTILIZATION = 0.92  # vLLM 0.31's default share of a GPU an engine takes (vllm/config/cache.py)
VLLM_OVERHEAD_GIB = 3.0  # CUDA context, the forward's activations and CUDA graphs: an allowance, not measured


def vllm_engine_gib(a: TinySize, tensor_parallel: int, seq: int, sequences: int) -> dict:
    """Per-GPU memory of one vLLM engine (04) holding `sequences` of `seq` tokens at once, GiB:
    bf16 weights split over its `tensor_parallel` GPUs, and the KV cache, 2 (key, value) x layers
    x the KV heads on one GPU (split too; at least one, which vLLM replicates when the GPUs
    outnumber the heads) x head dim x 2 B per token; plus VLLM_OVERHEAD_GIB. vLLM takes
    VLLM_GPU_MEMORY_UTILIZATION of the GPU and fills what the weights leave with KV cache: the
    sequences are all in flight when `total` is within it (else vLLM queues or preempts some).

    >>> m = vllm_engine_gib(QWEN25_VL["7B"], 1, 18304, 32)
    >>> m["weights"], m["kv_per_sequence"], m["total"]
    (15.4, 0.98, 49.7)
    """
    kv_heads = max(1, a.text_kv_heads // tensor_parallel)
    kv_token = 2 * a.text_layers * kv_heads * (a.text_hidden // a.text_heads) * 2
    weights = 2 * n_params(a) / tensor_parallel
    return {"weights": round(weights / GIB, 1), "kv_per_sequence": round(kv_token * seq / GIB, 2),
            "kv_cache": round(kv_token * seq * sequences / GIB, 1),
            "total": round((weights + kv_token * seq * sequences) / GIB + VLLM_OVERHEAD_GIB, 1)}


def fits(mem: dict, gpu_gib: float) -> tuple[bool, float]:
    """(fits, shortfall GiB) on a GPU of `gpu_gib`, with a colocated vLLM's share taken off first."""
    free = gpu_gib * (1 - mem["vllm_share"])
    return mem["total"] <= free, round(max(0.0, mem["total"] - free), 1)


def stage_setups(v: dict) -> list[tuple[str, str, Setup]]:
    """(stage label, model reference, setup) for each stage of the resolved params that trains."""
    from visionr1 import grpo, models, training

    skip = set(v.get("skip_stages") or [])
    model = v.get("sft_model") or v.get("base_model") or "nano"
    out = []
    if "02_cold_start_sft" not in skip:
        n = int(v["sft_num_gpus"]) * int(v.get("num_machines") or 1)  # ZeRO shards over every machine's GPUs
        out.append((f"02 SFT ({v['sft_method']}, {v['sft_cutoff_len']} tokens)", model, Setup(
            method=v["sft_method"], n_gpus=n, zero=training.ZERO_STAGE[v["sft_deepspeed"]] if n > 1 else 0,
            offload=v["sft_deepspeed"] == "zero3_offload", batch=int(v["sft_batch_size"]), seq=int(v["sft_cutoff_len"]),
            gradient_checkpointing=bool(v["sft_gradient_checkpointing"]), bf16=bool(v["sft_bf16"]),
            # the largest image can fill the whole cutoff: a bound, the data's own images are often smaller
            image_tokens=min(int(v["sft_max_pixels"]) // MERGED_PIXELS, int(v["sft_cutoff_len"])))))
    if "03_grpo_ptst" not in skip:
        n = int(v["rl_num_gpus"]) * int(v.get("num_machines") or 1)
        rl_model = model if models.is_stage_ref(v["rl_start"]) else v["rl_start"]
        method = "lora" if int(v.get("rl_lora_r") or 0) > 0 else "full"
        grpo.check_stages(v["rl_stages"])
        image = int(v["rl_max_pixels"]) // MERGED_PIXELS
        for k, st in enumerate(v["rl_stages"], 1):
            seq = image + RL_TEXT_TOKENS + int(st["max_completion_length"])
            batch = int(st.get("batch_size") or v["rl_batch_size"] or st["num_generations"])
            out.append((f"03 RL stage {k} ({st['max_completion_length']} x {st['num_generations']}, {method})",
                        rl_model, Setup(
                            method=method, n_gpus=n, zero=training.ZERO_STAGE[v["rl_deepspeed"]] if n > 1 else 0,
                            offload=v["rl_deepspeed"] == "zero3_offload", batch=batch, seq=seq,
                            gradient_checkpointing=bool(v["rl_gradient_checkpointing"]), bf16=bool(v["rl_bf16"]),
                            reference=float(v["rl_beta"]) > 0, kv_cache=v["rl_rollout"] == "hf",
                            image_tokens=image, loss_tokens=int(st["max_completion_length"]),
                            vllm_share=float(v["rl_vllm_gpu_memory_utilization"]) if v["rl_rollout"] == "vllm_colocate"
                            else 0.0)))
    return out


def sft_data(p, gpu_gib: float | None, n_gpus: int, zero_stage: int, offload: bool = False,
             write_cache: bool = True) -> dict:
    """02's pre-flight for SFTParams `p`: every sample's image + text tokens against the cutoff and
    the model's maximum, and the memory estimate at the longest sample; `problems` lists what would
    go wrong (an OOM, or samples dropped hours later) instead of raising. The tokens are counted
    once for the stage: `sft.cached_lengths` keeps them in 02's folder (`write_cache`), where
    training reads them."""
    from visionr1 import sft, tiny_model, training

    name, arch = architecture(p.model)
    processor = tiny_model.load_processor(p.model, min_pixels=p.min_pixels, max_pixels=p.max_pixels)
    max_pos = arch.max_position_embeddings
    rows = sft.load_rows(p.data, p.datasets)
    over, lengths = [], []
    for row, counts in zip(rows, sft.cached_lengths(p, rows, processor, write=write_cache)):
        where = row.get("source") or row.get("id", "?")
        if counts is None:  # raises, naming the row and what its tags and images are
            training.to_multimodal(row["messages"], len(row["images"]), where)
        for n in counts:
            lengths.append(n)
            if n > min(p.cutoff_len, max_pos):
                over.append((where, n))
    setup = Setup(method=p.method, n_gpus=n_gpus, zero=zero_stage, offload=offload, batch=p.batch_size,
                  seq=min(max(lengths), p.cutoff_len), gradient_checkpointing=p.gradient_checkpointing, bf16=p.bf16)
    mem = estimate_gib(arch, setup)
    report = {"samples": len(rows), "tokens_max": max(lengths), "tokens_mean": round(sum(lengths) / len(lengths), 1),
              "cutoff_len": p.cutoff_len, "model_max_positions": max_pos, "over_cutoff": len(over),
              "over_cutoff_examples": over[:10], "params": n_params(arch), "memory_gib": mem, "gpu_gib": gpu_gib}
    problems = []
    if p.cutoff_len > max_pos:
        problems.append(f"cutoff_len {p.cutoff_len} exceeds the model's max_position_embeddings {max_pos}")
    if over:
        problems.append(f"{len(over)} of {len(rows)} samples exceed {min(p.cutoff_len, max_pos)} tokens "
                        f"(they would be dropped), e.g. " + ", ".join(f"{w}: {n}" for w, n in over[:5]))
    if gpu_gib is not None and not fits(mem, gpu_gib)[0]:
        problems.append(f"estimated {mem['total']} GiB per GPU > {gpu_gib} GiB available ({p.method}, ZeRO-{zero_stage}, "
                        f"{n_gpus} GPUs, batch {p.batch_size}); try ZeRO-3, CPU offload, LoRA or gradient checkpointing")
    report["problems"] = problems
    return report


def sft_data_lengths(v: dict, setup: Setup) -> tuple[Setup, str]:
    """02's setup with the longest local SFT sample (02's own pre-flight) instead of the cutoff,
    when the data and the model's processor are on disk; else the cutoff, said so."""
    from visionr1 import sft

    try:
        rep = sft_data(sft.params_from_values(v), None, setup.n_gpus, setup.zero, setup.offload, write_cache=False)
    except (OSError, ValueError, KeyError) as e:  # no local data or model yet: the stated assumption
        return setup, f"02: every sample assumed at the cutoff ({setup.seq} tokens): {type(e).__name__}: {e}"[:300]
    return replace(setup, seq=min(setup.seq, rep["tokens_max"])), \
        f"02: longest local sample {rep['tokens_max']} tokens ({rep['samples']} samples)" + \
        (f"; PROBLEM: {'; '.join(rep['problems'])}" if rep["problems"] else "")


def report(v: dict, sizes: tuple[float, ...], data_lengths: bool = True) -> tuple[list[dict], list[str]]:
    """One row per training stage: model, estimate, a verdict per GPU size; plus notes.
    `data_lengths`: 02's sequences from the local SFT data when it and the model's processor are on
    disk (reads every sample); False: at the cutoff, the stated assumption."""
    rows, notes = [], []
    for label, ref, setup in stage_setups(v):
        name, arch = architecture(ref)
        if label.startswith("02"):
            if data_lengths:
                setup, note = sft_data_lengths(v, setup)
            else:
                note = f"02: every sample assumed at the cutoff ({setup.seq} tokens)"
            notes.append(note)
        mem = estimate_gib(arch, setup)
        rows.append({"stage": label, "model": name, "params_b": round(n_params(arch) / 1e9, 2), "gpus": setup.n_gpus,
                     "memory_gib": mem, "fits": {g: fits(mem, g) for g in sizes},
                     "notebook": "02_cold_start_sft" if label.startswith("02") else "03_grpo_ptst",
                     "ptst_stage": int(label.split()[3]) if label.startswith("03") else None})
    if "03_grpo_ptst" not in set(v.get("skip_stages") or []):
        notes.append(f"03: RL sequences assumed at the largest image ({int(v['rl_max_pixels']) // 784} tokens at "
                     f"rl_max_pixels) + {RL_TEXT_TOKENS} text tokens + the stage's completion length")
    return rows, notes


def main(argv: list[str] | None = None) -> int:
    from visionr1 import env
    from visionr1.params import ParamsError, declarations, resolve, stage_notebooks

    ap = argparse.ArgumentParser(prog="python -m visionr1 preflight", description=__doc__.split("\n\n")[0])
    ap.add_argument("params", nargs="*")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--gpu-gib", type=float, action="append", default=None,
                    help="GPU memory to judge against, GiB (repeatable; default: 24, 48, 80 shown, "
                         "judged against sft_preflight_gpu_gib when set)")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    env.setup_environment()
    try:
        v = resolve(args.params, args.sets, declarations(stage_notebooks(env.NOTEBOOKS_DIR))).values
        judged = tuple(args.gpu_gib) if args.gpu_gib else \
            ((float(v["sft_preflight_gpu_gib"]),) if v.get("sft_preflight_gpu_gib") else ())
        sizes = tuple(sorted(set(DEFAULT_GPU_GIB) | set(judged)))
        rows, notes = report(v, sizes)
    except (ParamsError, PreflightError, ValueError) as e:
        print(f"preflight: {e}", file=sys.stderr)
        return 2
    print(f"{'stage':44} {'model':22} {'GiB/GPU':>8}  " + "  ".join(f"{g:>5.0f} GB" for g in sizes))
    problems = []
    for r in rows:
        verdicts = []
        for g in sizes:
            ok, short = r["fits"][g]
            verdicts.append(f"{'fits' if ok else f'-{short:g}':>8}")
            if not ok and g in judged:
                problems.append(f"{r['stage']} does not fit {g:g} GiB: {r['memory_gib']['total']} GiB estimated "
                                f"per GPU on {r['gpus']} GPU(s), {short} GiB short {r['memory_gib']}")
        print(f"{r['stage']:44} {r['model'][:22]:22} {r['memory_gib']['total']:>8}  " + "  ".join(verdicts))
    for note in notes:
        print("note:", note)
        if "PROBLEM:" in note:
            problems.append(note.split("PROBLEM: ", 1)[1])
    for p in problems:
        print("PROBLEM:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
