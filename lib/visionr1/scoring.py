"""Scoring prediction files in the official MathVista format (RECIPE §5), no paid API.

    python -m visionr1 score FILE [-o OUT]

FILE is a JSON object keyed by pid; each record carries question, choices, answer, answer_type
(integer|float|text|list), precision, question_type (multi_choice|free_form), unit and the model's
`response`. OUT (default: FILE with `.scored.json` for `.json`) has the same keys, each record
gaining our `extraction` (the answer found in the response), `prediction` (normalized as the
official scorer does: an option's text for multiple choice, int / rounded float / list string)
and `true_false` (the grader's verdict). Prints the accuracy, overall and per question type.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from tqdm.auto import tqdm

from visionr1 import grading

REQUIRED = ("answer", "question_type", "answer_type", "response")


def normalize_prediction(extraction: str | None, rec: dict) -> str | None:
    """The official scorer's `prediction`: an option's text, str(int), str(round(float, p)), str(list)."""
    if extraction is None:
        return None
    choices = rec.get("choices") or []
    if rec["question_type"] == "multi_choice":
        letter = grading.match_option(extraction, choices)
        return choices[grading.LETTERS.index(letter)] if letter else None
    try:
        if rec["answer_type"] == "integer":
            return str(int(float(grading.normalize(extraction))))
        if rec["answer_type"] == "float":
            return str(round(float(grading.normalize(extraction)), int(rec.get("precision") or 0)))
    except (ValueError, OverflowError):
        return None
    return extraction


def score_record(rec: dict) -> dict:
    choices = rec.get("choices") or None
    precision = rec.get("precision")
    precision = int(precision) if rec.get("answer_type") == "float" and precision is not None else None
    ext = grading.extract_answer(str(rec.get("response") or ""), choices, block_only=False)
    correct = False
    if ext.answer is not None and grading.gradeable(rec["answer"]):
        correct = grading.is_equivalent(ext.answer, str(rec["answer"]), precision=precision, choices=choices)
    return {**rec, "extraction": ext.answer, "prediction": normalize_prediction(ext.answer, rec),
            "true_false": bool(correct)}


def score_file(path: str | Path, out: str | Path | None = None, progress: bool = True) -> dict:
    """Score a MathVista-format prediction file; returns the summary and writes OUT."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read a JSON prediction file ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object keyed by pid, got {type(data).__name__}")
    for pid, rec in data.items():
        missing = [k for k in REQUIRED if not isinstance(rec, dict) or k not in rec]
        if missing:
            raise ValueError(f"{path}: record {pid!r} lacks {', '.join(missing)}")
    scored = {pid: score_record(rec) for pid, rec in tqdm(data.items(), desc="scoring", disable=not progress)}
    out = Path(out) if out else path.with_name(path.name[:-5] + ".scored.json" if path.name.endswith(".json")
                                               else path.name + ".scored.json")
    out.write_text(json.dumps(scored, indent=2, ensure_ascii=False))
    by_type: dict[str, list[bool]] = defaultdict(list)
    for rec in scored.values():
        by_type[rec["question_type"]].append(rec["true_false"])
    n = len(scored)
    return {"file": str(out), "n": n, "accuracy": sum(r["true_false"] for r in scored.values()) / max(1, n),
            "by_question_type": {k: sum(v) / len(v) for k, v in sorted(by_type.items())}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m visionr1 score",
                                 description="Score a MathVista-format prediction file with the rule-based grader.")
    ap.add_argument("file")
    ap.add_argument("-o", "--out", default=None, help="output file (default: FILE.scored.json)")
    args = ap.parse_args(argv)
    try:
        s = score_file(args.file, args.out)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"accuracy {s['accuracy']:.4f} on {s['n']} records "
          + " ".join(f"{k} {v:.4f}" for k, v in s["by_question_type"].items()) + f"\nwrote {s['file']}")
    return 0
