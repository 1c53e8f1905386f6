"""nano-steps: 04's nano answers parsed into the oracle's steps, each checked against the scene."""

from __future__ import annotations

import json

import pytest

from visionr1 import nano_steps, nano_task, teachers


def answers(samples, style="steps", edit=None):
    """04-style rows from the oracle's own CoTs (no spoiling), answer block as 04's models write it."""
    oracle = teachers.OracleTeacher(wrong_rate=0.0, style=style)
    rows = []
    for s in samples:
        row = {"id": s.id, "question": s.question, "answer": s.answer, "description": s.scene.description(),
               "facts": s.facts, "choices": s.choices, "counts": nano_task.scene_counts(s.scene)}
        think, final = oracle.complete("cot", "", row=row).text.split(" Final Answer: ")
        response = f"{think}<answer> {final} </answer>"
        if edit:
            response = edit(s, response)
        rows.append({"id": s.id, "response": response, "correct": True, "extraction": None})
    return rows


@pytest.fixture(scope="module")
def test_split():
    return {s.id: s for s in nano_task.generate(120, 0, "test", grid=3)}


def test_the_oracles_own_cots_take_every_step_right(test_split):
    result = nano_steps.step_accuracy(test_split, answers(test_split.values()))
    overall = result["all"]
    assert overall["n"] == 120 and set(result) == set(nano_task.QUESTION_TYPES) | {"all"}
    for step in nano_steps.STEPS:
        assert overall[step] == 1.0, step
    assert overall["mc_value"] == 0.0 and overall["row_checks"] == 0.0
    assert 0 < overall["option_n"] < 120 and 0 < overall["arithmetic_n"] < 120  # multiple choice / arithmetic only
    assert nano_steps.step_accuracy(test_split, answers(test_split.values(), "rows"))["all"]["row_checks"] > 0.2


def test_each_kind_of_error_lands_in_its_own_step(test_split):
    def wrong_letter(s, text):
        if s.choices is None:
            return text
        other = next(x for x in "ABCD" if x != s.answer)
        return text.replace(f"<answer> {s.answer} </answer>", f"<answer> {other} </answer>")

    r = nano_steps.step_accuracy(test_split, answers(test_split.values(), edit=wrong_letter))["all"]
    assert r["option"] == 0.0 and r["values"] == 1.0 and r["arithmetic"] == 1.0

    def value_for_letter(s, text):
        return text if s.choices is None else text.replace(f"<answer> {s.answer} </answer>", f"<answer> {s.answer_value} </answer>")

    r = nano_steps.step_accuracy(test_split, answers(test_split.values(), edit=value_for_letter))["all"]
    assert r["mc_value"] == 1.0 and r["option"] is None and r["option_n"] == 0

    def bad_sum(s, text):
        return text.replace("=", "=1", 1) if "=" in text else text

    r = nano_steps.step_accuracy(test_split, answers(test_split.values(), edit=bad_sum))["all"]
    assert r["arithmetic"] == 0.0 and r["values"] == 1.0

    def wrong_overview(s, text):
        n = s.scene.count(color="red")
        return text.replace(f"colour and shape: red{n} ", f"colour and shape: red{n + 1} ", 1)

    r = nano_steps.step_accuracy(test_split, answers(test_split.values(), edit=wrong_overview))["all"]
    assert r["overview"] == 0.0


def test_cli_reads_a_run_folder_and_names_what_is_missing(tmp_path, test_split, capsys):
    run = tmp_path / "run"
    nano_task.write_jsonl(list(test_split.values()), run / "00_data" / "test.jsonl")
    (run / "04_evaluate" / "ci").mkdir(parents=True)
    with (run / "04_evaluate" / "ci" / "nano.jsonl").open("w") as f:
        for row in answers(test_split.values()):
            f.write(json.dumps(row) + "\n")
    assert nano_steps.main([str(run), "--models", "ci"]) == 0
    table = capsys.readouterr().out
    assert "| ci | all | 120 | 100% | 100% | 100% | 100% | 100% | 100% | 0% | 0% |" in table
    assert nano_steps.main([str(run), "--models", "rl"]) == 2
    assert "04_evaluate/rl/nano.jsonl not found" in capsys.readouterr().err
    assert nano_steps.main([str(tmp_path / "nope")]) == 2
    assert "nano-steps needs a nano run that ran 00_data" in capsys.readouterr().err


def test_a_variant_run_reads_its_source_runs_test_split(tmp_path, test_split):
    source, variant = tmp_path / "s0", tmp_path / "s0-long"
    nano_task.write_jsonl(list(test_split.values()), source / "00_data" / "test.jsonl")
    (variant / "04_evaluate" / "rl").mkdir(parents=True)
    (variant / "params.yaml").write_text("run_name: s0-long\neval_source_run: s0\n")
    with (variant / "04_evaluate" / "rl" / "nano.jsonl").open("w") as f:
        for row in answers(test_split.values()):
            f.write(json.dumps(row) + "\n")
    assert nano_steps.run_steps(variant, ["rl"])["rl"]["all"]["n"] == 120
