"""The one reader for data files, and the report every load keeps.

Every data file in the project, training data and benchmarks alike (visionr1.released_data and
visionr1.benchmarks stand on this module), is read by ``iter_rows``: JSON (an array, JSON Lines,
or an object keyed by id), JSONL, parquet in any Hub layout (``find_parquet_files``, the parquet
converter's ``<config>/<split>/0000.parquet`` included) and VLMEvalKit TSV. Image cells are found
by ``find_image`` whatever their encoding: a ``{"bytes", "path"}`` struct, raw bytes, base64 text
or a path; ``decode_image`` and ``image_problem`` open and verify them.

Nothing is dropped silently: every bad row becomes a ``DataProblem(file, row,
reason, detail)`` in the ``LoadReport`` that rides on the returned ``Records``
(``records.report``); bad rows are left out of the records, a ``DataWarning``
carries the summary, and a ``DataError`` (carrying the report as ``.report``) is raised
when the share of bad rows exceeds ``max_bad_fraction`` or a whole file cannot be read.
Rows are numbered from 0 in file order (JSON array index, parquet row index).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import sys
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

DEFAULT_MAX_BAD_FRACTION = 0.01

# reason -> what it means; DataProblem.reason must be one of these keys
PROBLEM_KINDS: dict[str, str] = {
    "missing_file": "a data file (dataset_info file_name, parquet split) does not exist",
    "invalid_json": "a file or JSONL line is not valid JSON or not the expected JSON shape",
    "invalid_parquet": "pyarrow cannot read the parquet file",
    "empty_file": "a data file holds no rows",
    "bad_entry": "a dataset_info.json entry is unusable (no file_name, not sharegpt, bad columns/tags)",
    "missing_field": "a row lacks a required column/key, or it is null or empty",
    "wrong_type": "a column or turn has the wrong type",
    "empty_conversation": "the conversation has no turns",
    "unknown_role": "a turn's role is none of the tags the dataset_info entry declares",
    "bad_turn_order": "turns do not alternate user/assistant starting with user, or the last is not assistant",
    "empty_turn": "a turn's content is empty",
    "image_count_mismatch": "number of <image> tags in the text differs from the number of images",
    "missing_image": "an image path does not exist (or an image struct has neither bytes nor path)",
    "corrupt_image": "PIL cannot decode or verify an image",
}

_IMAGE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


class DataError(ValueError):
    """The data cannot be used as is; the message says which file, which rows and why.

    ``report`` is the LoadReport of the load that failed, when there was one.
    """

    def __init__(self, message: str, report: LoadReport | None = None) -> None:
        super().__init__(message)
        self.report = report


class DataWarning(UserWarning):
    """Some rows were left out (under ``max_bad_fraction``); the message lists them."""


@dataclass(frozen=True)
class DataProblem:
    """One bad row (``row`` is its 0-based index) or a whole bad file (``row`` None)."""

    file: str
    row: int | None
    reason: str
    detail: str = ""

    def __post_init__(self) -> None:
        if self.reason not in PROBLEM_KINDS:
            raise ValueError(f"unknown problem reason {self.reason!r}; expected one of {sorted(PROBLEM_KINDS)}")

    def __str__(self) -> str:
        where = self.file if self.row is None else f"{self.file}:{self.row}"
        return f"{where}: {self.reason}: {self.detail}" if self.detail else f"{where}: {self.reason}"


@dataclass
class LoadReport:
    """What a load or check saw: row and image counts and every problem found."""

    root: str = ""
    rows_total: int = 0
    rows_ok: int = 0
    images_ok: int = 0  # images referenced by the good rows (found; decoded or verified when checked)
    problems: list[DataProblem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def add(self, file: str, row: int | None, reason: str, detail: str = "") -> None:
        self.problems.append(DataProblem(file, row, reason, detail))

    def extend(self, other: LoadReport) -> None:
        self.rows_total += other.rows_total
        self.rows_ok += other.rows_ok
        self.images_ok += other.images_ok
        self.problems.extend(other.problems)
        self.files.extend(f for f in other.files if f not in self.files)

    @property
    def bad_rows(self) -> int:
        """Distinct rows with at least one problem (a row can have several)."""
        return len({(p.file, p.row) for p in self.problems if p.row is not None})

    @property
    def file_problems(self) -> list[DataProblem]:
        return [p for p in self.problems if p.row is None]

    @property
    def bad_fraction(self) -> float:
        return self.bad_rows / self.rows_total if self.rows_total else 0.0

    def counts(self) -> Counter[str]:
        return Counter(p.reason for p in self.problems)

    def summary(self, max_problems: int = 10) -> str:
        lines = [
            f"{self.root or '.'}: {self.rows_ok}/{self.rows_total} rows ok, {self.bad_rows} bad rows "
            f"({100 * self.bad_fraction:.1f}%), {self.images_ok} images ok, {len(self.problems)} problems"
        ]
        if self.problems:
            by_reason = ", ".join(f"{reason} {n}" for reason, n in sorted(self.counts().items()))
            lines.append(f"problems by reason: {by_reason}")
            shown = self.problems[:max_problems]
            lines.append(f"first {len(shown)} problems (file:row, rows numbered from 0):")
            lines += [f"  {p}" for p in shown]
            if len(self.problems) > len(shown):
                lines.append(f"  ... and {len(self.problems) - len(shown)} more")
        return "\n".join(lines)

    def raise_or_warn(self, what: str, max_bad_fraction: float) -> None:
        """Raise DataError for unreadable files, no rows or too many bad rows; else warn if any problem."""
        hint = (
            f"Fix or remove these rows, or pass a larger max_bad_fraction to accept them; "
            f"`python -m visionr1 data check {self.root or 'DIR'}` lists every problem."
        )
        if self.file_problems:
            raise DataError(f"cannot load {what}: a data file is unusable.\n{self.summary()}\n{hint}", self)
        if self.rows_total == 0:
            raise DataError(f"cannot load {what}: no rows found.\n{self.summary()}", self)
        if self.bad_fraction > max_bad_fraction:
            raise DataError(
                f"cannot load {what}: {self.bad_rows} of {self.rows_total} rows are bad "
                f"({100 * self.bad_fraction:.2f}% > max_bad_fraction {100 * max_bad_fraction:.2f}%).\n"
                f"{self.summary()}\n{hint}", self
            )
        if self.problems:
            warnings.warn(f"{what}: left out {self.bad_rows} bad rows.\n{self.summary()}", DataWarning, stacklevel=3)


class Records(list[dict[str, Any]]):
    """The normalized records of a load (good rows only), with its ``LoadReport`` as ``.report``."""

    def __init__(self, items: Iterable[dict[str, Any]] = (), report: LoadReport | None = None) -> None:
        super().__init__(items)
        self.report = report if report is not None else LoadReport()


def _rel(path: Path, root: Path) -> str:
    if root.is_file():
        return path.name
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def _image_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def verify_image_file(path: str | Path) -> str | None:
    """None when PIL can open and verify the file, else the error text."""
    try:
        with Image.open(path) as im:
            im.verify()
    except _IMAGE_ERRORS as exc:
        return _image_error(exc)
    return None


def open_image(path: str | Path) -> Image.Image:
    """Open an image file as RGB (what the sharegpt records point at)."""
    with Image.open(path) as im:
        return im.convert("RGB")


# ---------------------------------------------------------------------------
# One reader for every data file: JSON, JSONL, parquet, TSV; images embedded,
# base64 or by path. visionr1.released_data and visionr1.benchmarks use it.

DATA_SUFFIXES = (".json", ".jsonl", ".parquet", ".tsv")
KEY_FIELD = "_key"  # a JSON object keyed by id (MathVista, DynaMath seed set): each row's key
BAD_ROW = object()  # stands for a row that did not parse (already in the report)
_JSON_LINES = object()
_BASE64_MIN_CHARS = 1024  # a string cell this long is base64 image data, not a path (VLMEvalKit TSV)


def _looks_like_tsv(text: str) -> bool:
    first = text.split("\n", 1)[0]
    return "\t" in first and not first.lstrip().startswith(("{", "["))


def iter_rows(path: Path, name: str, report: LoadReport, *, keyed: bool = True,
              columns: Sequence[str] | None = None) -> Iterable[tuple[int, Any]]:
    """(row number from 0, row) of one data file; a file that cannot be read adds one file problem.

    * ``.parquet``: one dict per row (``columns`` limits what is decoded);
    * ``.tsv``: VLMEvalKit's tab-separated benchmark files, values as strings; an ``image``
      cell of at most 64 characters names the ``index`` of the row whose image it shares;
    * otherwise JSON, told apart by content: an array of rows, JSON Lines, or (when ``keyed``)
      an object keyed by id whose rows get their key as ``KEY_FIELD``.

    A JSONL line that is not JSON is reported and yielded as ``BAD_ROW``.
    """
    if not path.is_file():
        report.add(name, None, "missing_file", f"{path} does not exist")
        return
    if path.suffix == ".parquet":
        try:
            pf = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as exc:
            report.add(name, None, "invalid_parquet", f"{type(exc).__name__}: {exc}")
            return
        row = 0
        for batch in pf.iter_batches(batch_size=256, columns=list(columns) if columns else None):
            for values in batch.to_pylist():
                yield row, values
                row += 1
        return
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        report.add(name, None, "invalid_json", f"cannot read as UTF-8 text: {exc}")
        return
    if path.suffix == ".tsv":
        yield from enumerate(_tsv_rows(text))
        return
    stripped = text.lstrip()
    if not stripped:
        return
    data: Any = _JSON_LINES
    if path.suffix != ".jsonl":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            if _looks_like_tsv(text):
                report.add(name, None, "invalid_json", f"this is a tab-separated file (a VLMEvalKit TSV?), not JSON; "
                                                       f"name it .tsv to read it as one ({exc})")
                return
            if not (stripped.startswith("{") and "Extra data" in str(exc)):
                report.add(name, None, "invalid_json", str(exc))
                return
            data = _JSON_LINES  # several top-level objects: JSON Lines under a .json name
    if data is _JSON_LINES:
        row = 0
        for line_no, line in enumerate(text.splitlines()):
            if not line.strip():
                continue
            try:
                yield row, json.loads(line)
            except json.JSONDecodeError as exc:
                report.add(name, row, "invalid_json", f"line {line_no + 1}: {exc}")
                yield row, BAD_ROW
            row += 1
        return
    if isinstance(data, dict):
        if not keyed or not data or not all(isinstance(v, dict) for v in data.values()):
            expected = "an array of rows" if not keyed else "an array of rows or an object of id -> row"
            report.add(name, None, "invalid_json", f"top level is a JSON object with keys {list(data)[:5]}; expected {expected}")
            return
        data = [{KEY_FIELD: key, **value} for key, value in data.items()]
    if not isinstance(data, list):
        report.add(name, None, "invalid_json", f"top level is a JSON {type(data).__name__}; expected an array of rows")
        return
    yield from enumerate(data)


def _tsv_rows(text: str) -> list[dict[str, str]]:
    csv.field_size_limit(sys.maxsize)  # base64 image cells run to megabytes
    rows = list(csv.DictReader(io.StringIO(text, newline=""), delimiter="\t"))
    by_index = {r.get("index"): r.get("image") for r in rows if r.get("image") and len(r["image"]) > 64}
    for r in rows:
        cell = r.get("image")
        if cell and len(cell) <= 64 and cell in by_index:
            r["image"] = by_index[cell]
    return rows


_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"RIFF", b"BM")


def _base64_image(text: str) -> bytes | None:
    """The bytes of a short base64 image cell (a tiny image), None when it is not one (a path)."""
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if data.startswith(_IMAGE_MAGIC) else None


ImageSource = bytes | Path  # embedded (encoded) bytes or an image file


def find_image(cell: Any, dirs: Sequence[Path]) -> tuple[ImageSource | None, str, str]:
    """Where one image cell's data is, without decoding it: ``(source, reason, detail)``.

    A cell is a ``{"bytes", "path"}`` struct (Hub parquet), raw bytes, base64 text
    (VLMEvalKit TSV, optionally a ``data:image/...;base64,`` URL) or a path, looked up as is
    when absolute, else under each of ``dirs`` in turn. ``reason`` is "" when found.
    """
    data: Any = None
    path: Any = None
    if isinstance(cell, dict):
        data, path = cell.get("bytes"), cell.get("path")
    elif isinstance(cell, (bytes, bytearray)):
        data = cell
    elif isinstance(cell, str) and (len(cell) >= _BASE64_MIN_CHARS or cell.startswith("data:image")):
        try:
            data = base64.b64decode(cell.split(",", 1)[1] if cell.startswith("data:") else cell, validate=True)
        except (binascii.Error, ValueError) as exc:
            return None, "corrupt_image", f"a {len(cell)}-character image cell is not valid base64 ({exc})"
    elif isinstance(cell, str):
        path = cell
    else:
        return None, "wrong_type", f"expected an image struct {{'bytes', 'path'}}, bytes, base64 text or a path, got {type(cell).__name__}"
    if data:
        return bytes(data), "", ""
    if not path:
        return None, "missing_image", "struct has neither bytes nor path"
    candidates = [Path(path)] if Path(path).is_absolute() else list(dict.fromkeys(d / path for d in dirs))
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve(), "", ""
    data = _base64_image(path) if isinstance(cell, str) else None  # a tiny image's base64 is short
    if data:
        return data, "", ""
    return None, "missing_image", f"{path!r} not found (looked for {', '.join(map(str, candidates))})"


def decode_image(source: ImageSource) -> Image.Image:
    """The image as PIL RGB; raises OSError/SyntaxError/ValueError when it does not decode."""
    if isinstance(source, Path):
        return open_image(source)
    with Image.open(io.BytesIO(source)) as im:
        return im.convert("RGB")


def image_problem(source: ImageSource, *, full_decode: bool = False) -> str | None:
    """None when the image verifies (or, with ``full_decode``, decodes), else what is wrong."""
    try:
        if full_decode:
            decode_image(source)
        elif isinstance(source, Path):
            return verify_image_file(source)
        else:
            with Image.open(io.BytesIO(source)) as im:
                im.verify()
    except _IMAGE_ERRORS as exc:
        if isinstance(source, Path):
            return f"{source}: {_image_error(exc)}"
        error = type(exc).__name__ if isinstance(exc, Image.UnidentifiedImageError) else _image_error(exc)
        return f"PIL cannot decode the stored {len(source)} bytes starting {bytes(source[:8])!r} ({error})"
    return None


# ---------------------------------------------------------------------------
# Parquet files in the Hub's layouts (Vision-R1-rl splits, benchmark testmini files)


PARQUET_LAYOUTS = ("{split}-*.parquet", "data/{split}-*.parquet", "{split}.parquet", "data/{split}.parquet",
                   "{split}/*.parquet", "data/{split}/*.parquet", "default/{split}/*.parquet")


def find_parquet_files(dataset_dir: str | Path, split: str) -> list[Path]:
    """Parquet files of ``split`` in the layouts the Hub uses, first layout that matches wins.

    ``<dir>/<split>-*.parquet``, ``<dir>/data/<split>-*.parquet``, ``<dir>/<split>.parquet``,
    ``<dir>/data/<split>.parquet``, ``<dir>/<split>/*.parquet``, ``<dir>/data/<split>/*.parquet``,
    ``<dir>/default/<split>/*.parquet``, then the parquet converter's ``<dir>/<config>/<split>/*.parquet``
    when one config holds the split (or one config is named like the split); ``dataset_dir`` may also
    be one parquet file.
    """
    root = Path(dataset_dir)
    if root.is_file() and root.suffix == ".parquet":
        return [root]
    for pattern in PARQUET_LAYOUTS:
        found = sorted(root.glob(pattern.format(split=split)))
        if found:
            return found
    # the Hub's parquet converter (refs/convert/parquet): <config>/<split>/0000.parquet; with several
    # configs holding the split, the one named like it (MathVerse: testmini/testmini/, not
    # testmini_text_only/testmini/)
    configs = sorted({p.parent.parent for p in root.glob(f"*/{split}/*.parquet")})
    chosen = configs if len(configs) == 1 else [c for c in configs if c.name == split]
    return sorted(chosen[0].glob(f"{split}/*.parquet")) if chosen else []
