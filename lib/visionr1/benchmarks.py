"""The paper's evaluation benchmarks (RECIPE §5): loaders for local copies in their public formats,
rule-based scorers, aggregation with the paper's sub-scores, and an optional LLM judge.

Nothing is downloaded here. A user fetches each benchmark once and points `load` at the file or
folder. Files are read by visionr1.loaders (iter_rows, find_image: JSON, JSONL, any Hub parquet
layout, VLMEvalKit TSV with base64 images); each benchmark here only maps its own schema:

  mathvista  AI4Math/MathVista testmini parquet (data/testmini-*.parquet: pid, question, image,
             decoded_image, choices, unit, precision, answer, question_type, answer_type,
             metadata{category, context, grade, language, skills, source, split, task}, query), or
             the GitHub JSON keyed by pid (data/testmini.json, "image": "images/N.jpg" next to an
             images/ folder) with its prompts in query.json beside it, or VLMEvalKit's
             MathVista_MINI.tsv (index, base64 image, question = the query, choices and skills as
             Python list text, task); annot_testmini.json (annotations, not questions) is refused
  mathverse  AI4Math/MathVerse testmini.parquet (image embedded) or testmini.json (a list,
             "image": "images_version_1-4/image_N.png" under the file's folder or its images/);
             fields sample_index, problem_index, problem_version, question, answer,
             question_type (multi-choice|free-form), metadata, query_wo, query_cot, question_for_eval;
             testmini_text_only (problem_version "Text Only") loads as text-only items (image None);
             VLMEvalKit's MathVerse_MINI*.tsv (index, image, question, answer, problem_version,
             metadata as text)
  mmmath     THU-KEG/MM_Math MM_Math.jsonl (question, file_name, solution, year, difficult,
             knowledge) with the images of Image.zip; the gold answer is the solution's \\boxed{}
             (all of them, comma-joined, as the official eval.py reads it)
  dynamath   DynaMath/DynaMath_Sample: one file per variant (data/sample_variant{K}-*.parquet or
             sample{K}-*.parquet, or .json/.jsonl) with id, question, image, decoded_image,
             ground_truth (or answer), answer_type (float|multiple choice|...), subject,
             knowledge_level, and qid/varid where present; the GitHub seed set
             (dataset/dataset.json keyed by id, image/ folder) as one variant keyed by its ids;
             VLMEvalKit's DynaMath.tsv (qid, varid)
  nano       the nano task's test split (nano_task.write_jsonl output)

The text sent with the image is the benchmark's own prompt: MathVista's official `query` in every
layout (the Hub `query`, query.json, the TSV `question` VLMEvalKit sends, or, with none of these,
built as build_query.py builds query.json), MathVerse `query_cot` (the Vision Only question lives
in the image, and `question` is empty there), the raw question elsewhere;
`load(..., question_field=...)` picks another field. Each item's meta["prompt_source"] says where
its text came from.

Scoring (`score`) is rule-based with visionr1.grading: the <answer> block when present, else the
final answer found in the text; MM-Math follows its sympy judge (\\boxed{} or the last $...$,
numbers at 1e-2). The paper judged MathVista/MathVerse with gpt-4o-mini through VLMEvalKit;
`judge` asks any OpenAI-compatible model the same yes/no question and `agreement` compares the two.
`official_mathvista_verdict` reproduces MathVista's calculate_score.py on a record that already
carries the official `extraction`.
"""

from __future__ import annotations

import ast
import json
import logging
import re
import warnings
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from visionr1 import grading
from visionr1.loaders import (
    BAD_ROW,
    DEFAULT_MAX_BAD_FRACTION,
    KEY_FIELD,
    DataError,
    DataWarning,
    LoadReport,
    Records,
    decode_image,
    find_image,
    find_parquet_files,
    image_problem,
    iter_rows,
    open_image,
)

log = logging.getLogger(__name__)

BENCHMARKS = ("mathvista", "mathverse", "mmmath", "dynamath", "nano")

# RECIPE §5, 7B table (percent)
PAPER = {
    "Qwen2.5-VL-7B": {"mathvista": 68.1, "mathverse": 46.7, "mathverse_vision_only": 40.2, "mmmath": 34.1,
                      "dynamath": 50.7},
    "Vision-R1-7B": {"mathvista": 73.5, "mathverse": 52.4, "mathverse_vision_only": 46.7, "mmmath": 40.2,
                     "dynamath": 56.3},
    "Qwen2.5-VL-72B": {"mathvista": 73.5, "mathverse": 51.3, "mathverse_vision_only": 47.3, "mmmath": 45.6,
                       "dynamath": 61.2},
}

