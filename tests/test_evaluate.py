"""Evaluation generation: resume after an interruption, re-asking, the OpenAI-compatible backend,
and model references."""

from __future__ import annotations

import json

import pytest
from fake_openai import FakeOpenAI

from visionr1 import benchmarks, evaluate, models, nano_task


@pytest.fixture()
def items(tmp_path):
    path = nano_task.write_jsonl(nano_task.generate(6, seed=0, split="test"), tmp_path / "test.jsonl")
    return benchmarks.load("nano", path)


def right(item) -> str:
    return f"<think>counting</think><answer>{item.answer}</answer>"


def test_interrupted_run_resumes_without_asking_twice(items, tmp_path):
    asked = []

    def flaky(batch):
        asked.extend(i.id for i in batch)
        if len(asked) > 2:
            raise KeyboardInterrupt  # killed during the second batch
        return [right(i) for i in batch]

    s = evaluate.Sampling(batch_size=2)
    with pytest.raises(KeyboardInterrupt):
        evaluate.run(items, flaky, tmp_path / "ci" / "nano.jsonl", s)
    assert (tmp_path / "ci" / "nano.jsonl").read_text().count("\n") == 2
    asked.clear()
    recs = evaluate.run(items, lambda b: (asked.extend(i.id for i in b), [right(i) for i in b])[1],
                        tmp_path / "ci" / "nano.jsonl", s)
    assert asked == [i.id for i in items[2:]]  # the two finished samples are not asked again
    assert [r["id"] for r in recs] == [i.id for i in items] and all(r["correct"] for r in recs)
    lines = [json.loads(x) for x in (tmp_path / "ci" / "nano.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and len({x["id"] for x in lines}) == 6


def test_reask_only_the_responses_without_an_answer_block(items, tmp_path):
    tries: dict[str, int] = {}

    def respond(batch):
        out = []
        for i in batch:
            tries[i.id] = tries.get(i.id, 0) + 1
            late = int(i.id.split("-")[-1]) % 2  # odd items answer on their third try
            out.append(right(i) if not late or tries[i.id] >= 3 else "<think>still thinking")
        return out

    recs = evaluate.run(items, respond, tmp_path / "r.jsonl", evaluate.Sampling(reask=5, batch_size=6))
    assert {r["id"]: r["tries"] for r in recs} == {i.id: 3 if int(i.id.split("-")[-1]) % 2 else 1 for i in items}
    assert all(r["correct"] and r["format_ok"] for r in recs)
    none = evaluate.run(items, lambda b: ["no block"] * len(b), tmp_path / "n.jsonl", evaluate.Sampling(reask=2))
    assert all(r["tries"] == 3 and r["correct"] is False for r in none)


def test_duplicate_ids_are_refused(items, tmp_path):
    with pytest.raises(ValueError, match="appears more than once"):
        evaluate.run(items + items[:1], lambda b: [""] * len(b), tmp_path / "d.jsonl", evaluate.Sampling())


def test_openai_backend_sends_image_and_question_with_the_paper_sampling(items, tmp_path):
    by_question = {i.question: i for i in items}

    def reply(req):
        text = req["messages"][-1]["content"][1]["text"]
        return right(by_question[text])

    with FakeOpenAI(script=[("status", 500)], reply=reply) as srv:  # one server error: the client retries
        respond = evaluate.make_responder("openai", "vision-r1", evaluate.Sampling(batch_size=3), base_url=srv.base_url)
        recs = evaluate.run(items, respond, tmp_path / "o.jsonl", evaluate.Sampling(batch_size=3))
        reqs = srv.requests
    assert all(r["correct"] for r in recs)
    body = reqs[-1]
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["model"]) == (0.6, 0.95, 16000, "vision-r1")
    assert body["messages"][-1]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")


def test_openai_backend_sends_the_system_prompt_first(items):
    with FakeOpenAI() as srv:
        evaluate.openai_responder(srv.base_url, "m", evaluate.Sampling(), system="Think first.")(items[:1])
    system, user = srv.requests[0]["messages"]
    assert system == {"role": "system", "content": "Think first."}
    assert [p["type"] for p in user["content"]] == ["image_url", "text"] and user["content"][1]["text"] == items[0].question


def test_model_references_name_the_missing_stage(tmp_path):
    run = tmp_path / "nano"
    (run / "02_cold_start_sft" / "final").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="run 02_cold_start_sft of nano first"):
        models.resolve("ci", run)
    (run / "02_cold_start_sft" / "final" / "config.json").write_text("{}")
    assert models.resolve("ci", run).endswith("02_cold_start_sft/final")
    with pytest.raises(FileNotFoundError, match="run 03_grpo_ptst of other first"):
        models.resolve("other:rl", run)
    assert models.resolve("Qwen/Qwen2.5-VL-7B-Instruct", run) == "Qwen/Qwen2.5-VL-7B-Instruct"
    with pytest.raises(ValueError, match="eval_base_url"):
        evaluate.make_responder("openai", "m", evaluate.Sampling())


def test_every_compared_model_sees_images_at_one_budget(items, tiny_model_dir, tmp_path):
    """The CI and RL models save processors with different pixel limits (SFT's and RL's); 04 resizes
    images for all of them with the one budget in its Sampling, not with what each model saved."""
    import shutil

    from visionr1 import tiny_model

    rl = tmp_path / "rl"
    shutil.copytree(tiny_model_dir, rl)
    tiny_model.load_processor(rl, max_pixels=3136 * 4).save_pretrained(rl)  # a model saved with a small budget
    s = evaluate.Sampling(temperature=0.0, max_new_tokens=2, batch_size=2, min_pixels=3136, max_pixels=50176)
    for path in (tiny_model_dir, rl):
        respond = evaluate.hf_responder(str(path), s)
        size = dict(respond.processor.image_processor.size)
        assert (size["shortest_edge"], size["longest_edge"]) == (3136, 50176), path
        assert len(respond(items[:2])) == 2
