"""The nano base model: a stand-in for Qwen2.5-VL-7B-Instruct, which can already see and answer.

The real recipe starts from an instruct model; the nano run starts from the nano-size tiny model
after a short pretraining on the nano task's images with captions and direct short answers (no
chain of thought). Seeing is the hard part on CPU (docs/platform.md, "Teaching a tiny model to see"),
so the pretraining leans on what made it learnable there:
  - every shape fills its 28-pixel cell, so one merged vision token is one cell;
  - a cell-by-cell caption ("Row 1: red circle, empty, ...") supervises every vision token;
  - a count caption puts the digit right after the attribute word ("red3 green0 ...");
  - a curriculum: captions and one-step questions first, then every question type.

The loop is written by hand rather than with TRL's SFTTrainer: it trains a stand-in for a model the
real recipe downloads, and all nano images have one size, so batches are pre-tokenized fixed-shape
tensors (about 1.4x faster per step than the trainer's collator path on 2 cores). The recipe's own
SFT stage uses TRL. The result is cached under a key of its params, so later runs reuse it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from visionr1 import generation, nano_task, tiny_model, training

RECIPE_VERSION = 3  # bump when the pretraining code changes, so cached models are rebuilt
CAPTION_PROMPT = "Describe the image."
COUNT_PROMPT = "Count the shapes by colour and shape."


# fields added after bases were cached, at the value every earlier base was pretrained with
LATER_FIELDS = {"arithmetic_fraction": 0.0, "options_fraction": 0.0, "tagged_fraction": 0.0, "direct_max_level": 3}


@dataclass(frozen=True)
class BaseParams:
    """Everything the nano base model depends on (its cache key)."""

    seed: int = 0
    size: str = "nano"
    n_scenes: int = 6000
    steps: int = 3000
    batch_size: int = 16
    lr: float = 1e-3
    warmup_steps: int = 50
    curriculum_fraction: float = 0.3  # share of steps on captions + one-step questions only
    caption_fraction: float = 0.5     # share of scenes that also get a caption or count caption
    questions_per_scene: int = 3      # direct questions asked about each scene
    grid: int = 3
    mc_fraction: float = 0.5
    # arithmetic drills ("Work out 2×3+4." -> "2×3=6. 6+4=10."), as many as this share of the scenes:
    # the steps of the oracle's "steps" CoTs (teachers.OracleTeacher), learned before any CoT is seen
    arithmetic_fraction: float = 0.0
    # option-lookup drills ("Which option is 6?" + choices -> "(A) 7, no. (B) 9, no. (C) 6, yes."),
    # as many as this share of the scenes: the option walk of the "steps" CoTs, which the CI model
    # could not copy from the question (the options it restated were wrong 3 times in 4; docs/results.md)
    options_fraction: float = 0.0
    # share of direct questions asked under the R1-Zero system prompt and answered in its tags, the
    # count caption as the thinking ("<think> red3 green0 ... </think><answer> 3 </answer>"): an
    # instruct model follows a format it is asked for, so Vision-R1-Zero has a reward to start from
    tagged_fraction: float = 0.0
    # the highest question level (nano_task.QUESTION_TYPES) asked with a direct answer; at 2 the base
    # never sees a three-step question answered, as a general base model meets a problem that needs
    # steps: its direct answer there has room for a chain of thought to win (captions are kept)
    direct_max_level: int = 3
    # torch's intra-op threads: on some CPUs 1 and 2 threads round differently and pretrain another
    # model (docs/results.md), so a run at one count never reuses a base pretrained at another
    threads: int = field(default_factory=torch.get_num_threads)

    def key(self) -> str:
        fields = asdict(self)
        for later, old in LATER_FIELDS.items():  # added later: bases pretrained without keep their key
            if fields[later] == old:
                del fields[later]
        blob = json.dumps({"version": RECIPE_VERSION, **fields}, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]


class Encoded:
    """Pre-tokenized examples: ids, answer start, image-token types, and each scene's pixels
    (computed once per scene and shared by every example about it)."""

    def __init__(self, processor, examples: list[tuple[nano_task.Sample, str, str]]):
        tok = processor.tokenizer
        end = tok.convert_tokens_to_ids("<|im_end|>")
        pad_id = tok.convert_tokens_to_ids("<|image_pad|>")
        merge = processor.image_processor.merge_size ** 2
        self.ids: list[list[int]] = []
        self.n_prompt: list[int] = []
        self.level: list[int] = []
        self.scene_of: list[int] = []
        scene_index: dict[str, int] = {}
        pix = []
        grid_thw = None
        for sample, prompt, target, *extra in examples:  # extra: (system prompt, curriculum level)
            system = extra[0] if extra else None
            key = sample.scene.key
            if key not in scene_index:
                enc = processor.image_processor(images=[sample.image], return_tensors="pt")
                scene_index[key] = len(pix)
                pix.append(enc["pixel_values"])
                grid_thw = enc["image_grid_thw"]
            n_img = int(grid_thw.prod()) // merge
            text = generation.chat_prompt(processor, prompt, system).replace("<|image_pad|>", "<|image_pad|>" * n_img)
            p = tok(text, add_special_tokens=False)["input_ids"]
            t = tok(target, add_special_tokens=False)["input_ids"] + [end]
            self.ids.append(p + t)
            self.n_prompt.append(len(p))
            self.level.append(extra[1] if len(extra) > 1 else sample.level if prompt == sample.question else 0)
            self.scene_of.append(scene_index[key])
        self.pixel_values = torch.stack(pix)  # (scenes, patches, patch_dim): one image size for all
        self.grid_thw = grid_thw
        self.pad = tok.pad_token_id
        self.image_token = pad_id

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, idx: list[int]) -> dict:
        n = max(len(self.ids[i]) for i in idx)
        ids = torch.full((len(idx), n), self.pad)
        labels = torch.full((len(idx), n), -100)
        mask = torch.zeros((len(idx), n), dtype=torch.long)
        for row, i in enumerate(idx):
            seq = torch.tensor(self.ids[i])
            ids[row, :len(seq)] = seq
            mask[row, :len(seq)] = 1
            labels[row, self.n_prompt[i]:len(seq)] = seq[self.n_prompt[i]:]
        # 1 at image tokens: without it Qwen2.5-VL trains on 1-D text positions while
        # generate() uses 3-D mrope positions, and what was learned does not transfer
        mm = (ids == self.image_token).long()
        scenes = [self.scene_of[i] for i in idx]
        return {"input_ids": ids, "attention_mask": mask, "labels": labels, "mm_token_type_ids": mm,
                "pixel_values": self.pixel_values[scenes].flatten(0, 1),
                "image_grid_thw": self.grid_thw.repeat(len(idx), 1)}


def pretrain_examples(samples: list[nano_task.Sample], rng: random.Random, caption_fraction: float,
                      questions_per_scene: int, mc_fraction: float) -> list[tuple]:
    """(sample, prompt, target) examples: per scene, `questions_per_scene` direct short answers
    and, with probability `caption_fraction`, a caption or a count caption."""
    out = []
    for s in samples:
        if rng.random() < caption_fraction:
            if rng.random() < 0.5:
                out.append((s, CAPTION_PROMPT, s.scene.caption()))
            else:
                out.append((s, COUNT_PROMPT, s.scene.count_caption()))
        for q in [s] + nano_task.more_questions(rng, s, questions_per_scene - 1, mc_fraction):
            out.append((q, q.question, nano_task.direct_answer(q)))
    return out


def up_to_level(examples: list[tuple], max_level: int) -> list[tuple]:
    """The examples without the direct questions above `max_level`; captions are kept."""
    return [e for e in examples if e[1] != e[0].question or e[0].level <= max_level]


ARITHMETIC_PROMPT = "Work out {}."


def arithmetic_drill(rng: random.Random) -> tuple[str, str]:
    """One (prompt, target) arithmetic drill over the numbers nano questions combine, written exactly
    as the oracle's "steps" CoTs write their arithmetic (nano_task.arithmetic_steps)."""
    arithmetic_steps = nano_task.arithmetic_steps
    kind = rng.choice(("times_plus", "plus", "minus"))
    if kind == "times_plus":
        k, a, b = rng.choice((2, 3)), rng.randint(0, 9), rng.randint(0, 9)
        return ARITHMETIC_PROMPT.format(f"{k}×{a}+{b}"), arithmetic_steps("times_plus", [a, b], k)
    a, b = rng.randint(0, 9), rng.randint(0, 9)
    if kind == "minus":
        a, b = max(a, b), min(a, b)
        return ARITHMETIC_PROMPT.format(f"{a}-{b}"), arithmetic_steps("minus", [a, b])
    return ARITHMETIC_PROMPT.format(f"{a}+{b}"), arithmetic_steps("plus", [a, b])