MMMATH_PRECISION = 2  # decimal places: the official judge's default tolerance 1e-2
DYNAMATH_PRECISION = 3  # VLMEvalKit's DynaMath accepts |pred - gold| <= 0.001
# MathVista sub-scores as VLMEvalKit reports them: (name, metadata key, value); skills is a list
MATHVISTA_SUBSCORES = (("GEO", "skills", "geometry reasoning"), ("ALG", "skills", "algebraic reasoning"),
                       ("GPS", "task", "geometry problem solving"), ("MWP", "task", "math word problem"))
MATHVERSE_VERSIONS = ("Text Dominant", "Text Lite", "Vision Intensive", "Vision Dominant", "Vision Only")
MMMATH_LEVELS = {"容易": "easy", "普通": "medium", "困难": "hard"}  # the `difficult` field's values
DEFAULT_QUESTION_FIELD = {"mathvista": "query", "mathverse": "query_cot"}


@dataclass
class BenchItem:
    """One benchmark question, whatever its source format."""

    benchmark: str          # one of BENCHMARKS
    id: str                 # unique within the benchmark (MathVista pid, MathVerse sample_index, DynaMath qid-vK)
    question: str           # the text sent with the image
    answer: str             # the gold answer ("" when the source has none: graded None, counted)
    image: Any              # a PIL.Image (opened lazily) or a file path; load_image(item) gives RGB
    choices: list[str] | None = None
    answer_type: str | None = None    # MathVista integer|float|text|list; DynaMath float|multiple choice|...
    precision: int | None = None      # decimal places at which numbers are compared
    question_type: str | None = None  # multi_choice | free_form
    meta: dict = field(default_factory=dict)  # sub-score keys and source fields; "source" is "file:row"
    image_bytes: bytes | None = field(default=None, repr=False)  # embedded image, decoded afresh by load_image


# ---------------------------------------------------------------------------------------------
# Loading: every file is read by visionr1.loaders (iter_rows, find_image); each benchmark below
# only maps its own schema onto BenchItem.
# ---------------------------------------------------------------------------------------------
class _BadRow(Exception):
    """A row cannot become an item; `reason` is a loaders.PROBLEM_KINDS key."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@dataclass
class _File:
    """What a row mapping needs to know about the file its row came from."""

    path: Path
    name: str                   # as reported: relative to the loaded folder
    question_field: str | None  # the prompt field asked for (DEFAULT_QUESTION_FIELD unless given)
    queries: dict | None = None  # MathVista query.json beside a testmini.json: pid -> official query

    @property
    def tsv(self) -> bool:  # a VLMEvalKit TSV: its `question` is the prompt VLMEvalKit sends
        return self.path.suffix == ".tsv"


def load(benchmark: str, path: str | Path, limit: int | None = None, *,
         max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION, question_field: str | None = None) -> Records:
    """Items of one benchmark from a local file or folder (module docstring: the layouts read).

    Bad rows (no answer, an image that is missing or does not decode, ...) are left out and listed
    in `items.report` with a DataWarning; more than `max_bad_fraction` of them, an unreadable file
    or no rows at all raise DataError naming the file and rows. `limit` stops after that many items.
    Each item's meta records "source" (file:row) and "prompt_source" (where its question text
    came from: a field of the row, MathVista's query.json, or VLMEvalKit's TSV `question`).
    """
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; expected one of {BENCHMARKS}")
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"{benchmark}: {root} does not exist (download the benchmark there first)")
    if benchmark == "nano":
        return _load_nano(root, limit)
    files = _find_files(benchmark, root)
    report = LoadReport(root=str(root))
    items = Records(report=report)
    make = _ROW_READERS[benchmark]
    seen: dict[str, str] = {}
    for file in files:
        if limit is not None and len(items) >= limit:
            break
        ctx = _File(file, _name(file, root), question_field or DEFAULT_QUESTION_FIELD.get(benchmark))
        if benchmark == "mathvista":
            ctx.queries = _mathvista_queries(file)
        report.files.append(ctx.name)
        for row, rec in iter_rows(file, ctx.name, report):
            if limit is not None and len(items) >= limit:
                break
            report.rows_total += 1
            if rec is BAD_ROW:
                continue
            if not isinstance(rec, dict):
                report.add(ctx.name, row, "invalid_json", f"record is a {type(rec).__name__}, expected an object")
                continue
            if row == 0:
                _check_kind(benchmark, rec, ctx)
            try:
                item = make(rec, ctx)
            except _BadRow as bad:
                report.add(ctx.name, row, bad.reason, bad.detail)
                continue
            item.meta["source"] = f"{ctx.name}:{row}"
            if item.id in seen:
                raise DataError(f"{benchmark}: id {item.id!r} appears twice, at {seen[item.id]} and "
                                f"{item.meta['source']}; is a data file in {root} twice?")
            seen[item.id] = item.meta["source"]
            items.append(item)
            report.rows_ok += 1
            report.images_ok += item.image is not None or item.image_bytes is not None
    report.raise_or_warn(f"{benchmark} from {root}", max_bad_fraction)
    return items


def load_image(item: BenchItem) -> Image.Image:
    """The item's image as PIL RGB (embedded bytes are decoded afresh, so items stay small)."""
    if item.image_bytes is not None:
        return decode_image(item.image_bytes)
    if isinstance(item.image, Image.Image):
        return item.image.convert("RGB")
    if isinstance(item.image, (str, Path)):
        return open_image(item.image)
    if item.image is None and item.meta.get("text_only"):
        raise ValueError(f"{item.benchmark} item {item.id} is from a text-only set ({item.meta.get('source')}): "
                         "it has no image; send its question alone, or load the set with images (MathVerse testmini)")
    raise TypeError(f"{item.benchmark} item {item.id}: image is {type(item.image).__name__}, "
                    "expected a PIL image or a path")


