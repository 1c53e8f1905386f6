"""What 00_data does, as functions the notebook calls: build the nano sets or load the released
data, describe them, and produce the base model's direct-answer figures.

`find_datasets` / `main_data_check` are `python -m visionr1 data check PATH`: every dataset beneath
PATH, each loaded by the code its stage uses, so a clean check means the stage will load it;
`check_dataset_dir` gives the same check as one LoadReport and `format_check_report` prints it.

Files written under outputs/<run>/00_data/ (the contract later stages read):
  test.jsonl                 nano test split (one Sample record per line, scene included)
  rl/train.parquet           the RL set in the Vision-R1-rl (geometry3k) schema
  cold_start_source/         source.jsonl (+ images/): image, question, answer, scene description
  metrics.json               statistics, paths, base model figures
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from visionr1 import nano_task, reader, released_data


def build_nano_sets(out_dir: Path, seed: int, n_test: int, n_cold_start: int, n_rl: int,
                    grid: int, mc_fraction: float) -> dict:
    """Generate the nano sets and write them in their formats; returns paths and statistics."""
    sets = nano_task.build_splits(seed, n_test, n_cold_start, n_rl, 0, grid, mc_fraction)
    paths = {
        "test": str(nano_task.write_jsonl(sets["test"], out_dir / "test.jsonl")),
        "rl": str(released_data.write_geometry3k_parquet(nano_task.geometry3k_records(sets["rl"]),
                                                   out_dir / "rl" / "train.parquet")),
        "cold_start_source": str(nano_task.write_cold_start_source(sets["cold_start"],
                                                                   out_dir / "cold_start_source")),
    }
    stats = {name: nano_task.statistics(samples) for name, samples in sets.items() if samples}
    overlap = {f"{a}&{b}": len(nano_task.scene_keys(sets[a]) & nano_task.scene_keys(sets[b]))
               for a, b in (("test", "cold_start"), ("test", "rl"), ("cold_start", "rl"))}
    return {"sets": sets, "paths": paths, "stats": stats, "shared_images": overlap}


def load_released(rl_data_dir: str | None, cold_data_dir: str | None, cold_datasets: list[str],
                  max_bad_fraction: float) -> dict:
    """Load the released Vision-R1-rl / Vision-R1-cold folders named in params.

    Bad rows are left out and reported; past `max_bad_fraction` the loader raises DataError with
    the report (file, row, reason), which fails the stage.
    """
    out: dict = {"records": {}, "stats": {}, "problems": {}}
    if rl_data_dir:
        splits = [split for split in RL_SPLITS if reader.find_parquet_files(rl_data_dir, split)]
        if not splits:
            _no_rl_splits(Path(rl_data_dir))
        for split in splits:
            recs = released_data.load_geometry3k(rl_data_dir, split, max_bad_fraction=max_bad_fraction)
            out["records"][f"rl_{split}"] = recs
            out["stats"][f"rl_{split}"] = {"rows": len(recs), "bad_rows": recs.report.bad_rows,
                                          "images": sum(len(r["images"]) for r in recs)}
            out["problems"][f"rl_{split}"] = [str(p) for p in recs.report.problems]
    if cold_data_dir:
        for name in cold_datasets:
            recs = released_data.load_sharegpt(cold_data_dir, name, max_bad_fraction=max_bad_fraction)
            out["records"][name] = recs
            out["stats"][name] = {"rows": len(recs), "bad_rows": recs.report.bad_rows,
                                  "images": sum(len(r["images"]) for r in recs)}
            out["problems"][name] = [str(p) for p in recs.report.problems]
    if not out["records"]:
        if rl_data_dir or cold_data_dir:
            raise ValueError(f"data_source is 'released' but nothing was loaded: cold_data_dir={cold_data_dir!r} with "
                             f"cold_datasets={cold_datasets!r} (name the dataset_info entries to load)")
        raise ValueError("data_source is 'released' but neither rl_data_dir nor cold_data_dir is set")
    return out


def _no_rl_splits(root: Path) -> None:
    """Raise the DataError for an rl_data_dir in which no train/test split is found."""
    if not root.exists():
        raise FileNotFoundError(f"rl_data_dir {root} does not exist")
    present = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.parquet"))[:20] if root.is_dir() else []
    raise reader.DataError(
        f"rl_data_dir {root} holds no {'/'.join(RL_SPLITS)} split (looked for "
        f"{', '.join(p.format(split='train') for p in reader.PARQUET_LAYOUTS)}, <config>/train/*.parquet and the "
        f"same for test); parquet files present: {present or 'none'}. "
        f"`python -m visionr1 data check {root}` lists the datasets beneath it.")


def released_grid_items(records: dict[str, list[dict]], n: int) -> list[tuple]:
    """(image, "[set] question -> answer") panels, an even share of `n` from each loaded set."""
    from PIL import Image

    items = []
    for name, recs in records.items():
        for r in recs[: max(1, n // len(records))]:
            if "messages" in r:  # sharegpt: images are paths; question = first user turn
                img = Image.open(r["images"][0]).convert("RGB") if r["images"] else Image.new("RGB", (28, 28), "white")
                user = next(m["content"] for m in r["messages"] if m["role"] == "user")
                answer = r["messages"][-1]["content"][-80:]
            else:  # geometry3k: decoded images, problem, answer
                img, user, answer = r["images"][0], r["problem"], r["answer"]
            items.append((img, f"[{name}] {user[:120]} -> {answer}"))
    return items


# ---------------------------------------------------------------------------------------------
# `python -m visionr1 data check PATH`: every dataset beneath PATH, each checked by the code
# that loads it (00_data's loaders for Vision-R1-rl/-cold, benchmarks.load for the benchmarks).
# ---------------------------------------------------------------------------------------------
RL_SPLITS = ("train", "test")  # what load_released reads from rl_data_dir
_SKIP_DIRS = {".git", ".cache", "__pycache__", ".ipynb_checkpoints"}
# benchmark files told apart by the keys of their first row (each schema's distinctive fields)
_BENCHMARK_KEYS = (
    ("mathverse", lambda k: "problem_version" in k or "sample_index" in k),
    ("dynamath", lambda k: "ground_truth" in k or "varid" in k or
     ("answer_type" in k and "subject" in k and ("knowledge_level" in k or "level" in k))),
    ("mmmath", lambda k: "solution" in k and "file_name" in k),
    ("mathvista", lambda k: "question_type" in k and "answer_type" in k and ("pid" in k or "query" in k or "index" in k
                                                                          or reader.KEY_FIELD in k)),
)
# files that sit beside benchmark questions but are not datasets, and why
_NOT_DATASETS = {
    "query.json": "MathVista's prompts (pid -> query), read with the testmini.json beside it",
    "source.json": "MathVista's source list, not questions",
    "annot_testmini.json": "MathVista's annotation file (solutions, programs per pid), not questions",
}


@dataclass
class Check:
    """One dataset found under the checked path, and what loading it the stage's way gave."""

    label: str                      # "Vision-R1-rl split 'train'", "mathvista", "Vision-R1-cold entry 'x'"
    path: Path                      # what the loader is pointed at
    load: Callable[[], list]        # the stage's own loader call, returning Records
    note: str = ""                  # an assumption made (README entries, ...)
    error: str | None = None        # the loader's error, when it raised
    report: reader.LoadReport | None = None

    def run(self) -> Check:
        if self.error is not None:  # found unusable without loading
            return self
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", reader.DataWarning)
            try:
                records = self.load()
                self.report = records.report
                sources = sorted({getattr(r, "meta", {}).get("prompt_source", "") for r in records} - {""})
                if sources:  # benchmark items: where their prompts came from
                    self.note = "prompts from " + ", ".join(sources[:3]) + (" ..." if len(sources) > 3 else "")
            except reader.DataError as exc:
                self.error, self.report = str(exc), exc.report
            except (FileNotFoundError, ValueError) as exc:
                self.error = f"{type(exc).__name__}: {exc}"
        return self

    @property
    def ok(self) -> bool:
        return self.error is None and self.report is not None and not self.report.problems

    def line(self) -> str:
        r = self.report
        counts = f"{r.rows_ok}/{r.rows_total} rows ok, {r.images_ok} images ok" if r else "not read"
        status = "ok  " if self.ok else ("FAIL" if self.error else "BAD ")
        why = f"; {self.error.splitlines()[0]}" if self.error else (f"; {len(r.problems)} problems" if r and r.problems else "")
        return f"{status} {self.label}: {self.path} ({counts}{why})" + (f" [{self.note}]" if self.note else "")


