"""Scoring prediction files in the official MathVista format (docs/recipe.md §5), no paid API.

    python -m visionr1 score FILE [-o OUT] [--official]

FILE is a JSON object keyed by pid; each record carries question, choices, answer, answer_type
(integer|float|text|list), precision, question_type (multi_choice|free_form), unit and the model's
`response`. OUT (default: FILE with `.scored.json` for `.json`) has the same keys, each record
gaining our `extraction` (the answer found in the response), `prediction` and `true_false`.

Two verdicts, both computed for every record:
  ours      visionr1.grading (what 04_evaluate and the RL rewards use): `extraction` read by the
            grader's rules, compared by `is_equivalent`
  official  MathVista's calculate_score.py: the extraction (the file's own `extraction` field when
            it has one, as GPT-4 wrote it; else ours) normalized by `official_prediction`, which
            maps a multiple-choice answer to the nearest option by edit distance, then compared to
            the answer by plain equality
The default writes ours as `true_false`, `--official` the official one. The summary prints both
accuracies and how many records they disagree on. `official_prediction` is the one copy of the
official normalization; it lives with the rest of MathVista in visionr1.benchmarks.mathvista.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from tqdm.auto import tqdm

from visionr1 import grading
from visionr1.benchmarks.mathvista import official_prediction

REQUIRED = ("answer", "question_type", "answer_type", "response")


def normalize_prediction(extraction: str | None, rec: dict) -> str | None:
    """Our `prediction`: the option's text our grader reads for multiple choice, int / rounded float
    / the extraction otherwise (None when it names no option or is no number)."""
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


def score_record(rec: dict, official: bool = False) -> dict:
    """The record with our `extraction` and, by the chosen mode, `prediction` and `true_false`;
    `true_false_ours` and `true_false_official` carry both verdicts."""
    choices = rec.get("choices") or None
    precision = rec.get("precision")
    precision = int(precision) if rec.get("answer_type") == "float" and precision is not None else None
    ext = grading.extract_answer(str(rec.get("response") or ""), choices, block_only=False)
    ours = False
    if ext.answer is not None and grading.gradeable(rec["answer"]):
        ours = grading.is_equivalent(ext.answer, str(rec["answer"]), precision=precision, choices=choices)
    given = rec.get("extraction") if "extraction" in rec else ext.answer
    off_pred = official_prediction(given if given is not None else "", rec) if (choices or given is not None) else None
    off = off_pred == rec["answer"]
    pred = off_pred if official else normalize_prediction(ext.answer, rec)
    return {**rec, "extraction": ext.answer if not official else given, "prediction": pred,
            "true_false": bool(off if official else ours), "true_false_ours": bool(ours), "true_false_official": bool(off)}


def score_file(path: str | Path, out: str | Path | None = None, progress: bool = True, official: bool = False) -> dict:
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
    scored = {pid: score_record(rec, official) for pid, rec in tqdm(data.items(), desc="scoring", disable=not progress)}
    out = Path(out) if out else path.with_name(path.name[:-5] + ".scored.json" if path.name.endswith(".json")
                                               else path.name + ".scored.json")
    out.write_text(json.dumps(scored, indent=2, ensure_ascii=False))
    by_type: dict[str, list[bool]] = defaultdict(list)
    for rec in scored.values():
        by_type[rec["question_type"]].append(rec["true_false"])
    n = len(scored)
    recs = scored.values()
    return {"file": str(out), "n": n, "mode": "official" if official else "ours",
            "accuracy": sum(r["true_false"] for r in recs) / max(1, n),
            "accuracy_ours": sum(r["true_false_ours"] for r in recs) / max(1, n),
            "accuracy_official": sum(r["true_false_official"] for r in recs) / max(1, n),
            "disagree": sum(r["true_false_ours"] != r["true_false_official"] for r in recs),
            "by_question_type": {k: sum(v) / len(v) for k, v in sorted(by_type.items())}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m visionr1 score",
                                 description="Score a MathVista-format prediction file with the rule-based grader.")
    ap.add_argument("file")
    ap.add_argument("-o", "--out", default=None, help="output file (default: FILE.scored.json)")
    ap.add_argument("--official", action="store_true",
                    help="write MathVista calculate_score.py's verdicts (edit-distance fallback included) as true_false")
    args = ap.parse_args(argv)
    try:
        s = score_file(args.file, args.out, official=args.official)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"accuracy {s['accuracy']:.4f} on {s['n']} records ({s['mode']}) "
          + " ".join(f"{k} {v:.4f}" for k, v in s["by_question_type"].items())
          + f"\nours {s['accuracy_ours']:.4f}  official {s['accuracy_official']:.4f}  disagree on {s['disagree']}"
          + f"\nwrote {s['file']}")
    return 0
