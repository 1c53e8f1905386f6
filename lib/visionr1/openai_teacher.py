"""The OpenAI-compatible teacher for modality bridging (docs/recipe.md §1) at real scale.

The paper ran its bridging teachers (Qwen2.5-VL-72B for the pseudo-CoT and the description,
DeepSeek-R1 for the long CoT) on 128 GPUs. Here the same three steps go over HTTP to whatever
speaks the chat-completions API: `vllm serve Qwen/Qwen2.5-VL-72B-Instruct` on the 8-GPU box, a
second `vllm serve` with a reasoning parser for the text reasoner, or a hosted API. One request
per step: the image (when the step has one) as a PNG data URL, then the filled prompt.

Retries and timeouts are the openai client's own (`OpenAI(max_retries=..., timeout=...)`): it
retries 408/409/429/5xx, connection errors and timeouts with exponential backoff (0.5 s doubling,
capped at 8 s, minus up to 25% jitter), or waits what a `retry-after-ms` / `retry-after` header
asks (up to 2 minutes). What survives the retries propagates as the openai exception; the caller
records the failed row. One client is shared by the caller's `concurrency` worker threads (an
`openai.OpenAI` client is thread-safe: one httpx connection pool).

Reasoning servers (vLLM with `--reasoning-parser deepseek_r1`, the DeepSeek API) return the
thinking in `message.reasoning_content` (or `reasoning`) apart from the answer; the teacher glues
it back as `<think>{reasoning}</think>{content}`, the R1 form the CoT filter expects.
"""

from __future__ import annotations

import base64
import io
import os
import time
from pathlib import Path

from PIL import Image

from visionr1.teachers import Reply, Teacher

PNG_MODES = ("1", "L", "LA", "I", "P", "RGB", "RGBA")  # modes PIL writes to PNG as they are


def image_data_url(image) -> str:
    """A PIL image (or an image file path) as a `data:image/png;base64,...` URL."""
    if isinstance(image, (str, Path)):
        with Image.open(image) as im:
            im.load()
            image = im.copy()
    if image.mode not in PNG_MODES:
        image = image.convert("RGB")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class OpenAITeacher(Teacher):
    """One chat-completions request per bridging step, against `base_url` (None: api.openai.com)."""

    name = "openai"

    def __init__(self, base_url: str | None, model: str, api_key_env: str = "OPENAI_API_KEY",
                 timeout_s: float = 600.0, max_retries: int = 5, max_tokens: int = 4096,
                 temperature: float = 0.6, concurrency: int = 16):
        import openai

        if not model:
            raise ValueError("the openai teacher needs a model name (the one `vllm serve` or the API serves)")
        api_key = os.environ.get(api_key_env) or None
        if api_key is None:
            if base_url is None:
                raise ValueError(f"the openai teacher talks to the hosted OpenAI API (base_url is None) but the "
                                 f"environment variable {api_key_env} is unset; export it, or set base_url to "
                                 f"your vLLM server (e.g. http://localhost:8000/v1)")
            api_key = "EMPTY"  # vLLM accepts any key unless started with --api-key
        if concurrency < 1:
            raise ValueError(f"openai teacher concurrency must be >= 1, got {concurrency}")
        self.base_url = base_url
        self.model = model
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.concurrency = concurrency  # the caller runs this many requests at once, sharing self.client
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=max_retries, timeout=timeout_s)

    def complete(self, step: str, prompt: str, image=None, row: dict | None = None) -> Reply:
        content = []
        if image is not None:
            content.append({"type": "image_url", "image_url": {"url": image_data_url(image)}})
        content.append({"type": "text", "text": prompt})
        t0 = time.perf_counter()
        resp = self.client.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": content}],
            max_tokens=self.max_tokens, temperature=self.temperature)
        latency = time.perf_counter() - t0  # includes the client's retries and backoff
        choice = resp.choices[0]
        text = choice.message.content or ""
        reasoning = self._reasoning(choice.message)
        if reasoning:
            text = f"<think>{reasoning}</think>{text}"
        usage = resp.usage.model_dump() if resp.usage is not None else None
        return Reply(text=text, truncated=choice.finish_reason == "length",
                     meta={"usage": usage, "latency_s": round(latency, 4), "finish_reason": choice.finish_reason})

    @staticmethod
    def _reasoning(message) -> str:
        """The separately returned thinking, if the server has a reasoning parser; else ''."""
        for key in ("reasoning_content", "reasoning"):
            value = getattr(message, key, None)
            if isinstance(value, str) and value.strip():
                return value
        return ""