def _name(file: Path, root: Path) -> str:
    if root.is_file():
        return file.name
    try:
        return file.relative_to(root).as_posix()
    except ValueError:
        return str(file)


# data files looked for in a folder, first that exists wins (after the Hub's testmini parquet)
_FOLDER_FILES = {
    "mathvista": ["testmini.json", "data/testmini.json", "MathVista_MINI.tsv"],
    "mathverse": ["testmini.json", "data/testmini.json", "MathVerse_MINI.tsv", "MathVerse_MINIV.tsv"],
    "mmmath": ["MM_Math.jsonl", "MM_Math/MM_Math.jsonl", "mm_math.jsonl"],
    "dynamath": ["DynaMath.tsv", "dataset/dataset.json", "dataset.json"],
}


def _find_files(benchmark: str, root: Path) -> list[Path]:
    """The data files of `benchmark` under `root` (or `root` itself when it is a file)."""
    if root.is_file():
        _check_file_kind(benchmark, root)
        return [root]
    found: list[Path] = []
    if benchmark == "dynamath":
        found = sorted((p for p in root.rglob("*") if p.suffix in (".parquet", ".json", ".jsonl")
                        and _variant_of(p) is not None), key=lambda p: (_variant_of(p), p.name))
    elif benchmark in ("mathvista", "mathverse"):
        found = find_parquet_files(root, "testmini")
    names = _FOLDER_FILES[benchmark]
    found = found or [root / n for n in names if (root / n).is_file()][:1]
    if not found:
        present = sorted(p.name for p in root.iterdir())[:20]
        raise DataError(f"{benchmark}: no data file in {root} (looked for testmini parquet files, sample_variant "
                        f"files and {names}); the folder holds {present or 'nothing'}")
    return found


def _check_file_kind(benchmark: str, file: Path) -> None:
    """Refuse, by name, the files that sit beside a benchmark's questions but are not questions."""
    if benchmark == "mathvista" and file.name == "query.json":
        raise DataError(f"{file} holds MathVista's prompts only (pid -> query); load testmini.json beside it, "
                        "whose prompts are then taken from this query.json")
    if benchmark == "mathvista" and file.name.startswith("annot_"):
        raise DataError(f"{file} is MathVista's annotation file (solutions, programs and captions per pid), "
                        "not its questions; load data/testmini.json (or the Hub's testmini parquet) instead")


