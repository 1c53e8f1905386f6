"""The nano task: synthetic visual math whose facts exist only in the image.

An image is a G x G grid of 28-pixel cells (one merged Qwen2.5-VL vision token each); a cell is
empty or holds one shape (circle, square, triangle) in one colour (red, green, blue) that fills
the cell. Questions need 1 to 3 reasoning steps:

  level 1  "How many red shapes are there?", "How many circles are there?"
  level 2  "How many red circles are there?", "How many more circles than squares are there?",
           "How many shapes are red or blue?"
  level 3  "What is 2 times the number of green shapes plus the number of blue circles?",
           "How many more red shapes than blue triangles are there?"

Each question is free-form (an integer) or multiple choice (A-D). Within each question type the
answers are drawn uniformly from that type's range (scenes are resampled until they match), so a
model cannot score by guessing the common answer; the chance level is measured, not assumed.

Sets, following the paper's data regime (docs/recipe.md §1, §4; docs/platform.md last section):
  test        held out: all levels, shares no scene with any other set
  cold_start  the cold-start source set: small, leans to easy questions, carries the scene
              description the oracle teacher reads (image, question, answer, description)
  rl          the RL set: answers only, leans to hard multi-step questions (geometry3k schema)
  pretrain    captions and direct short answers for the nano base model (no chain of thought)
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import cached_property
from itertools import accumulate
from pathlib import Path

from PIL import Image, ImageDraw

COLORS = ("red", "green", "blue")
SHAPES = ("circle", "square", "triangle")
PLURAL = {"circle": "circles", "square": "squares", "triangle": "triangles"}
RGB = {"red": (220, 30, 30), "green": (30, 170, 50), "blue": (30, 60, 220)}
CELL = 28
LETTERS = "ABCD"
COLD_START_LEVELS = (0.5, 0.35, 0.15)  # the cold-start source leans to easy questions
RL_LEVELS = (0.1, 0.3, 0.6)            # the RL set leans to multi-step questions
TEST_SHARE = 8  # 1 in 8 possible scenes is reserved for the test split

# question type -> (level, answer range); answers are balanced uniformly over the range
QUESTION_TYPES: dict[str, tuple[int, range]] = {
    "count_color": (1, range(0, 7)),
    "count_shape": (1, range(0, 7)),
    "count_color_shape": (2, range(0, 5)),
    "more_shape": (2, range(0, 6)),
    "count_two_colors": (2, range(0, 9)),
    "weighted_sum": (3, range(0, 13)),
    "more_color_than_kind": (3, range(0, 7)),
}


@dataclass(frozen=True)
class Scene:
    """A grid of cells in row-major order; each cell is None or (colour, shape)."""

    grid: int
    cells: tuple

    def count(self, color: str | None = None, shape: str | None = None) -> int:
        return sum(1 for c in self.cells if c is not None
                   and (color is None or c[0] == color) and (shape is None or c[1] == shape))

    @cached_property  # computed once per scene (a frozen dataclass still has a __dict__)
    def key(self) -> str:
        """Stable identity of the scene."""
        return hashlib.sha1(json.dumps([self.grid, self.cells]).encode()).hexdigest()[:16]

    @property
    def is_test_scene(self) -> bool:
        """One scene in TEST_SHARE belongs to the test split, decided by its content alone, so the
        test split shares no image with any other set whatever their seeds and sizes."""
        return int(self.key, 16) % TEST_SHARE == 0

    def rows(self) -> list[list]:
        return [list(self.cells[r * self.grid:(r + 1) * self.grid]) for r in range(self.grid)]

    def caption(self) -> str:
        """Cell-by-cell caption, row by row: what each vision token shows."""
        return " ".join(
            f"Row {i + 1}: " + ", ".join("empty" if c is None else f"{c[0]} {c[1]}" for c in row) + "."
            for i, row in enumerate(self.rows()))

    def count_caption(self) -> str:
        """Counts with the digit right after the attribute word (learnable for a tiny model)."""
        return (" ".join(f"{c}{self.count(color=c)}" for c in COLORS) + ", "
                + " ".join(f"{s}{self.count(shape=s)}" for s in SHAPES) + ".")

    def description(self) -> str:
        """The detailed scene description that the oracle teacher of 01_cold_start_data reads."""
        lines = [f"The image shows a {self.grid} by {self.grid} grid of cells on a white background."]
        for i, row in enumerate(self.rows()):
            items = ["an empty cell" if c is None else f"a {c[0]} {c[1]}" for c in row]
            lines.append(f"Row {i + 1}, from left to right: " + ", ".join(items) + ".")
        return " ".join(lines)


def render(scene: Scene, cell: int = CELL) -> Image.Image:
    """Draw the scene; each shape fills its cell (one cell = one merged vision token)."""
    img = Image.new("RGB", (scene.grid * cell, scene.grid * cell), (255, 255, 255))
    d = ImageDraw.Draw(img)
    m = 2  # margin inside the cell
    for i, c in enumerate(scene.cells):
        if c is None:
            continue
        x0, y0 = (i % scene.grid) * cell, (i // scene.grid) * cell
        box = (x0 + m, y0 + m, x0 + cell - m - 1, y0 + cell - m - 1)
        color, shape = c
        if shape == "circle":
            d.ellipse(box, fill=RGB[color])
        elif shape == "square":
            d.rectangle(box, fill=RGB[color])
        else:
            d.polygon([(x0 + cell / 2, y0 + m), (x0 + m, y0 + cell - m - 1),
                       (x0 + cell - m - 1, y0 + cell - m - 1)], fill=RGB[color])
    return img


@dataclass
class Sample:
    """One nano question about one scene. `question` is the raw text the model sees (with choices)."""

    id: str
    scene: Scene
    qtype: str
    level: int
    question: str
    answer: str
    answer_value: int
    choices: list[str] | None = None
    facts: dict = field(default_factory=dict)  # the counts the question combines, for CoT writers

    @property
    def image(self) -> Image.Image:
        return render(self.scene)

    def record(self) -> dict:
        """A JSON-able record (the scene is kept so the image can be redrawn)."""
        d = asdict(self)
        d["scene"] = {"grid": self.scene.grid, "cells": [list(c) if c else None for c in self.scene.cells]}
        d["description"] = self.scene.description()
        return d


def direct_answer(s: Sample) -> str:
    """The nano base model's short answer: the value, also for multiple choice, where the grader
    maps an option's text to its letter (as MathVista's extraction does). Measured on this task:
    trained to answer "5 (B)", a tiny model got the value right 80% of the time but picked the
    letter at chance (always "C"); finding the letter is left to the reasoning stages."""
    return str(s.answer_value)


_LETTER = re.compile(r"\(([A-D])\)|^\s*([A-D])\s*[.):]?\s*$")
_INT = re.compile(r"-?\d+")


def grade_direct(s: Sample, text: str) -> bool:
    """Is a short answer right? Multiple choice: the letter given, (B) or a bare B, must be the
    answer; without a letter the value must be the right option's. Free form: the first integer."""
    if s.choices is not None:
        m = _LETTER.search(text)
        if m:
            return (m.group(1) or m.group(2)) == s.answer
    m = _INT.search(text)
    return m is not None and int(m.group()) == s.answer_value


