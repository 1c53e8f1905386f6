"""The one reader for data files, and the loaders for the released Vision-R1 data (docs/recipe.md §2).

Every data file in the project, training data and benchmarks alike (visionr1.benchmarks stands
on this module), is read by ``iter_rows``: JSON (an array, JSON Lines, or an object keyed by id),
JSONL, parquet in any Hub layout (``find_parquet_files``, the parquet converter's
``<config>/<split>/0000.parquet`` included) and VLMEvalKit TSV. Image cells are found by
``find_image`` whatever their encoding: a ``{"bytes", "path"}`` struct, raw bytes, base64 text or
a path; ``decode_image`` and ``image_problem`` open and verify them.

Two released formats, read from a local folder (nothing is downloaded here):

* Vision-R1-rl: parquet in the "geometry3k" schema, columns ``images`` (list of
  ``{"bytes": <PNG/JPEG bytes>, "path": str | None}`` structs), ``problem`` (text
  holding one ``<image>`` per image) and ``answer`` (text); splits train/test.
  ``load_geometry3k`` reads it into records ``{"id", "images": [PIL RGB],
  "problem", "answer", "source"}``; ``write_geometry3k_parquet`` writes records in
  the same schema (the nano task writes its RL set with it).
* Vision-R1-cold: LLaMA-Factory "sharegpt" JSON files described by
  ``dataset_info.json`` (``vision_r1_llava_cot_full.json``: turns ``from``
  human/gpt, images column ``image``; ``vision_r1_mulberry_sft_full.json``: turns
  ``from`` user/assistant, images column ``images``). The Hub download has no
  dataset_info.json: the Vision-R1 README's entries (``RELEASED_COLD_ENTRIES``) are then
  assumed for the released files present, with a DataWarning. ``load_sharegpt`` honours the
  entry's ``columns`` and ``tags`` the way LLaMA-Factory does and returns records
  ``{"id", "images": [absolute path], "messages": [{"role", "content"}], "source"}``;
  ``load_sharegpt_file`` reads one file on its own. Images stay on disk; only their
  existence is checked unless ``verify_images``.

Nothing is dropped silently: every bad row becomes a ``DataProblem(file, row,
reason, detail)`` in the ``LoadReport`` that rides on the returned ``Records``
(``records.report``); bad rows are left out of the records, a ``DataWarning``
carries the summary, and a ``DataError`` (carrying the report as ``.report``) is raised
when the share of bad rows exceeds ``max_bad_fraction`` or a whole file cannot be read.
Rows are numbered from 0 in file order (JSON array index, parquet row index).

``check_dataset_dir`` and the CLI ``python -m visionr1 data check PATH`` (``main_data_check``)
find every dataset beneath a folder or in a file and load each with its stage's loader
(visionr1.data_stage.find_datasets); exit 0 clean, 1 problems, 2 missing or no dataset.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import csv
import io
import json
import os
import sys
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

IMAGE_TAG = "<image>"
DATASET_INFO = "dataset_info.json"
GEOMETRY3K_COLUMNS = ("images", "problem", "answer")
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
# base64 or by path. The training loaders below and visionr1.benchmarks use it.

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
# Vision-R1-rl: geometry3k parquet


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


def _decode_image_item(item: Any, parquet_dir: Path, root: Path) -> tuple[Image.Image | None, str, str]:
    """(image, reason, detail) for one entry of the ``images`` list; reason "" when decoded."""
    source, reason, detail = find_image(item, [parquet_dir, root])
    if source is None:
        return None, reason, detail
    try:
        return decode_image(source), "", ""
    except _IMAGE_ERRORS:
        return None, "corrupt_image", image_problem(source, full_decode=True) or "cannot decode"


def _read_geometry3k_file(
    path: Path, root: Path, split: str, first_index: int, report: LoadReport
) -> tuple[list[dict[str, Any]], int]:
    """Good records of one parquet file, and its row count; problems go to ``report``."""
    name = _rel(path, root)
    report.files.append(name)
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        report.add(name, None, "invalid_parquet", f"{type(exc).__name__}: {exc}")
        return [], 0
    have = pf.schema_arrow.names
    absent = [c for c in GEOMETRY3K_COLUMNS if c not in have]
    if absent:
        report.add(name, None, "missing_field", f"columns {absent} absent (file has {have}; geometry3k needs {list(GEOMETRY3K_COLUMNS)})")
        return [], 0
    if pf.metadata.num_rows == 0:
        report.add(name, None, "empty_file", "parquet file has no rows")
        return [], 0
    columns = list(GEOMETRY3K_COLUMNS) + (["id"] if "id" in have else [])
    records: list[dict[str, Any]] = []
    row = 0
    for row, values in iter_rows(path, name, report, columns=columns):
        record = _geometry3k_row(values, row, path.parent, root, name, report)
        if record is not None:
            record["id"] = str(values["id"]) if values.get("id") is not None else f"{split}-{first_index + row:05d}"
            records.append(record)
    row = pf.metadata.num_rows
    report.rows_total += row
    report.rows_ok += len(records)
    report.images_ok += sum(len(r["images"]) for r in records)
    return records, row


def _geometry3k_row(
    values: Mapping[str, Any], row: int, parquet_dir: Path, root: Path, name: str, report: LoadReport
) -> dict[str, Any] | None:
    n_before = len(report.problems)
    problem, answer, items = values.get("problem"), values.get("answer"), values.get("images")
    for column, value in (("problem", problem), ("answer", answer)):
        if value is None or value == "":
            report.add(name, row, "missing_field", f"column {column!r} is {'null' if value is None else 'empty'}")
        elif not isinstance(value, str):
            report.add(name, row, "wrong_type", f"column {column!r} is {type(value).__name__}, expected string")
    images: list[Image.Image] = []
    if items is None:
        report.add(name, row, "missing_field", "column 'images' is null")
    elif not isinstance(items, list):
        report.add(name, row, "wrong_type", f"column 'images' is {type(items).__name__}, expected a list of image structs")
    else:
        for k, item in enumerate(items):
            image, reason, detail = _decode_image_item(item, parquet_dir, root)
            if image is None:
                report.add(name, row, reason, f"image {k}: {detail}")
            else:
                images.append(image)
        if isinstance(problem, str) and problem.count(IMAGE_TAG) != len(items):
            report.add(
                name, row, "image_count_mismatch",
                f"problem has {problem.count(IMAGE_TAG)} {IMAGE_TAG} tags but the row has {len(items)} images",
            )
    if len(report.problems) > n_before:
        return None
    return {"id": "", "images": images, "problem": problem, "answer": answer, "source": f"{name}:{row}"}


def load_geometry3k(
    dataset_dir: str | Path, split: str = "train", *, max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION
) -> Records:
    """Load one split of a geometry3k-schema parquet dataset (Vision-R1-rl) with images decoded.

    Records: ``{"id", "images": [PIL.Image RGB], "problem", "answer", "source": "file:row"}``;
    ``id`` is the ``id`` column when present, else ``"<split>-<index within the split>"``.
    Raises DataError when no file matches, a file is unreadable, or more than
    ``max_bad_fraction`` of the rows are bad; bad rows under that share are left out
    with a DataWarning and listed in ``records.report``.
    """
    root = Path(dataset_dir)
    if not root.exists():
        raise FileNotFoundError(f"dataset folder {root} does not exist")
    files = find_parquet_files(root, split)
    if not files:
        present = sorted(_rel(p, root) for p in root.rglob("*.parquet")) if root.is_dir() else []
        raise DataError(
            f"no parquet files for split {split!r} in {root} (looked for "
            f"{', '.join(p.format(split=split) for p in PARQUET_LAYOUTS)}, <config>/{split}/*.parquet); "
            f"parquet files present: {present[:20] or 'none'}"
        )
    report = LoadReport(root=str(root))
    records = Records(report=report)
    index = 0
    for path in files:
        got, n_rows = _read_geometry3k_file(path, root, split, index, report)
        records.extend(got)
        index += n_rows
    report.raise_or_warn(f"{root} split {split!r}", max_bad_fraction)
    return records


def _encode_image(image: Any, where: str) -> bytes:
    if isinstance(image, Image.Image):
        buf = io.BytesIO()
        image.save(buf, format="PNG")  # lossless, so a round trip gives the same pixels
        return buf.getvalue()
    if isinstance(image, (bytes, bytearray)):
        return bytes(image)
    if isinstance(image, (str, Path)):
        return Path(image).read_bytes()
    raise TypeError(f"{where}: expected a PIL image, encoded bytes or a file path, got {type(image).__name__}")


_GEOMETRY3K_SCHEMA = pa.schema(
    [
        ("images", pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))),
        ("problem", pa.string()),
        ("answer", pa.string()),
    ],
    # lets `datasets` decode the structs as images, as it does for the released files
    metadata={
        "huggingface": json.dumps(
            {
                "info": {
                    "features": {
                        "images": {"feature": {"_type": "Image"}, "_type": "Sequence"},
                        "problem": {"dtype": "string", "_type": "Value"},
                        "answer": {"dtype": "string", "_type": "Value"},
                    }
                }
            }
        )
    },
)


def write_geometry3k_parquet(records: Iterable[Mapping[str, Any]], path: str | Path, *, row_group_size: int = 256) -> Path:
    """Write records ``{"images", "problem", "answer"}`` as geometry3k parquet; returns the path.

    Images may be PIL images (stored as PNG), encoded bytes or file paths. Only the
    three geometry3k columns are written (the loader rebuilds ``id`` from the row
    index). Raises ValueError naming the record when a field is missing, not a
    string, or the ``<image>`` count differs from the number of images.
    """
    path = Path(path)
    if path.suffix != ".parquet":
        raise ValueError(f"{path}: geometry3k files must end in .parquet (e.g. data/train-00000-of-00001.parquet)")
    rows: list[dict[str, Any]] = []
    for i, record in enumerate(records):
        where = f"record {i}" + (f" (id {record['id']!r})" if "id" in record else "")
        for key in GEOMETRY3K_COLUMNS:
            if record.get(key) is None:
                raise ValueError(f"{where}: missing {key!r}")
        problem, answer, images = record["problem"], record["answer"], record["images"]
        if not isinstance(problem, str) or not isinstance(answer, str):
            raise ValueError(f"{where}: 'problem' and 'answer' must be strings, got {type(problem).__name__}, {type(answer).__name__}")
        if not isinstance(images, (list, tuple)):
            raise ValueError(f"{where}: 'images' must be a list, got {type(images).__name__}")
        if problem.count(IMAGE_TAG) != len(images):
            raise ValueError(f"{where}: problem has {problem.count(IMAGE_TAG)} {IMAGE_TAG} tags but {len(images)} images")
        encoded = [{"bytes": _encode_image(im, f"{where} image {k}"), "path": None} for k, im in enumerate(images)]
        rows.append({"images": encoded, "problem": problem, "answer": answer})
    if not rows:
        raise ValueError(f"{path}: no records to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=_GEOMETRY3K_SCHEMA), path, row_group_size=row_group_size)
    return path


# ---------------------------------------------------------------------------
# Vision-R1-cold: LLaMA-Factory sharegpt


@dataclass(frozen=True)
class SharegptSpec:
    """Column and tag names of one sharegpt dataset_info entry (LLaMA-Factory defaults)."""

    messages: str = "conversations"
    images: str = "images"
    system: str | None = None
    tools: str | None = None
    role_tag: str = "from"
    content_tag: str = "value"
    user_tag: str = "human"
    assistant_tag: str = "gpt"
    system_tag: str = "system"
    observation_tag: str = "observation"
    function_tag: str = "function_call"

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> SharegptSpec:
        """Spec of a dataset_info entry; ValueError says which key is unusable."""
        columns, tags = entry.get("columns") or {}, entry.get("tags") or {}
        if not isinstance(columns, dict) or not isinstance(tags, dict):
            raise ValueError("'columns' and 'tags' must be JSON objects")
        kwargs: dict[str, Any] = {}
        for key in ("messages", "images", "system", "tools"):
            if key in columns:
                kwargs[key] = columns[key]
        for key in ("role_tag", "content_tag", "user_tag", "assistant_tag", "system_tag", "observation_tag", "function_tag"):
            if key in tags:
                kwargs[key] = tags[key]
        for key, value in kwargs.items():
            if not isinstance(value, str) or not value:
                raise ValueError(f"{'tags' if key.endswith('_tag') else 'columns'}.{key} must be a non-empty string, got {value!r}")
        return cls(**kwargs)

    def roles(self) -> dict[str, str]:
        """Tag in the data -> normalized role (LLaMA-Factory's Role values)."""
        return {
            self.user_tag: "user",
            self.assistant_tag: "assistant",
            self.observation_tag: "observation",
            self.function_tag: "function",
            self.system_tag: "system",
        }


_USER_SIDE = {"user", "observation"}
_ASSISTANT_SIDE = {"assistant", "function"}


def parse_sharegpt_row(row: Any, spec: SharegptSpec, default_id: str = "") -> tuple[dict[str, Any] | None, list[tuple[str, str]]]:
    """Normalize one sharegpt row: ``(record or None, [(reason, detail), ...])``.

    The record's ``images`` are the paths as written in the row (resolved by the
    loader). A first turn with the system tag becomes the system message, as in
    LLaMA-Factory; the rest must alternate user/assistant, starting with user and
    ending with assistant (observation/function turns count as user/assistant).
    """
    problems: list[tuple[str, str]] = []
    if not isinstance(row, dict):
        return None, [("wrong_type", f"row is {type(row).__name__}, expected a JSON object")]
    turns = row.get(spec.messages)
    if turns is None:
        problems.append(("missing_field", f"no {spec.messages!r} (the messages column; row keys: {sorted(row)})"))
    elif not isinstance(turns, list):
        problems.append(("wrong_type", f"{spec.messages!r} is {type(turns).__name__}, expected a list of turns"))
    elif not turns:
        problems.append(("empty_conversation", f"{spec.messages!r} is an empty list"))

    messages: list[dict[str, str]] = []
    tags: list[Any] = []  # role tag as written, per message, for messages a user can grep for
    turns_clean = isinstance(turns, list)  # every turn parsed, so <image> tags can be counted
    if isinstance(turns, list):
        roles = spec.roles()
        unknown: dict[int, Any] = {}  # turn -> role tag, reported once per row
        for t, turn in enumerate(turns):
            if not isinstance(turn, dict):
                problems.append(("wrong_type", f"turn {t} is {type(turn).__name__}, expected an object"))
                continue
            missing = [k for k in (spec.role_tag, spec.content_tag) if k not in turn]
            if missing:
                problems.append(("missing_field", f"turn {t} lacks {missing} (keys: {sorted(turn)}; set tags.role_tag/content_tag)"))
                continue
            tag, content = turn[spec.role_tag], turn[spec.content_tag]
            if not isinstance(content, str):
                problems.append(("wrong_type", f"turn {t} {spec.content_tag!r} is {type(content).__name__}, expected string"))
                continue
            if tag not in roles:
                unknown[t] = tag
                continue
            if not content.strip():
                problems.append(("empty_turn", f"turn {t} ({tag!r}) has empty content"))
            messages.append({"role": roles[tag], "content": content})
            tags.append(tag)
        if unknown:
            problems.append((
                "unknown_role",
                f"turns {list(unknown)} have {spec.role_tag!r} {', '.join(sorted(set(map(repr, unknown.values()))))}; the entry declares "
                f"user_tag {spec.user_tag!r}, assistant_tag {spec.assistant_tag!r}, system_tag {spec.system_tag!r} "
                "(set them under 'tags' in dataset_info.json)",
            ))

    system_text: str | None = None
    if spec.system is not None and row.get(spec.system) is not None:
        if isinstance(row[spec.system], str):
            system_text = row[spec.system] or None
        else:
            problems.append(("wrong_type", f"{spec.system!r} (system column) is {type(row[spec.system]).__name__}, expected string"))
    offset = 0  # index in the row's turns = index in messages + offset
    if messages and messages[0]["role"] == "system":
        system_text = messages.pop(0)["content"]
        tags.pop(0)
        offset = 1  # LLaMA-Factory: a leading system turn is the system prompt
    turns_clean = turns_clean and not problems
    if not problems:
        for t, message in enumerate(messages):
            expected = _USER_SIDE if t % 2 == 0 else _ASSISTANT_SIDE
            if message["role"] not in expected:
                problems.append((
                    "bad_turn_order",
                    f"turn {t + offset} is {tags[t]!r} but {'a user' if t % 2 == 0 else 'an assistant'} turn was expected "
                    "(turns must alternate user/assistant, starting with user; a system turn may only come first)",
                ))
                break
        else:
            if not messages:
                problems.append(("empty_conversation", "only a system turn"))
            elif messages[-1]["role"] not in _ASSISTANT_SIDE:
                problems.append(("bad_turn_order", f"last turn is {tags[-1]!r}; a sample must end with an assistant turn"))

    value = row.get(spec.images)
    images: list[str] = []
    if isinstance(value, str):
        value = [value]  # vision_r1_llava_cot_full.json stores one path as a plain string
    if value is None:
        pass  # a text-only sample; the <image> count check below catches a forgotten column
    elif not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        problems.append(("wrong_type", f"{spec.images!r} must be a path string or a list of path strings, got {value!r:.80}"))
        turns_clean = False
    else:
        images = value
    n_tags = sum(m["content"].count(IMAGE_TAG) for m in messages) + (system_text or "").count(IMAGE_TAG)
    if turns_clean and n_tags != len(images):
        problems.append(("image_count_mismatch", f"{n_tags} {IMAGE_TAG} tags in the turns but {len(images)} images in {spec.images!r}"))

    if problems:
        return None, problems
    record: dict[str, Any] = {
        "id": str(row["id"]) if row.get("id") is not None else default_id,
        "images": images,
        "messages": ([{"role": "system", "content": system_text}] if system_text else []) + messages,
    }
    if spec.tools is not None and isinstance(row.get(spec.tools), str):
        record["tools"] = row[spec.tools]
    return record, []


# The dataset_info.json entries the Vision-R1 README gives for Vision-R1-cold (github:Osilly/Vision-R1,
# README "Cold-start data"); the Hub folder ships without a dataset_info.json, so these are assumed
# for the files present when a folder has none.
RELEASED_COLD_ENTRIES: dict[str, dict[str, Any]] = {
    "vision_r1_llava_cot_full": {
        "file_name": "vision_r1_llava_cot_full.json",
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "images": "image"},
        "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"},
    },
    "vision_r1_mulberry_sft_full": {
        "file_name": "vision_r1_mulberry_sft_full.json",
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "images": "images"},
        "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "user", "assistant_tag": "assistant"},
    },
}
ASSUMED_INFO_NOTE = (f"no {DATASET_INFO}: assumed the Vision-R1 README's entries (file names and column mapping) "
                     "for the released files present")


