"""Modality bridging: the oracle, the filter rules, resumable crash-safe output, the export."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from visionr1 import cold_start, nano_task, released_data, teachers


def nano_rows(n=80, seed=0):
    return [{"id": s.id, "image": s.image, "question": s.question, "answer": s.answer,
             "description": s.scene.description(), "facts": s.facts, "choices": s.choices}
            for s in nano_task.build_splits(seed, 10, n, 10)["cold_start"]]


@pytest.mark.parametrize("style, mc_answer", [(s, "letter") for s in teachers.OracleTeacher.STYLES] + [("counts", "value")])
def test_filter_drops_exactly_the_oracle_spoiled_cots(tmp_path, style, mc_answer):
    oracle = teachers.OracleTeacher(wrong_rate=0.3, style=style, mc_answer=mc_answer)
    stats = cold_start.bridge(nano_rows(), oracle, oracle, "default", tmp_path / "raw.jsonl", progress=False)
    assert stats["written"] == 80 and stats["failed"] == 0
    raw = cold_start.read_raw(tmp_path / "raw.jsonl")
    kept, drops = cold_start.filter_records(raw)
    spoiled = {r["id"]: r["oracle_error"] for r in raw if r["oracle_error"]}
    assert 10 < len(spoiled) < 40  # about 30% spoiled
    assert {r["id"] for r in raw} - {k["id"] for k in kept} == set(spoiled)  # dropped = spoiled
    # each kind of spoiling is caught by its own rule
    expected = {"miscount": "wrong_answer", "contradiction": "inconsistent", "truncated": "truncated"}
    for r in raw:
        if r["oracle_error"]:
            assert cold_start.check_record(r)[0] == expected[r["oracle_error"]], r["cot"]
    assert sum(drops.values()) == len(spoiled)
    # kept samples are in the required format, speak of the image, and carry the right answer
    from visionr1 import grading

    for k in kept:
        assert grading.check_format(k["response"]).ok
        assert "description" not in k["response"]


@pytest.mark.parametrize("style", ["steps", "rows"])
def test_oracle_steps_style_writes_small_steps_and_walks_the_options(style):
    """"steps" and "rows" CoTs: every arithmetic step is right and one operation; multiple choice
    restates the options in order up to the one equal to the result, which is the final letter.
    "rows" also checks about half the counts row by row, with the scene's true per-row counts, and
    corrects a first count that was one off in about a third of those checks."""
    import re

    oracle = teachers.OracleTeacher(wrong_rate=0.0, style=style)
    rows = nano_rows(200)
    kinds = set()
    checks = corrected = counts = 0
    for r in rows:
        cot = oracle.complete("cot", "", row=r).text
        think = cot.split("</think>")[0]
        counts += len([k for k in r["facts"] if k != "factor"])
        for name, per_row in re.findall(r"Wait, let me count the ([a-z ]+) row by row: ([\d, ]+)\.", think):
            assert [int(x) for x in per_row.split(", ")] == nano_task.count_by_rows(r["description"], name)
            assert r["facts"][name] == sum(int(x) for x in per_row.split(", "))
            checks += 1
        for name, value, first in re.findall(r"So the ([a-z ]+) are (\d+), not (\d+)\.", think):
            assert int(value) == r["facts"][name] and abs(int(first) - int(value)) == 1
            corrected += 1
        result = int(re.search(r"So the result is (\d+)\.", think).group(1))
        assert str(result) == (r["answer"] if not r["choices"] else r["choices"]["ABCD".index(r["answer"])])
        for a, op, b, c in re.findall(r"(\d+)([×+-])(\d+)=(\d+)\.", think):
            assert {"×": int(a) * int(b), "+": int(a) + int(b), "-": int(a) - int(b)}[op] == int(c), think
        if "×" in think:
            assert re.search(r"\d×\d=\d+\. \d+\+\d=\d+\.", think), think  # times, then plus: two steps
        if r["choices"]:
            walk = re.findall(r"\(([A-D])\) (\d+), (yes|no)\.", think)
            letters = [w[0] for w in walk]
            assert letters == list("ABCD"[:len(walk)]) and [w[2] for w in walk].count("yes") == 1, think
            assert walk[-1] == (r["answer"], str(result), "yes") and cot.endswith(f"Final Answer: {r['answer']}")
        else:
            assert "(A)" not in think and cot.endswith(f"Final Answer: {r['answer']}")
        kinds.add(("×" in think, bool(r["choices"])))
    assert kinds == {(False, False), (False, True), (True, False), (True, True)}
    if style == "steps":
        assert checks == 0
    else:
        assert 0.35 < checks / counts < 0.65 and 0.15 < corrected / checks < 0.5, (checks, corrected, counts)
    with pytest.raises(ValueError, match="unknown oracle CoT style 'long'"):
        teachers.OracleTeacher(style="long")


BASE = {"id": "x", "image": "i.png", "question": "How many circles?", "answer": "3", "cot_truncated": False}


@pytest.mark.parametrize(
    "cot, extra, reason",
    [
        ("<think> circles3. So the answer is 3. </think> Final Answer: 3", {}, None),  # sound
        ("<think> circles3. So the answer is 3.", {}, "truncated"),  # no closing </think>
        ("<think> a </think> Final Answer: 3", {"cot_truncated": True}, "truncated"),  # stopped at the token limit
        ("<think> circles3. </think>", {}, "no_answer"),  # nothing after the think block
        ("<think> circles4. </think> Final Answer: 4", {}, "wrong_answer"),  # wrong final answer
        ("<think> So the answer is 4. </think> Final Answer: 3", {}, "inconsistent"),  # think concludes otherwise
        ("<think> The description mentions a circle... </think>\\boxed{3}", {}, None),  # word replacement fixes it
        ("<think> In this description I see 3. </think> Final Answer: 3", {}, "mentions_description"),  # leftover
        ("<think> 2+1=3, the result is 3 </think> Final Answer: B", {"answer": "B", "choices": ["1", "3"]}, None),  # value names option
    ],
)
def test_filter_rules(cot, extra, reason):
    got, sample = cold_start.check_record({**BASE, "cot": cot, **extra})
    assert got == reason
    if reason is None:
        assert sample["response"].startswith("<think>") and sample["response"].endswith("</answer>")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("According to the description, there are 3.", "Looking at the image, there are 3."),
        ("The description says 3 circles.", "The image shows 3 circles."),
        ("Wait, the description lists 4.", "Wait, the image shows 4."),
        ("As described above, yes.", "As shown above, yes."),
    ],
)
def test_word_replacement(text, expected):
    assert cold_start.replace_words(text) == expected


@pytest.mark.parametrize(
    "text, words, expected",
    [
        ("Wait, 3. Wait", ("Wait",), {"Wait": 2}),
        ("wait, Waiting, Waited", ("Wait",), {"Wait": 0}),  # case-sensitive, whole words only
        ("Hmm. Alternatively, 4.", ("Hmm", "Alternatively"), {"Hmm": 1, "Alternatively": 1}),
        ("Let me check. Check: no mistake, a Mistake.", ("Mistake", "Check"), {"Mistake": 2, "Check": 2}),  # either case
        ("Checking mistakes", ("Mistake", "Check"), {"Mistake": 0, "Check": 0}),  # whole words only
    ],
)
def test_reflection_counts(text, words, expected):
    assert cold_start.reflection_counts([text], words) == expected


def test_one_list_of_reflection_words():
    assert cold_start.REFLECTION_WORDS == ("Wait", "Hmm", "Mistake", "Alternatively", "Check")  # the paper's table
    assert set(cold_start.OUTPUT_REFLECTION_WORDS) <= set(cold_start.REFLECTION_WORDS)  # analysis (C): a subset
    assert list(cold_start.reflection_counts(["Wait"])) == list(cold_start.REFLECTION_WORDS)  # the default: all five
    with pytest.raises(ValueError, match="not reflection words"):
        cold_start.reflection_counts(["Oops"], ("Oops",))


def test_rerun_skips_finished_ids(tmp_path):
    oracle = teachers.OracleTeacher(0.0)
    rows = nano_rows(20)
    cold_start.bridge(rows[:12], oracle, oracle, "default", tmp_path / "raw.jsonl", progress=False)
    stats = cold_start.bridge(rows, oracle, oracle, "default", tmp_path / "raw.jsonl", progress=False)
    assert (stats["done_before"], stats["written"]) == (12, 8)
    lines = (tmp_path / "raw.jsonl").read_text().splitlines()
    assert len(lines) == 20 and len({json.loads(x)["id"] for x in lines}) == 20


KILL_SCRIPT = """
import sys, time
from visionr1 import cold_start, teachers
sys.path.insert(0, {tests!r})
from test_cold_start import nano_rows

