"""A tiny, random-init Qwen2.5-VL built offline: the real transformers classes with small configs.

Nothing can be downloaded on the project's machines, so tests and the nano run build their own
model: a byte-level BPE tokenizer trained locally on the nano task's wording (Qwen2's split regex
and special tokens), the real Qwen2-VL image processor (PIL backend: torchvision is not needed),
and `Qwen2_5_VLForConditionalGeneration` from a `Qwen2_5_VLConfig`. The folder it writes loads
back through `load_model` / `load_processor`, the same `from_pretrained` path the 7B model uses.

Two sizes: "test" (< 1M parameters, for unit tests) and "nano" (learns the nano task on CPU).
A 28x28 cell of an image is one merged vision token (patch 14, merge 2).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

# Qwen2's pre-tokenizer split: digits one by one, letters in runs, punctuation in runs.
QWEN2_SPLIT_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."

# The Qwen2.5-VL chat template, with the assistant turn in a branch of its own wrapped in
# {% generation %} so TRL can build assistant-only loss masks.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
    + DEFAULT_SYSTEM_PROMPT
    + "<|im_end|>\n{% endif %}"
    "{% if message['role'] == 'assistant' %}<|im_start|>assistant\n{% generation %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}{% if 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}"
    "{% endif %}<|im_end|>{% endgeneration %}\n"
    "{% else %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class TinySize:
    """Shape of a tiny Qwen2.5-VL. `text_hidden / text_heads / 2` must equal sum(mrope_section)."""

    vocab_size: int
    text_hidden: int
    text_layers: int
    text_heads: int
    text_kv_heads: int
    text_intermediate: int
    vision_hidden: int
    vision_depth: int
    vision_heads: int
    vision_intermediate: int
    tie_word_embeddings: bool
    max_position_embeddings: int = 4096


SIZES: dict[str, TinySize] = {
    # unit tests: under 1M parameters, builds in about a second
    "test": TinySize(vocab_size=1024, text_hidden=128, text_layers=2, text_heads=4, text_kv_heads=2,
                     text_intermediate=256, vision_hidden=64, vision_depth=2, vision_heads=4,
                     vision_intermediate=128, tie_word_embeddings=True),
    # nano run: small enough for minutes-long CPU training, big enough to learn the nano task
    "nano": TinySize(vocab_size=2048, text_hidden=128, text_layers=4, text_heads=4, text_kv_heads=2,
                     text_intermediate=384, vision_hidden=96, vision_depth=2, vision_heads=4,
                     vision_intermediate=192, tie_word_embeddings=False),
}


def tokenizer_corpus() -> list[str]:
    """Text the tokenizer is trained on: the nano task's exact wording plus the R1-style CoT
    vocabulary the later stages write (tags, self-reflection words)."""
    from visionr1 import nano_task

    return nano_task.tokenizer_corpus()


def train_tokenizer(corpus: list[str], vocab_size: int):
    """Train a byte-level BPE on `corpus` and wrap it as the real `Qwen2Tokenizer` (deterministic)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT_REGEX), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer=trainer)
    state = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    tok = Qwen2Tokenizer(
        vocab=state["vocab"], merges=merges, errors="replace",
        unk_token=None, bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        clean_up_tokenization_spaces=False, model_max_length=32768,
    )
    tok.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS[1:]})
    tok.chat_template = CHAT_TEMPLATE
    return tok


def make_processor_class():
    """Qwen2_5_VLProcessor without a video processor.

    The stock processor insists on a video processor, which needs torchvision (absent on the CPU
    stack). ProcessorMixin reads its sub-processors from the `__init__` signature, so a subclass
    whose `__init__` has no `video_processor` loads with just image processor and tokenizer.
    """
    from transformers import Qwen2_5_VLProcessor

    class ImageOnlyQwen2_5_VLProcessor(Qwen2_5_VLProcessor):
        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            kwargs.pop("video_processor", None)
            self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
            self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
            self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
            self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
            from transformers import ProcessorMixin

            ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    return ImageOnlyQwen2_5_VLProcessor


def _torchvision_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("torchvision") is not None


def load_processor(path: str | Path, **kwargs):
    """Load a Qwen2.5-VL processor from a folder or hub name (the same call for tiny and 7B).

    With torchvision installed (GPU boxes) this is `AutoProcessor`; without it (the CPU stack) the
    image-only subclass, because AutoProcessor would silently return just the tokenizer.
    """
    proc = None
    if _torchvision_available():
        from transformers import AutoProcessor

        proc = AutoProcessor.from_pretrained(str(path), **kwargs)
    if not hasattr(proc, "image_processor"):  # no torchvision, or a folder without a video processor (tiny models)
        proc = make_processor_class().from_pretrained(str(path), **kwargs)
    if not hasattr(proc, "image_processor"):
        raise RuntimeError(f"{path}: loaded {type(proc).__name__}, which has no image processor")
    return proc


