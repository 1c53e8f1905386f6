"""What the benchmark modules share (docs/recipe.md §5): the item type, the file loop, the row helpers.

`BenchItem` is one question whatever its source format, and `load_image` opens its image.
`read_items` is the loop that `visionr1.benchmarks.load` runs over a benchmark's files: every
file is read by visionr1.reader (iter_rows, find_image: JSON, JSONL, any Hub parquet layout,
VLMEvalKit TSV with base64 images), and each benchmark's module only maps its own schema onto
BenchItem, described by its `FileFormat` (which files to look for, how one row becomes an item,
what to refuse). The row helpers (`_text`, `_image`, `_literal`, `_precision`, `_BadRow`) and
`_pct` are private to the benchmarks package: its modules use them, nothing outside does.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from visionr1.reader import (
    BAD_ROW,
    DataError,
    LoadReport,
    Records,
    decode_image,
    find_image,
    find_parquet_files,
    image_problem,
    iter_rows,
    open_image,
)


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


# ---------------------------------------------------------------------------------------------
# Loading: every file is read by visionr1.reader (iter_rows, find_image); each benchmark module
# only maps its own schema onto BenchItem.
# ---------------------------------------------------------------------------------------------
class _BadRow(Exception):
    """A row cannot become an item; `reason` is a reader.PROBLEM_KINDS key."""

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


@dataclass(frozen=True)
class FileFormat:
    """How `read_items` finds one benchmark's files and maps their rows (each benchmark module's FORMAT)."""

    name: str                                   # the benchmark, one of BENCHMARKS
    read_row: Callable[[dict, _File], BenchItem]  # one row -> an item; raises _BadRow for a bad row
    # data files looked for in a folder, first that exists wins (after those `find_files` lists)
    folder_files: tuple[str, ...]
    question_field: str | None = None           # the prompt field read unless load(question_field=...) says another
    find_files: Callable[[Path], list[Path]] | None = None  # a folder's data files by pattern (Hub parquet, variants)
    check_file: Callable[[Path], None] | None = None        # refuses, by name, a file given that holds no questions
    check_first_row: Callable[[dict, _File], None] | None = None  # refuses a file whose first row is another kind
    queries: Callable[[Path], dict | None] | None = None   # prompts kept beside a data file (MathVista query.json)


def read_items(fmt: FileFormat, root: Path, limit: int | None, question_field: str | None) -> Records:
    """Items of the benchmark `fmt` describes from the file or folder `root` (visionr1.benchmarks.load).

    `question_field` None reads the format's own prompt field (DEFAULT_QUESTION_FIELD). Bad rows
    are in `items.report`; the caller judges them with `items.report.raise_or_warn(...,
    max_bad_fraction)` (`load` does, so its DataWarning points at the line that called `load`).
    """
    files = _find_files(fmt, root)
    report = LoadReport(root=str(root))
    items = Records(report=report)
    seen: dict[str, str] = {}
    for file in files:
        if limit is not None and len(items) >= limit:
            break
        ctx = _File(file, _name(file, root), question_field or fmt.question_field)
        if fmt.queries is not None:
            ctx.queries = fmt.queries(file)
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
            if row == 0 and fmt.check_first_row is not None:
                fmt.check_first_row(rec, ctx)
            try:
                item = fmt.read_row(rec, ctx)
            except _BadRow as bad:
                report.add(ctx.name, row, bad.reason, bad.detail)
                continue
            item.meta["source"] = f"{ctx.name}:{row}"
            if item.id in seen:
                raise DataError(f"{fmt.name}: id {item.id!r} appears twice, at {seen[item.id]} and "
                                f"{item.meta['source']}; is a data file in {root} twice?")
            seen[item.id] = item.meta["source"]
            items.append(item)
            report.rows_ok += 1
            report.images_ok += item.image is not None or item.image_bytes is not None
    return items


def _name(file: Path, root: Path) -> str:
    if root.is_file():
        return file.name
    try:
        return file.relative_to(root).as_posix()
    except ValueError:
        return str(file)


def _find_files(fmt: FileFormat, root: Path) -> list[Path]:
    """The data files of `fmt` under `root` (or `root` itself when it is a file)."""
    if root.is_file():
        if fmt.check_file is not None:
            fmt.check_file(root)
        return [root]
    found = fmt.find_files(root) if fmt.find_files is not None else []
    names = list(fmt.folder_files)
    found = found or [root / n for n in names if (root / n).is_file()][:1]
    if not found:
        present = sorted(p.name for p in root.iterdir())[:20]
        raise DataError(f"{fmt.name}: no data file in {root} (looked for testmini parquet files, sample_variant "
                        f"files and {names}); the folder holds {present or 'nothing'}")
    return found


def testmini_parquet_files(root: Path) -> list[Path]:
    """The Hub's testmini parquet files under a folder, in any Hub layout (MathVista, MathVerse)."""
    return find_parquet_files(root, "testmini")


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
    """(image path, embedded bytes) from the first of `keys` that is set (reader.find_image reads
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


def _pct(hits: int, n: int) -> float:
    return round(100.0 * hits / n, 1) if n else float("nan")
