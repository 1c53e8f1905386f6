"""Where the data loaders live (docs/recipe.md §2); this module keeps their old import path.

``visionr1.loaders`` re-exports, under the same names, what three modules hold:

* visionr1.reader: the one reader for data files and the report of a load. ``iter_rows``
  (JSON, JSONL, parquet, VLMEvalKit TSV), ``find_parquet_files`` / ``PARQUET_LAYOUTS`` (the Hub's
  parquet layouts), ``find_image`` / ``decode_image`` / ``image_problem`` / ``open_image`` /
  ``verify_image_file`` (image cells whatever their encoding), ``DATA_SUFFIXES``, ``KEY_FIELD``,
  ``BAD_ROW``, ``ImageSource``; ``LoadReport``, ``DataProblem``, ``PROBLEM_KINDS``, ``Records``,
  ``DataError``, ``DataWarning``, ``DEFAULT_MAX_BAD_FRACTION``.
* visionr1.released_data: the released Vision-R1 data formats with their checks. Vision-R1-rl
  geometry3k parquet (``load_geometry3k``, ``write_geometry3k_parquet``, ``GEOMETRY3K_COLUMNS``,
  ``IMAGE_TAG``) and Vision-R1-cold LLaMA-Factory sharegpt (``load_sharegpt``,
  ``load_sharegpt_file``, ``sharegpt_entry_for_file``, ``SharegptSpec``, ``parse_sharegpt_row``,
  ``load_dataset_info``, ``assumed_dataset_info``, ``RELEASED_COLD_ENTRIES``,
  ``ASSUMED_INFO_NOTE``, ``DATASET_INFO``).
* visionr1.data_stage: the data check, ``python -m visionr1 data check PATH``
  (``main_data_check``), and the same check as one report (``check_dataset_dir``,
  ``format_check_report``).

New code imports from those modules. The data modules themselves (reader, released_data,
data_stage, benchmarks) never import this one, which imports data_stage: no import cycle.
"""

from __future__ import annotations

from visionr1.data_stage import check_dataset_dir, format_check_report, main_data_check
from visionr1.reader import (
    BAD_ROW,
    DATA_SUFFIXES,
    DEFAULT_MAX_BAD_FRACTION,
    KEY_FIELD,
    PARQUET_LAYOUTS,
    PROBLEM_KINDS,
    DataError,
    DataProblem,
    DataWarning,
    ImageSource,
    LoadReport,
    Records,
    decode_image,
    find_image,
    find_parquet_files,
    image_problem,
    iter_rows,
    open_image,
    verify_image_file,
)
from visionr1.released_data import (
    ASSUMED_INFO_NOTE,
    DATASET_INFO,
    GEOMETRY3K_COLUMNS,
    IMAGE_TAG,
    RELEASED_COLD_ENTRIES,
    SharegptSpec,
    assumed_dataset_info,
    load_dataset_info,
    load_geometry3k,
    load_sharegpt,
    load_sharegpt_file,
    parse_sharegpt_row,
    sharegpt_entry_for_file,
    write_geometry3k_parquet,
)

__all__ = [
    "ASSUMED_INFO_NOTE",
    "BAD_ROW",
    "DATASET_INFO",
    "DATA_SUFFIXES",
    "DEFAULT_MAX_BAD_FRACTION",
    "GEOMETRY3K_COLUMNS",
    "IMAGE_TAG",
    "KEY_FIELD",
    "PARQUET_LAYOUTS",
    "PROBLEM_KINDS",
    "RELEASED_COLD_ENTRIES",
    "DataError",
    "DataProblem",
    "DataWarning",
    "ImageSource",
    "LoadReport",
    "Records",
    "SharegptSpec",
    "assumed_dataset_info",
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
    "sharegpt_entry_for_file",
    "verify_image_file",
    "write_geometry3k_parquet",
]
