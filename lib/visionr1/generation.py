"""Batched generation with HF transformers for the nano stages (CPU or one GPU), and the format /
accuracy figures of a set of responses graded with visionr1.grading."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from visionr1 import grading


def chat_prompt(processor, question: str, system: str | None = None) -> str:
    """The chat-template text of one image + question turn (the model's default system prompt
    unless `system` is given)."""
    msgs = ([{"role": "system", "content": [{"type": "text", "text": system}]}] if system else [])
    msgs.append({"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]})
    return processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)


@torch.no_grad()
def generate(model, processor, images: list, questions: list[str], max_new_tokens: int = 256,
             batch_size: int = 32, temperature: float = 0.0, top_p: float = 1.0, system: str | None = None,
             progress: bool = False) -> list[str]:
    """Responses to (image, question) pairs; greedy when temperature is 0."""
    model.eval()
    tok = processor.tokenizer
    side = tok.padding_side
    tok.padding_side = "left"
    out: list[str] = []
    try:
        for i in tqdm(range(0, len(questions), batch_size), desc="generating", disable=not progress):
            enc = processor(text=[chat_prompt(processor, q, system) for q in questions[i:i + batch_size]],
                            images=images[i:i + batch_size], return_tensors="pt", padding=True)
            enc = enc.to(model.device)
            kw = {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {"do_sample": False}
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, **kw)
            out += tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        tok.padding_side = side
    return out


def score(responses: list[str], golds: list[str], choices: list[list[str] | None], block_only: bool = False) -> dict:
    """format_rate (the strict <think><answer> format) and accuracy (the final answer, read from the
    answer block when there is one, else from the text, graded against gold)."""
    grades = [grading.grade(r, g, choices=c, block_only=block_only) for r, g, c in zip(responses, golds, choices)]
    n = max(1, len(grades))
    return {"format_rate": sum(g.format_ok for g in grades) / n,
            "accuracy": sum(bool(g.correct) for g in grades) / n,
            "verdicts": [bool(g.correct) for g in grades], "formats": [g.format_ok for g in grades]}