def sample_from_record(rec: dict) -> Sample:
    sc = rec["scene"]
    scene = Scene(sc["grid"], tuple(tuple(c) if c else None for c in sc["cells"]))
    keys = ("id", "qtype", "level", "question", "answer", "answer_value", "choices", "facts")
    return Sample(scene=scene, **{k: rec[k] for k in keys})


def random_scene(rng: random.Random, grid: int) -> Scene:
    # varied occupancy and colour/shape skew spread the counts over their whole range
    occupancy = rng.uniform(0.15, 1.0)
    cw = list(accumulate(rng.random() ** 2 + 0.02 for _ in COLORS))  # cumulative: what choices() builds
    sw = list(accumulate(rng.random() ** 2 + 0.02 for _ in SHAPES))   # per call from weights (same draws, faster)
    cells = tuple((rng.choices(COLORS, cum_weights=cw)[0], rng.choices(SHAPES, cum_weights=sw)[0])
                  if rng.random() < occupancy else None for _ in range(grid * grid))
    return Scene(grid, cells)


def ask(rng: random.Random, scene: Scene, qtype: str) -> tuple[str, int, dict]:
    """Pick the question's parameters for `qtype` and answer it on `scene`: (text, value, facts)."""
    if qtype == "count_color":
        c = rng.choice(COLORS)
        n = scene.count(color=c)
        return f"How many {c} shapes are there?", n, {f"{c} shapes": n}
    if qtype == "count_shape":
        s = rng.choice(SHAPES)
        n = scene.count(shape=s)
        return f"How many {PLURAL[s]} are there?", n, {PLURAL[s]: n}
    if qtype == "count_color_shape":
        c, s = rng.choice(COLORS), rng.choice(SHAPES)
        n = scene.count(c, s)
        return f"How many {c} {PLURAL[s]} are there?", n, {f"{c} {PLURAL[s]}": n}
    if qtype == "more_shape":
        a, b = rng.sample(SHAPES, 2)
        na, nb = scene.count(shape=a), scene.count(shape=b)
        if na < nb:
            a, b, na, nb = b, a, nb, na
        return (f"How many more {PLURAL[a]} than {PLURAL[b]} are there?", na - nb,
                {PLURAL[a]: na, PLURAL[b]: nb})
    if qtype == "count_two_colors":
        a, b = rng.sample(COLORS, 2)
        na, nb = scene.count(color=a), scene.count(color=b)
        return (f"How many shapes are {a} or {b}?", na + nb, {f"{a} shapes": na, f"{b} shapes": nb})
    if qtype == "weighted_sum":
        k = rng.choice((2, 3))
        c = rng.choice(COLORS)
        c2, s2 = rng.choice(COLORS), rng.choice(SHAPES)
        na, nb = scene.count(color=c), scene.count(c2, s2)
        return (f"What is {k} times the number of {c} shapes plus the number of {c2} {PLURAL[s2]}?",
                k * na + nb, {f"{c} shapes": na, f"{c2} {PLURAL[s2]}": nb, "factor": k})
    if qtype == "more_color_than_kind":
        c = rng.choice(COLORS)
        c2, s2 = rng.choice(COLORS), rng.choice(SHAPES)
        na, nb = scene.count(color=c), scene.count(c2, s2)
        if na < nb:
            return (f"How many more {c2} {PLURAL[s2]} than {c} shapes are there?", nb - na,
                    {f"{c2} {PLURAL[s2]}": nb, f"{c} shapes": na})
        return (f"How many more {c} shapes than {c2} {PLURAL[s2]} are there?", na - nb,
                {f"{c} shapes": na, f"{c2} {PLURAL[s2]}": nb})
    raise ValueError(f"unknown nano question type {qtype!r}; known: {sorted(QUESTION_TYPES)}")


