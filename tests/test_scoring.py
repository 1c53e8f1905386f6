"""`python -m visionr1 score` on a file in the official MathVista prediction format."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from visionr1 import scoring


def rec(question_type, answer_type, answer, response, choices=None, precision=None, unit=None):
    return {"question": "q", "choices": choices, "answer": answer, "answer_type": answer_type,
            "precision": precision, "question_type": question_type, "unit": unit, "query": "q",
            "response": response}


# pid -> (record, expected prediction, expected verdict)
CASES = {
    "1": (rec("multi_choice", "text", "145°", "<think>x</think><answer>(B) 145°</answer>", ["35°", "145°"]), "145°", True),  # letter + text
    "2": (rec("multi_choice", "text", "145°", "The answer is A.", ["35°", "145°"]), "35°", False),  # wrong letter
    "3": (rec("multi_choice", "text", "145°", "Answer: A or B", ["35°", "145°"]), None, False),  # hedged: no option
    "4": (rec("free_form", "integer", "5", "I count them... the answer is 5."), "5", True),  # free text
    "5": (rec("free_form", "float", "1.5", "<answer> Final Answer: 1.49 </answer>", precision=1), "1.5", True),  # precision 1
    "6": (rec("free_form", "float", "1.25", "\\boxed{1.2}", precision=2), "1.2", False),  # wrong at precision 2
    "7": (rec("free_form", "integer", "12", "<answer>12 cm</answer>", unit="cm"), "12", True),  # unit stripped
    "8": (rec("free_form", "list", "[1, 2]", "so \\boxed{[1, 2]}"), "[1, 2]", True),  # list
    "9": (rec("free_form", "integer", "3", ""), None, False),  # empty response
}


def test_score_file(tmp_path, capsys):
    path = tmp_path / "preds.json"
    path.write_text(json.dumps({pid: r for pid, (r, _, _) in CASES.items()}))
    summary = scoring.score_file(path, progress=False)
    out = json.loads((tmp_path / "preds.scored.json").read_text())
    assert list(out) == list(CASES)  # same keys, same order
    for pid, (r, prediction, verdict) in CASES.items():
        assert {k: out[pid][k] for k in r} == r  # every original field kept
        assert (out[pid]["prediction"], out[pid]["true_false"]) == (prediction, verdict), pid
    assert summary["accuracy"] == pytest.approx(5 / 9)


def test_cli_prints_accuracy_and_fails_clearly(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"1": CASES["4"][0]}))
    proc = subprocess.run([sys.executable, "-m", "visionr1", "score", str(path), "-o", str(tmp_path / "o.json")],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "accuracy 1.0000 on 1 records" in proc.stdout
    assert json.loads((tmp_path / "o.json").read_text())["1"]["true_false"] is True
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"7": {"question": "q"}}))
    proc = subprocess.run([sys.executable, "-m", "visionr1", "score", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2 and "record '7' lacks answer" in proc.stderr
