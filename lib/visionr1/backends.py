"""Where generation backends are built: a local HF transformers model, vLLM's offline engine, and
a client for any OpenAI-compatible endpoint (`vllm serve`, `python -m visionr1 serve`, a hosted
API); and the messages they read. Used by evaluate (04's responders), infer (the CLI), teachers
(01's bridging teachers) and generation (the nano stages' batched generate).

A turn is one image + question after an optional system prompt, in one of two forms, because
two kinds of reader take it:

  template_messages  an HF processor's chat template: the image is a `{"type": "image"}`
                     placeholder, its pixels go to the processor apart (which expands the
                     placeholder into image tokens)
  chat_messages      the chat-completions API (an OpenAI-compatible server; vLLM's `LLM.chat`):
                     the image travels inside the message, as a PNG data URL or, for the
                     in-process vLLM engine, as the PIL image itself
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

from PIL import Image

PNG_MODES = ("1", "L", "LA", "I", "P", "RGB", "RGBA")  # modes PIL writes to PNG as they are


def image_data_url(image) -> str:
    """A PIL image (or an image file path) as a `data:image/png;base64,...` URL.

    >>> image_data_url(Image.new("RGB", (1, 1)))[:30]
    'data:image/png;base64,iVBORw0K'
    """
    if isinstance(image, (str, Path)):
        with Image.open(image) as im:
            im.load()
            image = im.copy()
    if image.mode not in PNG_MODES:
        image = image.convert("RGB")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# ---------------------------------------------------------------------------------------------
# The two message forms, side by side
# ---------------------------------------------------------------------------------------------
def chat_messages(question: str, image=None, system: str | None = None, pil: bool = False) -> list[dict]:
    """One turn as chat-completions messages: the system prompt (if any), then the user's image
    (if any) and question. The image is a PNG data URL (`image_url`, what a server reads), or with
    `pil=True` vLLM's `image_pil` part (`LLM.chat` in this process takes the PIL image as it is).

    >>> chat_messages("How many?", system="Think first.")
    [{'role': 'system', 'content': 'Think first.'}, {'role': 'user', 'content': [{'type': 'text', 'text': 'How many?'}]}]
    >>> chat_messages("How many?", Image.new("RGB", (1, 1)))[0]["content"][0]["image_url"]["url"][:22]
    'data:image/png;base64,'
    """
    content = []
    if image is not None:
        content.append({"type": "image_pil", "image_pil": image} if pil else
                       {"type": "image_url", "image_url": {"url": image_data_url(image)}})
    content.append({"type": "text", "text": question})
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": content}]


def template_messages(question: str, system: str | None = None, image: bool = True) -> list[dict]:
    """The same turn for an HF processor's `apply_chat_template`: an image placeholder instead of
    the image, and the system prompt as a list of text parts (the model's default one if None).

    >>> template_messages("How many?")
    [{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text', 'text': 'How many?'}]}]
    >>> template_messages("How many?", system="Think first.", image=False)[0]
    {'role': 'system', 'content': [{'type': 'text', 'text': 'Think first.'}]}
    """
    content = ([{"type": "image"}] if image else []) + [{"type": "text", "text": question}]
    return ([{"role": "system", "content": [{"type": "text", "text": system}]}] if system else []) + [
        {"role": "user", "content": content}]


# ---------------------------------------------------------------------------------------------
# The backends
# ---------------------------------------------------------------------------------------------
def openai_client(base_url: str | None, api_key_env: str = "OPENAI_API_KEY", timeout: float = 600.0,
                  max_retries: int = 5):
    """An `openai.OpenAI` client for `base_url` (None: the hosted api.openai.com), its key read from
    the environment variable `api_key_env`; unset, the key is "EMPTY" (vLLM accepts any key unless
    started with --api-key), except for the hosted API, which needs a real one.

    Retries and timeouts are the client's own: it retries 408/409/429/5xx, connection errors and
    timeouts with exponential backoff (0.5 s doubling, capped at 8 s, minus up to 25% jitter), or
    waits what a `retry-after-ms` / `retry-after` header asks (up to 2 minutes); what survives the
    retries propagates as the openai exception. One client may be shared by many threads (it is
    one httpx connection pool).
    """
    import openai

    api_key = os.environ.get(api_key_env) or None
    if api_key is None:
        if base_url is None:
            raise ValueError(f"base_url is None, which means the hosted OpenAI API, but the environment variable "
                             f"{api_key_env} is unset; export it, or set base_url to your vLLM server "
                             f"(e.g. http://localhost:8000/v1)")
        api_key = "EMPTY"
    return openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=max_retries, timeout=timeout)


def hf_model(model_path: str, device: str | None = None, flash_attn: bool = False, **processor_kw):
    """A transformers Qwen2.5-VL model and its processor (a folder or hub name), ready to generate:
    on `device` (None: the GPU when there is one), bf16 on a GPU and float32 on CPU; flash_attention_2
    when flash-attn is installed on a GPU (tiny_model.attn_implementation), and `flash_attn` insists on
    it (an error where it is missing). `processor_kw` goes to the processor (e.g. min/max_pixels)."""
    import torch

    from visionr1 import tiny_model

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    kw = {"attn_implementation": "flash_attention_2"} if flash_attn else {}
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    model = tiny_model.load_model(model_path, dtype=dtype, **kw).to(device)
    return model, tiny_model.load_processor(model_path, **processor_kw)


def vllm_engine(model_path: str, tensor_parallel: int = 1, max_model_len: int | None = None,
                mm_processor_kwargs: dict | None = None):
    """vLLM's offline engine (GPU boxes, requirements-gpu.txt): bf16, one image per prompt;
    `max_model_len` None takes the model's own; `mm_processor_kwargs` e.g. min/max_pixels."""
    from vllm import LLM

    kw = {"max_model_len": max_model_len} if max_model_len is not None else {}
    if mm_processor_kwargs is not None:
        kw["mm_processor_kwargs"] = mm_processor_kwargs
    return LLM(model=model_path, dtype="bfloat16", tensor_parallel_size=tensor_parallel,
               limit_mm_per_prompt={"image": 1}, **kw)