def _check_kind(benchmark: str, rec: dict, ctx: _File) -> None:
    """Refuse a file whose first row is plainly another kind of file than the benchmark's questions."""
    keys = sorted(k for k in rec if k != KEY_FIELD)
    if benchmark == "mathvista" and "question" not in rec and "query" not in rec:
        raise DataError(f"mathvista: {ctx.path} is not a MathVista question file: its rows have keys {keys[:8]} "
                        "and no 'question' (expected pid, question, choices, answer, question_type, answer_type, "
                        "...; annot_testmini.json holds annotations, not questions)")
    if benchmark == "mathverse" and "problem_version" not in rec and "sample_index" not in rec and not ctx.tsv:
        raise DataError(f"mathverse: {ctx.path} is not a MathVerse file: its rows have keys {keys[:8]} (expected "
                        "sample_index, problem_version, question, image, answer, ...)")


def _text(rec: dict, key: str, required: bool = True) -> str:
    value = rec.get(key)
    if value is None or (isinstance(value, float) and value != value) or (isinstance(value, str) and not value.strip()):
        if required:
            raise _BadRow("missing_field", f"key {key!r} is {'absent' if key not in rec else 'null or empty'}")
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise _BadRow("wrong_type", f"key {key!r} is {type(value).__name__}, expected a string")
    return value


def _image(rec: dict, keys: tuple[str, ...], folder: Path, subdirs: tuple[str, ...] = ()) -> tuple[Any, bytes | None]:
    """(image path, embedded bytes) from the first of `keys` that is set (loaders.find_image reads
    it: a {"bytes", "path"} struct, bytes, base64 text or a path relative to `folder` or one of its
    `subdirs`), checked to decode."""
    for key in keys:
        cell = rec.get(key)
        if cell in (None, "", {}) or (isinstance(cell, dict) and not cell.get("bytes") and not cell.get("path")):
            continue
        source, reason, detail = find_image(cell, [folder / s for s in ("",) + subdirs])
        if source is None:
            raise _BadRow(reason, f"{key}: {detail}")
        problem = image_problem(source)
        if problem:
            raise _BadRow("corrupt_image", f"{key}: {problem}")
        return (str(source), None) if isinstance(source, Path) else (None, source)
    raise _BadRow("missing_image", f"no image: keys {list(keys)} are all absent or empty")


def _literal(value: Any, what: str) -> Any:
    """A list or dict stored as Python text (VLMEvalKit TSV cells: "['a', 'b']"); None when empty."""
    if value is None or value == "" or (isinstance(value, float) and value != value):
        return None
    if not isinstance(value, str):
        return value
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        raise _BadRow("wrong_type", f"{what} {value[:60]!r} is not a Python/JSON literal") from None


def _precision(value) -> int | None:
    if value is None or value == "" or value != value:  # None, empty (TSV) or NaN
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError):
        raise _BadRow("wrong_type", f"precision {value!r} is not a number") from None


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


_VARIANT = re.compile(r"(?:variant|sample)[_-]?(\d+)", re.I)


def _variant_of(path: Path) -> int | None:
    """K of sample_variantK in the file name or its folder's (the Hub's parquet-converter layout)."""
    m = _VARIANT.search(path.name) or _VARIANT.search(path.parent.name)
    return int(m.group(1)) if m else None


def dynamath_choices(question: str) -> list[str] | None:
    """The options written into a DynaMath question, "Choices: (A) yes (B) no" or "choice: (A) 2 (B) 1".

    >>> dynamath_choices("how many zeros? choice: (A) 2 (B) 1 (C) 0")
    ['2', '1', '0']
    """
    return grading.choices_in(re.sub(r"\bchoice\s*:", "Choices:", question or "", flags=re.I))


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


_ROW_READERS = {"mathvista": _mathvista_item, "mathverse": _mathverse_item, "mmmath": _mmmath_item,
                "dynamath": _dynamath_item}


def _load_nano(path: Path, limit: int | None) -> Records:
    from visionr1 import nano_task

    file = path if path.is_file() else path / "test.jsonl"
    try:
        samples = nano_task.read_jsonl(file)
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(f"nano: cannot read {file} as the nano test split ({type(exc).__name__}: {exc})") from None
    report = LoadReport(root=str(path), rows_total=len(samples), rows_ok=len(samples), files=[file.name])
    items = Records(report=report)
    for s in samples[:limit]:
        items.append(BenchItem("nano", s.id, s.question, s.answer, s.image, s.choices,
                               "text" if s.choices else "integer", None,
                               "multi_choice" if s.choices else "free_form",
                               {"qtype": s.qtype, "level": s.level, "source": f"{file.name}:{s.id}"}))
    report.raise_or_warn(f"nano from {path}", DEFAULT_MAX_BAD_FRACTION)
    return items


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------
_LETTER = re.compile(r"^\(?([A-Z])\)?(?=$|[\s.:：),])")