OPTIONS_PROMPT = "Which option is {}?\nChoices: {}"


def option_drill(rng: random.Random) -> tuple[str, str]:
    """One (prompt, target) option lookup: four distinct options of nano answer size, the value
    asked for among them 9 times in 10 (else the walk says no to all four)."""
    options = rng.sample(range(0, 13), 4)
    value = rng.choice(options) if rng.random() < 0.9 else rng.choice([v for v in range(0, 13) if v not in options])
    choices = [str(o) for o in options]
    listed = " ".join(f"({nano_task.LETTERS[i]}) {c}" for i, c in enumerate(choices))
    return OPTIONS_PROMPT.format(value, listed), nano_task.option_walk(choices, value)


def option_examples(samples: list[nano_task.Sample], fraction: float, seed: int) -> list[tuple]:
    """round(fraction x len(samples)) option-lookup drills, as `arithmetic_examples` places them."""
    rng = random.Random(f"{seed}:options")
    return [(samples[i % len(samples)], *option_drill(rng), None, 3) for i in range(round(fraction * len(samples)))]


def arithmetic_examples(samples: list[nano_task.Sample], fraction: float, seed: int) -> list[tuple]:
    """round(fraction x len(samples)) drills, each shown with one of the scenes' images (the drill
    ignores it; every pretraining example has one image size), at curriculum level 3: they join
    after the captions and one-step questions (measured: drills from the first step, half as many
    as the scenes, left the base at 1.76x chance instead of 2.6x). Own random stream: the other
    examples and their order are the same with and without drills."""
    rng = random.Random(f"{seed}:arithmetic")
    return [(samples[i % len(samples)], *arithmetic_drill(rng), None, 3) for i in range(round(fraction * len(samples)))]