def attn_implementation(dtype: torch.dtype | str = torch.float32) -> str | None:
    """"flash_attention_2" on CUDA in bf16 / fp16 when flash-attn is importable, else None (transformers'
    default, SDPA). Under SDPA, Qwen2.5-VL's vision tower runs its windowed attention as a Python loop
    over windows (modeling_qwen2_5_vl.py, Qwen2_5_VLVisionAttention); flash-attn takes them in one
    varlen call, and its text attention skips the padded positions of long rollouts.

    >>> attn_implementation(torch.float32) is None  # CPU float32: never
    True
    """
    import importlib.util

    if str(dtype).removeprefix("torch.") not in ("bfloat16", "float16") or not torch.cuda.is_available():
        return None
    return "flash_attention_2" if importlib.util.find_spec("flash_attn") else None


def load_model(path: str | Path, dtype: torch.dtype | str = torch.float32, **kwargs):
    """Load a Qwen2.5-VL model with `from_pretrained` (tiny folder, 7B folder or hub name); flash-attn
    where `attn_implementation` finds it, unless the caller names an implementation."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    if "attn_implementation" not in kwargs and (impl := attn_implementation(dtype)):
        kwargs["attn_implementation"] = impl
    return Qwen2_5_VLForConditionalGeneration.from_pretrained(str(path), dtype=dtype, **kwargs)


def build_config(size: TinySize, tokenizer):
    from transformers import Qwen2_5_VLConfig

    head_dim = size.text_hidden // size.text_heads
    half = head_dim // 2
    # mrope splits the rotary half-dim into (temporal, height, width) sections that sum to head_dim/2
    t = half // 4
    h = (half - t) // 2
    mrope = [t, h, half - t - h]
    ids = tokenizer.convert_tokens_to_ids
    return Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=size.text_hidden,
            intermediate_size=size.text_intermediate, num_hidden_layers=size.text_layers,
            num_attention_heads=size.text_heads, num_key_value_heads=size.text_kv_heads,
            max_position_embeddings=size.max_position_embeddings, max_window_layers=size.text_layers,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope},
            bos_token_id=ids("<|endoftext|>"), eos_token_id=ids("<|im_end|>"),
            pad_token_id=ids("<|endoftext|>"), tie_word_embeddings=size.tie_word_embeddings,
        ),
        vision_config=dict(
            depth=size.vision_depth, hidden_size=size.vision_hidden, num_heads=size.vision_heads,
            intermediate_size=size.vision_intermediate, out_hidden_size=size.text_hidden,
            patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
            fullatt_block_indexes=[size.vision_depth - 1],
        ),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=size.tie_word_embeddings,
    )


def build_tiny(out_dir: str | Path, size: str = "test", seed: int = 0,
               min_pixels: int = 28 * 28 * 4, max_pixels: int = 28 * 28 * 64, spec: TinySize | None = None,
               dtype: torch.dtype = torch.float32) -> Path:
    """Build a random-init tiny Qwen2.5-VL and save model, tokenizer and processor to `out_dir`.

    Deterministic by `seed`: the same arguments give bit-identical weights. Returns `out_dir`.

    >>> import tempfile
    >>> p = build_tiny(tempfile.mkdtemp(), size="test")
    >>> n_params(load_model(p)) < 1_000_000
    True
    """
    from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessorPil

    if spec is None and size not in SIZES:
        raise ValueError(f"unknown tiny model size {size!r}; choose one of {sorted(SIZES)}")
    spec = spec or SIZES[size]  # `spec`: any shape, e.g. a real size's for speed (bench/gpu_check.py)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # the nano tokenizer (at most 2,048 pieces); a larger spec.vocab_size widens the embeddings and
    # LM head to a real size's, with the extra rows never produced by the tokenizer
    tokenizer = train_tokenizer(tokenizer_corpus(), min(spec.vocab_size, 2048))
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=14, merge_size=2, temporal_patch_size=2, min_pixels=min_pixels, max_pixels=max_pixels
    )
    processor = make_processor_class()(image_processor=image_processor, tokenizer=tokenizer,
                                       chat_template=CHAT_TEMPLATE)
    config = build_config(spec, tokenizer)
    if spec.vocab_size > 2048:  # a real size (the tiny sizes keep the trained vocabulary)
        config.text_config.vocab_size = config.vocab_size = spec.vocab_size
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).to(dtype)
    model.generation_config.eos_token_id = [tokenizer.convert_tokens_to_ids("<|im_end|>"),
                                            tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.do_sample = False
    model.save_pretrained(out)
    processor.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "tiny_model.json").write_text(json.dumps({"size": size, "seed": seed, **asdict(spec),
                                                      "params": n_params(model)}, indent=2))
    return out


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def folder_size_mb(path: str | Path) -> float:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2**20


def main(argv: list[str] | None = None) -> int:
    """`python -m visionr1 build-tiny OUT [--size test|nano] [--seed N]`"""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m visionr1 build-tiny",
                                 description="Build a random-init tiny Qwen2.5-VL offline.")
    ap.add_argument("out", help="folder to write (model, tokenizer, processor)")
    ap.add_argument("--size", default="test", choices=sorted(SIZES))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    out = build_tiny(args.out, size=args.size, seed=args.seed)
    built = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = load_model(out)
    load_processor(out)
    loaded = time.perf_counter() - t0
    print(f"{out}: {args.size} Qwen2.5-VL, {n_params(model):,} parameters, "
          f"{folder_size_mb(out):.1f} MB on disk; built in {built:.1f} s, loaded in {loaded:.2f} s")
    return 0