def _first_row_keys(path: Path) -> set[str] | None:
    """Keys of a data file's first row (parquet: its columns); None when unreadable or not rows."""
    if path.suffix == ".parquet":
        try:
            return set(pq.read_schema(path).names)
        except (pa.ArrowException, OSError):
            return None
    for _, row in reader.iter_rows(path, path.name, reader.LoadReport()):
        return set(row) if isinstance(row, dict) else None
    return None


def _benchmark_of(keys: set[str]) -> str | None:
    return next((name for name, match in _BENCHMARK_KEYS if match(keys)), None)


def _rl_split_of(path: Path, top: Path) -> tuple[Path, str] | None:
    """(rl_data_dir, split) under which the RL loader reads `path`: for the first split name that
    works (train/test first), the outermost folder up to three levels above it (within `top`)
    for which find_parquet_files(folder, split) lists it."""
    names = [path.stem.split("-")[0], path.parent.name, path.stem]
    splits = [s for s in RL_SPLITS if s in names] + [s for s in names if s not in RL_SPLITS + ("data", "default")]
    roots = [r for r in path.parents[:3][::-1] if r == top or top in r.parents]
    for split in splits:  # train/test first: "extra/train.parquet" is split train of extra/, not split extra
        for root in roots:
            if path in reader.find_parquet_files(root, split):
                return root, split
    return None