def tagged_examples(examples: list[tuple], fraction: float, seed: int) -> list[tuple]:
    """`examples` with about `fraction` of the direct questions asked under the R1-Zero system prompt
    and answered in its tags, the count caption as the thinking. Own random stream: at 0 the
    examples are returned unchanged."""
    rng = random.Random(f"{seed}:tagged")
    out = []
    for ex in examples:
        s, prompt, target = ex[:3]
        if fraction and prompt == s.question and rng.random() < fraction:
            ex = (s, prompt, f"<think> {s.scene.count_caption()} </think><answer> {target} </answer>",
                  generation.R1_ZERO_SYSTEM_PROMPT)
        out.append(ex)
    return out


def direct_answers(model, processor, samples: list[nano_task.Sample], batch_size: int = 64,
                   max_new_tokens: int = 6, progress: bool = False, blank: bool = False) -> list[str]:
    """Greedy short answers to each sample's question (no chain of thought). `blank=True` shows
    a white image instead (the control: a model that reads the image falls to chance)."""
    images = [_blank(s.image) if blank else s.image for s in samples]
    out = generation.generate(model, processor, images, [s.question for s in samples], max_new_tokens=max_new_tokens,
                              batch_size=batch_size, progress=progress)
    return [t.strip() for t in out]


def _blank(img):
    from PIL import Image

    return Image.new("RGB", img.size, (255, 255, 255))


def direct_accuracy(model, processor, samples: list[nano_task.Sample], **kw) -> dict:
    """Accuracy of direct answers (`nano_task.grade_direct`), overall and per question type."""
    preds = direct_answers(model, processor, samples, **kw)
    hits = [nano_task.grade_direct(s, p) for p, s in zip(preds, samples)]
    per_type: dict[str, list[bool]] = {}
    for h, s in zip(hits, samples):
        per_type.setdefault(s.qtype, []).append(h)
    return {"accuracy": sum(hits) / len(hits),
            "per_type": {k: round(sum(v) / len(v), 4) for k, v in sorted(per_type.items())},
            "predictions": preds}


