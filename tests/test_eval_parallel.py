"""04 on every GPU (visionr1.eval_parallel): engines side by side, each answering its share of the
batches, give the answers and the table of one process; their parts fold into the one file in
question order; validation refuses engines that do not fit the GPUs and names the key."""

from __future__ import annotations

import json
import zlib

import pytest
from test_validate_dryrun import EIGHT, data, data_sets, dry_run, no_wandb_login  # noqa: F401 - fixtures

from visionr1 import benchmarks, env, eval_parallel, evaluate, nano_task, runner, stage_report, validate
from visionr1.params import declarations, resolve


@pytest.fixture()
def nano(tmp_path):
    path = nano_task.write_jsonl(nano_task.generate(10, seed=1, split="test"), tmp_path / "test.jsonl")
    return path, benchmarks.load("nano", path)


def by_batch(batch: list) -> list[str]:
    """A responder whose answers depend on the whole batch, as batched sampling seeded by the
    batch's first question does: a batch made of other questions answers differently."""
    key = zlib.crc32(",".join(i.id for i in batch).encode())
    return [f"<think>{key}</think><answer>{(key + k) % 3}</answer>" for k in range(len(batch))]


def without_times(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("seconds", "grading")} for r in records]


def test_shards_answered_apart_fold_into_the_one_process_answers_in_question_order(nano, tmp_path):
    _, items = nano
    s = evaluate.Sampling(batch_size=3)
    one = evaluate.run(items, by_batch, tmp_path / "one" / "nano.jsonl", s)
    out = tmp_path / "two" / "nano.jsonl"
    shards = [eval_parallel.batch_shard(items, r, 2, 3) for r in (0, 1)]
    assert [i.id for i in shards[0]] == [i.id for i in items[0:3] + items[6:9]]  # batches 0 and 2
    assert sorted(i.id for sh in shards for i in sh) == sorted(i.id for i in items)
    for r, shard in enumerate(shards):
        evaluate.run(shard, by_batch, evaluate.part_path(out, r, 2), s)
    evaluate.part_path(out, 1, 2).open("a").write('{"id": "torn')  # an engine killed mid-line
    two = evaluate.run(items, lambda b: pytest.fail(f"asked again: {[i.id for i in b]}"), out, s)
    assert without_times(two) == without_times(one), "two engines answer what one does"
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == [i.id for i in items], "question order"
    assert not list(out.parent.glob("nano.part-*")), "the parts are gone once folded"


def test_two_engine_processes_give_the_answers_and_table_of_one(nano, tiny_model_dir, tmp_path):
    """The real thing on CPU: HF generation (temperature 0.6, a re-ask), one process against two
    launched engines, each on one core."""
    import torch

    path, items = nano
    s = evaluate.Sampling(max_new_tokens=5, batch_size=3, reask=1, max_pixels=50176)
    models, data = {"m": str(tiny_model_dir)}, {"nano": items}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each engine (OMP_NUM_THREADS: the cores shared out)
    try:
        one = stage_report.evaluate_all(models, data, lambda m: evaluate.make_responder("hf", m, s), s,
                                        tmp_path / "one")
    finally:
        torch.set_num_threads(threads)
    job = eval_parallel.EvalJob(str(tmp_path / "two"), models, {"nano": str(path)}, vars(s), backend="hf",
                                data_parallel=2)
    lines: list[str] = []
    speed = eval_parallel.launch(job, data, log=lines.append)
    two = stage_report.evaluate_all(models, data, lambda m: pytest.fail("a model loaded after the engines"), s,
                                    tmp_path / "two")
    assert sum(x.startswith("engine ") and "visionr1.eval_parallel" in x for x in lines) == 2
    assert any(x.startswith("[engine 1] ") for x in lines)
    assert without_times(two["records"]["m", "nano"]) == without_times(one["records"]["m", "nano"])
    assert {k: v for k, v in two["results"]["m"]["nano"].items() if k != "grading"} == \
        {k: v for k, v in one["results"]["m"]["nano"].items() if k != "grading"}
    assert all(r["tries"] == 2 for r in two["records"]["m", "nano"]), "every response re-asked once"
    saved = [json.loads(x)["id"] for x in (tmp_path / "two" / "m" / "nano.jsonl").read_text().splitlines()]
    assert saved == [i.id for i in items] and speed["m"]["nano"] > 0
    timing = [json.loads((tmp_path / "two" / f"engine-{r}-of-2.json").read_text())["m/nano"] for r in (0, 1)]
    assert [t["answered"] for t in timing] == [6, 4], "batches 0, 2 and 1, 3 of 3 questions"


def test_a_failing_engine_fails_the_launch_naming_it(nano, tmp_path):
    path, items = nano
    job = eval_parallel.EvalJob(str(tmp_path / "out"), {"m": "unused"}, {"nano": str(path)},
                                vars(evaluate.Sampling()), backend="hf", data_parallel=2)
    with pytest.raises(RuntimeError, match=r"evaluation engine \d of 2 exited with 1: .*eval_parallel"):
        eval_parallel.launch(job, {"nano": items[:5]}, log=lambda *a: None)  # the engines read 10 questions