def arithmetic_steps(kind: str, values: list[int], factor: int | None = None) -> str:
    """The arithmetic of a multi-step answer as one small fact per step, the form the nano base's
    drills teach (nano_base.arithmetic_drill) and the oracle's "steps" CoTs write:
    times_plus [a, b] with factor k: "k×a=p. p+b=r."; plus [a, b]: "a+b=r."; minus [a, b]: "a-b=r."."""
    a, b = values
    if kind == "times_plus":
        return f"{factor}×{a}={factor * a}. {factor * a}+{b}={factor * a + b}."
    if kind == "plus":
        return f"{a}+{b}={a + b}."
    if kind == "minus":
        return f"{a}-{b}={a - b}."
    raise ValueError(f"unknown arithmetic kind {kind!r}; known: times_plus, plus, minus")


def option_walk(choices: list[str], value: int) -> str:
    """Each option restated and compared with `value`, up to the one that matches (all four when
    none does): "(A) 7, no. (B) 3, no. (C) 10, yes." (the oracle's "steps" CoTs, the base's drills)."""
    out = []
    for letter, text in zip(LETTERS, choices):
        hit = text == str(value)
        out.append(f"({letter}) {text}, {'yes' if hit else 'no'}.")
        if hit:
            break
    return " ".join(out)


_CELL = re.compile(r"an empty cell|an? (\w+) (\w+)")


def count_by_rows(description: str, name: str) -> list[int]:
    """Per row of a scene description (Scene.description), how many cells a fact name counts:
    "blue shapes" (a colour), "circles" (a kind), "red squares" (both)."""
    words = name.split()
    kind = {v: k for k, v in PLURAL.items()}
    color = words[0] if words[0] in COLORS else None
    shape = kind.get(words[-1])
    if (color is None and shape is None) or len(words) > 2 or (len(words) == 2 and words[1] != "shapes" and shape is None):
        raise ValueError(f"not a nano fact name: {name!r}")
    rows = re.findall(r"Row \d+, from left to right: ([^.]*)\.", description)
    if not rows:
        raise ValueError(f"no rows in the scene description {description[:80]!r}")
    out = []
    for cells in rows:
        hits = [m for m in _CELL.finditer(cells) if m.group(1)]
        out.append(sum(1 for m in hits if (color is None or m.group(1) == color)
                       and (shape is None or m.group(2) == shape)))
    return out


