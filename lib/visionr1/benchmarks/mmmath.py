"""MM-Math (docs/recipe.md §5): its layout, its gold answers, its judge's reading and its per-level sub-scores.

Layout read: THU-KEG/MM_Math MM_Math.jsonl (question, file_name, solution, year, difficult,
knowledge) with the images of Image.zip; the gold answer is the solution's \\boxed{} (all of them,
comma-joined, as the official eval.py reads it: `mmmath_gold`).

Scoring follows MM-Math's sympy judge (`score_mmmath`): \\boxed{} or the last $...$ of the
response (`mmmath_extract`), units and Chinese text dropped, numbers compared at 1e-2, several
answers matched in any order. Sub-scores: one per difficulty level (`MMMATH_LEVELS`).
"""

from __future__ import annotations

import re
from pathlib import Path

from visionr1 import grading
from visionr1.benchmarks.common import BenchItem, FileFormat, _BadRow, _File, _image, _text

MMMATH_PRECISION = 2  # decimal places: the official judge's default tolerance 1e-2
MMMATH_LEVELS = {"容易": "easy", "普通": "medium", "困难": "hard"}  # the `difficult` field's values


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------
def mmmath_gold(solution: str) -> str:
    """The gold answer in an MM-Math solution as the official eval.py reads it: every \\boxed{}
    joined by ",", else the $...$ of the last line; "" when neither.

    >>> mmmath_gold("... so AB = \\\\boxed{6} and CD = \\\\boxed{\\\\frac{1}{2}}")
    '6,\\\\frac{1}{2}'
    """
    found = _all_boxed(solution)
    if found:
        return ",".join(found)
    last = solution.strip().split("\n")[-1]
    return ",".join(re.findall(r"\$(.*?)\$", last))


def _all_boxed(text: str) -> list[str]:
    """Every \\boxed{} in `text`, in order (grading.last_boxed on each stretch that starts one)."""
    starts = [m.start() for m in re.finditer(r"\\boxed\{", text)] + [len(text)]
    found = (grading.last_boxed(text[i:j]) for i, j in zip(starts, starts[1:]))
    return [f.strip() for f in found if f is not None]


def _mmmath_item(rec: dict, ctx: _File) -> BenchItem:
    question = _text(rec, ctx.question_field or "question")
    answer = _text(rec, "answer", required=False) or mmmath_gold(_text(rec, "solution"))
    image, data = _image(rec, ("image", "file_name"), ctx.path.parent, ("MM_Math", "Image", "image", "images"))
    knowledge = rec.get("knowledge")
    level = rec.get("difficult")
    item_id = rec.get("id") or Path(str(rec.get("file_name") or "")).stem
    if not item_id:
        raise _BadRow("missing_field", "no 'id' and no 'file_name' to name the question by")
    return BenchItem("mmmath", str(item_id), question, answer, image, None, None, MMMATH_PRECISION, "free_form",
                     {"level": MMMATH_LEVELS.get(level, level), "difficult": level, "year": rec.get("year"),
                      "knowledge": knowledge, "prompt_source": f"{ctx.name}:{ctx.question_field or 'question'}"}, data)


FORMAT = FileFormat("mmmath", _mmmath_item, ("MM_Math.jsonl", "MM_Math/MM_Math.jsonl", "mm_math.jsonl"))


# ---------------------------------------------------------------------------------------------
# Scoring: the official judge's reading
# ---------------------------------------------------------------------------------------------
def mmmath_extract(response: str) -> str | None:
    """MM-Math's reading of a response (inside the <answer> block when there is one): every
    \\boxed{} joined by ",", else the $...$ of the last line, else the block's own text."""
    n_open = response.count("<answer>")
    block = None
    if n_open == 1 and response.count("</answer>") == 1 and response.index("<answer>") < response.index("</answer>"):
        block = response[response.index("<answer>") + len("<answer>"):response.index("</answer>")]
    text = block if block is not None else response[-20000:]
    found = mmmath_gold(text)
    if found:
        return found
    if block is None:
        return None
    return grading.clean_answer(block) or None


def _split_top(s: str) -> list[str]:
    """Split at commas outside brackets and braces (the official judge's split_by_comma)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(s):
        depth += 1 if ch in "([{" else -1 if ch in ")]}" else 0
        if ch == "," and depth == 0:
            parts.append(s[start:i].strip())
            start = i + 1
    parts.append(s[start:].strip())
    return [p for p in parts if p]


def _mmmath_clean(s: str) -> str:
    """Drop what the official judge drops before comparing: unit words, Chinese text, degree marks."""
    s = re.sub(r"\\(?:text|mathrm|mathbf)\{\s*~?([^{}]*)\}", r"\1", s)
    s = re.sub(r"[\u4e00-\u9fff]+", "", s)  # 厘米, 米, ...
    s = re.sub(r"\s*(?:cm|mm|km|m)(?:\^\{?[23]\}?|²|³)?\s*$", "", s)  # a unit at the end
    s = s.replace("^{\\circ}", "").replace("^\\circ", "").replace("°", "")
    return s.strip().strip(".,;:")


def _mmmath_equal(pred: str, gold: str) -> bool:
    pred, gold = _mmmath_clean(pred), _mmmath_clean(gold)
    if pred == gold:
        return True
    if "=" in pred and "=" not in gold:  # "AB=6" against "6": the official judge compares right-hand sides
        pred = pred.split("=")[-1]
    if "=" in gold and "=" not in pred:
        gold = gold.split("=")[-1]
    return grading.is_equivalent(pred, gold, precision=MMMATH_PRECISION)


def score_mmmath(item: BenchItem, response: str, fmt: bool) -> dict:
    """visionr1.benchmarks.score for an MM-Math item; `fmt` is the response's format verdict."""
    ext = mmmath_extract(response)
    if not grading.gradeable(item.answer):
        grading.STATS["ungradeable_gold"] += 1
        return {"extraction": ext, "correct": None, "format_ok": fmt}
    if not ext:
        return {"extraction": ext, "correct": False, "format_ok": fmt}
    golds, preds = _split_top(item.answer), _split_top(ext)
    if len(golds) > 1 and len(golds) == len(preds):  # several answers, matched in any order
        left = list(preds)
        for g in golds:
            hit = next((p for p in left if _mmmath_equal(p, g)), None)
            if hit is None:
                return {"extraction": ext, "correct": False, "format_ok": fmt}
            left.remove(hit)
        return {"extraction": ext, "correct": True, "format_ok": fmt}
    return {"extraction": ext, "correct": _mmmath_equal(ext, item.answer), "format_ok": fmt}


def subscore_keys(it: BenchItem) -> list[str]:
    """The item's difficulty level (one sub-score per level)."""
    m = it.meta
    return [m["level"]] if m.get("level") else []