def score(item: BenchItem, response: str) -> dict:
    """{"extraction", "correct", "format_ok"} of one response; `correct` None: ungradeable gold.

    >>> it = BenchItem("nano", "1", "How many?", "5", None)
    >>> score(it, "<think>count</think><answer>5</answer>")
    {'extraction': '5', 'correct': True, 'format_ok': True}
    """
    fmt = grading.check_format(response).ok
    if item.benchmark == "mmmath":
        return _score_mmmath(item, response, fmt)
    ext = grading.extract_answer(response, item.choices, block_only=False).answer
    if not grading.gradeable(item.answer):
        grading.STATS["ungradeable_gold"] += 1
        return {"extraction": ext, "correct": None, "format_ok": fmt}
    gold = item.answer.strip()
    if item.question_type == "multi_choice" and not item.choices and re.fullmatch(r"[A-Z]", gold):
        # options only in the image (MathVerse Vision Only): compare letters
        m = _LETTER.match(ext.strip()) if ext else None
        return {"extraction": ext, "correct": bool(m and m.group(1) == gold), "format_ok": fmt}
    ok = ext is not None and grading.is_equivalent(ext, gold, precision=item.precision, choices=item.choices)
    return {"extraction": ext, "correct": ok, "format_ok": fmt}


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


def _score_mmmath(item: BenchItem, response: str, fmt: bool) -> dict:
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


# ---------------------------------------------------------------------------------------------
# Aggregation
# ---------------------------------------------------------------------------------------------
def _pct(hits: int, n: int) -> float:
    return round(100.0 * hits / n, 1) if n else float("nan")


def aggregate(benchmark: str, items: list[BenchItem], verdicts: list[bool | None]) -> dict:
    """{"accuracy" (percent, 1 decimal), "n", "n_ungradeable", sub-scores, "sub_n"}.

    Sub-scores: mathvista GEO/ALG/GPS/MWP (VLMEvalKit's), mathverse each problem_version,
    dynamath "worst_case" (a seed question counts only when all its variants are right, over
    "n_questions"), mmmath each level, nano each qtype. None verdicts are left out and counted.
    """
    if len(items) != len(verdicts):
        raise ValueError(f"{benchmark}: {len(items)} items but {len(verdicts)} verdicts")
    graded = [(it, bool(v)) for it, v in zip(items, verdicts) if v is not None]
    hits = sum(v for _, v in graded)
    out: dict[str, Any] = {"accuracy": _pct(hits, len(graded)), "n": len(graded),
                           "n_ungradeable": len(items) - len(graded)}
    groups: dict[str, list[bool]] = defaultdict(list)
    for it, v in graded:
        for key in _subscore_keys(benchmark, it):
            groups[key].append(v)
    if benchmark == "mathvista":
        order = [name for name, _, _ in MATHVISTA_SUBSCORES]
    elif benchmark == "mathverse":
        order = list(MATHVERSE_VERSIONS) + sorted(set(groups) - set(MATHVERSE_VERSIONS))
    else:
        order = sorted(groups)
    for key in order:
        if groups.get(key):
            out[key] = _pct(sum(groups[key]), len(groups[key]))
    out["sub_n"] = {key: len(groups[key]) for key in order if groups.get(key)}
    if benchmark == "dynamath":
        by_qid: dict[str, bool] = {}
        for it, v in graded:
            qid = it.meta.get("qid", it.id)
            by_qid[qid] = by_qid.get(qid, True) and v
        out["worst_case"] = _pct(sum(by_qid.values()), len(by_qid))
        out["n_questions"] = len(by_qid)
    return out


def _subscore_keys(benchmark: str, it: BenchItem) -> list[str]:
    m = it.meta
    if benchmark == "mathvista":
        return [name for name, key, value in MATHVISTA_SUBSCORES
                if (value in (m.get(key) or []) if key == "skills" else m.get(key) == value)]
    if benchmark == "mathverse":
        return [m["problem_version"]] if m.get("problem_version") else []
    if benchmark == "mmmath":
        return [m["level"]] if m.get("level") else []
    if benchmark == "nano":
        return [m["qtype"]] if m.get("qtype") else []
    return []