def assumed_dataset_info(dataset_dir: str | Path) -> dict[str, Any]:
    """The README's Vision-R1-cold entries whose files are in ``dataset_dir`` (empty when none)."""
    root = Path(dataset_dir)
    return {name: entry for name, entry in RELEASED_COLD_ENTRIES.items() if (root / entry["file_name"]).is_file()}


def load_dataset_info(dataset_dir: str | Path) -> dict[str, Any]:
    """The entries of ``<dataset_dir>/dataset_info.json`` (name -> entry), unvalidated.

    A folder without one that holds the released Vision-R1-cold files gets the README's
    entries for them (``RELEASED_COLD_ENTRIES``), with a DataWarning saying so.
    """
    path = Path(dataset_dir) / DATASET_INFO
    if not path.is_file():
        assumed = assumed_dataset_info(dataset_dir)
        if assumed:
            warnings.warn(f"{dataset_dir}: {ASSUMED_INFO_NOTE} ({', '.join(assumed)})", DataWarning, stacklevel=2)
            return assumed
        raise FileNotFoundError(
            f"{path} not found: a LLaMA-Factory data folder needs a {DATASET_INFO} describing its files "
            f"(or the released Vision-R1-cold files {[e['file_name'] for e in RELEASED_COLD_ENTRIES.values()]})"
        )
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(info, dict):
        raise DataError(f"{path}: expected a JSON object of name -> entry, got {type(info).__name__}")
    return info


