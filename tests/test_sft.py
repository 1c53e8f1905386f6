"""Cold-start SFT: both sharegpt dialects, assistant-only labels, pre-flight, resume with weights."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pytest
from fixtures_released import THINK_3, THINK_A, THINK_B, write_sharegpt_fixture

from visionr1 import nano_task, preflight, sft, tiny_model


def digest(model) -> str:
    h = hashlib.sha1()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode() + v.detach().float().numpy().tobytes())
    return h.hexdigest()


def write_nano_sft(tmp_path, n: int):
    """An sft.jsonl of `n` nano questions with a minimal think/answer response each."""
    src = nano_task.write_cold_start_source(nano_task.build_splits(0, 5, n, 5)["cold_start"], tmp_path / "src")
    rows = [json.loads(x) for x in src.read_text().splitlines()]
    data = tmp_path / "sft.jsonl"
    data.write_text("\n".join(json.dumps({"id": r["id"], "images": [str(tmp_path / "src" / r["image"])], "messages": [
        {"role": "user", "content": "<image>" + r["question"]},
        {"role": "assistant", "content": f"<think> x </think><answer> {r['answer']} </answer>"}]}) for r in rows))
    return data


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    return write_sharegpt_fixture(tmp_path_factory.mktemp("cold"), with_problems=False)


def test_both_dialects_become_one_sample_per_assistant_turn(released, tiny_model_dir):
    proc = tiny_model.load_processor(tiny_model_dir)
    rows = sft.load_rows(released, ["vision_r1_llava_cot_full", "vision_r1_mulberry_sft_full"])
    samples, drops, _ = sft.prepare(rows, proc, cutoff_len=4096)
    assert not drops
    # llava: 1 + 1 + 2 turns; mulberry: 1 + 2 turns
    assert len(samples) == 7
    two_round = [s for s in samples if len(s["prompt"]) == 3]  # user, gpt, user -> second answer
    assert len(two_round) == 2
    llava2 = two_round[0]
    assert [p["type"] for p in llava2["prompt"][0]["content"]] == ["text", "image", "text", "image", "text"]
    assert len(llava2["images"]) == 2 and llava2["completion"][0]["content"][0]["text"] == THINK_A
    # mulberry's second image is named in the second user turn: only the second answer sees it
    mul = [s for s in samples if any(THINK_3 == c["content"][0]["text"] for c in s["completion"])]
    assert [len(s["images"]) for s in samples if s["completion"][0]["content"][0]["text"] == THINK_A][-1] == 2
    assert mul and all(len(s["images"]) == 1 for s in mul)


def test_labels_cover_exactly_the_assistant_turn(released, tiny_model_dir):
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    proc = tiny_model.load_processor(tiny_model_dir)
    samples, _, _ = sft.prepare(sft.load_rows(released, ["vision_r1_llava_cot_full"]), proc, cutoff_len=4096)
    ds = sft.to_dataset(samples[:2])
    batch = DataCollatorForVisionLanguageModeling(proc, completion_only_loss=True)([ds[0], ds[1]])
    for i in range(2):
        labels = batch["labels"][i]
        decoded = proc.tokenizer.decode(labels[labels != -100])
        assert decoded.strip() == THINK_B + "<|im_end|>"  # the answer and its end token, nothing else


def test_over_long_samples_are_dropped_and_counted(released, tiny_model_dir):
    proc = tiny_model.load_processor(tiny_model_dir)
    rows = sft.load_rows(released, ["vision_r1_llava_cot_full"])
    rows[0]["messages"][1]["content"] = THINK_B + " Wait," * 3000
    samples, drops, lengths = sft.prepare(rows, proc, cutoff_len=1024)
    assert drops["over_cutoff"] == 1 and max(lengths) <= 1024


def test_preflight_names_the_over_long_sample(released, tiny_model_dir, tmp_path):
    data = tmp_path / "sft.jsonl"
    img = str(released / "llava_cot_images" / "0.png")
    rows = [{"id": "short", "images": [img], "messages": [{"role": "user", "content": "<image>Q"},
                                                          {"role": "assistant", "content": THINK_B}]},
            {"id": "too-long", "images": [img], "messages": [{"role": "user", "content": "<image>Q"},
                                                             {"role": "assistant", "content": "Wait, " * 2000}]}]
    data.write_text("\n".join(json.dumps(r) for r in rows))
    p = sft.SFTParams(model=str(tiny_model_dir), data=str(data), output_dir=str(tmp_path / "o"), cutoff_len=512)
    rep = preflight.sft_data(p, gpu_gib=None, n_gpus=1, zero_stage=0)
    assert rep["over_cutoff"] == 1 and "too-long" in rep["problems"][0]
    # the memory estimate fails clearly when the model cannot fit
    rep = preflight.sft_data(p, gpu_gib=0.001, n_gpus=1, zero_stage=0)
    assert any("GiB per GPU" in x for x in rep["problems"])


def counting_sample_length(monkeypatch) -> list:
    """sft.sample_length, counting its calls (one per sample tokenized)."""
    calls, real = [], sft.sample_length
    monkeypatch.setattr(sft, "sample_length", lambda proc, sample: calls.append(1) or real(proc, sample))
    return calls


def test_the_sft_set_is_tokenized_once_for_the_stage(tmp_path, tiny_model_dir, monkeypatch):
    """02's pre-flight tokenizes every sample and keeps the lengths in the stage folder; training
    reads them and tokenizes nothing. Other rows or another image budget are tokenized anew."""
    data = write_nano_sft(tmp_path, 8)
    p = sft.SFTParams(model=str(tiny_model_dir), data=str(data), output_dir=str(tmp_path / "run"), learning_rate=1e-2,
                      max_steps=1, batch_size=4, grad_accum=1, save_steps=100, cutoff_len=1024, max_pixels=50176)
    calls = counting_sample_length(monkeypatch)
    rep = preflight.sft_data(p, gpu_gib=None, n_gpus=1, zero_stage=0)
    assert len(calls) == rep["samples"] == 8 and (tmp_path / "run" / sft.LENGTHS_FILE).exists()
    calls.clear()
    assert sft.train(p, log=lambda *a: None)["samples"] == 8 and not calls, "training re-tokenized the set"
    rows = sft.load_rows(data)
    before = sft.cached_lengths(p, rows, tiny_model.load_processor(tiny_model_dir, max_pixels=50176))
    assert not calls
    large = tiny_model.load_processor(tiny_model_dir, min_pixels=200704, max_pixels=200704)  # 256 image tokens
    assert all(a[0] > b[0] for a, b in zip(sft.cached_lengths(p, rows, large), before)) and len(calls) == 8
    rows[0]["messages"][1]["content"] += " Wait, let me recount."
    after = sft.cached_lengths(p, rows, tiny_model.load_processor(tiny_model_dir, max_pixels=50176))
    assert after[0][0] > before[0][0] and after[1:] == before[1:] and len(calls) == 16


def test_the_other_ranks_read_the_lengths_the_main_process_counted(tmp_path, tiny_model_dir, monkeypatch):
    """Two processes (gloo): rank 0 tokenizes, rank 1 waits and reads; both hold the same lengths."""
    import os
    import re

    from visionr1 import dist

    data = write_nano_sft(tmp_path, 6)
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "lengths_probe.py").write_text(f"""
import json
from visionr1 import dist, sft, tiny_model
calls, real = [], sft.sample_length
sft.sample_length = lambda proc, sample: calls.append(1) or real(proc, sample)
p = sft.SFTParams(model={str(tiny_model_dir)!r}, data={str(data)!r}, output_dir={str(tmp_path / "run")!r})
lengths = sft.cached_lengths(p, sft.load_rows(p.data), tiny_model.load_processor(p.model))
print(f"rank {{int(dist.is_main() is False)}}: tokenized {{len(calls)}}, lengths {{json.dumps(lengths)}}", flush=True)
dist.close()
""")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path / "mods"), os.environ.get("PYTHONPATH", "")]))
    lines: list[str] = []
    dist.launch("lengths_probe", [], 2, log=lines.append)
    # both ranks write to one pipe: a line may hold the end of one rank's print and the other's, so
    # the output is read as one text (failed once when the two prints shared a line)
    found = {m[1]: (int(m[2]), json.loads(m[3])) for m in
             re.finditer(r"rank (\d): tokenized (\d+), lengths (\[(?:\[\d+(?:, \d+)*\](?:, )?)*\])", "\n".join(lines))}
    assert set(found) == {"0", "1"}, lines[-20:]
    assert (found["0"][0], found["1"][0]) == (6, 0), "the main process tokenized the 6 samples, rank 1 none"
    assert found["0"][1] == found["1"][1] and len(found["1"][1]) == 6


def test_memory_estimate_for_7b_matches_known_setups():
    seven_b = preflight.QWEN25_VL["7B"]
    setup = preflight.Setup(method="full", n_gpus=8, zero=3, offload=False, batch=1, seq=16384, gradient_checkpointing=True)
    full = preflight.estimate_gib(seven_b, setup)
    single = preflight.estimate_gib(seven_b, replace(setup, n_gpus=1, zero=0))
    lora = preflight.estimate_gib(seven_b, replace(setup, method="lora", n_gpus=1, zero=0, seq=4096))
    assert full["total"] < 80 < single["total"]  # ZeRO-3 on 8x80GB fits; one GPU does not
    assert lora["total"] < 40  # LoRA on one GPU fits


def test_resume_restores_the_checkpoint_weights(tmp_path, tiny_model_dir):
    data = write_nano_sft(tmp_path, 16)
    p = sft.SFTParams(model=str(tiny_model_dir), data=str(data), output_dir=str(tmp_path / "run"), learning_rate=1e-2,
                      max_steps=4, batch_size=4, grad_accum=1, save_steps=4, cutoff_len=1024, max_pixels=50176)
    first = sft.train(p, log=lambda *a: None)
    ck = tmp_path / "run" / "checkpoint-4"
    assert (ck / "processor_config.json").exists() and (ck / "tokenizer.json").exists()  # checkpoints carry the processor
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count('"grad_norm"') == 4  # loss, lr, grad norm per step
    trained = digest(tiny_model.load_model(first["final_model"]))
    assert trained != digest(tiny_model.load_model(tiny_model_dir))
    # a rerun finds checkpoint-4, loads its weights and has no step left: the result is those weights
    again = sft.train(p, log=lambda *a: None)
    assert again["resumed_from"].endswith("checkpoint-4")
    assert digest(tiny_model.load_model(again["final_model"])) == trained


def test_resume_with_changed_params_is_refused(tmp_path, tiny_model_dir):
    out = tmp_path / "run"
    (out / "checkpoint-2").mkdir(parents=True)
    (out / "checkpoint-2" / "trainer_state.json").write_text("{}")  # a complete checkpoint (saved last)
    p = sft.SFTParams(model=str(tiny_model_dir), data="unused.jsonl", output_dir=str(out), learning_rate=1e-3)
    (out / "trained_with.json").write_text(json.dumps({"learning_rate": 5e-4}))
    with pytest.raises(ValueError, match="checkpoint-2 trained with other params .*learning_rate"):
        sft.train(p)


def test_lora_trains_and_merges(tmp_path, tiny_model_dir):
    data = write_nano_sft(tmp_path, 8)
    p = sft.SFTParams(model=str(tiny_model_dir), data=str(data), output_dir=str(tmp_path / "run"), method="lora",
                      lora_r=4, lora_alpha=8, learning_rate=1e-2, max_steps=2, batch_size=4, grad_accum=1,
                      save_steps=100, cutoff_len=1024, max_pixels=50176)
    out = sft.train(p, log=lambda *a: None)
    merged = tiny_model.load_model(out["final_model"])  # the merged model loads like any other
    assert digest(merged) != digest(tiny_model.load_model(tiny_model_dir))
    assert not any("lora" in k for k in merged.state_dict())


def test_unsloth_is_imported_before_the_preflight_loads_transformers(monkeypatch):
    """unsloth patches transformers and trl at import: 02 imports it (when chosen) before its
    pre-flight, the first cell that loads transformers."""
    import json
    import sys
    import types

    from visionr1 import env

    cells = [c for c in json.loads((env.NOTEBOOKS_DIR / "02_cold_start_sft.ipynb").read_text())["cells"]
             if c["cell_type"] == "code"]
    code = "\n".join("".join(c["source"]) for c in cells)
    assert code.index("sft.import_unsloth_first(p)") < code.index("preflight.sft_data(")
    stage = {"model": "m", "data": "d", "output_dir": "o"}
    monkeypatch.setitem(sys.modules, "unsloth", types.ModuleType("unsloth"))  # the GPU package, faked
    assert sft.import_unsloth_first(sft.SFTParams(**stage, method="unsloth"))
    assert not sft.import_unsloth_first(sft.SFTParams(**stage, method="full"))