def find_datasets(path: str | Path, *, max_bad_fraction: float = reader.DEFAULT_MAX_BAD_FRACTION,
                  names: list[str] | None = None) -> tuple[list[Check], list[tuple[str, str]]]:
    """Every dataset beneath `path` (a file or a folder), unchecked, and the files skipped with why.

    Found: each dataset_info.json entry (or, without one, the released Vision-R1-cold files under
    the README's entries), each Vision-R1-rl split (any Hub parquet layout), each benchmark file
    recognized by its schema (parquet, JSON, JSONL, VLMEvalKit TSV). `names` limits the
    dataset_info entries checked.
    """
    from visionr1 import benchmarks

    top = Path(path)
    if top.name == released_data.DATASET_INFO:
        top = top.parent
    if not top.exists():
        raise FileNotFoundError(f"{top} does not exist")
    if top.is_file():
        files, info_dirs = [top], []
    else:
        files, info_dirs = [], []
        for folder, subdirs, filenames in os.walk(top):
            subdirs[:] = sorted(d for d in subdirs if d not in _SKIP_DIRS and not d.startswith("."))
            here = Path(folder)
            files += [here / f for f in sorted(filenames) if Path(f).suffix in reader.DATA_SUFFIXES]
            if released_data.DATASET_INFO in filenames or released_data.assumed_dataset_info(here):
                info_dirs.append(here)
    checks: list[Check] = []
    skipped: list[tuple[str, str]] = []
    claimed: set[Path] = set()
    verify = dict(max_bad_fraction=max_bad_fraction, verify_images=True)
    for folder in info_dirs:  # Vision-R1-cold: as load_released reads cold_data_dir
        has_info = (folder / released_data.DATASET_INFO).is_file()
        claimed.add(folder / released_data.DATASET_INFO)
        try:
            info = released_data.load_dataset_info(folder) if has_info else released_data.assumed_dataset_info(folder)
        except reader.DataError as exc:
            bad = reader.LoadReport(root=str(folder))
            bad.add(released_data.DATASET_INFO, None, "invalid_json", str(exc))
            checks.append(Check(f"Vision-R1-cold {released_data.DATASET_INFO}", folder, lambda: [], error=str(exc),
                                report=bad))
            continue
        unknown = [n for n in names or () if n not in info]
        if unknown:
            raise reader.DataError(f"no entries {unknown} in {folder / released_data.DATASET_INFO}; "
                                   f"entries: {sorted(info)}")
        note = "" if has_info else released_data.ASSUMED_INFO_NOTE
        claimed |= {folder / e["file_name"] for e in info.values() if isinstance(e, dict) and isinstance(e.get("file_name"), str)}
        for name in names or list(info):
            checks.append(Check(f"Vision-R1-cold entry {name!r}", folder,
                                lambda f=folder, n=name: released_data.load_sharegpt(f, n, **verify), note))
    rl_groups: dict[tuple[Path, str], list[Path]] = {}
    for file in files:
        if file in claimed or file.name == released_data.DATASET_INFO:
            continue
        rel = file.relative_to(top).as_posix() if top.is_dir() else file.name
        if file.name in _NOT_DATASETS or file.name.startswith("annot_"):
            skipped.append((rel, _NOT_DATASETS.get(file.name, _NOT_DATASETS["annot_testmini.json"])))
            continue
        keys = _first_row_keys(file)
        bench = _benchmark_of(keys) if keys else None
        if bench in ("mathvista", "mathverse") and file.suffix == ".parquet" and "testmini" not in rel:
            skipped.append((rel, f"{bench} rows outside testmini: the evaluation reads the testmini split"))
        elif bench:
            checks.append(Check(bench, file, lambda b=bench, f=file: benchmarks.load(b, f, max_bad_fraction=max_bad_fraction)))
        elif file.suffix == ".parquet":  # any other parquet is read as Vision-R1-rl (geometry3k)
            found = _rl_split_of(file, top if top.is_dir() else file.parent)
            if found is None:
                checks.append(Check("Vision-R1-rl", file, lambda: [], error=(
                    f"no rl_data_dir and split make the RL loader read this file (layouts: "
                    f"{', '.join(reader.PARQUET_LAYOUTS)}, <config>/<split>/*.parquet)")))
            else:
                rl_groups.setdefault(found, []).append(file)
        elif keys and ({"conversations", "messages"} & keys) and top.is_file():
            checks.append(Check("sharegpt file", file, lambda f=file: released_data.load_sharegpt_file(f, **verify),
                                released_data.sharegpt_entry_for_file(file)[2]))
        elif keys and ({"conversations", "messages"} & keys):
            skipped.append((rel, f"sharegpt rows, but no {released_data.DATASET_INFO} entry names the file, so 00_data "
                                 "does not read it (sft.load_rows reads it given the file path)"))
        else:
            what = f"first row keys {sorted(keys)[:8]}" if keys else "not readable as rows"
            skipped.append((rel, f"not a recognized dataset file ({what})"))
    for (root, split), group in sorted(rl_groups.items()):
        if split not in RL_SPLITS and not top.is_file():
            where = root.relative_to(top).as_posix() if top.is_dir() else str(root)
            skipped.append((f"{where} split {split!r}", f"00_data reads only the {'/'.join(RL_SPLITS)} splits of rl_data_dir"))
            continue
        checks.append(Check(f"Vision-R1-rl split {split!r}", root,
                            lambda r=root, s=split: released_data.load_geometry3k(
                                r, s, max_bad_fraction=max_bad_fraction)))
    return checks, skipped