# ---------------------------------------------------------------------------------------------
# Validation and the plan
# ---------------------------------------------------------------------------------------------
SEVEN_B = "base_model=Qwen/Qwen2.5-VL-7B-Instruct"


@pytest.mark.parametrize("sets, gpus, expected", [
    # 8 engines need 8 GPUs: 4 visible is a problem, 8 is not, and without CUDA nothing is counted
    (["eval_backend=vllm", "eval_data_parallel=8"], 4,
     "eval_data_parallel = 8 (from --set): 8 engines x eval_tensor_parallel 1 = 8 GPUs, but this machine shows 4"),
    (["eval_backend=vllm", "eval_data_parallel=8"], 8, None),
    (["eval_backend=vllm", "eval_data_parallel=8"], 0, None),
    (["eval_backend=vllm", "eval_data_parallel=2", "eval_tensor_parallel=4", SEVEN_B], 8, None),
    (["eval_backend=vllm", "eval_data_parallel=3", "eval_tensor_parallel=4", SEVEN_B], 8, "= 12 GPUs, but"),
    # 7B's 28 heads (4 key/value, 16 in the vision tower) do not split over 8 GPUs
    (["eval_backend=vllm", "eval_tensor_parallel=8", SEVEN_B], 8,
     "eval_tensor_parallel = 8 (from --set): Qwen2.5-VL-7B's attention heads (28, 4 key/value, 16 in the vision "
     "tower) do not split over 8 GPUs"),
    # HF generate: one GPU per engine; an endpoint parallelizes on its own
    (["eval_backend=hf", "eval_tensor_parallel=2"], 8, "eval_tensor_parallel = 2 (from --set): HF generate runs"),
    (["eval_backend=hf", "eval_data_parallel=2"], 0, None),  # two CPU processes
    (["eval_backend=openai", "eval_base_url=http://localhost:8000/v1", "eval_data_parallel=2"], 0,
     "eval_data_parallel = 2 (from --set): the openai backend sends every request to one endpoint"),
    (["eval_data_parallel=0"], 0, "eval_data_parallel = 0 (from --set): must be a whole number >= 1"),
])
def test_engines_must_fit_the_gpus_and_the_backend(sets, gpus, expected, monkeypatch):
    monkeypatch.setattr(eval_parallel, "visible_gpus", lambda: [str(g) for g in range(gpus)])
    r = resolve([env.PROJECT_ROOT / "params" / "nano.yaml"], sets,
                declarations(runner.stage_notebooks(env.NOTEBOOKS_DIR)))
    found = [p for p in validate.problems(r.values, r.sources, ["04_evaluate"])
             if p.startswith(("eval_data_parallel", "eval_tensor_parallel"))]
    if expected is None:
        assert not found, found
    else:
        assert len(found) == 1 and expected in found[0], found


def test_engines_leaving_gpus_idle_are_a_warning(monkeypatch):
    monkeypatch.setattr(eval_parallel, "visible_gpus", lambda: [str(g) for g in range(8)])
    v = {"eval_backend": "vllm", "eval_data_parallel": 1, "eval_tensor_parallel": 4}
    (line,) = validate.warnings(v, ["04_evaluate"])
    assert line.startswith("04 answers on 4 of the 8 GPUs here") and "eval_data_parallel: 2 would use them all" in line
    assert not validate.warnings({**v, "eval_data_parallel": 2}, ["04_evaluate"])


def test_the_8gpu_recipe_evaluates_on_every_gpu_and_refuses_fewer(data, tmp_path, capsys, no_wandb_login,
                                                                  monkeypatch):
    code, out, err = dry_run(tmp_path, capsys, EIGHT, *data_sets(data))
    assert code == 0, out + err
    assert "8 vLLM engines side by side (eval_data_parallel 8 x eval_tensor_parallel 1 = 8 GPUs)" in out
    for g in range(8):
        assert f"engine {g}: CUDA_VISIBLE_DEVICES={g} python -m visionr1.eval_parallel " \
               f"{tmp_path}/out/qwen2.5-vl-7b/04_evaluate/eval_job.json --rank {g}" in out
    assert "KV cache 0.98 GiB per 18,304-token sequence x 32 at once (eval_batch_size) = 49.7 GiB: fits vLLM's " \
           "73.6 GiB of 80" in out
    monkeypatch.setattr(eval_parallel, "visible_gpus", lambda: ["0", "1", "2", "3"])
    code, out, err = dry_run(tmp_path, capsys, EIGHT, *data_sets(data))
    assert code == 2 and f"eval_data_parallel = 8 (from {EIGHT}): 8 engines x eval_tensor_parallel 1 = 8 GPUs, " \
        "but this machine shows 4 (CUDA_VISIBLE_DEVICES=0,1,2,3)" in err
