"""Cold-start SFT (docs/recipe.md §3): Qwen2.5-VL on cold-start CoT data with TRL's SFTTrainer -> the CI model.

Data: the set 01_cold_start_data exported (`cold/sft.jsonl`), or a LLaMA-Factory folder such as the
released Vision-R1-cold (both sharegpt dialects, images by relative path, `<image>` anywhere in a
turn), read with visionr1.released_data. Loss on assistant tokens only: each assistant turn becomes a
prompt/completion sample (`split_turns`). Images are resized by the processor within min/max pixels. A sample whose
image + text tokens exceed the cutoff is dropped and counted, never cut off (a cut CoT would teach
the model to stop before its answer).

Methods: full fine-tune, LoRA (PEFT), or unsloth (GPU only; imported only when chosen).
One process in the notebook kernel (CPU or one GPU), or `accelerate launch` with a DeepSpeed config
shipped in visionr1/configs/ for several GPUs: `python -m visionr1.sft PARAMS_JSON` is the entry
point both use. Per-step loss, learning rate and grad norm go to metrics.jsonl (and W&B).
Checkpoints include the processor. Resuming loads the checkpoint's weights with from_pretrained
before handing resume_from_checkpoint to the trainer: transformers' own resume restores optimizer
and step but not Qwen2.5-VL's weights (docs/platform.md).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from visionr1 import checkpoints, compat, dist, models, params, released_data, tiny_model
from visionr1.training import LORA_TARGETS, MetricsJsonl, TrainingProgress, deepspeed_config, merge_adapter, to_multimodal


# 02's own cells use these keys (the data and model are resolved into the fields below)
NOTEBOOK_ONLY = ("sft_model", "sft_data", "sft_num_gpus", "sft_deepspeed", "sft_preflight_gpu_gib",
                 "sft_eval_samples", "sft_eval_max_new_tokens")


@dataclass(kw_only=True)
class SFTParams(params.declared("02_cold_start_sft", "sft_", NOTEBOOK_ONLY)):
    """One SFT run's settings. Every `sft_<name>` knob of notebooks/02_cold_start_sft.ipynb's
    parameters cell (except NOTEBOOK_ONLY) is the field `<name>`, with that line's type, default and
    comment: a new knob is one line there. The fields below are resolved from the params by
    `params_from_values`, or are not knobs."""

    model: str                      # base model folder or hub name (sft_model; None there: 00's base model)
    data: str                       # sft.jsonl, or a folder with dataset_info.json
    output_dir: str
    lora_dropout: float = 0.05
    save_total_limit: int = 2
    logging_steps: int = 1
    seed: int = 0
    report_to: str = "none"         # "wandb" mirrors the metrics (offline by default)
    resume: bool = True             # resume from the newest checkpoint in output_dir when there is one
    deepspeed: str | None = None    # path of a DeepSpeed config (sft_deepspeed, several processes only)
    run_name: str = "sft"

    @classmethod
    def from_json(cls, path: str | Path) -> "SFTParams":
        return cls(**json.loads(Path(path).read_text()))


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
def load_rows(data: str | Path, datasets: list[str] | None = None, max_bad_fraction: float = 0.01) -> list[dict]:
    """Rows {id, images: [path], messages: [{role, content}]} from sft.jsonl, a sharegpt folder, or one
    sharegpt file (.json array or .parquet, e.g. vision_r1_llava_cot_full.json: released_data.load_sharegpt_file)."""
    data = Path(data)
    if data.is_file() and data.suffix in (".json", ".parquet"):
        return list(released_data.load_sharegpt_file(data, max_bad_fraction=max_bad_fraction))
    if data.is_dir():
        info = released_data.load_dataset_info(data)
        names = datasets or list(info)
        rows = []
        for name in names:
            rows += list(released_data.load_sharegpt(data, name, max_bad_fraction=max_bad_fraction))
        return rows
    if not data.is_file():
        raise FileNotFoundError(f"SFT data not found: {data}")
    rows = []
    for i, line in enumerate(data.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{data}:{i}: not valid JSON ({e})") from None
    return rows


def image_tokens(processor, path: str) -> int:
    """Merged vision tokens of one image after the processor's resize (no pixels decoded)."""
    from PIL import Image
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    ip = processor.image_processor
    with Image.open(path) as im:
        w, h = im.size
    factor = ip.patch_size * ip.merge_size
    size = ip.size if isinstance(ip.size, dict) else dict(ip.size)
    rh, rw = smart_resize(h, w, factor=factor, min_pixels=size["shortest_edge"], max_pixels=size["longest_edge"])
    return (rh // factor) * (rw // factor)


def split_turns(msgs: list[dict], images: list) -> list[dict]:
    """One prompt/completion sample per assistant turn: the prompt is every turn before it (with
    the images its placeholders name), the completion that turn. Loss then falls on every
    assistant token and nothing else (TRL's assistant-only mask for vision data needs transformers
    >= 5.18, which vLLM 0.31 does not allow)."""
    out = []
    for j, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        prompt = msgs[:j]
        n_img = sum(1 for t in prompt for part in t["content"] if part.get("type") == "image")
        out.append({"images": list(images[:n_img]), "prompt": prompt, "completion": [m]})
    return out


def sample_length(processor, sample: dict) -> int:
    """Tokens of one prompt/completion sample as trained: template text plus its image tokens."""
    text = processor.apply_chat_template(sample["prompt"] + sample["completion"], tokenize=False)
    n_text = len(processor.tokenizer(text, add_special_tokens=False)["input_ids"])
    return n_text + sum(image_tokens(processor, p) - 1 for p in sample["images"])  # pad token counted once


def sample_lengths(rows: list[dict], processor) -> list[list[int] | None]:
    """Per row, the tokens of each of its samples (`split_turns` order), or None for a row whose
    `<image>` tags and images disagree: the one tokenization of the SFT set, which 02's pre-flight
    and `prepare` read (through `cached_lengths`)."""
    out: list[list[int] | None] = []
    for row in rows:
        try:
            msgs = to_multimodal(row["messages"], len(row["images"]), row.get("source") or row.get("id", "?"))
        except ValueError:
            out.append(None)
            continue
        out.append([sample_length(processor, s) for s in split_turns(msgs, row["images"])])
    return out


LENGTHS_FILE = "sample_lengths.json"  # in 02's folder: `sample_lengths` of the SFT set and what they depend on


def lengths_key(rows: list[dict], processor) -> str:
    """What the lengths depend on: every row (text, image paths) and the processor (its tokenizer,
    chat template and image budget). An image file changed in place under the same path is not seen."""
    tok = processor.tokenizer
    backend = getattr(tok, "backend_tokenizer", None)
    vocab = backend.to_str() if backend is not None else json.dumps(sorted(tok.get_vocab().items()))
    h = hashlib.sha1(vocab.encode())
    h.update(str(getattr(processor, "chat_template", None) or tok.chat_template).encode())
    h.update(processor.image_processor.to_json_string().encode())
    for row in rows:
        h.update(json.dumps(row, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def cached_lengths(p: "SFTParams", rows: list[dict], processor, write: bool = True) -> list[list[int] | None]:
    """`sample_lengths` of `rows`, tokenized once: the main process reads `output_dir/LENGTHS_FILE`
    when its key (`lengths_key`) matches, else tokenizes and writes it (`write`: 02's pre-flight
    does, before training starts); the other ranks wait for it and read it (every rank of a launch
    re-tokenizing 200K CoTs would cost each the main process's minutes again)."""
    path = Path(p.output_dir) / LENGTHS_FILE
    lengths = None
    if dist.is_main():
        key = lengths_key(rows, processor)
        saved = json.loads(path.read_text()) if path.exists() else {}
        lengths = saved.get("lengths") if saved.get("key") == key else None
        if lengths is None:
            lengths = sample_lengths(rows, processor)
            if write:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.with_suffix(".tmp").write_text(json.dumps({"key": key, "lengths": lengths}))
                path.with_suffix(".tmp").replace(path)  # atomic: a reader sees the old file or the new one
    dist.wait()
    if lengths is None:  # another rank: what the main process wrote for this launch
        lengths = json.loads(path.read_text())["lengths"]
        if len(lengths) != len(rows):
            raise RuntimeError(f"{path}: {len(lengths)} rows' lengths, but this rank read {len(rows)} rows from "
                               f"{p.data}")
    return lengths


def prepare(rows: list[dict], processor, cutoff_len: int, lengths: list | None = None
            ) -> tuple[list[dict], Counter, list[int]]:
    """TRL prompt/completion samples {images: [path], prompt, completion}; a sample over the cutoff
    (or with a tag/image mismatch) is dropped and counted. `lengths`: `sample_lengths` of the rows
    when already known (None: tokenized here). Returns (samples, drops, lengths)."""
    lengths = sample_lengths(rows, processor) if lengths is None else lengths
    kept, drops, kept_lengths = [], Counter(), []
    for row, counts in zip(rows, lengths, strict=True):
        if counts is None:
            drops["image_tag_mismatch"] += 1
            continue
        msgs = to_multimodal(row["messages"], len(row["images"]), row.get("source") or row.get("id", "?"))
        for sample, n in zip(split_turns(msgs, row["images"]), counts, strict=True):
            if n > cutoff_len:
                drops["over_cutoff"] += 1
                continue
            kept.append(sample)
            kept_lengths.append(n)
    return kept, drops, kept_lengths


def to_dataset(rows: list[dict]):
    """A datasets.Dataset whose `images` column decodes to PIL images on access."""
    import datasets

    ds = datasets.Dataset.from_list([{"images": r["images"], "prompt": json.dumps(r["prompt"]),
                                      "completion": json.dumps(r["completion"])} for r in rows])
    ds = ds.cast_column("images", datasets.Sequence(datasets.Image()))
    return ds.map(lambda r: {"prompt": json.loads(r["prompt"]), "completion": json.loads(r["completion"])},
                  desc="decode turns")


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------
def resolve_method(method: str) -> str:
    """`lora_fast`: unsloth's LoRA where unsloth is installed and a GPU is there, PEFT's otherwise
    (the one-GPU recipe); any other method as given. The resolved one is what sft_params.json records."""
    if method != "lora_fast":
        return method
    import importlib.util

    import torch

    return "unsloth" if importlib.util.find_spec("unsloth") and torch.cuda.is_available() else "lora"


def import_unsloth_first(p: SFTParams) -> bool:
    """Import unsloth now when the resolved method is unsloth, before anything imports transformers or
    trl: unsloth patches both at import and warns (its patches partly missing) when it comes later.
    02 calls it before its pre-flight, which loads the processor through transformers. Returns
    whether unsloth was imported."""
    if p.method != "unsloth":
        return False
    import unsloth  # noqa: F401 - imported for its patches

    return True


def load_model_for(p: SFTParams, source: str):
    import torch

    if p.method == "unsloth":
        import unsloth  # noqa: F401 - GPU only; imported only when chosen (train() imports it before trl)
        from unsloth import FastVisionModel

        # unsloth defaults to max_seq_length=2048 and its SFT patch applies that when max_length is
        # None (how TRL is called here): samples up to the cutoff would be cut silently
        model, _ = FastVisionModel.from_pretrained(source, load_in_4bit=False, use_gradient_checkpointing="unsloth",
                                                   max_seq_length=p.cutoff_len)
        return FastVisionModel.get_peft_model(model, r=p.lora_r, lora_alpha=p.lora_alpha, lora_dropout=p.lora_dropout,
                                              finetune_vision_layers=False)
    model = tiny_model.load_model(source, dtype=torch.bfloat16 if p.bf16 else torch.float32)
    if p.method == "lora":
        from peft import LoraConfig, get_peft_model

        cfg = LoraConfig(r=p.lora_r, lora_alpha=p.lora_alpha, lora_dropout=p.lora_dropout, task_type="CAUSAL_LM",
                         target_modules=LORA_TARGETS)
        model = get_peft_model(model, cfg)
    elif p.method != "full":
        raise ValueError(f"sft method must be full, lora or unsloth, got {p.method!r}")
    return model


def train(p: SFTParams, log=print) -> dict:
    """Train and save the CI model to `output_dir/final`; returns a summary. On several processes
    (`python -m visionr1.sft` under a launcher) every rank trains and the main process alone writes
    the run's files: the LoRA merge, the processor, the summary (docs/platform.md)."""
    if p.method == "unsloth":
        import unsloth  # noqa: F401 - unsloth patches trl and transformers: it must come first
    from trl import SFTConfig

    out = Path(p.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    resume = checkpoints.newest_checkpoint(out) if p.resume else None
    # a checkpoint made with other training params must not be silently continued
    fingerprint = {k: v for k, v in asdict(p).items() if k not in ("resume", "save_steps", "save_total_limit",
                                                                    "logging_steps", "report_to", "deepspeed")}
    if dist.is_main():
        checkpoints.guard_params(out, fingerprint, resume)
    dist.wait()
    processor = tiny_model.load_processor(p.model, min_pixels=p.min_pixels, max_pixels=p.max_pixels)
    rows = load_rows(p.data, p.datasets)
    rows, drops, lengths = prepare(rows, processor, p.cutoff_len, cached_lengths(p, rows, processor))
    if not rows:
        raise ValueError(f"no SFT sample left from {p.data} (drops: {dict(drops)})")
    log(f"SFT data: {len(rows)} samples, dropped {dict(drops)}; tokens per sample max {max(lengths)}, "
        f"mean {sum(lengths) / len(lengths):.0f}")
    # transformers' resume does not restore Qwen2.5-VL weights: load them from the checkpoint
    model = load_model_for(p, str(resume) if resume and p.method == "full" else p.model)
    if resume and p.method == "lora":
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        set_peft_model_state_dict(model, load_file(str(resume / "adapter_model.safetensors")))
    cfg = SFTConfig(
        output_dir=str(out), per_device_train_batch_size=p.batch_size, gradient_accumulation_steps=p.grad_accum,
        learning_rate=p.learning_rate, lr_scheduler_type=p.lr_scheduler, warmup_steps=p.warmup_ratio,  # < 1: a ratio (transformers 5)
       
        num_train_epochs=p.epochs, max_steps=p.max_steps, bf16=p.bf16, logging_steps=p.logging_steps,
        save_steps=p.save_steps, save_total_limit=p.save_total_limit, seed=p.seed, report_to=p.report_to,
        run_name=p.run_name, max_length=None, completion_only_loss=True, gradient_checkpointing=p.gradient_checkpointing,
        remove_unused_columns=False, dataloader_num_workers=0, deepspeed=p.deepspeed, disable_tqdm=False,
    )
    trainer = compat.sft_trainer_class()(model=model, args=cfg, train_dataset=to_dataset(rows), processing_class=processor,
                         callbacks=[MetricsJsonl(out / "metrics.jsonl"), TrainingProgress("SFT")])
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    seconds = time.perf_counter() - t0
    final = out / "final"
    # every rank takes part in the save (ZeRO-3 gathers the shards); the main process writes
    trainer.save_model(str(final if p.method == "full" else out / "adapter"))
    dist.wait()
    steps = max(1, trainer.state.global_step - (int(resume.name.split("-")[1]) if resume else 0))
    summary = {"samples": len(rows), "drops": dict(drops), "tokens_max": max(lengths),
               "tokens_mean": round(sum(lengths) / len(lengths), 1), "steps": trainer.state.global_step,
               "train_seconds": round(seconds, 1), "s_per_step": round(seconds / steps, 3),
               "train_loss": result.training_loss, "resumed_from": str(resume) if resume else None,
               "num_processes": dist.world_size(), "final_model": str(final)}
    if dist.is_main():
        if p.method != "full":  # the adapter apart; the merged weights load like any model in the later stages
            merge_adapter(p.model, out / "adapter", final, p.bf16)
        processor.save_pretrained(str(final))
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    dist.wait()
    return summary


def main(argv: list[str] | None = None) -> int:
    """`python -m visionr1.sft PARAMS_JSON`: the entry point `accelerate launch` runs."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m visionr1.sft PARAMS_JSON", file=sys.stderr)
        return 2
    summary = train(SFTParams.from_json(argv[0]))
    if dist.is_main():
        print(json.dumps(summary))
    dist.close()
    return 0



# ---------------------------------------------------------------------------------------------
# From the notebook's params; multi-GPU launch; the preflight command
# ---------------------------------------------------------------------------------------------
def params_from_values(v: dict) -> SFTParams:
    """SFTParams from 02_cold_start_sft's params (a dict of its declared keys). The model defaults
    to 00_data's base model, the data to 01's exported sft.jsonl, in the same run folder."""
    from visionr1 import env

    run = env.run_dir(v["output_root"], v["run_name"])
    model = models.resolve(v["sft_model"] or "base", run, key="sft_model")
    data = v["sft_data"] or str(run / "01_cold_start_data" / "cold" / "sft.jsonl")
    multi = v["sft_num_gpus"] > 1 or v.get("num_machines", 1) > 1
    return SFTParams.from_values(
        v, model=model, data=data, output_dir=str(run / "02_cold_start_sft"), method=resolve_method(v["sft_method"]),
        seed=v["seed"], report_to="wandb" if v["wandb_mode"] != "disabled" else "none",
        deepspeed=deepspeed_config(v["sft_deepspeed"]) if multi else None, run_name=f"{v['run_name']}/02_cold_start_sft")


def launch(params_json: str | Path, num_gpus: int, log=print, machines=None) -> None:
    """Run `python -m visionr1.sft PARAMS_JSON` on `num_gpus` processes (GPUs, or CPU processes on
    gloo without CUDA), streaming its log; raise on failure. `machines` (visionr1.machines.Machines):
    several, `num_gpus` on each, machine 0 announcing the launch to the others."""
    dist.launch("visionr1.sft", [str(params_json)], num_gpus, log, machines=machines)


if __name__ == "__main__":
    sys.exit(main())
