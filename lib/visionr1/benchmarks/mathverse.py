"""MathVerse testmini (docs/recipe.md §5): its layouts, its options and its per-version sub-scores.

Layouts read: AI4Math/MathVerse testmini.parquet (image embedded) or testmini.json (a list,
"image": "images_version_1-4/image_N.png" under the file's folder or its images/); fields
sample_index, problem_index, problem_version, question, answer, question_type
(multi-choice|free-form), metadata, query_wo, query_cot, question_for_eval; testmini_text_only
(problem_version "Text Only") loads as text-only items (image None); VLMEvalKit's
MathVerse_MINI*.tsv (index, image, question, answer, problem_version, metadata as text).

The text sent with the image is `query_cot` (the Vision Only question lives in the image, and
`question` is empty there). Sub-scores: one per problem_version (`MATHVERSE_VERSIONS`); the paper
reports Vision Only on its own (PAPER's mathverse_vision_only).
"""

from __future__ import annotations

import re

from visionr1 import grading
from visionr1.benchmarks.common import (
    BenchItem,
    FileFormat,
    _BadRow,
    _File,
    _image,
    _literal,
    _text,
    testmini_parquet_files,
)
from visionr1.reader import KEY_FIELD, DataError

MATHVERSE_VERSIONS = ("Text Dominant", "Text Lite", "Vision Intensive", "Vision Dominant", "Vision Only")


def _check_kind(rec: dict, ctx: _File) -> None:
    """Refuse a file whose first row is plainly another kind of file than MathVerse's questions."""
    keys = sorted(k for k in rec if k != KEY_FIELD)
    if "problem_version" not in rec and "sample_index" not in rec and not ctx.tsv:
        raise DataError(f"mathverse: {ctx.path} is not a MathVerse file: its rows have keys {keys[:8]} (expected "
                        "sample_index, problem_version, question, image, answer, ...)")


_MV_CHOICE = re.compile(r"^\s*\(?([A-H])\)?\s*[:.：)]\s*(.*?)\s*$")


def mathverse_choices(question: str) -> list[str] | None:
    """The options of a MathVerse question ("Choices:\\nA:130°\\nB:120°"), None when it lists none.

    >>> mathverse_choices("Find the angle.\\nChoices:\\nA:130°\\nB:120°"), mathverse_choices("Find L.")
    (['130°', '120°'], None)
    """
    found = grading.choices_in(question)
    if found:
        return found
    m = re.search(r"(?:choices?|options?)\s*[:：]\s*\n(.*)", question or "", re.I | re.S)
    if not m:
        return None
    out = []
    for line in m.group(1).splitlines():
        o = _MV_CHOICE.match(line)
        if not o or o.group(1) != grading.LETTERS[len(out)]:
            break
        out.append(o.group(2))
    return out if len(out) >= 2 else None


MATHVERSE_TEXT_ONLY = "Text Only"  # problem_version of testmini_text_only: no image by design


def _mathverse_item(rec: dict, ctx: _File) -> BenchItem:
    sid = _text(rec, "sample_index", required=False) or _text(rec, "index")
    version = _text(rec, "problem_version")
    question = _text(rec, "question", required=False)  # empty in Vision Only
    answer = _text(rec, "answer")
    # VLMEvalKit's TSV has no question_type: a lone option letter is a multiple-choice answer
    qtype = (_text(rec, "question_type", required=False)
             or ("multi-choice" if re.fullmatch(r"[A-H]", answer.strip()) else "free-form")).replace("-", "_")
    qfield = ctx.question_field
    if qfield and _text(rec, qfield, required=False):
        text, source = _text(rec, qfield), f"{ctx.name}:{qfield}"
    else:
        text, source = question, f"{ctx.name}:question" + (" (VLMEvalKit prompt)" if ctx.tsv else "")
    if not text and version != "Vision Only":  # Vision Only: the question is in the image
        raise _BadRow("missing_field", f"no question text: {sorted({qfield or 'question', 'question'})} empty")
    text_only = version == MATHVERSE_TEXT_ONLY or "text_only" in ctx.path.as_posix().lower()
    if text_only:
        image, data = None, None
    else:
        try:
            image, data = _image(rec, ("image",), ctx.path.parent, ("images",))
        except _BadRow as bad:
            if bad.reason == "missing_image" and not rec.get("image"):
                raise _BadRow("missing_image", f"{bad.detail} (problem_version {version!r}; only MathVerse's "
                                               f"text-only set, problem_version {MATHVERSE_TEXT_ONLY!r}, has no images)") from None
            raise
    meta = _literal(rec.get("metadata"), "metadata") or {}
    if not isinstance(meta, dict):
        raise _BadRow("wrong_type", f"metadata is {type(meta).__name__}, expected an object")
    choices = mathverse_choices(question or rec.get("question_for_eval") or "") if qtype == "multi_choice" else None
    return BenchItem("mathverse", sid, text, answer, image, choices, None, None, qtype,
                     {"problem_version": version, "problem_index": str(rec.get("problem_index")),
                      "subject": meta.get("subject"), "subfield": meta.get("subfield"), "prompt_source": source,
                      "text_only": text_only}, data)


FORMAT = FileFormat("mathverse", _mathverse_item,
                    ("testmini.json", "data/testmini.json", "MathVerse_MINI.tsv", "MathVerse_MINIV.tsv"),
                    question_field="query_cot", find_files=testmini_parquet_files, check_first_row=_check_kind)


def subscore_keys(it: BenchItem) -> list[str]:
    """The item's problem_version (one sub-score per version)."""
    m = it.meta
    return [m["problem_version"]] if m.get("problem_version") else []
