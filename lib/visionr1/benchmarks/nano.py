"""The nano task's test split as a benchmark (the CPU stand-in for the paper's benchmarks).

Read from nano_task.write_jsonl's output (00_data's test.jsonl); sub-scores: one per question type.
"""

from __future__ import annotations

import json
from pathlib import Path

from visionr1.benchmarks.common import BenchItem
from visionr1.reader import DEFAULT_MAX_BAD_FRACTION, DataError, LoadReport, Records


def load_nano(path: Path, limit: int | None) -> Records:
    """Items of the nano test split at `path` (the file, or a folder holding test.jsonl)."""
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


def subscore_keys(it: BenchItem) -> list[str]:
    """The item's question type (one sub-score per qtype)."""
    m = it.meta
    return [m["qtype"]] if m.get("qtype") else []