# ---------------------------------------------------------------------------------------------
# MathVista's official calculate_score.py
# ---------------------------------------------------------------------------------------------
def official_mathvista_prediction(rec: dict, ignore_empty_extractions: bool = False) -> str | None:
    """calculate_score.py's normalize_extracted_answer on a record's official `extraction`
    (visionr1.scoring.official_prediction: the one copy, also behind `score --official`).

    >>> official_mathvista_prediction({"extraction": "B", "choices": ["35°", "145°"],
    ...     "question_type": "multi_choice", "answer_type": "text", "precision": None})
    '145°'
    """
    from visionr1 import scoring

    return scoring.official_prediction(rec.get("extraction"), rec, ignore_empty_extractions)


def official_mathvista_verdict(rec: dict, ignore_empty_extractions: bool = False) -> bool:
    """The official `true_false`: safe_equal(normalized extraction, answer), plain equality."""
    return official_mathvista_prediction(rec, ignore_empty_extractions) == rec["answer"]


# ---------------------------------------------------------------------------------------------
# LLM judge
# ---------------------------------------------------------------------------------------------
JUDGE_PROMPT = """You are grading an answer to a math question about an image.

Question:
{question}

Reference answer: {answer}

Final part of the model's response:
{response}

Does the model's final answer match the reference answer? Treat equivalent forms as a match
(0.5 and 1/2, an option letter and that option's text, units written or left out); a different
value, a different option or several hedged answers do not match.
Reply with one word: yes or no."""

JUDGE_RESPONSE_CHARS = 3000  # the response tail the judge sees: the final answer is at the end


def _judge_view(response: str) -> str:
    if response.count("<answer>") == 1 and response.count("</answer>") == 1:
        return response[response.index("<answer>"):response.index("</answer>") + len("</answer>")]
    return response[-JUDGE_RESPONSE_CHARS:]


def parse_judgement(text: str | None) -> bool | None:
    """yes -> True, no -> False, anything else (both, neither) -> None.

    >>> parse_judgement("Yes."), parse_judgement("Judgement: no"), parse_judgement("maybe")
    (True, False, None)
    """
    words = set(re.findall(r"\b(yes|no)\b", (text or "").lower()))
    return (words == {"yes"}) if len(words) == 1 else None


def judge(items: list[BenchItem], responses: list[str], client, model: str, max_workers: int = 8) -> list[bool | None]:
    """Ask an OpenAI-compatible model (an `openai.OpenAI` client) whether each response's final
    answer matches the reference. None: an unparseable reply, or a request that failed after the
    client's own retries (a warning counts them)."""
    import openai

    if len(items) != len(responses):
        raise ValueError(f"{len(items)} items but {len(responses)} responses")

    def ask(pair) -> bool | None:
        item, response = pair
        prompt = JUDGE_PROMPT.format(question=item.question, answer=item.answer, response=_judge_view(response))
        try:
            reply = client.chat.completions.create(model=model, temperature=0.0, max_tokens=8,
                                                   messages=[{"role": "user", "content": prompt}])
        except openai.OpenAIError as exc:
            log.warning("judge: %s item %s failed: %s: %s", item.benchmark, item.id, type(exc).__name__, exc)
            failed.append(item.id)
            return None
        return parse_judgement(reply.choices[0].message.content)

    failed: list[str] = []
    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        out = list(pool.map(ask, zip(items, responses)))
    if failed:
        warnings.warn(f"judge: {len(failed)} of {len(items)} requests failed after the client's retries "
                      f"(verdict None), first ids {failed[:5]}", DataWarning, stacklevel=2)
    return out


def agreement(rule: list[bool | None], judge: list[bool | None]) -> dict:
    """How often the rule-based verdicts and the judge's agree, over pairs where both exist.
    `agreement` is a percent with 1 decimal.

    >>> agreement([True, False, True, None], [True, True, None, False])
    {'n_compared': 2, 'agree': 1, 'agreement': 50.0, 'rule_yes_judge_no': 0, 'rule_no_judge_yes': 1}
    """
    if len(rule) != len(judge):
        raise ValueError(f"{len(rule)} rule verdicts but {len(judge)} judge verdicts")
    pairs = [(r, j) for r, j in zip(rule, judge) if r is not None and j is not None]
    agree = sum(r == j for r, j in pairs)
    return {"n_compared": len(pairs), "agree": agree, "agreement": _pct(agree, len(pairs)),
            "rule_yes_judge_no": sum(r and not j for r, j in pairs),
            "rule_no_judge_yes": sum(j and not r for r, j in pairs)}