def pretrain(out_dir: str | Path, params: BaseParams, eval_samples: list[nano_task.Sample] | None = None,
             exclude: set[str] | None = None, eval_every: int = 0, progress: bool = True,
             log=print) -> dict:
    """Build the nano-size tiny model and pretrain it; save to `out_dir`. Returns a summary."""
    out = Path(out_dir)
    torch.manual_seed(params.seed)
    rng = random.Random(params.seed)
    tiny_model.build_tiny(out, size=params.size, seed=params.seed)
    model = tiny_model.load_model(out)
    processor = tiny_model.load_processor(out)
    t0 = time.perf_counter()
    scenes = nano_task.generate(params.n_scenes, params.seed, "pretrain", (1, 1, 1), params.mc_fraction,
                                params.grid, exclude=exclude)
    examples = pretrain_examples(scenes, rng, params.caption_fraction, params.questions_per_scene, params.mc_fraction)
    examples = up_to_level(examples, params.direct_max_level)
    data = Encoded(processor, tagged_examples(examples, params.tagged_fraction, params.seed)
                   + arithmetic_examples(scenes, params.arithmetic_fraction, params.seed)
                   + option_examples(scenes, params.options_fraction, params.seed))
    easy = [i for i in range(len(data)) if data.level[i] <= 1]
    log(f"pretraining data: {len(data)} examples ({len(easy)} captions or one-step) "
        f"encoded in {time.perf_counter() - t0:.1f} s")

    opt = torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=0.01)
    warm, total = params.warmup_steps, params.steps
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))
    history = []
    model.train()
    t0 = time.perf_counter()
    bar = training.progress(total, "nano base pretraining", disable=not progress, mininterval=2)
    for step in range(total):
        pool = easy if step < params.curriculum_fraction * total else range(len(data))
        idx = rng.sample(pool, params.batch_size) if len(pool) >= params.batch_size else list(pool)
        loss = model(**data.batch(idx)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if step % 50 == 0 or step == total - 1:
            bar.set_postfix(loss=f"{loss.item():.3f}")
            history.append({"step": step, "loss": round(loss.item(), 4), "lr": sched.get_last_lr()[0],
                            "elapsed_s": round(time.perf_counter() - t0, 1)})
        if eval_every and eval_samples and step and step % eval_every == 0:
            acc = direct_accuracy(model, processor, eval_samples)
            log(f"step {step}: direct accuracy {acc['accuracy']:.3f} {acc['per_type']}")
            model.train()
        bar.update(1)
    bar.close()
    train_s = time.perf_counter() - t0
    model.save_pretrained(out)
    summary = {"params": asdict(params), "key": params.key(), "train_seconds": round(train_s, 1),
               "s_per_step": round(train_s / total, 4), "history": history,
               "n_params": tiny_model.n_params(model)}
    if eval_samples:
        acc = direct_accuracy(model, processor, eval_samples)
        summary.update(direct_accuracy=acc["accuracy"], direct_accuracy_per_type=acc["per_type"])
    (out / "nano_base.json").write_text(json.dumps(summary, indent=2))
    return summary


def cached_base(params: BaseParams, cache_root: str | Path, eval_samples=None, log=print) -> Path:
    """The nano base model for `params`: reused from `cache_root/nano_base-<key>/` when it exists,
    else pretrained into a temporary folder that is renamed into place only when complete (a
    killed pretraining never leaves a half-written model that a later run would reuse). Runs side
    by side (the test suite's workers, several seeds) take a lock per key, so a second run for the
    same key waits for the first one's model instead of pretraining it again."""
    import filelock

    final = Path(cache_root) / f"nano_base-{params.key()}"
    if (final / "nano_base.json").exists():
        log(f"nano base model: reusing {final}")
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(f"{final}.lock")
    try:
        lock.acquire(blocking=False)
    except filelock.Timeout:
        log(f"nano base model: another process is pretraining {final}; waiting for it")
        lock.acquire()
    try:
        if (final / "nano_base.json").exists():
            log(f"nano base model: reusing {final}")
            return final
        tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
        if tmp.exists():
            shutil.rmtree(tmp)
        log(f"nano base model: pretraining into {final} (cache key {params.key()})")
        pretrain(tmp, params, eval_samples=eval_samples, log=log)
        if final.exists():  # left by a run that took no lock: keep it
            shutil.rmtree(tmp)
        else:
            tmp.rename(final)
        return final
    finally:
        lock.release()