def make_choices(rng: random.Random, value: int, hi: int) -> tuple[list[str], str]:
    """Four distinct integer options near `value`, the right one at a uniformly random letter."""
    pool = [v for v in range(max(0, value - 3), max(hi, value + 3) + 1) if v != value]
    options = rng.sample(pool, 3) + [value]
    rng.shuffle(options)
    return [str(v) for v in options], LETTERS[options.index(value)]


def format_question(text: str, choices: list[str] | None) -> str:
    if choices is None:
        return f"{text} Answer with an integer."
    opts = " ".join(f"({LETTERS[i]}) {c}" for i, c in enumerate(choices))
    return f"{text}\nChoices: {opts}\nAnswer with the option's letter."


def generate(n: int, seed: int, split: str, level_weights: tuple[float, float, float] = (1, 1, 1),
             mc_fraction: float = 0.5, grid: int = 3, exclude: set[str] | None = None,
             max_tries: int = 400) -> list[Sample]:
    """Generate `n` samples, deterministic by (`seed`, `split`).

    The "test" split uses only test scenes (`Scene.is_test_scene`), every other split only the
    rest, so no set shares an image with the test split. A scene is used once per call and never
    if its key is in `exclude`. Per question type the answer is drawn uniformly from the type's
    range and scenes are resampled (up to `max_tries`) to match.
    """
    rng = random.Random(f"{seed}:{split}")
    exclude = set() if exclude is None else exclude
    used: set[str] = set()
    by_level = {lvl: [t for t, (l, _) in QUESTION_TYPES.items() if l == lvl] for lvl in (1, 2, 3)}
    out: list[Sample] = []
    while len(out) < n:
        level = rng.choices((1, 2, 3), level_weights)[0]
        qtype = rng.choice(by_level[level])
        target = rng.choice(QUESTION_TYPES[qtype][1])
        for _ in range(max_tries * (TEST_SHARE if split == "test" else 1)):
            scene = random_scene(rng, grid)
            if (scene.is_test_scene != (split == "test")) or scene.key in exclude or scene.key in used:
                continue
            text, value, facts = ask(rng, scene, qtype)
            if value == target:
                break
        else:
            continue  # this target is out of reach for this grid: draw another
        used.add(scene.key)
        out.append(make_sample(rng, f"{split}-{len(out):06d}", scene, qtype, text, value, facts, mc_fraction))
    return out


def make_sample(rng: random.Random, sid: str, scene: Scene, qtype: str, text: str, value: int,
                facts: dict, mc_fraction: float) -> Sample:
    """Wrap an asked question as a Sample, multiple choice with probability `mc_fraction`."""
    choices, answer = None, str(value)
    if rng.random() < mc_fraction:
        choices, answer = make_choices(rng, value, QUESTION_TYPES[qtype][1].stop - 1)
    return Sample(id=sid, scene=scene, qtype=qtype, level=QUESTION_TYPES[qtype][0],
                  question=format_question(text, choices), answer=answer, answer_value=value,
                  choices=choices, facts=facts)


def more_questions(rng: random.Random, sample: Sample, n: int, mc_fraction: float) -> list[Sample]:
    """`n` further questions of random types about the same scene (same image)."""
    out = []
    for j in range(n):
        qtype = rng.choice(list(QUESTION_TYPES))
        text, value, facts = ask(rng, sample.scene, qtype)
        out.append(make_sample(rng, f"{sample.id}.{j + 1}", sample.scene, qtype, text, value, facts, mc_fraction))
    return out


def scene_keys(samples: list[Sample]) -> set[str]:
    return {s.scene.key for s in samples}


def build_splits(seed: int, n_test: int, n_cold_start: int, n_rl: int, n_pretrain: int = 0,
                 grid: int = 3, mc_fraction: float = 0.5) -> dict[str, list[Sample]]:
    """All nano sets for one seed, sharing no image with each other; the cold-start source leans
    easy, the RL set leans hard (the paper's regime)."""
    sets = {"test": generate(n_test, seed, "test", (1, 1, 1), mc_fraction, grid)}
    seen: set[str] = set()
    for name, n, weights in (("cold_start", n_cold_start, COLD_START_LEVELS),
                             ("rl", n_rl, RL_LEVELS),
                             ("pretrain", n_pretrain, (1, 1, 1))):
        sets[name] = generate(n, seed, name, weights, mc_fraction, grid, exclude=seen)
        seen |= scene_keys(sets[name])
    return sets


