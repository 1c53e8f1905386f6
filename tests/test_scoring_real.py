"""The grader on real answers: public MathVista outputs with their official verdicts, math-verify's
own regression suite, and `score --official` reproducing calculate_score.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from visionr1 import benchmarks, grading, scoring

FIXTURES = Path(__file__).parent / "fixtures" / "grading"
MATHVISTA = json.loads((FIXTURES / "mathvista_sample.json").read_text())["rows"]  # source in the file
MATH_VERIFY = json.loads((FIXTURES / "math_verify_cases.json").read_text())["cases"]  # source in the file


@pytest.fixture(autouse=True)
def no_comparison_runs_out_of_budget():
    """These tests measure the grader's rules at the budget RL and 04 grade with. That budget counts
    work, not wall time (grading._within_budget), so the verdicts hold on a loaded machine too;
    none of these comparisons comes near it."""
    before = grading.STATS["timeouts"] + grading.STATS["wall_timeouts"]
    yield
    assert grading.STATS["timeouts"] + grading.STATS["wall_timeouts"] == before


def test_ours_agrees_with_the_official_mathvista_verdicts():
    # 255 answers of 17 model/prompt settings; the full 17,000 are measured by bench/grader.py --mathvista
    agree = [scoring.score_record(r)["true_false"] == bool(r["true_false"]) for r in MATHVISTA]
    assert sum(agree) / len(agree) >= 0.90  # 0.91 on this sample, 0.925 on all 17,000


def test_official_mode_reproduces_calculate_score():
    # the file's own (GPT-4) extraction, normalized the official way: its true_false exactly
    for r in MATHVISTA:
        assert scoring.score_record(r, official=True)["true_false"] is bool(r["true_false"]), r["pid"]
        assert benchmarks.official_mathvista_verdict(r) is bool(r["true_false"])  # the same function


def _verdict(case: dict) -> bool:
    ext = grading.extract_answer(case["pred"], block_only=False)
    gold = grading.extract_answer(case["gold"]).answer if "\\boxed" in case["gold"] else grading.clean_answer(case["gold"])
    gold = gold or ""  # the gold read as the prediction is (math-verify parses both alike)
    return ext.answer is not None and grading.gradeable(gold) and grading.is_equivalent(ext.answer, gold)


def test_math_verify_regression_suite():
    # free-text LaTeX answers with math-verify's expected verdicts
    agree = [_verdict(c) is bool(c["expected"]) for c in MATH_VERIFY]
    assert sum(agree) / len(agree) >= 0.90


@pytest.mark.parametrize("gold, pred", [("2", "$\\frac{1+\\sqrt{5}}{2}$"), ("5", "so $x = 2\\sqrt{5}$"),
                                        ("3", "The answer is $\\frac{9}{3}+\\pi$.")])
def test_the_last_number_of_an_expression_is_never_paid(gold, pred):
    assert _verdict({"gold": gold, "pred": pred}) is False


def test_cli_prints_both_accuracies_and_disagreements(tmp_path):
    data = {r["pid"] + r["source"]: r for r in MATHVISTA[:40]}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    for flag, mode in (([], "ours"), (["--official"], "official")):
        proc = subprocess.run([sys.executable, "-m", "visionr1", "score", str(path), *flag], capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert f"({mode})" in proc.stdout and "ours " in proc.stdout and "disagree on " in proc.stdout
    out = json.loads((tmp_path / "p.scored.json").read_text())
    assert all(v["true_false"] is v["true_false_official"] for v in out.values())  # the last run: --official


def test_evaluation_records_grading_counters(tmp_path):
    # 04_evaluate: each record keeps what grading it took; the per-benchmark summary sums them (resume-safe)
    from visionr1 import evaluate

    items = [benchmarks.BenchItem("nano", "1", "How many?", "5", None),
             benchmarks.BenchItem("nano", "2", "How many?", "", None)]  # an ungradeable gold
    recs = evaluate.run(items, lambda batch: ["<think>x</think><answer>5</answer>"] * len(batch),
                        tmp_path / "nano.jsonl", evaluate.Sampling(batch_size=2))
    summary = evaluate.grading_summary(recs)
    assert summary["ungradeable_gold"] == 1 and summary["graded"] == 1 and summary["timeouts"] == 0
    again = evaluate.run(items, lambda batch: 1 / 0, tmp_path / "nano.jsonl", evaluate.Sampling(batch_size=2))
    assert evaluate.grading_summary(again) == summary  # resumed from the file, nothing re-asked
