"""Tiny fixture datasets in the released Vision-R1 schemas (docs/recipe.md §2), for the loader tests.

Each writer builds a folder under ``root`` and returns it. ``with_problems=True``
adds the bad rows listed in the docstrings; the row numbers there are what the
tests assert. Images are 28x28 coloured squares. The files are written with plain
pyarrow/json (not with visionr1.released_data) so the fixtures do not depend on the code
under test.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

SIZE = 28
COLOURS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (40, 60, 220), "yellow": (230, 210, 40)}
THINK_B = "<think> Okay, let's see. The square in the image is red, so the answer is B. </think><answer> Final Answer:B </answer>"
THINK_A = "<think> Okay, let's see. The left square is darker. Wait, check again: yes, left. </think><answer> Final Answer:A </answer>"
THINK_3 = "<think> Okay, let's see. A triangle has 3 sides. </think><answer> Final Answer:3 </answer>"
CORRUPT_BYTES = b"\x89PNG\r\n\x1a\n this is not a PNG body"

LLAVA = "vision_r1_llava_cot_full"
MULBERRY = "vision_r1_mulberry_sft_full"
DIALECT = "vision_r1_messages_dialect"

# the released dataset_info.json entries, verbatim, plus an OpenAI-style messages/role/content entry
DATASET_INFO: dict[str, Any] = {
    LLAVA: {
        "file_name": "vision_r1_llava_cot_full.json",
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "images": "image"},
    },
    MULBERRY: {
        "file_name": "vision_r1_mulberry_sft_full.json",
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "images": "images"},
        "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "user", "assistant_tag": "assistant"},
    },
    DIALECT: {
        "file_name": "extra/messages_dialect.json",
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "images": "images"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant", "system_tag": "system"},
    },
}


def square(colour: str) -> Image.Image:
    return Image.new("RGB", (SIZE, SIZE), COLOURS[colour])


def image_bytes(colour: str, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    square(colour).save(buf, format=fmt)
    return buf.getvalue()


def _write_image(path: Path, colour: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    square(colour).save(path, format="JPEG" if path.suffix == ".jpg" else "PNG")


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")


def _turns(*pairs: tuple[str, str], role: str = "from", content: str = "value") -> list[dict[str, str]]:
    return [{role: r, content: c} for r, c in pairs]


GEOMETRY3K_TYPE = pa.schema(
    [
        ("images", pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))),
        ("problem", pa.string()),
        ("answer", pa.string()),
    ]
)


def _parquet(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=GEOMETRY3K_TYPE), path)


def _img(colour: str, fmt: str = "PNG") -> dict[str, Any]:
    return {"bytes": image_bytes(colour, fmt), "path": None}


def write_geometry3k_fixture(root: Path, *, with_problems: bool = True) -> Path:
    """Vision-R1-rl layout: ``data/train-00000-of-00001.parquet`` and ``data/test-00000-of-00001.parquet``.

    train rows: 0 good; 1 good, two images; 2 corrupt image bytes (corrupt_image);
    3 problem null (missing_field); 4 good (JPEG); 5 no <image> tag for its one
    image (image_count_mismatch). Clean: rows 0, 1, 4 only. test rows: 0, 1 good.
    """
    good = [
        {"images": [_img("red")], "problem": "<image>Find x.", "answer": "11"},
        {"images": [_img("red"), _img("blue")], "problem": "<image><image>Which square is bluer? A. first B. second", "answer": "B"},
        {"images": [_img("green", "JPEG")], "problem": "<image>Find the area of the square.", "answer": "24"},
    ]
    bad = {
        2: {"images": [{"bytes": CORRUPT_BYTES, "path": None}], "problem": "<image>Find y.", "answer": "3"},
        3: {"images": [_img("yellow")], "problem": None, "answer": "7"},
        5: {"images": [_img("blue")], "problem": "Find the perimeter.", "answer": "16"},
    }
    train = good[:2] + ([bad[2], bad[3]] if with_problems else []) + good[2:] + ([bad[5]] if with_problems else [])
    _parquet(root / "data" / "train-00000-of-00001.parquet", train)
    _parquet(
        root / "data" / "test-00000-of-00001.parquet",
        [
            {"images": [_img("yellow")], "problem": "<image>What is the angle at A?", "answer": "60"},
            {"images": [_img("green")], "problem": "Is the square green? <image>", "answer": "yes"},
        ],
    )
    return root


def write_sharegpt_fixture(root: Path, *, with_problems: bool = True) -> Path:
    """A LLaMA-Factory folder with the released entries and a messages/role/content entry.

    vision_r1_llava_cot_full.json (images column ``image``, human/gpt):
      0 good (image as a string); 1 good (image as a list); 2 good, two images, two rounds;
      with problems: 3 missing image; 4 corrupt image file (found only when images are
      verified); 5 one image but no <image> tag; 6 ends with a human turn.
    vision_r1_mulberry_sft_full.json (images column ``images``, user/assistant):
      0 good (JPEG); 1 good, two images, <image> in the second user turn;
      with problems: 2 uses role "human" (unknown_role); 3 has no conversations
      (missing_field); 4 two user turns in a row (bad_turn_order).
    extra/messages_dialect.json (messages, role/content, system turn):
      0 good, leading system turn, image relative to extra/; 1 good, image relative to
      the dataset folder; with problems: 2 empty messages (empty_conversation).
    """
    for name, colour in (("0.png", "red"), ("1.png", "green"), ("2.png", "blue")):
        _write_image(root / "llava_cot_images" / name, colour)
    _write_image(root / "mulberry_images" / "a.jpg", "yellow")
    _write_image(root / "mulberry_images" / "b.jpg", "blue")
    _write_image(root / "extra" / "pics" / "c.png", "green")
    _write_json(root / "dataset_info.json", DATASET_INFO)

    question = "<image>\nWhich colour is the square? A. blue B. red"
    llava = [
        {"id": "llava-0", "image": "llava_cot_images/0.png", "conversations": _turns(("human", question), ("gpt", THINK_B))},
        {"id": "llava-1", "image": ["llava_cot_images/1.png"], "conversations": _turns(("human", question), ("gpt", THINK_B))},
        {
            "id": "llava-2",
            "image": ["llava_cot_images/0.png", "llava_cot_images/2.png"],
            "conversations": _turns(
                ("human", "Compare <image> and <image>. Which is darker? A. left B. right"),
                ("gpt", THINK_A),
                ("human", "And which one is red?"),
                ("gpt", THINK_A),
            ),
        },
    ]
    mulberry = [
        {"images": ["mulberry_images/a.jpg"], "conversations": _turns(("user", "<image>How many sides?"), ("assistant", THINK_3))},
        {
            "images": ["mulberry_images/a.jpg", "mulberry_images/b.jpg"],
            "conversations": _turns(
                ("user", "<image>Describe the first figure."),
                ("assistant", THINK_3),
                ("user", "Now the second one: <image> Which has more sides?"),
                ("assistant", THINK_A),
            ),
        },
    ]
    dialect = [
        {
            "messages": _turns(
                ("system", "You are a careful geometry tutor."), ("user", "<image>Find x."), ("assistant", THINK_3),
                role="role", content="content",
            ),
            "images": ["pics/c.png"],
        },
        {"messages": _turns(("user", "<image>Name the colour."), ("assistant", THINK_B), role="role", content="content"), "images": ["mulberry_images/b.jpg"]},
    ]
    if with_problems:
        (root / "llava_cot_images" / "corrupt.png").write_bytes(CORRUPT_BYTES)
        llava += [
            {"id": "llava-3", "image": "llava_cot_images/missing.png", "conversations": _turns(("human", question), ("gpt", THINK_B))},
            {"id": "llava-4", "image": "llava_cot_images/corrupt.png", "conversations": _turns(("human", question), ("gpt", THINK_B))},
            {"id": "llava-5", "image": "llava_cot_images/0.png", "conversations": _turns(("human", "What is shown?"), ("gpt", THINK_B))},
            {"id": "llava-6", "image": "llava_cot_images/0.png", "conversations": _turns(("human", question), ("gpt", THINK_B), ("human", "Why?"))},
        ]
        mulberry += [
            {"images": ["mulberry_images/a.jpg"], "conversations": _turns(("human", "<image>How many sides?"), ("gpt", THINK_3))},
            {"images": ["mulberry_images/a.jpg"]},
            {"images": ["mulberry_images/a.jpg"], "conversations": _turns(("user", "<image>Look."), ("user", "How many sides?"), ("assistant", THINK_3))},
        ]
        dialect += [{"messages": [], "images": []}]
    _write_json(root / "vision_r1_llava_cot_full.json", llava)
    _write_json(root / "vision_r1_mulberry_sft_full.json", mulberry)
    _write_json(root / "extra" / "messages_dialect.json", dialect)
    return root


def write_broken_dataset_info(root: Path) -> Path:
    """A dataset_info.json whose entries are each unusable in one way, plus a JSONL entry.

    hub_only: no file_name (bad_entry); absent: file missing (missing_file); not_json:
    broken.json is not JSON (invalid_json); alpaca: no formatting, so alpaca (bad_entry);
    jsonl: rows.jsonl with row 0 good (text only) and row 1 not JSON (invalid_json).
    """
    fmt = {"formatting": "sharegpt"}
    _write_json(
        root / "dataset_info.json",
        {
            "hub_only": {"hf_hub_url": "Osilly/Vision-R1-cold", **fmt},
            "absent": {"file_name": "absent.json", **fmt},
            "not_json": {"file_name": "broken.json", **fmt},
            "alpaca": {"file_name": "alpaca.json"},
            "jsonl": {"file_name": "rows.jsonl", **fmt},
        },
    )
    (root / "broken.json").write_text('[{"conversations": [', encoding="utf-8")
    _write_json(root / "alpaca.json", [{"instruction": "Add 1 and 2.", "output": "3"}])
    good = {"conversations": _turns(("human", "What is 1+2?"), ("gpt", THINK_3))}
    (root / "rows.jsonl").write_text(json.dumps(good) + "\n{not json\n", encoding="utf-8")
    return root
