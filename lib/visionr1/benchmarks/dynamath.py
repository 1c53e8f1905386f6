"""DynaMath (docs/recipe.md §5): its layouts, its variants and the worst-case score over them.

Layouts read: DynaMath/DynaMath_Sample, one file per variant (data/sample_variant{K}-*.parquet or
sample{K}-*.parquet, or .json/.jsonl) with id, question, image, decoded_image, ground_truth (or
answer), answer_type (float|multiple choice|...), subject, knowledge_level, and qid/varid where
present; the GitHub seed set (dataset/dataset.json keyed by id, image/ folder) as one variant
keyed by its ids; VLMEvalKit's DynaMath.tsv (qid, varid).

Multiple-choice options are read from the question, in each of the ways the seed set writes them
(`dynamath_choices`). Floats are compared at VLMEvalKit's tolerance (`DYNAMATH_PRECISION`). Besides the average over
every variant, `worst_case` counts a seed question only when all its variants are right.
"""

from __future__ import annotations

import re
from pathlib import Path

from visionr1 import grading
from visionr1.benchmarks.common import BenchItem, FileFormat, _BadRow, _File, _image, _pct, _text
from visionr1.reader import KEY_FIELD

DYNAMATH_PRECISION = 3  # VLMEvalKit's DynaMath accepts |pred - gold| <= 0.001

_VARIANT = re.compile(r"(?:variant|sample)[_-]?(\d+)", re.I)


def _variant_of(path: Path) -> int | None:
    """K of sample_variantK in the file name or its folder's (the Hub's parquet-converter layout)."""
    m = _VARIANT.search(path.name) or _VARIANT.search(path.parent.name)
    return int(m.group(1)) if m else None


def _variant_files(root: Path) -> list[Path]:
    """The variant files under a folder, by variant number."""
    return sorted((p for p in root.rglob("*") if p.suffix in (".parquet", ".json", ".jsonl")
                   and _variant_of(p) is not None), key=lambda p: (_variant_of(p), p.name))


_BARE_OPTIONS = re.compile(r"(?:^|\s)(?=\(A\))")  # "(A) heap (B) stack" with no "Choices:" before it
_LETTERS_ONLY = re.compile(r"(?:^|\s)((?:\([A-Z]\)\s*){2,})$")  # "choice: (A) (B) (C) (D)": drawn in the image
_LINE_OPTION = re.compile(r"^\s*([A-Z])\s*[.:]\s*(\S.*?)\s*$")  # "A. Group 1", "A: [2, 8, 10]"


def dynamath_choices(question: str) -> list[str] | None:
    """The options written into a DynaMath question, in letter order; None when it lists none.

    The seed set writes them five ways: "Choices: (A) yes (B) no", "choice: (A) 2 (B) 1 (C) 0",
    bare "(A) heap (B) stack ...", one a line ("A. Group 1", "A: [2, 8, 10]"), and letters alone
    when the options are drawn in the image ("choice: (A) (B) (C) (D)"): each of those options is
    then its letter, so an answer is graded by the letter it names.

    >>> dynamath_choices("how many zeros? choice: (A) 2 (B) 1 (C) 0"), dynamath_choices("Which? (A) heap (B) stack ")
    (['2', '1', '0'], ['heap', 'stack'])
    >>> dynamath_choices("Which group?\\nA. Group 1\\nB. Group 2"), dynamath_choices("Which figure? choice: (A) (B) (C)")
    (['Group 1', 'Group 2'], ['A', 'B', 'C'])
    """
    text = re.sub(r"\bchoice\s*:", "Choices:", question or "", flags=re.I)
    found = grading.choices_in(text)
    if found:
        return found
    letters = _LETTERS_ONLY.search(text.rstrip())
    if letters:
        found = re.findall(r"\(([A-Z])\)", letters.group(1))
        return found if "".join(found) == grading.LETTERS[:len(found)] else None
    bare = _BARE_OPTIONS.search(text)
    if bare:
        found = grading.choices_in("Choices: " + text[bare.end():])
        if found:
            return found
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = _LINE_OPTION.match(line)
        if m and m.group(1) == "A":
            found = []
            for nxt in lines[i:]:
                o = _LINE_OPTION.match(nxt)
                if not o or o.group(1) != grading.LETTERS[len(found)]:
                    break
                found.append(o.group(2))
            return found if len(found) >= 2 else None
    return None


def _dynamath_item(rec: dict, ctx: _File) -> BenchItem:
    question = _text(rec, ctx.question_field or "question")
    answer = _text(rec, "ground_truth", required=False) or _text(rec, "answer")
    atype = _text(rec, "answer_type")
    seed = KEY_FIELD in rec  # the GitHub seed set: dataset.json keyed by question id, one variant
    qid = str(rec.get("qid") or (rec[KEY_FIELD] if seed else _text(rec, "id")))
    variant = rec.get("varid") or rec.get("variant") or _variant_of(ctx.path) or (0 if seed else None)
    if variant is None:
        raise _BadRow("missing_field", f"no 'varid' key and no variant number in the file name {ctx.path.name!r}")
    image, data = _image(rec, ("decoded_image", "image"), ctx.path.parent, ("..",))
    mc = atype == "multiple choice"
    return BenchItem("dynamath", qid if seed else f"{qid}-v{int(variant)}", question, answer, image,
                     dynamath_choices(question) if mc else None, atype,
                     DYNAMATH_PRECISION if atype == "float" else None, "multi_choice" if mc else "free_form",
                     {"qid": qid, "variant": int(variant), "subject": rec.get("subject"),
                      "knowledge_level": rec.get("knowledge_level") or rec.get("level"), "seed": seed,
                      "prompt_source": f"{ctx.name}:{ctx.question_field or 'question'}"
                                       + (" (VLMEvalKit builds its prompt around it)" if ctx.tsv else "")}, data)


FORMAT = FileFormat("dynamath", _dynamath_item, ("DynaMath.tsv", "dataset/dataset.json", "dataset.json"),
                    find_files=_variant_files)


def worst_case(graded: list[tuple[BenchItem, bool]]) -> dict:
    """{"worst_case": percent of seed questions with every variant right, "n_questions"}."""
    by_qid: dict[str, bool] = {}
    for it, v in graded:
        qid = it.meta.get("qid", it.id)
        by_qid[qid] = by_qid.get(qid, True) and v
    return {"worst_case": _pct(sum(by_qid.values()), len(by_qid)), "n_questions": len(by_qid)}
