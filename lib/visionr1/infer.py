"""Inference with a trained model: one image + prompt, tokens streamed to the terminal; and an
OpenAI-compatible vLLM server with the seed repository's flags.

    python -m visionr1 infer --model PATH --image IMG --prompt TEXT [--backend hf|vllm]
    python -m visionr1 serve --model PATH [--port 8000] [--dry-run]

Defaults follow the paper's sampling (docs/recipe.md §5): temperature 0.6, top_p 0.95. On CPU it runs the
nano models with HF transformers; `--backend vllm` uses vLLM's offline engine (GPU boxes).
A client for the server (visionr1.backends builds the `openai` client and the messages):

    from visionr1 import backends
    client = backends.openai_client("http://localhost:8000/v1")  # key "EMPTY" unless OPENAI_API_KEY is set
    client.chat.completions.create(model="vision-r1", temperature=0.6, top_p=0.95,
        messages=backends.chat_messages("How many red circles are there?", "scene.png"))

With the bare `openai` package it is `OpenAI(base_url=..., api_key="EMPTY")` and a user message whose
content is an `image_url` part (a `data:image/png;base64,...` URL), then a `text` part.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import threading


def _args(prog: str, serve: bool = False) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog)
    ap.add_argument("--model", required=True, help="model folder or hub name")
    if serve:
        ap.add_argument("--port", type=int, default=8000)
        ap.add_argument("--served-model-name", default="vision-r1")
        ap.add_argument("--max-images", type=int, default=5, help="images per prompt (--limit-mm-per-prompt)")
        ap.add_argument("--max-model-len", type=int, default=32768)
        ap.add_argument("--tensor-parallel-size", type=int, default=1)
        ap.add_argument("--dry-run", action="store_true", help="print the vllm command instead of running it")
        return ap
    ap.add_argument("--image", required=True)
    ap.add_argument("--prompt", required=True)
    ap.add_argument("--system", default=None, help="system prompt (default: the model's own)")
    ap.add_argument("--temperature", type=float, default=0.6)
    ap.add_argument("--top-p", type=float, default=0.95)
    ap.add_argument("--max-new-tokens", type=int, default=4096)
    ap.add_argument("--flash-attn", action="store_true", help="attn_implementation=flash_attention_2 (GPU)")
    ap.add_argument("--backend", choices=("hf", "vllm"), default="hf")
    return ap


def infer_hf(a, out=sys.stdout) -> str:
    from PIL import Image
    from transformers import TextIteratorStreamer

    from visionr1 import backends, generation

    model, processor = backends.hf_model(a.model, flash_attn=a.flash_attn)
    image = Image.open(a.image).convert("RGB")
    enc = processor(text=[generation.chat_prompt(processor, a.prompt, a.system)], images=[image],
                    return_tensors="pt").to(model.device)
    streamer = TextIteratorStreamer(processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
    sampling = ({"do_sample": True, "temperature": a.temperature, "top_p": a.top_p} if a.temperature > 0
                else {"do_sample": False})
    worker = threading.Thread(target=model.generate, kwargs={**enc, "streamer": streamer,
                                                             "max_new_tokens": a.max_new_tokens, **sampling})
    worker.start()
    text = []
    for piece in streamer:  # tokens as they are generated
        out.write(piece)
        out.flush()
        text.append(piece)
    worker.join()
    out.write("\n")
    return "".join(text)


def infer_vllm(a, out=sys.stdout) -> str:
    from PIL import Image
    from vllm import SamplingParams  # GPU boxes only (requirements-gpu.txt)

    from visionr1 import backends

    llm = backends.vllm_engine(a.model)
    msgs = backends.chat_messages(a.prompt, Image.open(a.image).convert("RGB"), a.system, pil=True)
    res = llm.chat(msgs, SamplingParams(temperature=a.temperature, top_p=a.top_p, max_tokens=a.max_new_tokens))
    text = res[0].outputs[0].text
    out.write(text + "\n")
    return text


def serve_command(a) -> list[str]:
    """`vllm serve` with the seed's flags: bf16, an image limit per prompt, a served model name."""
    return ["vllm", "serve", a.model, "--dtype", "bfloat16", "--port", str(a.port),
            "--served-model-name", a.served_model_name, "--limit-mm-per-prompt", json.dumps({"image": a.max_images}),
            "--max-model-len", str(a.max_model_len), "--tensor-parallel-size", str(a.tensor_parallel_size)]


def main(argv: list[str] | None = None) -> int:
    a = _args("python -m visionr1 infer").parse_args(argv)
    if not os.path.exists(a.image):
        print(f"image not found: {a.image}", file=sys.stderr)
        return 2
    (infer_vllm if a.backend == "vllm" else infer_hf)(a)
    return 0


def serve_main(argv: list[str] | None = None) -> int:
    a = _args("python -m visionr1 serve", serve=True).parse_args(argv)
    cmd = serve_command(a)
    if a.dry_run:
        print(shlex.join(cmd))
        return 0
    os.execvp(cmd[0], cmd)
    return 0
