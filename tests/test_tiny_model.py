"""The tiny offline Qwen2.5-VL: build, save, from_pretrained, generate from an image."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest
import torch
from transformers import Qwen2_5_VLForConditionalGeneration

from visionr1 import nano_task, tiny_model


def weights_digest(model) -> str:
    h = hashlib.sha1()
    for name, p in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def test_round_trip_generates_from_image_and_question(tiny_model_dir):
    model = tiny_model.load_model(tiny_model_dir)
    processor = tiny_model.load_processor(tiny_model_dir)
    assert isinstance(model, Qwen2_5_VLForConditionalGeneration)  # the real class, real from_pretrained
    assert tiny_model.n_params(model) < 1_000_000
    assert type(processor.image_processor).__name__ == "Qwen2VLImageProcessorPil"
    sample = nano_task.generate(1, 0, "test")[0]
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": sample.question}]}]
    text = processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>")
    inputs = processor(text=[text], images=[sample.image], return_tensors="pt")
    # an 84x84 image is 3x3 merged tokens: one per grid cell
    assert inputs["image_grid_thw"].tolist() == [[1, 6, 6]]
    assert (inputs["input_ids"] == model.config.image_token_id).sum().item() == 9
    out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]  # it generated
    assert isinstance(processor.decode(out[0, inputs["input_ids"].shape[1]:]), str)


def test_same_seed_same_weights_other_seed_differs(tmp_path, tiny_model_dir):
    a = tiny_model.load_model(tiny_model_dir)
    b = tiny_model.load_model(tiny_model.build_tiny(tmp_path / "b", size="test", seed=0))
    c = tiny_model.load_model(tiny_model.build_tiny(tmp_path / "c", size="test", seed=1))
    assert weights_digest(a) == weights_digest(b)
    assert weights_digest(a) != weights_digest(c)
    assert (tmp_path / "b" / "tokenizer.json").read_bytes() == (tiny_model_dir / "tokenizer.json").read_bytes()


def test_tokenizer_keeps_nano_words_whole(tiny_model_dir):
    tok = tiny_model.load_processor(tiny_model_dir).tokenizer
    # the attribute word and its digit stay separate, whole tokens ("red3" -> red, 3)
    assert tok.tokenize("red3 green0") == ["red", "3", "Ġgreen", "0"]
    for special in ("<|im_start|>", "<|im_end|>", "<|image_pad|>", "<|vision_start|>"):
        assert len(tok.tokenize(special)) == 1


def test_assistant_mask_from_generation_tags(tiny_model_dir):
    processor = tiny_model.load_processor(tiny_model_dir)
    msgs = [{"role": "user", "content": [{"type": "text", "text": "Q"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "<answer>3</answer>"}]}]
    enc = processor.tokenizer.apply_chat_template(msgs, tokenize=True, return_dict=True,
                                                  return_assistant_tokens_mask=True)
    ids = torch.tensor(enc["input_ids"])[torch.tensor(enc["assistant_masks"]).bool()]
    assert processor.tokenizer.decode(ids) == "<answer>3</answer><|im_end|>"


def test_nano_size_and_cli(tmp_path):
    out = subprocess.run([sys.executable, "-m", "visionr1", "build-tiny", str(tmp_path / "n"), "--size", "nano"],
                         capture_output=True, text=True, check=True)
    assert "parameters" in out.stdout
    n = tiny_model.n_params(tiny_model.load_model(tmp_path / "n"))
    assert 1_000_000 < n < 5_000_000


@pytest.mark.gpu
def test_bf16_on_cuda_matches_float32(tiny_model_dir):
    """The same weights on a GPU in bf16 give the CPU float32 model's next-token distribution (skipped without CUDA)."""
    sample = nano_task.generate(1, 0, "test")[0]
    processor = tiny_model.load_processor(tiny_model_dir)
    text = processor.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text",
                                           "text": sample.question}]}], add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[sample.image], return_tensors="pt")
    cpu = tiny_model.load_model(tiny_model_dir)
    gpu = tiny_model.load_model(tiny_model_dir, dtype=torch.bfloat16).to("cuda")
    a = cpu(**inputs).logits[0, -1]
    b = gpu(**inputs.to("cuda")).logits[0, -1].float().cpu()
    assert torch.isfinite(b).all()
    assert (a.softmax(-1) - b.softmax(-1)).abs().max() < 0.02  # bf16 rounding only


def test_nano_base_cache_key_holds_the_thread_count():
    """A base pretrained at 1 thread is another draw on some CPUs than one at 2 (docs/results.md),
    so a run at one count must not reuse a model cached at the other."""
    import torch

    from visionr1 import nano_base

    assert nano_base.BaseParams().threads == torch.get_num_threads()
    assert nano_base.BaseParams(threads=1).key() != nano_base.BaseParams(threads=2).key()
    assert nano_base.BaseParams(threads=2).key() == nano_base.BaseParams(threads=2).key()


