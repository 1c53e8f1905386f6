"""Benchmark loaders, scorers and aggregation (visionr1.benchmarks) on tiny fixtures written in each
benchmark's public format, the official MathVista verdicts, and the LLM judge against the scripted
local server (tests/fake_openai.py)."""

from __future__ import annotations

import io
import json

import openai
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fake_openai import FakeOpenAI
from PIL import Image

from visionr1 import benchmarks as bm
from visionr1 import nano_task, scoring
from visionr1.benchmarks import common, dynamath, llm_judge, mathverse, mathvista, mmmath
from visionr1.reader import DataError, DataWarning


def png(color: str = "red", size=(8, 6), fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format=fmt)
    return buf.getvalue()


def write_parquet(path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def think(answer: str) -> str:
    return f"<think>working</think><answer>{answer}</answer>"


def graded(items, responses):
    return [bm.score(it, r)["correct"] for it, r in zip(items, responses)]


# ---------------------------------------------------------------------------------------------
# MathVista
# ---------------------------------------------------------------------------------------------
def mathvista_row(pid, answer, qtype="free_form", atype="integer", choices=None, precision=None,
                  skills=(), task="figure question answering", image=None):
    query = f"Hint: answer.\nQuestion: question {pid}" + (
        "\nChoices:\n" + "\n".join(f"({'ABCD'[i]}) {c}" for i, c in enumerate(choices)) if choices else "")
    return {"pid": pid, "question": f"question {pid}", "image": f"images/{pid}.jpg",
            "decoded_image": {"bytes": image if image is not None else png(), "path": f"{pid}.jpg"},
            "choices": choices, "unit": None, "precision": precision, "answer": answer,
            "question_type": qtype, "answer_type": atype,
            "metadata": {"category": "math-targeted-vqa", "context": "geometry diagram", "grade": "high school",
                         "img_height": 6, "img_width": 8, "language": "english", "skills": list(skills),
                         "source": "Geometry3K", "split": "testmini", "task": task},
            "query": query}


MATHVISTA_ROWS = [
    # pid, row, response, rule verdict
    (mathvista_row("1", "145°", "multi_choice", "text", ["35°", "145°"], skills=["geometry reasoning"],
                   task="geometry problem solving"), think("(B) 145°"), True),
    (mathvista_row("2", "5", skills=["algebraic reasoning", "arithmetic reasoning"],
                   task="math word problem"), "so the answer is 4.", False),
    (mathvista_row("3", "1.5", atype="float", precision=1.0, skills=["geometry reasoning", "algebraic reasoning"],
                   task="geometry problem solving"), think("Final Answer: 1.49"), True),
    (mathvista_row("4", "12", skills=["arithmetic reasoning"], task="math word problem"), "\\boxed{12}", True),
    (mathvista_row("5", "[1, 2]", atype="list", skills=["statistical reasoning"]), think("[1, 2]"), True),
]


def test_mathvista_parquet_load_score_aggregate(tmp_path):
    write_parquet(tmp_path / "data" / "testmini-00000-of-00001.parquet", [r for r, _, _ in MATHVISTA_ROWS])
    items = bm.load("mathvista", tmp_path)
    assert [it.id for it in items] == ["1", "2", "3", "4", "5"]
    first = items[0]
    assert first.question.startswith("Hint: answer.") and "(B) 145°" in first.question  # the `query` field
    assert (first.answer, first.choices, first.question_type) == ("145°", ["35°", "145°"], "multi_choice")
    assert first.meta["skills"] == ["geometry reasoning"] and first.meta["task"] == "geometry problem solving"
    assert items[2].precision == 1 and items[0].precision is None
    assert bm.load_image(first).size == (8, 6) and bm.load_image(first).mode == "RGB"
    assert items.report.rows_ok == 5 and not items.report.problems
    assert len(bm.load("mathvista", tmp_path, limit=2)) == 2

    verdicts = graded(items, [resp for _, resp, _ in MATHVISTA_ROWS])
    assert verdicts == [v for _, _, v in MATHVISTA_ROWS]
    agg = bm.aggregate("mathvista", items, verdicts)
    assert (agg["accuracy"], agg["n"]) == (80.0, 5)
    # GEO: pids 1, 3 (both right); ALG: 2 (wrong), 3 (right); GPS: 1, 3; MWP: 2 (wrong), 4 (right)
    assert (agg["GEO"], agg["ALG"], agg["GPS"], agg["MWP"]) == (100.0, 50.0, 100.0, 50.0)
    assert agg["sub_n"] == {"GEO": 2, "ALG": 2, "GPS": 2, "MWP": 2}


def test_mathvista_annotation_json_with_image_paths_and_bad_rows(tmp_path):
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    annot = {}
    for k in range(1, 5):
        Image.new("RGB", (5, 5), "blue").save(data / "images" / f"{k}.jpg")
        row = mathvista_row(str(k), str(k))
        del row["decoded_image"], row["query"], row["pid"]  # the GitHub file: keyed by pid, no query
        annot[str(k)] = row
    annot["5"] = {**annot["4"], "image": "images/missing.jpg"}  # row 4 of the file
    (data / "testmini.json").write_text(json.dumps(annot))

    with pytest.raises(DataError, match=r"data/testmini.json:4: missing_image"):
        bm.load("mathvista", tmp_path)
    with pytest.warns(DataWarning, match="left out 1 bad rows"):
        items = bm.load("mathvista", tmp_path, max_bad_fraction=0.5)
    assert [it.id for it in items] == ["1", "2", "3", "4"]
    # no query field and no query.json: the official query built as build_query.py does
    assert items[0].question.endswith("\nQuestion: question 1") and items[0].question.startswith("Hint: ")
    assert items[0].meta["prompt_source"].startswith("built as MathVista's build_query.py")
    assert bm.load_image(items[0]).size == (5, 5)
    (problem,) = items.report.problems
    assert (problem.file, problem.row, problem.reason) == ("data/testmini.json", 4, "missing_image")


# ---------------------------------------------------------------------------------------------
# MathVista official verdicts (calculate_score.py)
# ---------------------------------------------------------------------------------------------
def official(qtype, atype, answer, extraction, choices=None, precision=None):
    return {"question": "q", "choices": choices, "answer": answer, "answer_type": atype, "precision": precision,
            "question_type": qtype, "unit": None, "query": "q", "response": "...", "extraction": extraction}


ABCD = ["3/11", "8/11", "6/11", "3/5"]
# pid -> (record with the official extraction, official prediction, official true_false)
OFFICIAL = {
    "1": (official("multi_choice", "text", "8/11", "B", ABCD), "8/11", True),  # letter
    "2": (official("multi_choice", "text", "8/11", "(B) 8/11", ABCD), "8/11", True),  # "(B) text"
    "3": (official("multi_choice", "text", "8/11", "8/11", ABCD), "8/11", True),  # option text
    "4": (official("multi_choice", "text", "145°", "145", ["35°", "145°", "55°"]), "145°", True),  # near miss
    "5": (official("multi_choice", "text", "8/11", "A", ABCD), "3/11", False),  # wrong letter
    "6": (official("multi_choice", "text", "3/5", "", ABCD), "3/5", True),  # empty -> shortest option
    "7": (official("free_form", "integer", "5", "5.0"), "5", True),  # int(float())
    "8": (official("free_form", "integer", "5", "five"), None, False),  # not a number
    "9": (official("free_form", "float", "1.5", "1.46", precision=1.0), "1.5", True),  # precision 1
    "10": (official("free_form", "float", "1.25", "1.2", precision=2.0), "1.2", False),  # precision 2
    "11": (official("free_form", "float", "0.33", "0.333", precision=2.0), "0.33", True),
    "12": (official("free_form", "list", "[1, 2]", "[1,2]"), "[1,2]", False),  # str(list): spacing counts
    "13": (official("free_form", "text", "Yes", "Yes"), "Yes", True),  # text as is
    "14": (official("free_form", "text", "Yes", "yes"), "yes", False),
}


@pytest.mark.parametrize("pid", list(OFFICIAL))
def test_official_mathvista_verdict_reproduces_true_false(pid):
    rec, prediction, true_false = OFFICIAL[pid]
    assert bm.official_mathvista_prediction(rec) == prediction
    assert bm.official_mathvista_verdict(rec) is true_false


def test_official_mathvista_ignore_empty_extractions():
    rec, _, _ = OFFICIAL["6"]
    assert bm.official_mathvista_prediction(rec, ignore_empty_extractions=True) is None
    assert bm.official_mathvista_verdict(rec, ignore_empty_extractions=True) is False


# ---------------------------------------------------------------------------------------------
# MathVerse
# ---------------------------------------------------------------------------------------------
def mathverse_row(sid, pid, version, question, answer, qtype, image):
    instr = "please first conduct reasoning, and then answer the question and provide the correct option letter"
    prefix = "According to the question shown in the image, " if version == "Vision Only" else ""
    return {"sample_index": sid, "problem_index": pid, "problem_version": version, "question": question,
            "image": image, "answer": answer, "question_type": qtype,
            "metadata": {"split": "testmini", "source": "GeoQA", "subject": "Plane Geometry", "subfield": "Angle"},
            "query_wo": "...", "query_cot": prefix + instr + (f"\nQuestion: {question}" if question else ""),
            "question_for_eval": question}


MC_Q = "As shown in the figure, find the angle.\nChoices:\nA:130°\nB:120°\nC:110°\nD:100°"
MATHVERSE = [
    # (sample_index, version, question, answer, question_type), response, rule verdict
    (("1", "Text Dominant", MC_Q, "B", "multi-choice"), think("B"), True),
    (("2", "Text Lite", MC_Q, "B", "multi-choice"), think("120°"), True),  # option text
    (("3", "Vision Intensive", MC_Q, "B", "multi-choice"), think("A"), False),
    (("4", "Vision Dominant", "Find the angle.\nChoices:\nA:130°\nB:120°", "B", "multi-choice"), "(B)", True),
    (("5", "Vision Only", "", "B", "multi-choice"), think("B: 120°"), True),  # options only in the image
    (("6", "Vision Only", "", "14", "free-form"), "the answer is 13", False),
]


def test_mathverse_parquet_load_score_aggregate(tmp_path):
    rows = [mathverse_row(sid, "1", ver, q, a, qt, {"bytes": png("green"), "path": None})
            for (sid, ver, q, a, qt), _, _ in MATHVERSE]
    write_parquet(tmp_path / "testmini.parquet", rows)
    write_parquet(tmp_path / "testmini_text_only.parquet", rows[:1])  # not the testmini split
    items = bm.load("mathverse", tmp_path)
    assert [it.id for it in items] == ["1", "2", "3", "4", "5", "6"]
    assert items[0].choices == ["130°", "120°", "110°", "100°"] and items[0].question_type == "multi_choice"
    assert items[4].choices is None and items[4].question.startswith("According to the question shown in the image")
    assert [it.meta["problem_version"] for it in items] == [m[0][1] for m in MATHVERSE]
    assert items[5].question_type == "free_form"
    assert bm.load_image(items[3]).getpixel((0, 0)) == (0, 128, 0)
    assert bm.load("mathverse", tmp_path, question_field="question")[0].question == MC_Q

    verdicts = graded(items, [r for _, r, _ in MATHVERSE])
    assert verdicts == [v for _, _, v in MATHVERSE]
    agg = bm.aggregate("mathverse", items, verdicts)
    assert (agg["accuracy"], agg["n"]) == (66.7, 6)
    assert agg["Vision Only"] == 50.0 and agg["Text Dominant"] == 100.0 and agg["Vision Intensive"] == 0.0
    assert list(agg["sub_n"]) == list(bm.MATHVERSE_VERSIONS)


def test_mathverse_json_relative_images_and_bad_row(tmp_path):
    (tmp_path / "images" / "images_version_1-4").mkdir(parents=True)
    Image.new("RGB", (4, 4), "white").save(tmp_path / "images" / "images_version_1-4" / "image_1.png")
    rows = [mathverse_row(str(k), "1", "Text Lite", "Find L.", "14", "free-form", "images_version_1-4/image_1.png")
            for k in range(1, 4)]
    rows[2]["answer"] = ""
    (tmp_path / "testmini.json").write_text(json.dumps(rows))
    with pytest.raises(DataError, match=r"testmini.json:2: missing_field: key 'answer'"):
        bm.load("mathverse", tmp_path)
    with pytest.warns(DataWarning):
        items = bm.load("mathverse", tmp_path, max_bad_fraction=0.5)
    assert [it.id for it in items] == ["1", "2"]
    assert bm.load_image(items[0]).size == (4, 4)


# ---------------------------------------------------------------------------------------------
# MM-Math
# ---------------------------------------------------------------------------------------------
MMMATH = [
    # (solution, difficult), response, rule verdict
    (("D is the midpoint, so AB = 2AD = \\boxed{6cm}", "容易"), think("Final Answer: \\boxed{6}"), True),
    (("so $x=\\frac{1}{3}$\nThe answer is $\\frac{1}{3}$", "普通"), "so x = $0.333$", True),  # last $...$, 1e-2
    (("thus \\boxed{2\\sqrt{3}}", "普通"), think("3.46"), True),  # numeric at 1e-2
    (("k = \\boxed{-1}, b = \\boxed{2}", "困难"), "\\boxed{2}, \\boxed{-1}", True),  # two answers, any order
    (("\\boxed{45^{\\circ}}", "困难"), think("AB=50"), False),
]


def test_mmmath_jsonl_load_score_aggregate(tmp_path):
    (tmp_path / "MM_Math").mkdir()
    lines = []
    for k, ((solution, level), _, _) in enumerate(MMMATH):
        Image.new("RGB", (3, 3), "black").save(tmp_path / "MM_Math" / f"q{k}.png")
        lines.append(json.dumps({"question": f"question {k}", "file_name": f"q{k}.png", "solution": solution,
                                 "year": "八年级上学期", "difficult": level,
                                 "knowledge": ["Properties of Shapes"]}, ensure_ascii=False))
    (tmp_path / "MM_Math.jsonl").write_text("\n".join(lines) + "\n")
    items = bm.load("mmmath", tmp_path)
    assert [it.id for it in items] == ["q0", "q1", "q2", "q3", "q4"]
    assert [it.answer for it in items] == ["6cm", "\\frac{1}{3}", "2\\sqrt{3}", "-1,2", "45^{\\circ}"]
    assert [it.meta["level"] for it in items] == ["easy", "medium", "medium", "hard", "hard"]
    assert bm.load_image(items[0]).size == (3, 3)

    verdicts = graded(items, [r for _, r, _ in MMMATH])
    assert verdicts == [v for _, _, v in MMMATH]
    assert bm.score(items[0], "no boxed answer, 6")["correct"] is False  # the judge reads \boxed{} or $...$
    agg = bm.aggregate("mmmath", items, verdicts)
    assert (agg["accuracy"], agg["easy"], agg["medium"], agg["hard"]) == (80.0, 100.0, 100.0, 50.0)


def test_mmmath_bad_json_line_is_reported(tmp_path):
    Image.new("RGB", (3, 3)).save(tmp_path / "a.png")
    good = json.dumps({"question": "q", "file_name": "a.png", "solution": "\\boxed{1}", "difficult": "容易"})
    (tmp_path / "MM_Math.jsonl").write_text(f"{good}\n{{not json\n")
    with pytest.raises(DataError, match=r"MM_Math.jsonl:1: invalid_json"):
        bm.load("mmmath", tmp_path)


def test_mmmath_solution_without_answer_is_ungradeable_and_counted(tmp_path):
    Image.new("RGB", (3, 3)).save(tmp_path / "a.png")
    rec = {"question": "q", "file_name": "a.png", "solution": "no final answer here", "difficult": "容易"}
    (tmp_path / "MM_Math.jsonl").write_text(json.dumps(rec) + "\n")
    (item,) = bm.load("mmmath", tmp_path)
    assert item.answer == "" and bm.score(item, "\\boxed{1}")["correct"] is None
    agg = bm.aggregate("mmmath", [item], [None])
    assert (agg["n"], agg["n_ungradeable"]) == (0, 1)


# ---------------------------------------------------------------------------------------------
# DynaMath
# ---------------------------------------------------------------------------------------------
def dynamath_rows(variant: int) -> list[dict]:
    return [
        {"id": "1", "question": "What is the slope?", "image": f"images/1_{variant}.png",
         "decoded_image": {"bytes": png("yellow"), "path": None}, "ground_truth": f"{variant}.5",
         "answer_type": "float", "subject": "AG", "knowledge_level": "high school"},
        {"id": "2", "question": "Which is larger?\nChoices: (A) left (B) right", "image": "images/2.png",
         "decoded_image": {"bytes": png("purple"), "path": None}, "ground_truth": "B",
         "answer_type": "multiple choice", "subject": "ST", "knowledge_level": "elementary school"},
    ]


def test_dynamath_variants_average_and_worst_case(tmp_path):
    for v in (1, 2, 3):
        write_parquet(tmp_path / "data" / f"sample_variant{v}-00000-of-00001.parquet", dynamath_rows(v))
    items = bm.load("dynamath", tmp_path)
    assert [it.id for it in items] == ["1-v1", "2-v1", "1-v2", "2-v2", "1-v3", "2-v3"]
    assert items[1].choices == ["left", "right"] and items[1].question_type == "multi_choice"
    assert items[0].answer == "1.5" and items[0].precision == 3
    assert items[2].meta == {"qid": "1", "variant": 2, "subject": "AG", "knowledge_level": "high school",
                             "seed": False, "source": "data/sample_variant2-00000-of-00001.parquet:0",
                             "prompt_source": "data/sample_variant2-00000-of-00001.parquet:question"}
    responses = [think("1.5"), think("B"), think("2.5004"), "the answer is (B) right", think("3.6"), think("right")]
    verdicts = graded(items, responses)
    assert verdicts == [True, True, True, True, False, True]
    agg = bm.aggregate("dynamath", items, verdicts)
    # average 5/6; worst case: qid 1 fails on variant 3, qid 2 right on all -> 1/2
    assert (agg["accuracy"], agg["worst_case"], agg["n_questions"]) == (83.3, 50.0, 2)


# The seed set's 11 multiple-choice questions whose options are not after "Choices:"/"choice:", one of
# each way, as github:DynaMath/DynaMath dataset/dataset.json and DynaMath_Sample write them:
# (id, question, ground_truth, options read, [(answer, right?), ...])
DYNAMATH_INLINE = [
    ("245", "Which data structure is the following graph shown?  (A) heap (B) stack (C) binary tree (D) planted tree ",
     "C", ["heap", "stack", "binary tree", "planted tree"],
     [("C", True), ("binary tree", True), ("(C) binary tree", True), ("B", False), ("stack", False),
      ("planted tree", False)]),
    ("366", "Which group has the largest Y value?\nA. Group 1\nB. Group 2\nC. Group 3", "A",
     ["Group 1", "Group 2", "Group 3"],
     [("A", True), ("Group 1", True), ("A. Group 1", True), ("B", False), ("Group 2", False)]),
    ("468", "What is the intersection of sets A and B?\nA: [2, 8, 10, 12, 13, 17, 19]\n"
            "B: [1, 2, 8, 10, 11, 12, 13, 16, 17, 18, 19]\nC: [1, 11, 16, 18]\nD: [3, 4, 6]\n", "D",
     ["[2, 8, 10, 12, 13, 17, 19]", "[1, 2, 8, 10, 11, 12, 13, 16, 17, 18, 19]", "[1, 11, 16, 18]", "[3, 4, 6]"],
     [("D", True), ("[3, 4, 6]", True), ("D: [3, 4, 6]", True), ("C", False), ("[1, 11, 16, 18]", False)]),
    # options drawn in the image: each option is its letter, graded by the letter named
    ("127", "The ♠ is drawn on the sheet. We turn the sheet clockwise through 90° and then turn counter-clockwise "
            "180°. Which figure can we now see? choice: (A) (B) (C) (D)", "A", ["A", "B", "C", "D"],
     [("A", True), ("(A)", True), ("Option A", True), ("B", False), ("E", False)]),
    # two options with the same text (B and E): the data's own slip; either letter is right
    ("298", "Which differential equation generates the slope field? (A) -2x + -2y (B) -2x - 2y (C) -2y - 2x "
            "(D) -2x (E) -2x - 2y ", "E", ["-2x + -2y", "-2x - 2y", "-2y - 2x", "-2x", "-2x - 2y"],
     [("E", True), ("-2x - 2y", True), ("B", True), ("A", False), ("-2x", False)]),
]


@pytest.mark.parametrize("qid, question, gold, options, answers", DYNAMATH_INLINE, ids=[r[0] for r in DYNAMATH_INLINE])
def test_dynamath_options_written_inline(qid, question, gold, options, answers, tmp_path):
    row = {"id": qid, "question": question, "image": f"images/{qid}.png",
           "decoded_image": {"bytes": png("green"), "path": None}, "ground_truth": gold,
           "answer_type": "multiple choice", "subject": "graph theory", "knowledge_level": "undergraduate"}
    write_parquet(tmp_path / "data" / "sample1-00000-of-00001.parquet", [row])
    [item] = bm.load("dynamath", tmp_path)
    assert (item.choices, item.question_type) == (options, "multi_choice")
    for answer, right in answers:  # in the answer block and in free text
        assert bm.score(item, think(answer))["correct"] is right, answer
        assert bm.score(item, f"Looking at the figure, the answer is {answer}.")["correct"] is right, answer


def test_dynamath_corrupt_image_is_reported(tmp_path):
    rows = dynamath_rows(1)
    rows[1]["decoded_image"] = {"bytes": b"\x89PNG not really", "path": None}
    write_parquet(tmp_path / "sample_variant1.parquet", rows)
    with pytest.raises(DataError, match=r"sample_variant1.parquet:1: corrupt_image"):
        bm.load("dynamath", tmp_path)


# ---------------------------------------------------------------------------------------------
# nano
# ---------------------------------------------------------------------------------------------
def test_nano_test_split(tmp_path):
    samples = nano_task.generate(6, seed=0, split="test")
    path = nano_task.write_jsonl(samples, tmp_path / "test.jsonl")
    items = bm.load("nano", path)
    assert [it.id for it in items] == [s.id for s in samples]
    assert [it.meta["qtype"] for it in items] == [s.qtype for s in samples]
    assert bm.load_image(items[0]).size == samples[0].image.size
    right = [think(s.answer) for s in samples]
    verdicts = graded(items, right)
    assert all(verdicts)
    agg = bm.aggregate("nano", items, [True] + [False] * 5)
    assert agg["accuracy"] == 16.7 and sum(agg["sub_n"].values()) == 6
    assert agg[samples[0].qtype] > 0


# ---------------------------------------------------------------------------------------------
# API surface
# ---------------------------------------------------------------------------------------------
def test_paper_table_and_errors(tmp_path):
    assert bm.PAPER["Vision-R1-7B"] == {"mathvista": 73.5, "mathverse": 52.4, "mathverse_vision_only": 46.7,
                                        "mmmath": 40.2, "dynamath": 56.3}
    assert bm.PAPER["Qwen2.5-VL-7B"]["dynamath"] == 50.7 and bm.PAPER["Qwen2.5-VL-72B"]["mmmath"] == 45.6
    with pytest.raises(ValueError, match="unknown benchmark"):
        bm.load("mathvision", tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        bm.load("mathvista", tmp_path / "nope")
    with pytest.raises(DataError, match="no data file"):
        bm.load("mathverse", tmp_path)


def test_one_module_per_benchmark_behind_the_package():
    # every benchmark read from files has its module's FileFormat (nano reads its own split)
    assert set(bm._FORMATS) | {"nano"} == set(bm.BENCHMARKS)
    assert bm.DEFAULT_QUESTION_FIELD == {"mathvista": "query", "mathverse": "query_cot"}
    # the package's names are the modules' own objects, not copies
    assert bm.judge is llm_judge.judge and bm.official_mathvista_verdict is mathvista.official_mathvista_verdict
    assert scoring.official_prediction is mathvista.official_prediction  # the one replica of calculate_score.py
    assert bm.mmmath_gold is mmmath.mmmath_gold and bm.mathverse_choices is mathverse.mathverse_choices
    assert bm.dynamath_choices is dynamath.dynamath_choices and bm.BenchItem is common.BenchItem


# ---------------------------------------------------------------------------------------------
# LLM judge
# ---------------------------------------------------------------------------------------------
def test_judge_and_agreement_against_fake_server():
    items = [bm.BenchItem("mathvista", str(k), f"question {k}", str(k), None) for k in range(4)]
    responses = [think("0"), think("one"), think("7"), "I am not sure"]

    def reply(body):  # the judge says yes when the reference answer appears in the response shown
        prompt = body["messages"][0]["content"]
        ref = prompt.split("Reference answer: ")[1].split("\n")[0]
        shown = prompt.split("Final part of the model's response:\n")[1].split("\n\nDoes the model")[0]
        if "not sure" in shown:
            return "I cannot tell"
        return "Yes" if ref in shown or (ref == "1" and "one" in shown) else "No."

    with FakeOpenAI(script=[("status", 500)], reply=reply) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="fake", max_retries=2)
        verdicts = bm.judge(items, responses, client, model="judge", max_workers=2)
        assert len(srv.requests) == 5  # one 500 retried by the client
    assert verdicts == [True, True, False, None]
    rule = graded(items, responses)
    assert rule == [True, False, False, False]
    assert bm.agreement(rule, verdicts) == {"n_compared": 3, "agree": 2, "agreement": 66.7,
                                            "rule_yes_judge_no": 0, "rule_no_judge_yes": 1}


def test_judge_failed_request_gives_none_and_warns():
    items = [bm.BenchItem("mathverse", "1", "q", "2", None)]
    with FakeOpenAI(script=[("status", 400)]) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="fake", max_retries=0)
        with pytest.warns(DataWarning, match="1 of 1 requests failed"):
            assert bm.judge(items, [think("2")], client, model="judge") == [None]
