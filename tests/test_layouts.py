"""Real on-disk layouts (tests/fixtures_layouts.py, each citing the public schema it copies) load
through the one reader, and `data check` says clean only when the stage would load every dataset."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from fixtures_layouts import (
    LLAVA,
    MATHVISTA_QUERY_INT,
    MATHVISTA_QUERY_MC,
    write_cold_without_info,
    write_dynamath_seed,
    write_dynamath_tsv,
    write_mathverse_text_only,
    write_mathverse_tsv,
    write_mathvista_github,
    write_mathvista_parquet,
    write_mathvista_tsv,
    write_parent_folder,
    write_rl_converter_layout,
)

from visionr1 import benchmarks as bm
from visionr1 import data_stage, released_data, sft
from visionr1.reader import DataError, DataWarning


def check(path: Path, capsys, *args: str) -> tuple[int, str]:
    code = data_stage.main_data_check([str(path), *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


# ---------------------------------------------------------------------------------------------
# Vision-R1-rl and -cold
# ---------------------------------------------------------------------------------------------
def test_rl_converter_layout_loads_and_is_checked(tmp_path, capsys):
    root = write_rl_converter_layout(tmp_path / "Vision-R1-rl")
    train = released_data.load_geometry3k(root, "train")
    assert [r["answer"] for r in train] == ["11", "3", "24"] and train[0]["images"][0].size == (28, 28)
    assert [r["source"] for r in train][:1] == ["default/train/0000.parquet:0"]
    out = data_stage.load_released(str(root), None, [], 0.01)
    assert out["stats"]["rl_train"]["rows"] == 3 and out["stats"]["rl_test"]["rows"] == 1
    code, text = check(root, capsys)
    assert code == 0 and "Vision-R1-rl split 'train'" in text and "Vision-R1-rl split 'test'" in text


def test_rl_converter_layout_with_a_bad_row_is_not_clean(tmp_path, capsys):
    root = write_rl_converter_layout(tmp_path / "Vision-R1-rl", bad_row=True)
    code, text = check(root, capsys)
    assert code == 1 and "default/train/0000.parquet:1: corrupt_image" in text


def test_load_released_names_an_rl_dir_without_splits(tmp_path):
    (tmp_path / "rl" / "other").mkdir(parents=True)
    with pytest.raises(DataError, match=r"rl_data_dir .* holds no train/test split"):
        data_stage.load_released(str(tmp_path / "rl"), None, [], 0.01)


def test_parent_folder_checks_every_dataset(tmp_path, capsys):
    clean = write_parent_folder(tmp_path / "clean")
    code, text = check(clean, capsys)
    assert code == 0, text
    for label in ("Vision-R1-rl split 'train'", "Vision-R1-rl split 'test'",
                  f"Vision-R1-cold entry '{LLAVA}'", "Vision-R1-cold entry 'vision_r1_mulberry_sft_full'"):
        assert label in text
    # a bad row in the rl set fails the whole check, though the cold set is clean
    code, text = check(write_parent_folder(tmp_path / "bad_rl", bad_rl_row=True), capsys)
    assert code == 1 and "FAIL Vision-R1-rl split 'train'" in text
    assert "default/train/0000.parquet:1: corrupt_image" in text
    # a parquet inside the cold folder is checked too, not skipped
    code, text = check(write_parent_folder(tmp_path / "cold_parquet", parquet_in_cold=True), capsys)
    assert code == 1 and "Vision-R1-cold/extra (1/2 rows ok" in text and "train.parquet:1: corrupt_image" in text


def test_data_check_on_a_file(tmp_path, capsys):
    root = write_rl_converter_layout(tmp_path / "rl")
    code, text = check(root / "default" / "train" / "0000.parquet", capsys)
    assert code == 0 and "3/3 rows ok" in text
    code, text = check(tmp_path / "rl" / "nowhere.parquet", capsys)
    assert code == 2 and "does not exist" in text


def test_sft_load_rows_reads_a_json_array_file(tmp_path):
    cold = write_cold_without_info(tmp_path / "cold")
    rows = sft.load_rows(cold / "vision_r1_llava_cot_full.json")
    assert len(rows) == 3 and rows[0]["messages"][0]["role"] == "user" and Path(rows[0]["images"][0]).is_file()


def test_cold_without_dataset_info_assumes_the_readme_entries(tmp_path, capsys):
    cold = write_cold_without_info(tmp_path / "Vision-R1-cold")
    with pytest.warns(DataWarning, match="assumed the Vision-R1 README's entries"):
        recs = released_data.load_sharegpt(cold, LLAVA)
    assert len(recs) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        out = data_stage.load_released(None, str(cold), [LLAVA, "vision_r1_mulberry_sft_full"], 0.01)
    assert out["stats"][LLAVA]["rows"] == 3
    code, text = check(cold, capsys)
    assert code == 0 and "assumed the Vision-R1 README's entries" in text


# ---------------------------------------------------------------------------------------------
# Benchmarks
# ---------------------------------------------------------------------------------------------
def test_mathvista_prompt_is_the_official_query_in_every_layout(tmp_path):
    github = bm.load("mathvista", write_mathvista_github(tmp_path / "github"))
    hub = bm.load("mathvista", write_mathvista_parquet(tmp_path / "hub"))
    tsv = bm.load("mathvista", write_mathvista_tsv(tmp_path / "tsv"))
    for items in (github, hub, tsv):
        by_id = {it.id: it for it in items}
        assert (by_id["5"].question, by_id["2"].question) == (MATHVISTA_QUERY_MC, MATHVISTA_QUERY_INT)
        assert by_id["5"].choices == ["97", "102", "107", "122"] and by_id["5"].answer == "97"
        assert bm.load_image(by_id["2"]).size == (28, 28)
    assert github[0].meta["prompt_source"] == "query.json"
    assert hub[0].meta["prompt_source"].endswith(":query")
    assert tsv[0].meta["prompt_source"] == "MathVista_MINI.tsv:question (VLMEvalKit prompt)"
    assert tsv[0].meta["skills"] == ["geometry reasoning"] and tsv[0].meta["task"] == "geometry problem solving"
    # without query.json the query is built the way build_query.py builds query.json
    built = bm.load("mathvista", write_mathvista_github(tmp_path / "noquery", with_query=False))
    assert {it.id: it.question for it in built} == {"5": MATHVISTA_QUERY_MC, "2": MATHVISTA_QUERY_INT}


def test_mathvista_annotation_and_query_files_are_refused(tmp_path, capsys):
    root = write_mathvista_github(tmp_path / "MathVista")
    with pytest.raises(DataError, match="annotation file"):
        bm.load("mathvista", root / "data" / "annot_testmini.json")
    with pytest.raises(DataError, match="prompts only"):
        bm.load("mathvista", root / "data" / "query.json")
    code, text = check(root, capsys)
    assert code == 0 and "ok   mathvista" in text
    assert "skipped data/annot_testmini.json: MathVista's annotation file" in text
    assert "skipped data/query.json: MathVista's prompts" in text


def test_mathverse_text_only_loads_as_text_only(tmp_path):
    items = bm.load("mathverse", write_mathverse_text_only(tmp_path / "MathVerse"))
    assert len(items) == 2 and not items.report.problems
    assert items[0].image is None and items[0].meta["text_only"] and items[0].choices == ["30°", "60°"]
    assert items[0].question.startswith("Please first conduct reasoning")  # query_cot
    with pytest.raises(ValueError, match="text-only set"):
        bm.load_image(items[0])
    github = bm.load("mathverse", tmp_path / "MathVerse" / "data" / "testmini_text-only.json")
    assert [it.question for it in github] == [it.question for it in items] and github[0].image is None


def test_dynamath_seed_set_is_one_variant_keyed_by_id(tmp_path):
    items = bm.load("dynamath", write_dynamath_seed(tmp_path / "DynaMath"))
    assert [it.id for it in items] == ["1", "5", "15"]
    assert items[1].choices == ["yes", "no"] and items[2].choices == ["2", "1", "0"]
    assert {it.meta["variant"] for it in items} == {0} and items[0].precision == bm.DYNAMATH_PRECISION
    assert bm.aggregate("dynamath", items, [True, False, True])["worst_case"] == pytest.approx(66.7)


def test_vlmevalkit_tsvs_load(tmp_path):
    verse = bm.load("mathverse", write_mathverse_tsv(tmp_path / "verse"))
    assert [it.id for it in verse] == ["1", "2"] and verse[0].question_type == "multi_choice"
    assert verse[1].meta["problem_version"] == "Vision Only" and verse[0].meta["subject"] == "Plane Geometry"
    dyna = bm.load("dynamath", write_dynamath_tsv(tmp_path / "dyna"))
    assert [it.id for it in dyna] == ["1-v1", "1-v2", "2-v1"] and dyna[2].choices == ["yes", "no"]
    assert bm.load_image(dyna[1]).getpixel((0, 0)) == bm.load_image(dyna[0]).getpixel((0, 0))  # shared image


def test_tsv_passed_as_json_names_the_tsv(tmp_path):
    tsv = write_mathvista_tsv(tmp_path)
    wrong = tmp_path / "MathVista_MINI.json"
    wrong.write_bytes(tsv.read_bytes())
    with pytest.raises(DataError, match=r"tab-separated file \(a VLMEvalKit TSV\?\), not JSON"):
        bm.load("mathvista", wrong)


def test_data_check_finds_benchmark_files(tmp_path, capsys):
    write_mathvista_tsv(tmp_path / "bench")
    write_dynamath_seed(tmp_path / "bench" / "DynaMath")
    write_mathverse_text_only(tmp_path / "bench" / "MathVerse")
    (tmp_path / "bench" / "notes.json").write_text(json.dumps([{"a": 1}]))
    code, text = check(tmp_path / "bench", capsys)
    assert code == 0, text
    assert "ok   mathvista" in text and "ok   dynamath" in text and "ok   mathverse" in text
    assert "skipped notes.json: not a recognized dataset file" in text


def test_hub_parquet_converter_layouts_of_the_benchmarks(tmp_path, capsys):
    # refs/convert/parquet: <config>/<split>/0000.parquet; MathVista's test split has no answers
    hub = write_mathvista_parquet(tmp_path / "src")
    (src,) = (hub / "data").glob("testmini-*.parquet")
    for split in ("testmini", "test"):
        (tmp_path / "MathVista" / "default" / split).mkdir(parents=True)
        (tmp_path / "MathVista" / "default" / split / "0000.parquet").write_bytes(src.read_bytes())
    assert [it.id for it in bm.load("mathvista", tmp_path / "MathVista")] == ["5", "2"]
    code, text = check(tmp_path / "MathVista", capsys)
    assert code == 0 and "skipped default/test/0000.parquet: mathvista rows outside testmini" in text
    # MathVerse: two configs hold a testmini split; the folder load takes config testmini
    text_only = write_mathverse_text_only(tmp_path / "tmp")
    for config in ("testmini", "testmini_text_only"):
        (tmp_path / "MathVerse" / config / "testmini").mkdir(parents=True)
        (tmp_path / "MathVerse" / config / "testmini" / "0000.parquet").write_bytes(text_only.read_bytes())
    items = bm.load("mathverse", tmp_path / "MathVerse")
    assert items.report.files == ["testmini/testmini/0000.parquet"] and items[0].meta["text_only"]