def test_nano_base_arithmetic_drills():
    """Drills are right, as many as asked, written as the "steps" CoTs write their arithmetic, and
    leave everything else alone: without them the key (the cached models) and the other examples
    stay what they were."""
    import random
    import re

    from visionr1 import nano_base, nano_task

    assert nano_base.BaseParams(threads=2).key() == "23b67ce0d9e2"  # the key bases had before drills existed
    assert nano_base.BaseParams(threads=2, arithmetic_fraction=0.5).key() != "23b67ce0d9e2"
    scenes = nano_task.generate(40, 0, "pretrain", grid=3)
    drills = nano_base.arithmetic_examples(scenes, 0.5, seed=0)
    assert len(drills) == 20 and nano_base.arithmetic_examples(scenes, 0.0, seed=0) == []
    kinds = set()
    for _, prompt, target, system, level in drills:
        assert system is None and level == 3  # after the curriculum's captions and one-step questions
        expr = re.fullmatch(r"Work out (.+)\.", prompt).group(1)
        steps = re.findall(r"(\d+)([×+-])(\d+)=(\d+)\.", target)
        assert " ".join(f"{a}{op}{b}={c}." for a, op, b, c in steps) == target, target
        for a, op, b, c in steps:
            assert {"×": int(a) * int(b), "+": int(a) + int(b), "-": int(a) - int(b)}[op] == int(c) >= 0, target
        # the target's steps compute the prompt's expression
        assert int(steps[-1][3]) == eval(expr.replace("×", "*")), (prompt, target)
        kinds.add(("×" in expr, "-" in expr))
    assert kinds == {(True, False), (False, True), (False, False)}  # times-plus, minus, plus
    before = nano_base.pretrain_examples(scenes, random.Random(0), 0.5, 3, 0.5)
    assert before == nano_base.pretrain_examples(scenes, random.Random(0), 0.5, 3, 0.5)  # the drills draw elsewhere


def test_nano_base_cache_pretrains_once_when_two_runs_ask_at_once(tmp_path, monkeypatch):
    """Two runs side by side (the suite's xdist workers, several seeds) ask for the same base
    model: the second waits on the key's lock and reuses the first one's model."""
    import threading

    from visionr1 import nano_base

    started, finish, calls = threading.Event(), threading.Event(), []

    def fake_pretrain(out, params, eval_samples=None, log=print):
        calls.append(out)
        started.set()
        assert finish.wait(60)
        out.mkdir(parents=True)
        (out / "nano_base.json").write_text("{}")

    monkeypatch.setattr(nano_base, "pretrain", fake_pretrain)
    params, logs, paths = nano_base.BaseParams(), {1: [], 2: []}, {}

    def run(n):
        paths[n] = nano_base.cached_base(params, tmp_path, log=logs[n].append)

    first = threading.Thread(target=run, args=(1,))
    first.start()
    assert started.wait(60)
    second = threading.Thread(target=run, args=(2,))
    second.start()
    for _ in range(600):  # until the second run says it waits (a counter, not a race on the clock)
        if any("waiting" in line for line in logs[2]):
            break
        threading.Event().wait(0.1)
    finish.set()
    first.join(60), second.join(60)
    final = tmp_path / f"nano_base-{params.key()}"
    assert len(calls) == 1 and paths == {1: final, 2: final}
    assert any("waiting" in line for line in logs[2]) and any("reusing" in line for line in logs[2])
    assert (final / "nano_base.json").exists() and not list(tmp_path.glob("*.tmp-*"))


def test_flash_attention_is_requested_on_cuda_when_installed(monkeypatch):
    """Training, the reference model and evaluation load through load_model: on a GPU box with
    flash-attn they get flash_attention_2; on CPU, in float32 or without the package, the default."""
    import importlib.util

    import torch

    from visionr1 import tiny_model

    real_find = importlib.util.find_spec
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: object() if n == "flash_attn" else real_find(n, *a))
    assert tiny_model.attn_implementation(torch.bfloat16) == "flash_attention_2"
    assert tiny_model.attn_implementation("bfloat16") == "flash_attention_2"
    assert tiny_model.attn_implementation(torch.float32) is None  # flash-attn has no fp32 kernels
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "flash_attn" else real_find(n, *a))
    assert tiny_model.attn_implementation(torch.bfloat16) is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert tiny_model.attn_implementation(torch.bfloat16) is None


