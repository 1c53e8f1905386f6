"""The nano task: determinism, disjoint splits, balanced answers, the data regime."""

from __future__ import annotations

from collections import Counter

import pytest

from visionr1 import nano_task, released_data
from visionr1.nano_task import Scene


@pytest.fixture(scope="module")
def splits():
    return nano_task.build_splits(seed=0, n_test=300, n_cold_start=200, n_rl=400)


def test_same_seed_same_data_other_seed_differs():
    a = nano_task.build_splits(seed=3, n_test=40, n_cold_start=20, n_rl=30)
    b = nano_task.build_splits(seed=3, n_test=40, n_cold_start=20, n_rl=30)
    c = nano_task.build_splits(seed=4, n_test=40, n_cold_start=20, n_rl=30)
    for name in a:
        assert [s.record() for s in a[name]] == [s.record() for s in b[name]]
    assert [s.record() for s in a["test"]] != [s.record() for s in c["test"]]
    assert a["test"][0].image.tobytes() == b["test"][0].image.tobytes()  # pixels too


def test_splits_share_no_image_or_question(splits):
    test = nano_task.scene_keys(splits["test"])
    for name in ("cold_start", "rl"):
        assert not test & nano_task.scene_keys(splits[name]), name
        pairs = {(s.scene.key, s.question) for s in splits[name]}
        assert not pairs & {(s.scene.key, s.question) for s in splits["test"]}
    assert not nano_task.scene_keys(splits["cold_start"]) & nano_task.scene_keys(splits["rl"])
    # test scenes are reserved by content: another seed's training sets never hold one
    other = nano_task.generate(300, 99, "rl")
    assert not any(s.scene.is_test_scene for s in other)
    assert all(s.scene.is_test_scene for s in splits["test"])


def test_answers_are_right_for_the_scene():
    scene = Scene(3, (("red", "circle"), ("red", "square"), None,
                      ("blue", "circle"), ("green", "triangle"), ("red", "circle"),
                      None, None, ("blue", "square")))
    # one row per case: (question type, rng seed) -> the answer recomputed from the scene by hand
    for seed in range(30):
        rng = nano_task.random.Random(seed)
        for qtype in nano_task.QUESTION_TYPES:
            text, value, facts = nano_task.ask(rng, scene, qtype)
            assert value >= 0
            if qtype == "count_color" and "red" in text:
                assert value == 3  # red circle, red square, red circle
            if text == "How many circles are there?":
                assert value == 3
            if text == "How many shapes are red or blue?":
                assert value == 5
            if text == "How many more circles than squares are there?":
                assert value == 1
            if qtype == "weighted_sum":
                k = facts["factor"]
                a, b = [v for key, v in facts.items() if key != "factor"]
                assert value == k * a + b


def test_levels_follow_the_paper_regime(splits):
    mean = lambda xs: sum(s.level for s in xs) / len(xs)  # noqa: E731
    # cold-start source leans easy, RL set leans hard, test in between
    assert mean(splits["cold_start"]) < mean(splits["test"]) < mean(splits["rl"])
    assert {s.level for s in splits["rl"]} == {1, 2, 3}


def test_answers_balanced_and_choices_well_formed(splits):
    samples = splits["test"] + splits["rl"]
    for s in samples:
        if s.choices is not None:
            assert len(set(s.choices)) == 4 and s.answer in "ABCD"
            assert s.choices["ABCD".index(s.answer)] == str(s.answer_value)
            assert "(A)" in s.question and "(D)" in s.question
        else:
            assert s.answer == str(s.answer_value)
        assert s.answer_value in nano_task.QUESTION_TYPES[s.qtype][1]
    letters = Counter(s.answer for s in samples if s.choices)
    assert max(letters.values()) / sum(letters.values()) < 0.35  # the right letter is spread evenly
    # free-form answers of a one-step type cover the range without a dominant value
    vals = Counter(s.answer_value for s in nano_task.generate(700, 1, "x", (1, 0, 0), mc_fraction=0.0)
                   if s.qtype == "count_color")
    assert len(vals) == 7 and max(vals.values()) / sum(vals.values()) < 0.3


def test_chance_accuracy_is_majority_answer_per_type():
    s = nano_task.generate(4, 0, "x", (1, 0, 0), mc_fraction=0.0)
    for x, ans in zip(s, ["1", "1", "2", "3"]):
        x.qtype, x.answer = "count_color", ans
    assert nano_task.chance_accuracy(s) == 0.5


def test_rl_set_round_trips_in_geometry3k_schema(tmp_path, splits):
    recs = nano_task.geometry3k_records(splits["rl"][:20])
    path = released_data.write_geometry3k_parquet(recs, tmp_path / "rl" / "train.parquet")
    back = released_data.load_geometry3k(path.parent, "train")
    assert [r["problem"] for r in back] == [r["problem"] for r in recs]
    assert all(r["problem"].startswith("<image>") for r in back)
    assert back[0]["images"][0].tobytes() == recs[0]["images"][0].tobytes()


def test_cold_start_source_carries_description(tmp_path, splits):
    import json

    path = nano_task.write_cold_start_source(splits["cold_start"][:5], tmp_path / "cs")
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(rows) == 5 and (tmp_path / "cs" / rows[0]["image"]).exists()
    # the description holds every cell, so a text-only teacher can answer from it
    assert rows[0]["description"].count("Row") == 3 and rows[0]["answer"]


def _mc(value=5, choices=("4", "6", "5", "3")):
    s = nano_task.generate(1, 0, "x", (1, 0, 0), mc_fraction=0.0)[0]
    s.choices = list(choices)
    s.answer_value = value
    s.answer = "ABCD"[s.choices.index(str(value))]
    return s


@pytest.mark.parametrize(
    "text, right",
    [
        ("(C)", True),      # the right letter in parentheses
        ("C", True),        # a bare letter
        ("C.", True),       # a letter with a full stop
        ("(A)", False),     # a wrong letter
        ("5", True),        # the right option's text maps to its letter
        ("4", False),       # another option's text
        ("5 (A)", False),   # a letter, when given, decides: the value does not rescue a wrong letter
        ("", False),        # nothing
    ],
)
def test_grade_direct_multiple_choice(text, right):
    assert nano_task.grade_direct(_mc(), text) is right


@pytest.mark.parametrize("text, right", [("3", True), ("3 circles", True), ("4", False), ("three", False)])
def test_grade_direct_free_form(text, right):
    s = nano_task.generate(1, 0, "x", (1, 0, 0), mc_fraction=0.0)[0]
    s.answer_value, s.answer = 3, "3"
    assert nano_task.grade_direct(s, text) is right


def test_count_by_rows_adds_up_to_every_fact():
    for s in nano_task.generate(200, 3, "x", grid=3):
        for name, value in s.facts.items():
            if name != "factor":
                per_row = nano_task.count_by_rows(s.scene.description(), name)
                assert len(per_row) == 3 and sum(per_row) == value, (name, s.scene.description())
    with pytest.raises(ValueError, match="not a nano fact name: 'purple things'"):
        nano_task.count_by_rows("Row 1, from left to right: an empty cell.", "purple things")
