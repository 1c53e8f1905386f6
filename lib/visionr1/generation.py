"""Batched generation with HF transformers for the nano stages (CPU or one GPU), and the format /
accuracy figures of a set of responses graded with visionr1.grading."""

from __future__ import annotations

import torch

from visionr1 import backends, compat, grading, training


# the R1-Zero system prompt (rl_system_prompt: r1-zero; docs/recipe.md §4)
R1_ZERO_SYSTEM_PROMPT = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The "
    "assistant first thinks about the reasoning process in the mind and then provides the user with the answer. "
    "The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
    "respectively, i.e., <think> reasoning process here </think><answer> answer here </answer>.")


def chat_prompt(processor, question: str, system: str | None = None, image: bool = True) -> str:
    """The chat-template text of one image + question turn (the model's default system prompt
    unless `system` is given; no image placeholder with `image=False`)."""
    return processor.apply_chat_template(backends.template_messages(question, system, image),
                                         add_generation_prompt=True, tokenize=False)


@torch.no_grad()
def generate(model, processor, images: list, questions: list[str], max_new_tokens: int = 256,
             batch_size: int = 32, temperature: float = 0.0, top_p: float = 1.0, system: str | None = None,
             progress: bool = False, desc: str = "generating") -> list[str]:
    """Responses to (image, question) pairs; greedy when temperature is 0. `progress` shows
    `desc` with samples done, rate and ETA (visionr1.training.progress)."""
    compat.sdpa_gqa_without_grad()
    compat.kv_cache_in_place_without_grad()
    model.eval()
    tok = processor.tokenizer
    side = tok.padding_side
    tok.padding_side = "left"
    out: list[str] = []
    bar = training.progress(len(questions), desc, unit="sample", disable=not progress)
    try:
        for i in range(0, len(questions), batch_size):
            enc = processor(text=[chat_prompt(processor, q, system) for q in questions[i:i + batch_size]],
                            images=images[i:i + batch_size], return_tensors="pt", padding=True)
            enc = enc.to(model.device)
            kw = {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {"do_sample": False}
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, **kw)
            out += tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            bar.update(len(questions[i:i + batch_size]))
    finally:
        bar.close()
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


def evaluate_models(models: dict[str, str], samples: list, max_new_tokens: int, progress: bool = True) -> dict:
    """Each named model answers the same nano samples (greedy): `<name>_format_rate`,
    `<name>_accuracy` and `<name>_responses`, plus the chance level."""
    from visionr1 import nano_task, tiny_model

    imgs, qs = [s.image for s in samples], [s.question for s in samples]
    golds, choices = [s.answer for s in samples], [s.choices for s in samples]
    out = {"eval_samples": len(samples), "chance_accuracy": round(nano_task.chance_accuracy(samples), 4)}
    for name, path in models.items():
        resp = generate(tiny_model.load_model(path), tiny_model.load_processor(path), imgs, qs,
                        max_new_tokens=max_new_tokens, progress=progress, desc=f"answering ({name})")
        sc = score(resp, golds, choices)
        out[f"{name}_responses"] = resp
        out[f"{name}_format_rate"] = round(sc["format_rate"], 4)
        out[f"{name}_accuracy"] = round(sc["accuracy"], 4)
    return out


def compare_on_samples(ci_path: str, base_path: str, samples: list, max_new_tokens: int) -> dict:
    """The CI model and its base answer the same nano samples (greedy)."""
    return evaluate_models({"ci": ci_path, "base": base_path}, samples, max_new_tokens)