def test_nano_base_tagged_share_answers_in_the_r1_zero_format():
    """The tagged share: about that share of the direct questions, asked under the R1-Zero system
    prompt, answered in a form the Zero reward's strict format check accepts, with the same answer;
    captions untouched; at 0 nothing changes; the prompt the model is trained on carries the system prompt."""
    import random

    from visionr1 import generation, grading, nano_base, nano_task, tiny_model

    scenes = nano_task.generate(200, 0, "pretrain", grid=3)
    examples = nano_base.pretrain_examples(scenes, random.Random(0), 0.5, 3, 0.5)
    assert nano_base.tagged_examples(examples, 0.0, seed=0) == examples
    tagged = nano_base.tagged_examples(examples, 0.25, seed=0)
    assert len(tagged) == len(examples)
    changed = [(a, b) for a, b in zip(examples, tagged) if a != b]
    questions = sum(1 for s, p, _ in examples if p == s.question)
    assert 0.18 < len(changed) / questions < 0.32
    for (s, prompt, target), (s2, prompt2, target2, system) in changed:
        assert (s2, prompt2) == (s, prompt) and prompt == s.question and system == generation.R1_ZERO_SYSTEM_PROMPT
        check = grading.check_format(target2, "strict")
        assert check.ok and target2.endswith(f"<answer> {target} </answer>") and s.scene.count_caption() in target2
    assert nano_base.BaseParams(threads=2, tagged_fraction=0.1).key() != nano_base.BaseParams(threads=2).key()


def test_nano_base_direct_levels_drop_only_the_direct_questions_above_the_level():
    """nano_base_direct_levels: 2 leaves out every direct question of level 3 and nothing else (captions
    and the lower levels' questions stay, in order); at 3 nothing changes and the cache key is the old one."""
    import random

    from visionr1 import nano_base, nano_task

    scenes = nano_task.generate(200, 0, "pretrain", grid=3)
    examples = nano_base.pretrain_examples(scenes, random.Random(0), 0.5, 3, 0.5)
    assert nano_base.up_to_level(examples, 3) == examples
    kept = nano_base.up_to_level(examples, 2)
    dropped = [e for e in examples if e not in kept]
    assert dropped and all(s.level == 3 and p == s.question for s, p, _ in dropped)
    assert [e for e in examples if not (e[1] == e[0].question and e[0].level == 3)] == kept
    assert any(p != s.question for s, p, _ in kept)  # captions kept
    old = nano_base.BaseParams(threads=2)
    assert nano_base.BaseParams(threads=2, direct_max_level=3).key() == old.key() != \
        nano_base.BaseParams(threads=2, direct_max_level=2).key()


def test_nano_base_encodes_a_tagged_example_with_its_system_prompt(tmp_path):
    from visionr1 import generation, nano_base, nano_task, tiny_model

    tiny_model.build_tiny(tmp_path / "m", size="nano", seed=0)
    processor = tiny_model.load_processor(tmp_path / "m")
    s = nano_task.generate(1, 0, "pretrain", grid=3)[0]
    plain = nano_base.Encoded(processor, [(s, s.question, "3")])
    tagged = nano_base.Encoded(processor, [(s, s.question, "3", generation.R1_ZERO_SYSTEM_PROMPT)])
    text = processor.tokenizer.decode(tagged.ids[0][:tagged.n_prompt[0]])
    assert "A conversation between User and Assistant" in text and tagged.level == plain.level
    assert "A conversation" not in processor.tokenizer.decode(plain.ids[0])
    drill = nano_base.Encoded(processor, nano_base.arithmetic_examples([s], 1.0, seed=0))
    assert drill.level == [3] and "Work out" in processor.tokenizer.decode(drill.ids[0])


def test_nano_base_option_drills_walk_to_the_asked_value():
    import random
    import re

    from visionr1 import nano_base, nano_task

    scenes = nano_task.generate(10, 0, "pretrain", grid=3)
    drills = nano_base.option_examples(scenes, 30.0, seed=0)
    assert len(drills) == 300 and nano_base.option_examples(scenes, 0.0, seed=0) == []
    found = 0
    for _, prompt, target, system, level in drills:
        assert system is None and level == 3
        value = int(re.match(r"Which option is (\d+)\?", prompt).group(1))
        options = re.findall(r"\(([A-D])\) (\d+)", prompt)
        walk = re.findall(r"\(([A-D])\) (\d+), (yes|no)\.", target)
        assert walk == [(l, v, "yes" if int(v) == value else "no") for l, v in options[:len(walk)]]
        found += walk[-1][2] == "yes"
        assert (walk[-1][2] == "yes") == (str(value) in dict(options).values())
        assert len(walk) == 4 or walk[-1][2] == "yes"
    assert 0.8 < found / len(drills) < 0.97
    assert nano_base.BaseParams(threads=2, options_fraction=0.2).key() != nano_base.BaseParams(threads=2).key()
