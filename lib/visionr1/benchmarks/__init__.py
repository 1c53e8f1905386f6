"""The paper's evaluation benchmarks (docs/recipe.md §5): loaders for local copies in their public formats,
rule-based scorers, aggregation with the paper's sub-scores, and an optional LLM judge.

Nothing is downloaded here. A user fetches each benchmark once and points `load` at the file or
folder. Files are read by visionr1.reader (iter_rows, find_image: JSON, JSONL, any Hub parquet
layout, VLMEvalKit TSV with base64 images); each benchmark's module only maps its own schema:

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

Where each part lives (one module per benchmark, holding its loading, its scoring and its sub-scores):

  __init__.py   this page; BENCHMARKS, the paper's numbers (PAPER), and the entry points over every
                benchmark: `load`, `data_files` (what `load` would read, found without reading it),
                `score`, `aggregate`
  common.py     BenchItem, load_image, the file loop every benchmark's files go through (read_items,
                FileFormat) and the helpers that map one row
  mathvista.py  MathVista: its layouts, its official query (mathvista_query), its GEO/ALG/GPS/MWP
                sub-scores and the replica of calculate_score.py (official_prediction,
                official_mathvista_verdict)
  mathverse.py  MathVerse: its layouts, its options (mathverse_choices), its problem versions
  mmmath.py     MM-Math: its layout, its gold (mmmath_gold) and its judge's reading (mmmath_extract,
                score_mmmath), its levels
  dynamath.py   DynaMath: its layouts and variants, its options (dynamath_choices), the worst case
  nano.py       the nano task's test split
  llm_judge.py  the LLM judge (judge, parse_judgement, JUDGE_PROMPT) and agreement; not named
                judge.py, so that `benchmarks.judge` (the function) never hides a module of that name
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from visionr1 import grading
from visionr1.benchmarks import dynamath, mathverse, mathvista, mmmath, nano
from visionr1.benchmarks.common import BenchItem, _find_files, _pct, load_image, read_items
from visionr1.benchmarks.dynamath import DYNAMATH_PRECISION, dynamath_choices
from visionr1.benchmarks.llm_judge import JUDGE_PROMPT, JUDGE_RESPONSE_CHARS, agreement, judge, parse_judgement
from visionr1.benchmarks.mathverse import MATHVERSE_TEXT_ONLY, MATHVERSE_VERSIONS, mathverse_choices
from visionr1.benchmarks.mathvista import (
    MATHVISTA_SUBSCORES,
    mathvista_query,
    official_mathvista_prediction,
    official_mathvista_verdict,
)
from visionr1.benchmarks.mmmath import MMMATH_LEVELS, MMMATH_PRECISION, mmmath_extract, mmmath_gold, score_mmmath
from visionr1.reader import DEFAULT_MAX_BAD_FRACTION, Records

BENCHMARKS = ("mathvista", "mathverse", "mmmath", "dynamath", "nano")

# docs/recipe.md §5, 7B table (percent)
PAPER = {
    "Qwen2.5-VL-7B": {"mathvista": 68.1, "mathverse": 46.7, "mathverse_vision_only": 40.2, "mmmath": 34.1,
                      "dynamath": 50.7},
    "Vision-R1-7B": {"mathvista": 73.5, "mathverse": 52.4, "mathverse_vision_only": 46.7, "mmmath": 40.2,
                     "dynamath": 56.3},
    "Qwen2.5-VL-72B": {"mathvista": 73.5, "mathverse": 51.3, "mathverse_vision_only": 47.3, "mmmath": 45.6,
                       "dynamath": 61.2},
}

# the benchmarks read from files by read_items (nano reads its own test split)
_FORMATS = {fmt.name: fmt for fmt in (mathvista.FORMAT, mathverse.FORMAT, mmmath.FORMAT, dynamath.FORMAT)}
DEFAULT_QUESTION_FIELD = {name: fmt.question_field for name, fmt in _FORMATS.items() if fmt.question_field}
# benchmark -> the sub-scores an item counts towards (dynamath's worst case is over its variants)
_SUBSCORE_KEYS = {"mathvista": mathvista.subscore_keys, "mathverse": mathverse.subscore_keys,
                  "mmmath": mmmath.subscore_keys, "nano": nano.subscore_keys}


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------
def load(benchmark: str, path: str | Path, limit: int | None = None, *,
         max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION, question_field: str | None = None) -> Records:
    """Items of one benchmark from a local file or folder (module docstring: the layouts read).

    Bad rows (no answer, an image that is missing or does not decode, ...) are left out and listed
    in `items.report` with a DataWarning; more than `max_bad_fraction` of them, an unreadable file
    or no rows at all raise DataError naming the file and rows. `limit` stops after that many items.
    Each item's meta records "source" (file:row) and "prompt_source" (where its question text
    came from: a field of the row, MathVista's query.json, or VLMEvalKit's TSV `question`).
    """
    root = _root(benchmark, path)
    if benchmark == "nano":
        return nano.load_nano(root, limit)
    items = read_items(_FORMATS[benchmark], root, limit, question_field)
    items.report.raise_or_warn(f"{benchmark} from {root}", max_bad_fraction)
    return items


def _root(benchmark: str, path: str | Path) -> Path:
    """`path` of a known benchmark, which exists (what `load` and `data_files` both refuse first)."""
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; expected one of {BENCHMARKS}")
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"{benchmark}: {root} does not exist (download the benchmark there first)")
    return root


def data_files(benchmark: str, path: str | Path) -> list[Path]:
    """The data files `load` would read for `benchmark` at `path`, found without reading a row
    (what the params check runs before any stage: a wrong folder fails there, not hours later).
    Raises FileNotFoundError for a missing path, DataError for a folder in none of the layouts
    (naming what it looked for and what the folder holds), ValueError for an unknown benchmark."""
    root = _root(benchmark, path)
    if benchmark == "nano":
        file = root if root.is_file() else root / "test.jsonl"
        if not file.is_file():
            raise FileNotFoundError(f"nano: {file} does not exist (00_data writes it for data_source: nano)")
        return [file]
    return _find_files(_FORMATS[benchmark], root)


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
        return score_mmmath(item, response, fmt)
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


# ---------------------------------------------------------------------------------------------
# Aggregation
# ---------------------------------------------------------------------------------------------
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
        out.update(dynamath.worst_case(graded))
    return out


def _subscore_keys(benchmark: str, it: BenchItem) -> list[str]:
    keys_of = _SUBSCORE_KEYS.get(benchmark)
    return keys_of(it) if keys_of else []


__all__ = [
    "BENCHMARKS",
    "DEFAULT_QUESTION_FIELD",
    "DYNAMATH_PRECISION",
    "JUDGE_PROMPT",
    "JUDGE_RESPONSE_CHARS",
    "MATHVERSE_TEXT_ONLY",
    "MATHVERSE_VERSIONS",
    "MATHVISTA_SUBSCORES",
    "MMMATH_LEVELS",
    "MMMATH_PRECISION",
    "PAPER",
    "BenchItem",
    "aggregate",
    "agreement",
    "data_files",
    "dynamath_choices",
    "judge",
    "load",
    "load_image",
    "mathverse_choices",
    "mathvista_query",
    "mmmath_extract",
    "mmmath_gold",
    "official_mathvista_prediction",
    "official_mathvista_verdict",
    "parse_judgement",
    "score",
]
