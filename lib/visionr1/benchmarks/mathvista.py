"""MathVista testmini (docs/recipe.md §5): its layouts, its official prompt, its sub-scores, and a replica
of the official calculate_score.py normalization.

Layouts read: AI4Math/MathVista testmini parquet (data/testmini-*.parquet: pid, question, image,
decoded_image, choices, unit, precision, answer, question_type, answer_type,
metadata{category, context, grade, language, skills, source, split, task}, query), or the GitHub
JSON keyed by pid (data/testmini.json, "image": "images/N.jpg" next to an images/ folder) with its
prompts in query.json beside it, or VLMEvalKit's MathVista_MINI.tsv (index, base64 image,
question = the query, choices and skills as Python list text, task); annot_testmini.json
(annotations, not questions) is refused.

The text sent with the image is MathVista's official `query` in every layout (the Hub `query`,
query.json, the TSV `question` VLMEvalKit sends, or, with none of these, built as build_query.py
builds query.json: `mathvista_query`). Sub-scores are VLMEvalKit's GEO/ALG/GPS/MWP
(`MATHVISTA_SUBSCORES`).

`official_prediction` is calculate_score.py's normalize_extracted_answer, the one copy in the
project (also behind `python -m visionr1 score --official`, visionr1.scoring);
`official_mathvista_verdict` reproduces the official `true_false` on a record that already
carries the official `extraction`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from visionr1 import grading
from visionr1.benchmarks.common import (
    BenchItem,
    FileFormat,
    _BadRow,
    _File,
    _image,
    _literal,
    _precision,
    _text,
    testmini_parquet_files,
)
from visionr1.reader import KEY_FIELD, DataError

# MathVista sub-scores as VLMEvalKit reports them: (name, metadata key, value); skills is a list
MATHVISTA_SUBSCORES = (("GEO", "skills", "geometry reasoning"), ("ALG", "skills", "algebraic reasoning"),
                       ("GPS", "task", "geometry problem solving"), ("MWP", "task", "math word problem"))


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------
def _check_file_kind(file: Path) -> None:
    """Refuse, by name, the files that sit beside MathVista's questions but are not questions."""
    if file.name == "query.json":
        raise DataError(f"{file} holds MathVista's prompts only (pid -> query); load testmini.json beside it, "
                        "whose prompts are then taken from this query.json")
    if file.name.startswith("annot_"):
        raise DataError(f"{file} is MathVista's annotation file (solutions, programs and captions per pid), "
                        "not its questions; load data/testmini.json (or the Hub's testmini parquet) instead")


def _check_kind(rec: dict, ctx: _File) -> None:
    """Refuse a file whose first row is plainly another kind of file than MathVista's questions."""
    keys = sorted(k for k in rec if k != KEY_FIELD)
    if "question" not in rec and "query" not in rec:
        raise DataError(f"mathvista: {ctx.path} is not a MathVista question file: its rows have keys {keys[:8]} "
                        "and no 'question' (expected pid, question, choices, answer, question_type, answer_type, "
                        "...; annot_testmini.json holds annotations, not questions)")


# MathVista's zero-shot hint (evaluation/build_query.py; query.json and the Hub `query` hold the
# same text): "Hint: ...\nQuestion: ... (Unit: u)\nChoices:\n(A) ..."
_MATHVISTA_HINTS = {
    "multi_choice": "Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.",
    "integer": "Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, "
               "at the end.",
    "float1": "Please answer the question requiring a floating-point number with one decimal place and provide the "
              "final value, e.g., 1.2, 1.3, 1.4, at the end.",
    "float2": "Please answer the question requiring a floating-point number with two decimal places and provide "
              "the final value, e.g., 1.23, 1.34, 1.45, at the end.",
    "list": "Please answer the question requiring a Python list as an answer and provide the final list, e.g., "
            "[1, 2, 3], [1.2, 1.3, 1.4], at the end.",
}


def mathvista_query(question: str, choices: list[str] | None, unit: str | None, question_type: str,
                    answer_type: str, precision: int | None) -> str:
    """MathVista's official zero-shot query, as query.json holds it, for a record without one.

    >>> print(mathvista_query("How many?", None, "g", "free_form", "integer", None))
    Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, at the end.
    Question: How many? (Unit: g)
    """
    key = "multi_choice" if question_type == "multi_choice" else (
        f"float{precision}" if answer_type == "float" else answer_type)
    hint = _MATHVISTA_HINTS.get(key, _MATHVISTA_HINTS["float2"] if answer_type == "float" else _MATHVISTA_HINTS["integer"])
    text = f"Hint: {hint}\nQuestion: {question}" + (f" (Unit: {unit})" if unit else "")
    if choices:
        text += "\nChoices:\n" + "\n".join(f"({grading.LETTERS[i]}) {c}" for i, c in enumerate(choices))
    return text


def _mathvista_queries(file: Path) -> dict | None:
    """query.json beside a MathVista testmini.json (the GitHub layout): pid -> official query."""
    path = file.parent / "query.json"
    if file.suffix != ".json" or file.name == "query.json" or not path.is_file():
        return None
    try:
        queries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"mathvista: {path} (the prompts of {file.name}) is not valid JSON: {exc}") from None
    if not isinstance(queries, dict):
        raise DataError(f"mathvista: {path} should be an object of pid -> query, got {type(queries).__name__}")
    return queries


