"""Tests for the data loaders: the reader (visionr1.reader), the released Vision-R1 data formats
(visionr1.released_data), the data checker (visionr1.data_stage) (docs/recipe.md §2)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from PIL import Image

from fixtures_released import (
    DIALECT,
    LLAVA,
    MULBERRY,
    square,
    write_broken_dataset_info,
    write_geometry3k_fixture,
    write_sharegpt_fixture,
)
from visionr1.data_stage import check_dataset_dir, format_check_report, main_data_check
from visionr1.reader import DataError, DataWarning, LoadReport, decode_image, find_image, find_parquet_files, iter_rows
from visionr1.released_data import (
    SharegptSpec,
    load_dataset_info,
    load_geometry3k,
    load_sharegpt,
    parse_sharegpt_row,
    write_geometry3k_parquet,
)

TRAIN = "data/train-00000-of-00001.parquet"
LLAVA_JSON = "vision_r1_llava_cot_full.json"
MULBERRY_JSON = "vision_r1_mulberry_sft_full.json"
DIALECT_JSON = "extra/messages_dialect.json"

# every problem the checker must find in each fixture folder: (file, row, reason)
GEOMETRY3K_PROBLEMS = [
    (TRAIN, 2, "corrupt_image"),
    (TRAIN, 3, "missing_field"),
    (TRAIN, 5, "image_count_mismatch"),
]
SHAREGPT_PROBLEMS = [
    (LLAVA_JSON, 3, "missing_image"),
    (LLAVA_JSON, 4, "corrupt_image"),
    (LLAVA_JSON, 5, "image_count_mismatch"),
    (LLAVA_JSON, 6, "bad_turn_order"),
    (MULBERRY_JSON, 2, "unknown_role"),
    (MULBERRY_JSON, 3, "missing_field"),
    (MULBERRY_JSON, 4, "bad_turn_order"),
    (DIALECT_JSON, 2, "empty_conversation"),
]
BROKEN_PROBLEMS = [
    ("dataset_info.json['hub_only']", None, "bad_entry"),
    ("absent.json", None, "missing_file"),
    ("broken.json", None, "invalid_json"),
    ("dataset_info.json['alpaca']", None, "bad_entry"),
    ("rows.jsonl", 1, "invalid_json"),
]


def kinds(problems) -> list[tuple[str, int | None, str]]:
    return [(p.file, p.row, p.reason) for p in problems]


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("released")
    return {
        "geo": write_geometry3k_fixture(base / "geo"),
        "geo_clean": write_geometry3k_fixture(base / "geo_clean", with_problems=False),
        "sharegpt": write_sharegpt_fixture(base / "sharegpt"),
        "sharegpt_clean": write_sharegpt_fixture(base / "sharegpt_clean", with_problems=False),
        "broken": write_broken_dataset_info(base / "broken"),
    }


# ---------------------------------------------------------------------------
# sharegpt rows, one case per rule

MULBERRY_SPEC = SharegptSpec.from_entry({"tags": {"user_tag": "user", "assistant_tag": "assistant"}})
OPENAI_SPEC = SharegptSpec.from_entry(
    {"columns": {"messages": "messages"}, "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}}
)
H, G = "human", "gpt"


def turns(*pairs: tuple[str, object]) -> list[dict[str, object]]:
    return [{"from": r, "value": v} for r, v in pairs]


ROW_CASES = [
    # llava style: one image as a plain string, human/gpt defaults
    ({"image": "a.png", "conversations": turns((H, "<image>Q"), (G, "A"))}, SharegptSpec(images="image"), []),
    # the mulberry entry's user/assistant tags
    ({"images": ["a.png"], "conversations": turns(("user", "<image>Q"), ("assistant", "A"))}, MULBERRY_SPEC, []),
    # OpenAI dialect: messages with role/content
    ({"images": ["a.png"], "messages": [{"role": "user", "content": "<image>Q"}, {"role": "assistant", "content": "A"}]}, OPENAI_SPEC, []),
    # <image> may sit anywhere, in any user turn, with several images
    ({"images": ["a", "b"], "conversations": turns((H, "Q <image>"), (G, "A"), (H, "and <image>?"), (G, "B"))}, SharegptSpec(), []),
    # a text-only sample needs no images column
    ({"conversations": turns((H, "Q"), (G, "A"))}, SharegptSpec(), []),
    # a leading system turn is the system prompt, not a user turn
    ({"conversations": turns(("system", "S"), (H, "Q"), (G, "A"))}, SharegptSpec(), []),
    # row is not an object
    (["not", "a", "row"], SharegptSpec(), ["wrong_type"]),
    # messages column absent
    ({"images": []}, SharegptSpec(), ["missing_field"]),
    # messages column is not a list
    ({"conversations": "Q A"}, SharegptSpec(), ["wrong_type"]),
    # empty conversation
    ({"conversations": []}, SharegptSpec(), ["empty_conversation"]),
    # only a system turn
    ({"conversations": turns(("system", "S"))}, SharegptSpec(), ["empty_conversation"]),
    # turn lacks the content key
    ({"conversations": [{"from": H}, {"from": G, "value": "A"}]}, SharegptSpec(), ["missing_field"]),
    # content is not a string
    ({"conversations": turns((H, ["Q"]), (G, "A"))}, SharegptSpec(), ["wrong_type"]),
    # user/assistant under the default human/gpt tags
    ({"conversations": turns(("user", "Q"), ("assistant", "A"))}, SharegptSpec(), ["unknown_role"]),
    # starts with the assistant
    ({"conversations": turns((G, "A"), (H, "Q"))}, SharegptSpec(), ["bad_turn_order"]),
    # two user turns in a row
    ({"conversations": turns((H, "Q"), (H, "Q2"), (G, "A"))}, SharegptSpec(), ["bad_turn_order"]),
    # system turn in the middle
    ({"conversations": turns((H, "Q"), ("system", "S"), (G, "A"))}, SharegptSpec(), ["bad_turn_order"]),
    # last turn is the user's
    ({"conversations": turns((H, "Q"), (G, "A"), (H, "Q2"))}, SharegptSpec(), ["bad_turn_order"]),
    # empty assistant answer
    ({"conversations": turns((H, "Q"), (G, "  "))}, SharegptSpec(), ["empty_turn"]),
    # two <image> tags, one image
    ({"images": ["a"], "conversations": turns((H, "<image><image>Q"), (G, "A"))}, SharegptSpec(), ["image_count_mismatch"]),
    # an image but no tag
    ({"images": ["a"], "conversations": turns((H, "Q"), (G, "A"))}, SharegptSpec(), ["image_count_mismatch"]),
    # images column holds a number
    ({"images": 3, "conversations": turns((H, "Q"), (G, "A"))}, SharegptSpec(), ["wrong_type"]),
    # an empty path in the list
    ({"images": [""], "conversations": turns((H, "<image>Q"), (G, "A"))}, SharegptSpec(), ["wrong_type"]),
]


@pytest.mark.parametrize("row, spec, reasons", ROW_CASES)
def test_parse_sharegpt_row(row: object, spec: SharegptSpec, reasons: list[str]) -> None:
    record, problems = parse_sharegpt_row(row, spec, default_id="x-0")
    assert [reason for reason, _ in problems] == reasons
    assert (record is None) == bool(reasons)
    if record is not None:
        roles = [m["role"] for m in record["messages"]]
        assert roles[-1] == "assistant" and "user" in roles


def test_parse_sharegpt_row_normalizes() -> None:
    row = {"id": 7, "image": "a.png", "conversations": turns(("system", "S"), (H, "<image>Q"), (G, "A"))}
    record, problems = parse_sharegpt_row(row, SharegptSpec(images="image"), default_id="x-0")
    assert problems == []
    assert record == {
        "id": "7",
        "images": ["a.png"],
        "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "<image>Q"}, {"role": "assistant", "content": "A"}],
    }


@pytest.mark.parametrize(
    "entry, message",
    [
        # columns must be an object
        ({"columns": ["conversations"]}, "'columns' and 'tags' must be JSON objects"),
        # tag values must be non-empty strings
        ({"tags": {"user_tag": ""}}, "tags.user_tag"),
    ],
)
def test_spec_from_bad_entry(entry: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        SharegptSpec.from_entry(entry)


# ---------------------------------------------------------------------------
# loading the fixture folders


@pytest.mark.parametrize(
    "name, verify, max_bad, ok_sources, problems",
    [
        # llava: corrupt.png passes when images are only looked up, not opened
        (LLAVA, False, 1.0, [0, 1, 2, 4], [p for p in SHAREGPT_PROBLEMS if p[0] == LLAVA_JSON and p[2] != "corrupt_image"]),
        # llava with verification catches the corrupt file too
        (LLAVA, True, 1.0, [0, 1, 2], [p for p in SHAREGPT_PROBLEMS if p[0] == LLAVA_JSON]),
        # mulberry: unknown role, missing conversations, two user turns
        (MULBERRY, True, 1.0, [0, 1], [p for p in SHAREGPT_PROBLEMS if p[0] == MULBERRY_JSON]),
        # messages/role/content dialect: empty messages
        (DIALECT, True, 1.0, [0, 1], [p for p in SHAREGPT_PROBLEMS if p[0] == DIALECT_JSON]),
    ],
)
def test_load_sharegpt(dirs, name, verify, max_bad, ok_sources, problems) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = load_sharegpt(dirs["sharegpt"], name, max_bad_fraction=max_bad, verify_images=verify)
    file = problems[0][0]
    assert [r["source"] for r in records] == [f"{file}:{i}" for i in ok_sources]
    assert kinds(records.report.problems) == problems
    assert records.report.rows_ok == len(ok_sources)
    assert records.report.rows_total == {LLAVA: 7, MULBERRY: 5, DIALECT: 3}[name]
    assert records.report.bad_rows == records.report.rows_total - len(ok_sources)
    # bad rows under the threshold are left out loudly
    assert any(issubclass(w.category, DataWarning) and f"{file}:{problems[0][1]}" in str(w.message) for w in caught)
    for record in records:
        assert all(Path(p).is_absolute() and Path(p).is_file() for p in record["images"])


def test_load_sharegpt_records(dirs) -> None:
    llava = load_sharegpt(dirs["sharegpt_clean"], LLAVA)
    dialect = load_sharegpt(dirs["sharegpt_clean"], DIALECT)
    multi = llava[2]
    assert multi["id"] == "llava-2"
    assert [m["role"] for m in multi["messages"]] == ["user", "assistant", "user", "assistant"]
    assert [Path(p).name for p in multi["images"]] == ["0.png", "2.png"]
    assert multi["messages"][1]["content"].endswith("<answer> Final Answer:A </answer>")
    # the system turn leads; pics/c.png resolves next to the JSON file, b.jpg in the dataset folder
    assert dialect[0]["messages"][0] == {"role": "system", "content": "You are a careful geometry tutor."}
    assert dialect[0]["images"] == [str((dirs["sharegpt_clean"] / "extra/pics/c.png").resolve())]
    assert dialect[1]["images"] == [str((dirs["sharegpt_clean"] / "mulberry_images/b.jpg").resolve())]
    assert dialect[0]["id"] == f"{DIALECT}-0"
    assert llava.report.problems == [] and llava.report.images_ok == 4


def test_load_sharegpt_threshold_raises(dirs) -> None:
    # 3 of 7 llava rows are bad: far above the default 1%
    with pytest.raises(DataError) as err:
        load_sharegpt(dirs["sharegpt"], LLAVA)
    message = str(err.value)
    assert "3 of 7 rows are bad" in message
    assert f"{LLAVA_JSON}:3: missing_image" in message
    assert f"{LLAVA_JSON}:6: bad_turn_order" in message
    assert "max_bad_fraction" in message


@pytest.mark.parametrize(
    "name, message",
    [
        # no file_name, only a hub id
        ("hub_only", "no file_name"),
        # file_name points nowhere
        ("absent", "absent.json does not exist"),
        # not JSON
        ("not_json", "broken.json: invalid_json"),
        # not sharegpt
        ("alpaca", "formatting is 'alpaca'"),
        # not an entry at all
        ("nope", "no entry 'nope'"),
    ],
)
def test_load_sharegpt_unusable_entry(dirs, name: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_sharegpt(dirs["broken"], name, max_bad_fraction=1.0)


def test_load_dataset_info_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="dataset_info.json not found"):
        load_dataset_info(tmp_path)
    (tmp_path / "dataset_info.json").write_text("{oops", encoding="utf-8")
    with pytest.raises(DataError, match="not valid JSON"):
        load_dataset_info(tmp_path)
    # the checker reports it as a problem instead of raising
    assert kinds(check_dataset_dir(tmp_path).problems) == [("dataset_info.json", None, "invalid_json")]


@pytest.mark.parametrize(
    "split, max_bad, n_ok, problems",
    [
        # train: 3 good rows, the three bad ones reported
        ("train", 0.5, 3, GEOMETRY3K_PROBLEMS),
        # test: clean
        ("test", 0.0, 2, []),
    ],
)
def test_load_geometry3k(dirs, split: str, max_bad: float, n_ok: int, problems: list) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        records = load_geometry3k(dirs["geo"], split, max_bad_fraction=max_bad)
    assert len(records) == n_ok
    assert kinds(records.report.problems) == problems
    for record in records:
        assert record["problem"].count("<image>") == len(record["images"])
        assert all(isinstance(im, Image.Image) and im.mode == "RGB" and im.size == (28, 28) for im in record["images"])
    if split == "train":
        assert [r["id"] for r in records] == ["train-00000", "train-00001", "train-00004"]
        assert records[1]["source"] == f"{TRAIN}:1" and len(records[1]["images"]) == 2


def test_load_geometry3k_threshold_and_missing(dirs, tmp_path: Path) -> None:
    # 3 of 6 train rows are bad
    with pytest.raises(DataError, match=rf"3 of 6 rows are bad[\s\S]*{TRAIN}:2: corrupt_image"):
        load_geometry3k(dirs["geo"], "train")
    with pytest.raises(DataError, match="no parquet files for split 'validation'"):
        load_geometry3k(dirs["geo"], "validation")
    with pytest.raises(FileNotFoundError):
        load_geometry3k(tmp_path / "nowhere")


@pytest.mark.parametrize(
    "layout",
    [
        # Hub shards at the top
        "train-00000-of-00002.parquet",
        # Hub shards under data/
        "data/train-00000-of-00001.parquet",
        # a single file per split
        "train.parquet",
    ],
)
def test_find_parquet_files(tmp_path: Path, layout: str) -> None:
    write_geometry3k_parquet([{"images": [square("red")], "problem": "<image>Q", "answer": "1"}], tmp_path / layout)
    assert find_parquet_files(tmp_path, "train") == [tmp_path / layout]
    assert len(load_geometry3k(tmp_path, "train", max_bad_fraction=0.0)) == 1


def test_write_geometry3k_round_trip(tmp_path: Path) -> None:
    records = [
        {"id": "a", "images": [square("red")], "problem": "<image>Find x.", "answer": "11"},
        {"id": "b", "images": [square("blue"), square("green")], "problem": "<image> vs <image>?", "answer": "A"},
        {"id": "c", "images": [], "problem": "No picture: 2+2?", "answer": "4"},
    ]
    write_geometry3k_parquet(records, tmp_path / "data" / "train-00000-of-00001.parquet")
    back = load_geometry3k(tmp_path, "train", max_bad_fraction=0.0)
    assert [(r["problem"], r["answer"]) for r in back] == [(r["problem"], r["answer"]) for r in records]
    for written, read in zip(records, back):
        assert [im.tobytes() for im in read["images"]] == [im.tobytes() for im in written["images"]]
    assert back.report.images_ok == 3 and back.report.problems == []


@pytest.mark.parametrize(
    "record, message",
    [
        # tag count must match the images
        ({"images": [square("red")], "problem": "Find x.", "answer": "1"}, "0 <image> tags but 1 images"),
        # answer is required
        ({"images": [], "problem": "Q", "answer": None}, "missing 'answer'"),
        # answer must be text
        ({"images": [], "problem": "Q", "answer": 11}, "must be strings"),
        # images must be images
        ({"images": [3], "problem": "<image>Q", "answer": "1"}, "image 0: expected a PIL image"),
    ],
)
def test_write_geometry3k_rejects(tmp_path: Path, record: dict, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        write_geometry3k_parquet([record], tmp_path / "x.parquet")


# ---------------------------------------------------------------------------
# the checker and the CLI


@pytest.mark.parametrize(
    "key, rows_total, rows_ok, images_ok, problems",
    [
        # geometry3k folder: both splits, train's three bad rows
        ("geo", 8, 5, 6, GEOMETRY3K_PROBLEMS),
        # clean geometry3k folder
        ("geo_clean", 5, 5, 6, []),
        # sharegpt folder: every entry, every image opened
        ("sharegpt", 15, 7, 9, SHAREGPT_PROBLEMS),
        # clean sharegpt folder
        ("sharegpt_clean", 7, 7, 9, []),
        # unusable entries and a broken JSONL line
        ("broken", 2, 1, 0, BROKEN_PROBLEMS),
    ],
)
def test_check_dataset_dir(dirs, key, rows_total, rows_ok, images_ok, problems) -> None:
    report = check_dataset_dir(dirs[key])
    assert kinds(report.problems) == problems
    assert (report.rows_total, report.rows_ok, report.images_ok) == (rows_total, rows_ok, images_ok)
    text = format_check_report(report)
    assert f"rows: {rows_total} total, {rows_ok} ok" in text
    for p in report.problems:
        assert str(p) in text


@pytest.mark.parametrize(
    "key, code",
    [
        # clean folders pass
        ("geo_clean", 0),
        ("sharegpt_clean", 0),
        # folders with problems fail
        ("geo", 1),
        ("sharegpt", 1),
        ("broken", 1),
    ],
)
def test_main_data_check_exit_codes(dirs, capsys, key: str, code: int) -> None:
    assert main_data_check([str(dirs[key])]) == code
    out = capsys.readouterr().out
    expected = {"geo": GEOMETRY3K_PROBLEMS, "sharegpt": SHAREGPT_PROBLEMS, "broken": BROKEN_PROBLEMS}.get(key, [])
    for file, row, reason in expected:
        assert (f"{file}: {reason}" if row is None else f"{file}:{row}: {reason}") in out
    if code == 0:
        assert "no problems found" in out


def test_main_data_check_unusable_dir(tmp_path: Path, capsys) -> None:
    # missing folder
    assert main_data_check([str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    # a folder with neither dataset_info.json nor parquet
    assert main_data_check([str(tmp_path)]) == 2
    assert "not a recognized dataset folder" in capsys.readouterr().err


def test_main_data_check_max_problems(dirs, capsys) -> None:
    assert main_data_check([str(dirs["sharegpt"]), "--max-problems", "2"]) == 1
    out = capsys.readouterr().out
    assert "... and 6 more" in out and f"{MULBERRY_JSON}:2" not in out
    assert main_data_check([str(dirs["sharegpt"]), "--name", MULBERRY]) == 1
    assert LLAVA_JSON not in capsys.readouterr().out


# ---------------------------------------------------------------------------
# the one reader: every file format, one case each

@pytest.mark.parametrize(
    "name, text, keyed, rows, problem",
    [
        # a JSON array (LLaMA-Factory sharegpt, MathVerse testmini.json)
        ("a.json", '[{"x": 1}, {"x": 2}]', True, [{"x": 1}, {"x": 2}], None),
        # an object keyed by id (MathVista testmini.json, DynaMath dataset.json): the key rides along
        ("b.json", '{"7": {"x": 1}}', True, [{"_key": "7", "x": 1}], None),
        # ... refused where rows must be an array (sharegpt)
        ("c.json", '{"7": {"x": 1}}', False, [], "expected an array of rows"),
        # JSON Lines, also under a .json name
        ("d.jsonl", '{"x": 1}\n\n{"x": 2}\n', True, [{"x": 1}, {"x": 2}], None),
        ("e.json", '{"x": 1}\n{"x": 2}\n', True, [{"x": 1}, {"x": 2}], None),
        # a TSV under a .json name is named as one
        ("f.json", "index\tquestion\n1\tq\n", True, [], "tab-separated file (a VLMEvalKit TSV?)"),
        # a VLMEvalKit TSV: strings, and a short image cell names the row whose image it shares
        ("g.tsv", "index\timage\n1\t" + "A" * 80 + "\n2\t1\n", True,
         [{"index": "1", "image": "A" * 80}, {"index": "2", "image": "A" * 80}], None),
    ],
)
def test_iter_rows(tmp_path: Path, name: str, text: str, keyed: bool, rows: list, problem: str | None) -> None:
    (tmp_path / name).write_text(text)
    report = LoadReport()
    assert [row for _, row in iter_rows(tmp_path / name, name, report, keyed=keyed)] == rows
    assert (problem is None) == (not report.problems)
    if problem:
        assert problem in report.problems[0].detail


def test_find_image_encodings(tmp_path: Path) -> None:
    import base64

    png = Image.new("RGB", (3, 2), "red")
    png.save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    for cell in ({"bytes": data, "path": None}, data, base64.b64encode(data).decode(), "a.png",
                 {"bytes": None, "path": "a.png"}, "data:image/png;base64," + base64.b64encode(data).decode()):
        source, reason, _ = find_image(cell, [tmp_path])
        assert reason == "" and decode_image(source).size == (3, 2), cell
    assert find_image("b.png", [tmp_path])[1] == "missing_image"
    assert find_image(3, [tmp_path])[1] == "wrong_type"
