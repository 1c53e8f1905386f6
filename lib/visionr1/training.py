"""What SFT (02) and GRPO (03) share: the TRL message format, the per-step metrics log, LoRA's
target layers and merge, and the DeepSpeed configs shipped in visionr1/configs/.

The workarounds for the pinned libraries are not here but in visionr1.compat.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from visionr1 import released_data, tiny_model


def to_multimodal(messages: list[dict], n_images: int, where: str) -> list[dict]:
    """sharegpt-style messages with `<image>` placeholders -> TRL's content lists, an image part
    at each placeholder (anywhere in a turn). The placeholder count must equal `n_images`."""
    out, seen = [], 0
    for m in messages:
        text = m["content"]
        parts = []
        pieces = text.split(released_data.IMAGE_TAG)
        for i, piece in enumerate(pieces):
            if i > 0:
                parts.append({"type": "image"})
                seen += 1
            if piece:
                parts.append({"type": "text", "text": piece})
        out.append({"role": m["role"], "content": parts})
    if seen != n_images:
        raise ValueError(f"{where}: {seen} <image> tags for {n_images} images")
    return out


class MetricsJsonl:
    """A TrainerCallback appending every logged step's numbers (loss, learning rate, grad norm, and
    whatever else the trainer logs) to JSONL; `step` is the trainer's step plus `step_offset`, and
    `extra` fields (e.g. the PTST stage) are added to each record."""

    def __new__(cls, path: Path, step_offset: int = 0, **extra):
        from transformers import TrainerCallback

        class _CB(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kw):
                if logs and state.is_world_process_zero:
                    rec = {"step": state.global_step + step_offset, "epoch": state.epoch, "time": time.time(), **extra,
                           **{k: v for k, v in logs.items() if isinstance(v, (int, float))}}
                    with path.open("a") as f:
                        f.write(json.dumps(rec) + "\n")

        return _CB()


# LoRA on every linear layer of the language model; the vision tower stays frozen
LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


def merge_adapter(base: str, adapter: Path, final: Path, bf16: bool = False) -> None:
    """Base weights plus the saved LoRA adapter, merged and saved to `final`. Read from the saved
    files after every rank has finished: under ZeRO-3 the live model holds only this rank's shards,
    so merging it would save empty tensors."""
    import torch
    from peft import PeftModel

    model = tiny_model.load_model(base, dtype=torch.bfloat16 if bf16 else torch.float32)
    PeftModel.from_pretrained(model, str(adapter)).merge_and_unload().save_pretrained(str(final))


DEEPSPEED_CONFIGS = ("none", "zero2", "zero3", "zero3_offload")
ZERO_STAGE = {"none": 0, "zero2": 2, "zero3": 3, "zero3_offload": 3}


def deepspeed_config(name: str) -> str | None:
    """Path of a DeepSpeed config shipped in visionr1/configs/ (zero2, zero3, zero3_offload), or
    None for "none" (plain DDP: several CPU processes on gloo, or GPUs without DeepSpeed)."""
    from importlib import resources

    if name not in DEEPSPEED_CONFIGS:
        raise ValueError(f"sft_deepspeed / rl_deepspeed must be one of {', '.join(DEEPSPEED_CONFIGS)}, got {name!r}")
    if name == "none":
        return None
    return str(resources.files("visionr1") / "configs" / f"{name}.json")