def _mathvista_item(rec: dict, ctx: _File) -> BenchItem:
    pid = _text(rec, "pid", required=False) or _text(rec, KEY_FIELD, required=False) or _text(rec, "index")
    question = _text(rec, "question")
    choices = _literal(rec.get("choices"), "choices") or None
    if choices is not None and (not isinstance(choices, list) or not all(isinstance(c, str) for c in choices)):
        raise _BadRow("wrong_type", f"choices is {choices!r}, expected a list of strings")
    qtype, atype = _text(rec, "question_type"), _text(rec, "answer_type")
    if qtype == "multi_choice" and not choices:
        raise _BadRow("missing_field", "question_type is multi_choice but choices is empty")
    meta = _literal(rec.get("metadata"), "metadata") or {}
    if not isinstance(meta, dict):
        raise _BadRow("wrong_type", f"metadata is {type(meta).__name__}, expected an object")
    precision = _precision(rec.get("precision")) if atype == "float" else None
    image, data = _image(rec, ("decoded_image", "image"), ctx.path.parent, ("..", "images"))
    qfield = ctx.question_field
    if ctx.tsv and qfield in ("query", "question"):  # VLMEvalKit sends the TSV's question: the query
        text, source = question, f"{ctx.name}:question (VLMEvalKit prompt)"
    elif qfield and _text(rec, qfield, required=False):
        text, source = _text(rec, qfield), f"{ctx.name}:{qfield}"
    elif qfield == "query" and ctx.queries is not None:
        if pid not in ctx.queries:
            raise _BadRow("missing_field", f"pid {pid!r} is not in query.json beside {ctx.path.name}")
        text, source = ctx.queries[pid], "query.json"
    elif qfield == "query":
        text = mathvista_query(question, choices, _text(rec, "unit", required=False) or None, qtype, atype, precision)
        source = "built as MathVista's build_query.py (no query field, no query.json)"
    else:
        raise _BadRow("missing_field", f"question_field {qfield!r} is absent or empty")
    skills = meta.get("skills") if "skills" in meta else _literal(rec.get("skills"), "skills")
    return BenchItem("mathvista", pid, text, _text(rec, "answer"), image, choices, atype, precision, qtype,
                     {"skills": list(skills or []), "task": meta.get("task", rec.get("task")),
                      "category": meta.get("category", rec.get("category")), "context": meta.get("context"),
                      "grade": meta.get("grade"), "unit": rec.get("unit") or None, "prompt_source": source}, data)


FORMAT = FileFormat("mathvista", _mathvista_item, ("testmini.json", "data/testmini.json", "MathVista_MINI.tsv"),
                    question_field="query", find_files=testmini_parquet_files, check_file=_check_file_kind,
                    check_first_row=_check_kind, queries=_mathvista_queries)


# ---------------------------------------------------------------------------------------------
# Sub-scores
# ---------------------------------------------------------------------------------------------
def subscore_keys(it: BenchItem) -> list[str]:
    """The MATHVISTA_SUBSCORES an item counts towards (by its skills and task)."""
    m = it.meta
    return [name for name, key, value in MATHVISTA_SUBSCORES
            if (value in (m.get(key) or []) if key == "skills" else m.get(key) == value)]


# ---------------------------------------------------------------------------------------------
# MathVista's official calculate_score.py
# ---------------------------------------------------------------------------------------------
def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (python-Levenshtein's `distance`, which the official scorer uses)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(cur[j - 1] + 1, prev[j] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def official_prediction(extraction, rec: dict, ignore_empty_extractions: bool = False) -> str | None:
    """calculate_score.py's normalize_extracted_answer: for multiple choice the letter of "(A) text"
    or a bare letter names its option, anything else becomes the option nearest by edit distance;
    int / round(float, precision) / str(list) for free form (None when that fails).

    >>> official_prediction("B", {"choices": ["35°", "145°"], "question_type": "multi_choice",
    ...     "answer_type": "text", "precision": None}), official_prediction("145 degrees", {"choices": ["35°", "145°"],
    ...     "question_type": "multi_choice", "answer_type": "text", "precision": None})
    ('145°', '145°')
    """
    choices = rec.get("choices")
    if rec["question_type"] == "multi_choice":
        extraction = extraction.strip() if isinstance(extraction, str) else str(extraction)
        if ignore_empty_extractions and not extraction:
            return None
        letter = re.findall(r"\(([a-zA-Z])\)", extraction)  # "(A) text" -> "A"
        if letter:
            extraction = letter[0].upper()
        options = [chr(ord("A") + i) for i in range(len(choices))]
        if extraction in options:
            return choices[options.index(extraction)]
        distances = [edit_distance(extraction, c) for c in choices]
        return choices[distances.index(min(distances))]
    try:
        if rec["answer_type"] == "integer":
            return str(int(float(extraction)))
        if rec["answer_type"] == "float":
            return str(round(float(extraction), int(rec.get("precision"))))
        if rec["answer_type"] == "list":
            return str(extraction)
    except (TypeError, ValueError, OverflowError):
        return None
    return extraction  # text: compared as is


def official_mathvista_prediction(rec: dict, ignore_empty_extractions: bool = False) -> str | None:
    """calculate_score.py's normalize_extracted_answer on a record's official `extraction`
    (official_prediction above: the one copy, also behind `score --official`).

    >>> official_mathvista_prediction({"extraction": "B", "choices": ["35°", "145°"],
    ...     "question_type": "multi_choice", "answer_type": "text", "precision": None})
    '145°'
    """
    return official_prediction(rec.get("extraction"), rec, ignore_empty_extractions)


def official_mathvista_verdict(rec: dict, ignore_empty_extractions: bool = False) -> bool:
    """The official `true_false`: safe_equal(normalized extraction, answer), plain equality."""
    return official_mathvista_prediction(rec, ignore_empty_extractions) == rec["answer"]
