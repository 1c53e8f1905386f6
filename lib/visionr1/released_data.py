"""The released Vision-R1 data formats, their loaders and their checks (docs/recipe.md §2).

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

Files are read by visionr1.reader (``iter_rows``, ``find_parquet_files``, ``find_image``), and
every bad row goes to the load's ``LoadReport`` as a ``DataProblem`` (file, row, reason), the
way the reader's docstring describes. ``python -m visionr1 data check PATH``
(visionr1.data_stage) loads every dataset beneath PATH with these loaders.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from visionr1.reader import (
    _IMAGE_ERRORS,
    BAD_ROW,
    DEFAULT_MAX_BAD_FRACTION,
    PARQUET_LAYOUTS,
    DataError,
    DataWarning,
    LoadReport,
    Records,
    _rel,
    decode_image,
    find_image,
    find_parquet_files,
    image_problem,
    iter_rows,
    verify_image_file,
)

IMAGE_TAG = "<image>"
DATASET_INFO = "dataset_info.json"
GEOMETRY3K_COLUMNS = ("images", "problem", "answer")


# ---------------------------------------------------------------------------
# Vision-R1-rl: geometry3k parquet


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
# its section "Cold-start data"); the Hub folder ships without a dataset_info.json, so these are assumed
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