def chance_accuracy(samples: list[Sample]) -> float:
    """Accuracy of always giving the most common answer of each question type (and format)."""
    groups: dict[tuple, Counter] = {}
    for s in samples:
        groups.setdefault((s.qtype, s.choices is not None), Counter())[s.answer] += 1
    return sum(c.most_common(1)[0][1] for c in groups.values()) / max(1, len(samples))


def chance_per_type(samples: list[Sample]) -> dict[str, float]:
    """`chance_accuracy` within each question type."""
    by_type: dict[str, list[Sample]] = {}
    for s in samples:
        by_type.setdefault(s.qtype, []).append(s)
    return {k: round(chance_accuracy(v), 4) for k, v in sorted(by_type.items())}


def statistics(samples: list[Sample]) -> dict:
    return {
        "n": len(samples),
        "levels": dict(sorted(Counter(s.level for s in samples).items())),
        "qtypes": dict(sorted(Counter(s.qtype for s in samples).items())),
        "multiple_choice": sum(s.choices is not None for s in samples),
        "chance_accuracy": round(chance_accuracy(samples), 4),
    }


def write_jsonl(samples: list[Sample], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for s in samples:
            f.write(json.dumps(s.record()) + "\n")
    return path


def read_jsonl(path: str | Path) -> list[Sample]:
    with Path(path).open() as f:
        return [sample_from_record(json.loads(line)) for line in f if line.strip()]


def scene_counts(scene: Scene) -> dict[str, int]:
    """Shapes per colour and per kind: what the oracle's CoT lists first (the base model's count caption)."""
    return {**{c: scene.count(color=c) for c in COLORS}, **{k: scene.count(shape=k) for k in SHAPES}}


def write_cold_start_source(samples: list[Sample], out_dir: str | Path) -> Path:
    """The cold-start source set: images as PNG files plus `source.jsonl` rows of
    {id, image (relative path), question, answer, description, qtype, level, facts}."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    with (out / "source.jsonl").open("w") as f:
        for s in samples:
            rel = f"images/{s.id}.png"
            s.image.save(out / rel)
            f.write(json.dumps({"id": s.id, "image": rel, "question": s.question, "answer": s.answer,
                                "description": s.scene.description(), "qtype": s.qtype,
                                "level": s.level, "choices": s.choices, "facts": s.facts,
                                "counts": scene_counts(s.scene)}) + "\n")
    return out / "source.jsonl"


def geometry3k_records(samples: list[Sample]) -> list[dict]:
    """Rows in the Vision-R1-rl (geometry3k) schema: images, problem with `<image>`, answer."""
    return [{"id": s.id, "images": [s.image], "problem": "<image>" + s.question, "answer": s.answer}
            for s in samples]


def tokenizer_corpus() -> list[str]:
    """The exact wording of every nano text plus the R1-style CoT vocabulary of later stages."""
    rng = random.Random(0)
    texts: list[str] = []
    for s in generate(3000, 0, "tokenizer", (1, 1, 1), 0.5, 3):
        texts += [s.question, s.answer, s.scene.caption(), s.scene.count_caption(), s.scene.description()]
    texts += [
        "You are a helpful assistant.", "Describe the image.", "Count the shapes by colour and shape.",
        "<think> </think> <answer> </answer> Final Answer: The answer is \\boxed{} ",
        "Okay, let's see. Let me look at the image. First, I count the shapes in each row. "
        "Wait, let me recount the red circles. Hmm, that does not match. Alternatively, I could count "
        "column by column. Let me check again. That was a mistake. So the answer is ",
        "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
        "The assistant first thinks about the reasoning process in the mind and then provides the user "
        "with the answer. The reasoning process and answer are enclosed within <think> </think> and "
        "<answer> </answer> tags, respectively.",
        "Find x. Find the area of the triangle. What is the value of y? Round to the nearest tenth.",
    ]
    texts += [f"{a} {op} {b} = {c}" for a, b, c, op in
              ((rng.randint(0, 12), rng.randint(0, 12), rng.randint(0, 30), rng.choice("+-×*="))
               for _ in range(500))]
    return texts