def _read_sharegpt_entry(
    root: Path, name: str, entry: Any, report: LoadReport, verify_images: bool, verified: dict[Path, str | None]
) -> list[dict[str, Any]]:
    """Good records of one dataset_info entry; every problem goes to ``report``."""
    where = f"{DATASET_INFO}[{name!r}]"
    if not isinstance(entry, dict):
        report.add(where, None, "bad_entry", f"entry is {type(entry).__name__}, expected an object")
        return []
    file_name = entry.get("file_name")
    if not isinstance(file_name, str) or not file_name:
        hub = [k for k in ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url") if k in entry]
        report.add(where, None, "bad_entry", "no file_name" + (f" (it names {hub}; download the files and set file_name)" if hub else ""))
        return []
    formatting = entry.get("formatting", "alpaca")
    if formatting != "sharegpt":
        report.add(where, None, "bad_entry", f"formatting is {formatting!r} (LLaMA-Factory's default is alpaca); only sharegpt is read here")
        return []
    try:
        spec = SharegptSpec.from_entry(entry)
    except ValueError as exc:
        report.add(where, None, "bad_entry", str(exc))
        return []
    path = root / file_name
    if path.is_dir() or path.suffix not in (".json", ".jsonl", ".parquet"):
        what = "a VLMEvalKit-style TSV" if path.suffix == ".tsv" else "not a .json, .jsonl or .parquet file"
        report.add(where, None, "bad_entry", f"file_name {file_name!r} is {what}; sharegpt data is a JSON array, JSON Lines or parquet")
        return []
    file = _rel(path, root)
    report.files.append(file)
    n_problems = len(report.file_problems)
    rows = [row for _, row in iter_rows(path, file, report, keyed=False)]
    if len(report.file_problems) > n_problems:
        return []
    if not rows:
        report.add(file, None, "empty_file", "no rows")
        return []
    records: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        if row is BAD_ROW:
            continue
        record, problems = parse_sharegpt_row(row, spec, default_id=f"{name}-{i}")
        for reason, detail in problems:
            report.add(file, i, reason, detail)
        if record is None:
            continue
        resolved: list[str] = []
        for k, image in enumerate(record["images"]):
            found, detail = _resolve_image(image, root, path.parent, verify_images, verified)
            if found is None:
                report.add(file, i, detail[0], f"image {k}: {detail[1]}")
            else:
                resolved.append(str(found))
        if len(resolved) != len(record["images"]):
            continue
        record["images"] = resolved
        record["source"] = f"{file}:{i}"
        records.append(record)
    report.rows_total += len(rows)
    report.rows_ok += len(records)
    report.images_ok += sum(len(r["images"]) for r in records)
    return records


def _resolve_image(
    image: str, root: Path, json_dir: Path, verify: bool, verified: dict[Path, str | None]
) -> tuple[Path | None, tuple[str, str]]:
    """Absolute path of ``image`` (relative to the dataset folder, else the JSON file's folder)."""
    found, reason, detail = find_image(image, [root, json_dir])
    if not isinstance(found, Path):
        return None, (reason or "missing_image", detail or f"{image!r} is not a path")
    if verify:
        if found not in verified:
            verified[found] = verify_image_file(found)
        if verified[found] is not None:
            return None, ("corrupt_image", f"{image!r}: {verified[found]}")
    return found, ("", "")


def load_sharegpt(
    dataset_dir: str | Path,
    name: str,
    *,
    max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION,
    verify_images: bool = False,
) -> Records:
    """Load the dataset_info entry ``name`` of a LLaMA-Factory folder (Vision-R1-cold files).

    Records: ``{"id", "images": [absolute path], "messages": [{"role", "content"}],
    "source": "file:row"}`` (plus ``"tools"`` when the entry maps a tools column).
    Missing images are always detected; ``verify_images`` also opens each one with
    PIL (slower; ``check_dataset_dir`` does it). Raises DataError when the entry or
    its file is unusable or more than ``max_bad_fraction`` of the rows are bad.
    """
    root = Path(dataset_dir)
    info = load_dataset_info(root)
    if name not in info:
        raise DataError(f"no entry {name!r} in {root / DATASET_INFO}; entries: {sorted(info)}")
    report = LoadReport(root=str(root))
    records = Records(_read_sharegpt_entry(root, name, info[name], report, verify_images, {}), report)
    report.raise_or_warn(f"{root} entry {name!r}", max_bad_fraction)
    return records


def sharegpt_entry_for_file(path: str | Path) -> tuple[str, dict[str, Any], str]:
    """(name, dataset_info entry, where the entry came from) for one sharegpt file.

    In order: the entry of a ``dataset_info.json`` beside the file that names it; the Vision-R1
    README's entry for a released file name; else LLaMA-Factory's sharegpt defaults, with the
    messages column and role tags read off the first row (``conversations`` with ``from``/``value``
    or ``messages`` with ``role``/``content``). Raises DataError when the first row is neither.
    """
    path = Path(path)
    if (path.parent / DATASET_INFO).is_file():
        info = load_dataset_info(path.parent)
        for name, entry in info.items():
            if isinstance(entry, dict) and entry.get("file_name") == path.name:
                return name, entry, f"{path.parent / DATASET_INFO}"
    for name, entry in RELEASED_COLD_ENTRIES.items():
        if entry["file_name"] == path.name:
            return name, entry, "the Vision-R1 README's entry (no dataset_info.json names the file)"
    report = LoadReport()
    first = next((row for _, row in iter_rows(path, path.name, report, keyed=False)), None)
    if report.file_problems:
        raise DataError(f"cannot read {path} as sharegpt: {report.file_problems[0]}")
    turns_key = next((k for k in ("conversations", "messages") if isinstance(first, dict) and isinstance(first.get(k), list)), None)
    if turns_key is None:
        keys = sorted(first) if isinstance(first, dict) else type(first).__name__
        raise DataError(f"{path} is not a sharegpt file: its first row has {keys}; expected a 'conversations' or "
                        "'messages' list of turns (LLaMA-Factory sharegpt), or a dataset_info.json beside it naming the file")
    turn = next((t for t in first[turns_key] if isinstance(t, dict)), {})
    role_tag, content_tag = ("role", "content") if "role" in turn else ("from", "value")
    roles = {t.get(role_tag) for t in first[turns_key] if isinstance(t, dict)}
    user_tag, assistant_tag = ("user", "assistant") if "user" in roles or "assistant" in roles else ("human", "gpt")
    images = "images" if "images" in first or "image" not in first else "image"
    entry = {"file_name": path.name, "formatting": "sharegpt", "columns": {"messages": turns_key, "images": images},
             "tags": {"role_tag": role_tag, "content_tag": content_tag, "user_tag": user_tag, "assistant_tag": assistant_tag}}
    return path.stem, entry, "read off the first row (no dataset_info.json names the file)"


def load_sharegpt_file(
    path: str | Path, *, max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION, verify_images: bool = False
) -> Records:
    """Load one sharegpt JSON/JSONL/parquet file, e.g. ``vision_r1_llava_cot_full.json`` on its own.

    The column mapping is ``sharegpt_entry_for_file``'s; images resolve against the file's folder.
    Records and errors as ``load_sharegpt``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sharegpt file {path} does not exist")
    name, entry, _ = sharegpt_entry_for_file(path)
    report = LoadReport(root=str(path.parent))
    records = Records(_read_sharegpt_entry(path.parent, name, entry, report, verify_images, {}), report)
    report.raise_or_warn(f"{path}", max_bad_fraction)
    return records


# ---------------------------------------------------------------------------
# validation of a whole folder and the `data check` CLI


def check_dataset_dir(dataset_dir: str | Path, *, names: Sequence[str] | None = None) -> LoadReport:
    """Every dataset beneath a folder checked as ``data check`` does, opening every image, as one
    report; never raises for bad rows.

    The datasets are ``visionr1.data_stage.find_datasets``'s (dataset_info entries, the released
    Vision-R1-cold files, each Vision-R1-rl split, benchmark files), each loaded by its stage's
    loader. Raises FileNotFoundError for a missing folder and DataError for one with no dataset.
    """
    from visionr1 import data_stage

    root = Path(dataset_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist (or is not a folder)")
    checks, _ = data_stage.find_datasets(root, max_bad_fraction=1.0, names=list(names) if names else None)
    if not checks:
        raise DataError(
            f"{root} is not a recognized dataset folder: it has no {DATASET_INFO} (LLaMA-Factory sharegpt), "
            "no released Vision-R1-cold file, no *.parquet files (geometry3k) and no benchmark file"
        )
    report = LoadReport(root=str(root))
    for check in checks:
        check.run()
        if check.report is not None:
            prefix = _rel(check.path, root) if check.path != root and check.path.is_dir() else ""
            for p in check.report.problems:
                p_file = f"{prefix}/{p.file}" if prefix and not p.file.startswith(DATASET_INFO) else p.file
                report.add(p_file, p.row, p.reason, p.detail)
            report.rows_total += check.report.rows_total
            report.rows_ok += check.report.rows_ok
            report.images_ok += check.report.images_ok
            report.files.extend(f for f in check.report.files if f not in report.files)
    return report


def format_check_report(report: LoadReport, max_problems: int | None = None) -> str:
    """Human-readable check result: files, rows, images and every problem (or the first ``max_problems``)."""
    lines = [
        f"checked {report.root}",
        f"files: {len(report.files)}" + (f" ({', '.join(report.files)})" if report.files else ""),
        f"rows: {report.rows_total} total, {report.rows_ok} ok, {report.bad_rows} bad ({100 * report.bad_fraction:.1f}%)",
        f"images ok: {report.images_ok}",
    ]
    if not report.problems:
        lines.append("no problems found")
        return "\n".join(lines)
    by_reason = ", ".join(f"{reason} {n}" for reason, n in sorted(report.counts().items()))
    lines.append(f"problems: {len(report.problems)} ({by_reason}); file:row, rows numbered from 0")
    shown = report.problems if max_problems is None else report.problems[:max_problems]
    lines += [f"  {p}" for p in shown]
    if len(shown) < len(report.problems):
        lines.append(f"  ... and {len(report.problems) - len(shown)} more (raise --max-problems to see them)")
    return "\n".join(lines)


def main_data_check(argv: Sequence[str] | None = None) -> int:
    """CLI ``python -m visionr1 data check PATH``: ``visionr1.data_stage.main_data_check``, which finds
    every dataset beneath PATH and checks each with the loader its stage uses."""
    from visionr1 import data_stage

    return data_stage.main_data_check(None if argv is None else list(argv))


__all__ = [
    "DEFAULT_MAX_BAD_FRACTION",
    "IMAGE_TAG",
    "PROBLEM_KINDS",
    "DataError",
    "DataProblem",
    "DataWarning",
    "LoadReport",
    "Records",
    "SharegptSpec",
    "RELEASED_COLD_ENTRIES",
    "check_dataset_dir",
    "decode_image",
    "find_image",
    "find_parquet_files",
    "format_check_report",
    "image_problem",
    "iter_rows",
    "load_dataset_info",
    "load_geometry3k",
    "load_sharegpt",
    "load_sharegpt_file",
    "main_data_check",
    "open_image",
    "parse_sharegpt_row",
    "verify_image_file",
    "write_geometry3k_parquet",
]
