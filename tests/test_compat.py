"""The pinned-library workarounds (visionr1.compat): each is for the installed version, and each
check still finds the problem it works around. A version bump fails here until someone re-checks
the list; a check that stops finding its problem means the workaround can go."""

import importlib.util

import pytest

from visionr1 import compat

CHECKABLE = [w for w in compat.WORKAROUNDS if compat.installed(w.library)]


def test_every_workaround_names_where_it_lives_and_why():
    assert len({w.name for w in compat.WORKAROUNDS}) == len(compat.WORKAROUNDS)
    for w in compat.WORKAROUNDS:
        assert w.where and w.why and w.version


@pytest.mark.parametrize("w", CHECKABLE, ids=[w.name for w in CHECKABLE])
def test_written_for_the_installed_version(w):
    # the GPU-only libraries (unsloth) are not installed on the CPU stack and are checked there
    assert compat.installed(w.library) == w.version, (
        f"{w.library} is now {compat.installed(w.library)}, {w.name!r} was written for {w.version}: check "
        f"whether it is still needed (python -m visionr1.compat), then update compat.WORKAROUNDS")


@pytest.mark.parametrize("w", CHECKABLE, ids=[w.name for w in CHECKABLE])
def test_still_needed(w):
    needed = w.still_needed()
    if w.still_needed.__name__ == "_triton_missing" and importlib.util.find_spec("triton"):
        assert needed is False  # with Triton (GPU boxes) TRL's own kernel runs and nothing is patched
    elif needed is not None:
        assert needed is True, f"{w.name}: its check no longer finds the problem; remove it ({w.where})"


def test_the_torch_fallback_is_installed_only_where_triton_is_missing():
    from trl.trainer import utils as trl_utils

    compat.torch_logprobs_fallback()
    if importlib.util.find_spec("triton") is None:
        assert trl_utils._ChunkedLogProbFunction is compat.TorchChunkedLogProb
        assert compat.sft_trainer_class().__name__ == "SFTTrainerWithoutTriton"


def test_report_lists_every_workaround():
    rows = compat.report()
    assert [r["name"] for r in rows] == [w.name for w in compat.WORKAROUNDS]
    assert all(r["still_needed"] in (True, False, None) for r in rows)


def test_sdpa_gqa_without_grad_changes_no_bit_of_generation(tiny_model_dir, monkeypatch):
    """The faster grouped-query path gives the same logits and the same sampled tokens as
    transformers' own (repeat_kv) path, on a left-padded batch; with autograd on it stays off."""
    import torch
    from transformers.integrations import sdpa_attention

    from visionr1 import generation, nano_task, tiny_model

    compat.sdpa_gqa_without_grad()
    assert compat.sdpa_gqa_without_grad() is False  # idempotent: installed once
    patched = sdpa_attention.use_gqa_in_sdpa
    mask, kv = torch.ones(1, 1, 4, 4, dtype=torch.bool), torch.zeros(1, 2, 4, 8)
    with torch.no_grad():
        assert patched(mask, kv, kv) and not patched.original(mask, kv, kv)
    assert not patched(mask, kv, kv)  # autograd on: training keeps transformers' path

    model, proc = tiny_model.load_model(tiny_model_dir), tiny_model.load_processor(tiny_model_dir)
    assert model.config.text_config.num_key_value_heads < model.config.text_config.num_attention_heads
    samples = nano_task.generate(6, 0, "test")
    proc.tokenizer.padding_side = "left"
    prompts = [generation.chat_prompt(proc, s.question + " Why?" * i) for i, s in enumerate(samples)]
    enc = proc(text=prompts, images=[s.image for s in samples], return_tensors="pt", padding=True)
    assert not bool(enc["attention_mask"].all())  # a real padding mask, so transformers' path copies

    def run():
        torch.manual_seed(0)
        with torch.no_grad():
            logits = model(**enc).logits
            out = model.generate(**enc, max_new_tokens=24, do_sample=True, temperature=1.0,
                                 output_scores=True, return_dict_in_generate=True)
        return logits, out.sequences, torch.stack(out.scores)

    fast = run()
    monkeypatch.setattr(sdpa_attention, "use_gqa_in_sdpa", patched.original)
    slow = run()
    real = enc["attention_mask"].bool()
    assert torch.equal(fast[0][real], slow[0][real])
    assert torch.equal(fast[1], slow[1]) and torch.equal(fast[2], slow[2])


def test_kv_cache_in_place_changes_no_bit_of_generation(tiny_model_dir, monkeypatch):
    """The KV cache grown in place gives the same scores and the same sampled and greedy tokens as
    transformers' torch.cat path, on a left-padded batch, across the buffer's regrowths (40 new
    tokens after a prompt of about 30: the buffer doubles twice); with autograd on it stays off."""
    import torch
    from transformers import cache_utils

    from visionr1 import generation, nano_task, tiny_model

    compat.kv_cache_in_place_without_grad()
    assert compat.kv_cache_in_place_without_grad() is False  # idempotent: installed once
    patched = cache_utils.DynamicLayer.update

    model, proc = tiny_model.load_model(tiny_model_dir), tiny_model.load_processor(tiny_model_dir)
    samples = nano_task.generate(6, 1, "test")
    proc.tokenizer.padding_side = "left"
    prompts = [generation.chat_prompt(proc, s.question + " Why?" * i) for i, s in enumerate(samples)]
    enc = proc(text=prompts, images=[s.image for s in samples], return_tensors="pt", padding=True)
    assert not bool(enc["attention_mask"].all())

    def run(sample: bool):
        torch.manual_seed(0)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=40, min_new_tokens=40, do_sample=sample,
                                 temperature=1.0 if sample else None, output_scores=True,
                                 return_dict_in_generate=True)
        return out.sequences, torch.stack(out.scores), out.past_key_values

    for sample in (True, False):
        fast = run(sample)
        layer = fast[2].layers[0]
        assert layer._inplace_buffer[0].shape[-2] > layer.keys.shape[-2]  # the in-place path ran
        assert layer.keys._base is layer._inplace_buffer[0]
        monkeypatch.setattr(cache_utils.DynamicLayer, "update", patched.original)
        slow = run(sample)
        monkeypatch.setattr(cache_utils.DynamicLayer, "update", patched)
        assert torch.equal(fast[0], slow[0]) and torch.equal(fast[1], slow[1]), sample
        assert torch.equal(layer.keys, slow[2].layers[0].keys)

    # after crop the next step overwrites the dropped position; after batch_select_indices a new buffer
    layer = cache_utils.DynamicLayer()
    step = lambda n: torch.randn(2, 2, n, 8)  # noqa: E731
    with torch.no_grad():
        first, second = step(5), step(1)
        layer.update(first, first)
        layer.update(second, second)
        layer.crop(-2)
        third = step(1)
        keys, _ = layer.update(third, third)
        assert torch.equal(keys, torch.cat([first[:, :, :4], third], dim=-2))
        layer.batch_select_indices(torch.tensor([1]))
        fourth = step(1)[:1]
        keys, values = layer.update(fourth, fourth)
        assert torch.equal(keys, torch.cat([first[1:, :, :4], third[1:], fourth], dim=-2))
        assert keys._base is layer._inplace_buffer[0] and torch.equal(keys, values)
    with torch.enable_grad():  # training keeps transformers' path
        layer = cache_utils.DynamicLayer()
        layer.update(step(3), step(3))
        layer.update(step(1), step(1))
        assert not hasattr(layer, "_inplace_buffer") and layer.keys._base is None