def check_dataset_dir(dataset_dir: str | Path, *, names: Sequence[str] | None = None) -> reader.LoadReport:
    """Every dataset beneath a folder checked as ``data check`` does, opening every image, as one
    report; never raises for bad rows.

    The datasets are ``find_datasets``'s (dataset_info entries, the released
    Vision-R1-cold files, each Vision-R1-rl split, benchmark files), each loaded by its stage's
    loader. Raises FileNotFoundError for a missing folder and DataError for one with no dataset.
    """
    root = Path(dataset_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist (or is not a folder)")
    checks, _ = find_datasets(root, max_bad_fraction=1.0, names=list(names) if names else None)
    if not checks:
        raise reader.DataError(
            f"{root} is not a recognized dataset folder: it has no {released_data.DATASET_INFO} "
            "(LLaMA-Factory sharegpt), no released Vision-R1-cold file, no *.parquet files (geometry3k) and no benchmark file"
        )
    report = reader.LoadReport(root=str(root))
    for check in checks:
        check.run()
        if check.report is not None:
            prefix = reader._rel(check.path, root) if check.path != root and check.path.is_dir() else ""
            for p in check.report.problems:
                in_info = p.file.startswith(released_data.DATASET_INFO)  # a dataset_info entry, not a file
                p_file = f"{prefix}/{p.file}" if prefix and not in_info else p.file
                report.add(p_file, p.row, p.reason, p.detail)
            report.rows_total += check.report.rows_total
            report.rows_ok += check.report.rows_ok
            report.images_ok += check.report.images_ok
            report.files.extend(f for f in check.report.files if f not in report.files)
    return report


def format_check_report(report: reader.LoadReport, max_problems: int | None = None) -> str:
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


def main_data_check(argv: list[str] | None = None) -> int:
    """CLI ``python -m visionr1 data check PATH [--max-problems N] [--name NAME ...]``.

    One line per dataset found beneath PATH and per file skipped (with why), then every problem.
    Returns 0 only when every dataset loads with no problem, 1 otherwise, 2 when PATH is missing
    or holds no dataset.
    """
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m visionr1 data check",
        description="Check every dataset beneath PATH (Vision-R1-rl parquet, Vision-R1-cold sharegpt, benchmark "
                    "files) by loading it as the stage that uses it does, opening every image.")
    parser.add_argument("path", type=Path, help="a dataset folder, a folder of datasets, or one data file")
    parser.add_argument("--max-problems", type=int, default=50, help="problems to print (default 50; -1 for all)")
    parser.add_argument("--max-bad-fraction", type=float, default=reader.DEFAULT_MAX_BAD_FRACTION,
                        help="the stage's data_max_bad_fraction (a load past it fails)")
    parser.add_argument("--name", action="append", help="check only this dataset_info entry (repeatable)")
    args = parser.parse_args(argv)
    try:
        checks, skipped = find_datasets(args.path, max_bad_fraction=args.max_bad_fraction, names=args.name)
    except (FileNotFoundError, reader.DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not checks:
        why = "".join(f"\n  skipped {name}: {reason}" for name, reason in skipped)
        print(f"error: {args.path} is not a recognized dataset folder or file: no dataset_info.json, released "
              f"Vision-R1-cold file, parquet or benchmark file found{why}", file=sys.stderr)
        return 2
    for check in checks:
        check.run()
    print(f"checked {args.path}: {len(checks)} datasets found, {sum(c.ok for c in checks)} clean, "
          f"{len(skipped)} files skipped")
    for check in checks:
        print(f"  {check.line()}")
    for name, reason in skipped:
        print(f"  skipped {name}: {reason}")
    problems = [(c, p) for c in checks if c.report for p in c.report.problems]
    if not problems and all(c.ok for c in checks):
        print("no problems found")
        return 0
    if problems:
        shown = problems if args.max_problems < 0 else problems[:args.max_problems]
        print(f"problems: {len(problems)}; file:row, rows numbered from 0, files relative to each dataset's path")
        for check, p in shown:
            print(f"  [{check.label}] {p}")
        if len(shown) < len(problems):
            print(f"  ... and {len(problems) - len(shown)} more (raise --max-problems to see them)")
    for check in checks:
        if check.error and not (check.report and check.report.problems):
            print(f"  [{check.label}] {check.error}")
    return 1