class Slow(teachers.OracleTeacher):
    def complete(self, step, prompt, image=None, row=None):
        time.sleep(0.01)
        return super().complete(step, prompt, image, row)

t = Slow(0.2)
cold_start.bridge(nano_rows(80), t, t, "default", {out!r}, concurrency=4, progress=False)
"""


def test_sigkill_midway_then_rerun_loses_and_duplicates_nothing(tmp_path):
    out = tmp_path / "raw.jsonl"
    script = KILL_SCRIPT.format(tests=os.path.dirname(__file__), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 60
    while time.time() < deadline and (not out.exists() or out.read_text().count("\n") < 15):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_before = out.read_text().count("\n")
    assert 15 <= n_before < 80, "the kill should land mid-way"
    with out.open("ab") as f:  # the worst case: a write torn in the middle of a line
        f.write(b'{"id": "cold_start-000079", "question": "How ma')
    oracle = teachers.OracleTeacher(0.2)
    stats = cold_start.bridge(nano_rows(80), oracle, oracle, "default", out, progress=False)
    assert stats["done_before"] == n_before and stats["written"] == 80 - n_before
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]  # every line parses
    assert sorted(ids) == sorted(r["id"] for r in nano_rows(80))  # nothing lost, nothing twice


def test_export_loads_back_as_sharegpt(tmp_path):
    src = tmp_path / "src"
    samples = nano_task.build_splits(0, 10, 12, 10)["cold_start"]
    path = nano_task.write_cold_start_source(samples, src)
    rows = cold_start.load_source(path)
    oracle = teachers.OracleTeacher(0.0)
    cold_start.bridge(rows, oracle, oracle, "default", tmp_path / "raw.jsonl", progress=False, base_dir=src)
    kept, _ = cold_start.filter_records(cold_start.read_raw(tmp_path / "raw.jsonl"))
    exp = cold_start.export(kept, tmp_path / "cold", image_root=src)
    back = released_data.load_sharegpt(tmp_path / "cold", "vision_r1_cold_nano", verify_images=True)
    assert len(back) == len(kept) == 12 and back.report.bad_rows == 0
    assert back[0]["messages"][0]["content"].startswith("<image>")
    sft = [json.loads(x) for x in open(exp["sft_rows"])]
    assert sft[0]["messages"][1]["content"] == kept[0]["response"]


def test_load_source_names_the_bad_line(tmp_path):
    p = tmp_path / "s.jsonl"
    p.write_text('{"id": "a", "image": "a.png", "question": "q", "answer": "1"}\n{"id": "b", "question": "q"}\n')
    with pytest.raises(ValueError, match=r"s.jsonl:2: row lacks image, answer"):
        cold_start.load_source(p)


def test_unknown_prompt_set_names_the_available_ones():
    with pytest.raises(ValueError, match="unknown prompt set 'nope'; available: default"):
        cold_start.load_prompts("nope")


def test_hf_teacher_answers_with_and_without_an_image(tiny_model_dir):
    t = teachers.make_teacher("hf", model_path=str(tiny_model_dir), max_tokens=8)
    row = nano_rows(1)[0]
    with_image = t.complete("pseudo_cot", "Describe the image.", row["image"], row)
    text_only = t.complete("cot", "Think step by step.", None, row)
    assert isinstance(with_image.text, str) and isinstance(text_only.text, str)
    assert with_image.truncated  # a random tiny model does not stop within 8 tokens


def test_oracle_value_answers_name_no_letter_and_grade_right():
    """mc_answer "value": multiple choice ends with the option's value, no letter step in the CoT,
    and the grader maps it to the gold letter (as it does the base's answers)."""
    from visionr1 import grading

    oracle = teachers.OracleTeacher(wrong_rate=0.0, mc_answer="value")
    mc = [r for r in nano_rows(60) if r["choices"]]
    assert mc
    for r in mc:
        cot = oracle.complete("cot", "", row=r).text
        value = r["choices"]["ABCD".index(r["answer"])]
        assert cot.endswith(f"Final Answer: {value}") and "option" not in cot, cot
        assert grading.grade(f"<answer> {value} </answer>", r["answer"], choices=r["choices"], block_only=True).correct
    with pytest.raises(ValueError, match="unknown oracle multiple-choice answer 'text'"):
        teachers.OracleTeacher(mc_answer="text")


@pytest.mark.parametrize("mc_answer", ["letter", "value"])
def test_the_filter_writes_multiple_choice_as_asked(tmp_path, mc_answer):
    """cs_mc_answer: the kept samples' answer blocks hold the option's letter or its value, whichever
    the teacher wrote (a letter is turned into the value and back)."""
    rows = nano_rows(60)
    for teacher_answer in ("letter", "value"):
        oracle = teachers.OracleTeacher(wrong_rate=0.0, mc_answer=teacher_answer)
        out = tmp_path / f"{teacher_answer}.jsonl"
        cold_start.bridge(rows, oracle, oracle, "default", out, progress=False)
        kept, drops = cold_start.filter_records(cold_start.read_raw(out), mc_answer)
        assert len(kept) == 60 and not drops
        by_id = {k["id"]: k for k in kept}
        for r in rows:
            k = by_id[r["id"]]
            want = r["answer"] if not r["choices"] or mc_answer == "letter" else r["choices"]["ABCD".index(r["answer"])]
            assert k["response"].endswith(f"<answer> {want} </answer>"), k["response"]
    with pytest.raises(ValueError, match="mc_answer \\(cs_mc_answer\\) must be one of"):
        cold_start.check_record({**BASE, "cot": "<think> x </think> Final Answer: 3"}, "text")
