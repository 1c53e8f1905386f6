"""Tiny copies of the public layouts users really have on disk, for the loader and `data check` tests.

Each writer builds one layout under ``root`` with a few rows in the public schema (field names,
types and image encodings as the public files have them) and returns the path a user would
pass. The schema each one copies is cited above it. Files are written with plain json/csv/
pyarrow, never with visionr1, so the fixtures do not depend on the code under test.
"""

from __future__ import annotations

import base64
import csv
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from fixtures_released import DATASET_INFO, GEOMETRY3K_TYPE, LLAVA, MULBERRY, image_bytes, square, write_sharegpt_fixture

# the `huggingface` schema metadata the Hub's parquet files carry for an Image sequence
_HF_META = {"huggingface": json.dumps({"info": {"features": {
    "images": {"feature": {"_type": "Image"}, "_type": "Sequence"},
    "problem": {"dtype": "string", "_type": "Value"}, "answer": {"dtype": "string", "_type": "Value"}}}})}


def _write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4, ensure_ascii=False), encoding="utf-8")
    return path


def _b64(colour: str) -> str:
    return base64.b64encode(image_bytes(colour)).decode()


def _write_tsv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """As VLMEvalKit writes its TSVs (pandas to_csv(sep='\\t'): a header, minimal quoting, NaN as "")."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    return path


# ---------------------------------------------------------------------------------------------
# Vision-R1-rl in the Hub's parquet-converter layout (refs/convert/parquet of Osilly/Vision-R1-rl:
# default/<split>/0000.parquet), geometry3k schema (docs/recipe.md §2): images [{bytes, path}],
# problem with one <image> per image, answer.
def write_rl_converter_layout(root: Path, *, bad_row: bool = False) -> Path:
    """default/train/0000.parquet (3 rows; with ``bad_row`` row 1 has corrupt image bytes) and
    default/test/0000.parquet (1 row)."""
    def img(colour: str) -> dict:
        return {"bytes": image_bytes(colour), "path": None}

    train = [{"images": [img("red")], "problem": "<image>Find x.", "answer": "11"},
             {"images": [{"bytes": b"\x89PNG not really", "path": None} if bad_row else img("blue")],
              "problem": "<image>Find y.", "answer": "3"},
             {"images": [img("green")], "problem": "<image>Find the area.", "answer": "24"}]
    test = [{"images": [img("yellow")], "problem": "<image>What is the angle at A?", "answer": "60"}]
    schema = GEOMETRY3K_TYPE.with_metadata(_HF_META)
    for split, rows in (("train", train), ("test", test)):
        (root / "default" / split).mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), root / "default" / split / "0000.parquet")
    return root


# Vision-R1-cold as downloaded from the Hub (Osilly/Vision-R1-cold): the two sharegpt JSON files and
# the image folders, no dataset_info.json (the Vision-R1 README gives the entries to add).
def write_cold_without_info(root: Path) -> Path:
    write_sharegpt_fixture(root, with_problems=False)
    (root / "dataset_info.json").unlink()
    return root


# A parent folder holding both downloads, as a user's data/ folder does.
def write_parent_folder(root: Path, *, bad_rl_row: bool = False, parquet_in_cold: bool = False) -> Path:
    """data/Vision-R1-cold (with dataset_info.json) and data/Vision-R1-rl (converter layout); with
    ``parquet_in_cold`` the cold folder also holds a geometry3k ``extra/train.parquet``."""
    write_sharegpt_fixture(root / "Vision-R1-cold", with_problems=False)
    write_rl_converter_layout(root / "Vision-R1-rl", bad_row=bad_rl_row)
    if parquet_in_cold:
        rows = [{"images": [{"bytes": image_bytes("red"), "path": None}], "problem": "<image>Find z.", "answer": "2"},
                {"images": [{"bytes": b"broken", "path": None}], "problem": "<image>Find w.", "answer": "5"}]
        (root / "Vision-R1-cold" / "extra").mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=GEOMETRY3K_TYPE), root / "Vision-R1-cold" / "extra" / "train.parquet")
    return root


# ---------------------------------------------------------------------------------------------
# MathVista's GitHub layout (github:lupantech/MathVista data/): testmini.json is an object keyed by
# pid (question, image "images/<pid>.jpg", choices, unit, precision, answer, question_type,
# answer_type, pid, metadata); query.json maps pid -> the official zero-shot query
# ("Hint: ...\nQuestion: ...\nChoices:\n(A) ..."); annot_testmini.json holds per-pid annotations
# (answer_latex, solution, program, ...), not questions. Images unzip to data/images/.
MATHVISTA_QUERY_MC = ("Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, "
                      "at the end.\nQuestion: Find $m\\angle H$\nChoices:\n(A) 97\n(B) 102\n(C) 107\n(D) 122")
MATHVISTA_QUERY_INT = ("Hint: Please answer the question requiring an integer answer and provide the final value, "
                       "e.g., 1, 2, 3, at the end.\nQuestion: what is the total volume of the measuring cup? (Unit: g)")


def mathvista_records() -> dict[str, dict]:
    def meta(task: str, skills: list[str]) -> dict:
        return {"category": "math-targeted-vqa", "context": "geometry diagram", "grade": "high school",
                "img_height": 28, "img_width": 28, "language": "english", "skills": skills,
                "source": "Geometry3K", "split": "testmini", "task": task}
    return {
        "5": {"question": "Find $m\\angle H$", "image": "images/5.jpg", "choices": ["97", "102", "107", "122"],
              "unit": None, "precision": None, "answer": "97", "question_type": "multi_choice",
              "answer_type": "text", "pid": "5", "metadata": meta("geometry problem solving", ["geometry reasoning"])},
        "2": {"question": "what is the total volume of the measuring cup?", "image": "images/2.jpg", "choices": None,
              "unit": "g", "precision": None, "answer": "1000", "question_type": "free_form",
              "answer_type": "integer", "pid": "2", "metadata": meta("figure question answering", ["arithmetic reasoning"])},
    }


def write_mathvista_github(root: Path, *, with_query: bool = True) -> Path:
    data = root / "data"
    for pid in ("2", "5"):
        (data / "images").mkdir(parents=True, exist_ok=True)
        square("blue").save(data / "images" / f"{pid}.jpg", format="JPEG")
    _write_json(data / "testmini.json", mathvista_records())
    if with_query:
        _write_json(data / "query.json", {"5": MATHVISTA_QUERY_MC, "2": MATHVISTA_QUERY_INT})
    _write_json(data / "annot_testmini.json", {"2": {"objects": ["Measuring cup", "Beaker"]},
                                               "5": {"text_logic_form": ["Find(MeasureOf(Angle(H)))"],
                                                     "graph_type": ["Trapezoid"]}})
    _write_json(data / "source.json", {"Geometry3K": {"url": "https://github.com/lupantech/InterGPS"}})
    return root


# AI4Math/MathVista's testmini parquet (data/testmini-00000-of-00001-*.parquet): the same records as
# columns, decoded_image an Image struct {bytes, path}, metadata a struct, and `query` in the row.
def write_mathvista_parquet(root: Path) -> Path:
    rows = []
    for pid, rec in mathvista_records().items():
        rows.append({"pid": pid, "question": rec["question"], "image": rec["image"],
                     "decoded_image": {"bytes": image_bytes("blue", "JPEG"), "path": f"{pid}.jpg"},
                     "choices": rec["choices"], "unit": rec["unit"], "precision": rec["precision"],
                     "answer": rec["answer"], "question_type": rec["question_type"],
                     "answer_type": rec["answer_type"], "metadata": rec["metadata"],
                     "query": MATHVISTA_QUERY_MC if pid == "5" else MATHVISTA_QUERY_INT})
    (root / "data").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), root / "data" / "testmini-00000-of-00001-725687bf7a18d64b.parquet")
    return root


# VLMEvalKit's MathVista_MINI.tsv (github:open-compass/VLMEvalKit vlmeval/dataset/image_vqa.py
# MathVista, utils/mathvista.py): index, image (base64), question (the full query: it is the text
# ImageBaseDataset.build_prompt sends), answer (option text), answer_option (letter), question_type,
# answer_type, choices and skills as Python list text, precision, task; NaN written as "".
def write_mathvista_tsv(root: Path) -> Path:
    recs = mathvista_records()
    rows = [{"index": 5, "image": _b64("blue"), "question": MATHVISTA_QUERY_MC, "answer": "97", "answer_option": "A",
             "question_type": "multi_choice", "answer_type": "text", "choices": str(recs["5"]["choices"]),
             "precision": "", "unit": "", "task": "geometry problem solving", "skills": "['geometry reasoning']"},
            {"index": 2, "image": _b64("red"), "question": MATHVISTA_QUERY_INT, "answer": "1000", "answer_option": "",
             "question_type": "free_form", "answer_type": "integer", "choices": "", "precision": "", "unit": "g",
             "task": "figure question answering", "skills": "['arithmetic reasoning']"}]
    return _write_tsv(root / "MathVista_MINI.tsv", rows)


# ---------------------------------------------------------------------------------------------
# MathVerse (AI4Math/MathVerse on the Hub, github:ZrrSkywalker/MathVerse): testmini.parquet with the
# image as an Image struct, and testmini_text_only.parquet, the same fields with problem_version
# "Text Only" and no image. Fields: sample_index, problem_index, problem_version, question, image,
# answer, question_type (multi-choice | free-form), metadata {split, source, subject, subfield},
# query_wo, query_cot, question_for_eval.
def _mathverse_row(k: int, version: str, image: Any) -> dict:
    q = "As shown in the figure, find the angle.\nChoices:\nA:30°\nB:60°"
    return {"sample_index": str(k), "problem_index": "1", "problem_version": version, "question": q,
            "image": image, "answer": "B", "question_type": "multi-choice",
            "metadata": {"split": "testmini", "source": "GeoQA", "subject": "Plane Geometry", "subfield": "Angle"},
            "query_wo": f"Please directly answer the question.\nQuestion: {q}",
            "query_cot": f"Please first conduct reasoning, and then answer the question.\nQuestion: {q}",
            "question_for_eval": q}


def write_mathverse_text_only(root: Path) -> Path:
    """testmini_text_only.parquet (Hub) and data/testmini_text-only.json (GitHub: a list, image "",
    no question_for_eval); returns the parquet file."""
    rows = [_mathverse_row(k, "Text Only", "") for k in (1, 2)]
    root.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), root / "testmini_text_only.parquet")
    _write_json(root / "data" / "testmini_text-only.json", [{k: v for k, v in r.items() if k != "question_for_eval"}
                                                             for r in rows])
    return root / "testmini_text_only.parquet"


# VLMEvalKit's MathVerse_MINI.tsv (vlmeval/dataset/image_vqa.py MathVerse; utils/mathverse.py reads
# question_for_eval, answer, problem_version and metadata as a Python dict string).
def write_mathverse_tsv(root: Path) -> Path:
    rows = []
    for k, version in ((1, "Text Dominant"), (2, "Vision Only")):
        r = _mathverse_row(k, version, _b64("green"))
        rows.append({"index": k, "image": r["image"], "question": r["query_wo"], "answer": r["answer"],
                     "question_for_eval": r["question_for_eval"], "problem_version": version,
                     "metadata": str(r["metadata"]), "query_cot": r["query_cot"]})
    return _write_tsv(root / "MathVerse_MINI.tsv", rows)


# ---------------------------------------------------------------------------------------------
# DynaMath's GitHub seed set (github:DynaMath/DynaMath dataset/): dataset.json, an object keyed by
# question id, each {question, answer, image "image/image<id>.png", answer_type (float | text |
# multiple choice), subject, level}; options are written into the question ("Choices: (A) yes (B) no"
# or "choice: (A) 2 (B) 1 (C) 0").
def write_dynamath_seed(root: Path) -> Path:
    seed = {
        "1": {"question": "What is the period of this function? Answer the question with a floating-point number.",
              "answer": "2.0944", "image": "image/image1.png", "answer_type": "float",
              "subject": "analytic geometry", "level": "high school"},
        "5": {"question": "Is Dark Magenta greater than Rosy Brown? Choices: (A) yes (B) no", "answer": "B",
              "image": "image/image5.png", "answer_type": "multiple choice", "subject": "statistics",
              "level": "elementary school"},
        "15": {"question": "how many zeros this function has? choice: (A) 2 (B) 1 (C) 0", "answer": "C",
               "image": "image/image15.png", "answer_type": "multiple choice", "subject": "analytic geometry",
               "level": "high school"},
    }
    for key in seed:
        (root / "dataset" / "image").mkdir(parents=True, exist_ok=True)
        square("red").save(root / "dataset" / "image" / f"image{key}.png")
    _write_json(root / "dataset" / "dataset.json", seed)
    return root


# VLMEvalKit's DynaMath.tsv (vlmeval/dataset/dynamath.py Dynamath: index, image, question, answer,
# answer_type, qid, varid, subject, knowledge_level; worst case groups by qid over varid).
def write_dynamath_tsv(root: Path) -> Path:
    rows = []
    for index, (qid, varid) in enumerate(((1, 1), (1, 2), (2, 1))):
        rows.append({"index": index, "image": _b64("red") if index != 1 else "0",  # "0": shares row 0's image
                     "question": "Is this function odd? Choices: (A) yes (B) no" if qid == 2 else "Find the area.",
                     "answer": "A" if qid == 2 else "3.5",
                     "answer_type": "multiple choice" if qid == 2 else "float", "qid": qid, "varid": varid,
                     "subject": "PG", "knowledge_level": "high school"})
    return _write_tsv(root / "DynaMath.tsv", rows)


__all__ = ["DATASET_INFO", "LLAVA", "MULBERRY", "MATHVISTA_QUERY_INT", "MATHVISTA_QUERY_MC"]
