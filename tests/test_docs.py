"""The repo stands alone: every reference to its docs names a file, section and title that exist.

Scanned: lib/, notebooks/*.ipynb, params/, bench/, tests/, docs/, README.md and outputs/README.md
(text files; a notebook line by line of its JSON, so a failure names the line an editor opens).

A reference is `docs/<name>.md`, optionally followed by sections or a quoted heading title:
  docs/recipe.md §4              a numbered section; `§1-§2` and `§1, §4` name several
  docs/recipe.md §6 A            a lettered part of a section: "(A)" must appear in it; `§6 D-F` a run
  docs/platform.md "Several processes"   a heading of that doc: its whole text, or the part before
                                 its subtitle (": ..." or " (...)")
How the docs number their sections: a doc whose headings are numbered ("## 4. RL: ...", recipe.md)
is referenced by those numbers; a doc without numbered headings by its top-level numbered list
("4. The notebook shows ...", style.md's examples). A `§N` that follows no doc name is an error,
and so is every name from before the docs lived in docs/: RECIPE, PLATFORM, STYLE.md and paths into
../shared/.

tests/test_docs.py itself is not scanned: it spells those forms out.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SCANNED = ["lib", "notebooks", "params", "bench", "tests", "docs", "README.md", "outputs/README.md"]
SUFFIXES = {".py", ".md", ".txt", ".yaml", ".yml", ".json", ".ipynb", ".toml", ".cfg", ".sh", ".jinja"}
SKIPPED_DIRS = {"__pycache__", ".ipynb_checkpoints"}

# one section: "§6", "§6 A", "§6 D-F" (a letter only before punctuation or the line's end, so "§4 PTST" is §4)
_SECTION = r"§(\d+)(?:\s([A-Z])(?:-([A-Z]))?(?=[^\w\s]|$))?"
_SECTIONS = rf"{_SECTION}(?:\s*(?:,|-|–|and|or)\s*{_SECTION})*"
DOC_REF = re.compile(rf'(?<![\w/.-])docs/(?P<name>[\w.-]+?)\.md(?:,?\s+(?:(?P<sections>{_SECTIONS})|"(?P<title>[^"]+)"))?')
ONE_SECTION = re.compile(_SECTION)
# the names from before docs/ (with the sections they named): "RECIPE §4", "PLATFORM.md", "../shared/STYLE.md"
OLD_REF = re.compile(rf"(?:\.\./shared/)?(?:\b(?:RECIPE|PLATFORM)\b(?:\.md)?|\bSTYLE\.md)(?P<sections>\s+{_SECTIONS})?"
                     r"|\.\./shared/[\w./-]*")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")


def scanned_files(root: Path = ROOT) -> list[Path]:
    out = []
    for entry in SCANNED:
        p = root / entry
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            out += [f for f in sorted(p.rglob("*")) if f.is_file() and f.suffix in SUFFIXES
                    and not SKIPPED_DIRS & set(f.relative_to(root).parts)]
    return [f for f in out if f != Path(__file__).resolve()]


def text_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of a file; in a notebook each JSON string line is decoded, so a
    reference reads as the cell shows it (`\\"` as `"`)."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if path.suffix != ".ipynb":
        return list(enumerate(lines, 1))
    out = []
    for i, line in enumerate(lines, 1):
        s = line.strip().rstrip(",")
        try:
            value = json.loads(s) if s.startswith('"') else None
        except json.JSONDecodeError:
            value = None  # a key and its value: scanned as written
        out.append((i, value if isinstance(value, str) else line))
    return out


class Doc:
    """A doc's headings and its numbered sections, with each section's text."""

    def __init__(self, path: Path):
        lines = path.read_text(encoding="utf-8").splitlines()
        self.headings = [m.group(1) for ln in lines if (m := HEADING.match(ln))]
        numbered = [(i, int(m.group(1))) for i, ln in enumerate(lines)
                    if (h := HEADING.match(ln)) and (m := re.match(r"(\d+)\.\s", h.group(1)))]
        if not numbered:  # no numbered headings: the sections are the top-level numbered list
            numbered = [(i, int(m.group(1))) for i, ln in enumerate(lines) if (m := re.match(r"(\d+)\.\s", ln))]
        self.sections: dict[int, str] = {}
        for k, (i, n) in enumerate(numbered):
            end = numbered[k + 1][0] if k + 1 < len(numbered) else len(lines)
            if not HEADING.match(lines[i]):  # a list item ends at the next heading too
                end = next((j for j in range(i + 1, end) if HEADING.match(lines[j])), end)
            self.sections.setdefault(n, "\n".join(lines[i:end]))

    def has_title(self, title: str) -> bool:
        """`title` is a heading's whole text, or that text without its number or its subtitle."""
        for h in self.headings:
            bare = re.sub(r"^\d+\.\s+", "", h)
            if title in (h, bare, re.split(r":\s| \(", bare)[0]):
                return True
        return False


def problems_in_line(text: str, docs_dir: Path = DOCS, cache: dict | None = None) -> list[str]:
    """What is wrong with the doc references of one line (empty: nothing)."""
    cache = {} if cache is None else cache
    out = []
    covered = []  # spans of the § that follow a doc name
    for m in DOC_REF.finditer(text):
        name, ref = m.group("name"), m.group(0)
        path = docs_dir / f"{name}.md"
        if not path.is_file():
            out.append(f"{ref!r}: docs/{name}.md does not exist")
            continue
        doc = cache.setdefault(path, Doc(path))
        if m.group("sections"):
            covered.append(m.span("sections"))
            out += [f"{ref!r}: {p}" for p in section_problems(m.group("sections"), doc, name)]
        if m.group("title") and not doc.has_title(m.group("title")):
            out.append(f'{ref!r}: no heading "{m.group("title")}" in docs/{name}.md '
                       f"(headings: {'; '.join(doc.headings)})")
    for m in OLD_REF.finditer(text):
        covered.append(m.span())
        out.append(f"{m.group(0)!r}: an old name; write {replacement(m.group(0))!r}")
    for m in re.finditer(r"§\d+", text):
        if not any(a <= m.start() < b for a, b in covered):
            out.append(f"{m.group(0)!r} names no doc: write docs/<name>.md {m.group(0)}")
    return out


def replacement(old: str) -> str:
    """What an old-style reference becomes.

    >>> [replacement(x) for x in ("RECIPE §4", "PLATFORM", "STYLE.md", "../shared/RECIPE.md §1-§2", "../shared/x.py")]
    ['docs/recipe.md §4', 'docs/platform.md', 'docs/style.md', 'docs/recipe.md §1-§2', 'a file in this repository']
    """
    m = re.match(r"(?:\.\./shared/)?(RECIPE|PLATFORM|STYLE)(?:\.md)?(.*)", old, re.S)
    return f"docs/{m.group(1).lower()}.md{m.group(2)}" if m else "a file in this repository"


def section_problems(sections: str, doc: Doc, name: str) -> list[str]:
    found = list(ONE_SECTION.finditer(sections))
    numbers = [int(m.group(1)) for m in found]
    wanted = []
    for k, m in enumerate(found):  # "§1-§3" names §2 as well
        n = int(m.group(1))
        joint = sections[found[k - 1].end():m.start()] if k else ""
        if k and joint.strip() in ("-", "–") and numbers[k - 1] < n:
            wanted += [(i, None, None) for i in range(numbers[k - 1] + 1, n)]
        wanted.append((n, m.group(2), m.group(3)))
    out = []
    for n, first, last in wanted:
        if n not in doc.sections:
            out.append(f"no §{n} in docs/{name}.md (its sections: {', '.join(f'§{k}' for k in doc.sections) or 'none'})")
            continue
        for letter in _letters(first, last):
            if f"({letter})" not in doc.sections[n]:
                out.append(f"no part ({letter}) in docs/{name}.md §{n}")
    return out


def _letters(first: str | None, last: str | None) -> list[str]:
    if first is None:
        return []
    return [chr(c) for c in range(ord(first), ord(last or first) + 1)]


def all_problems(root: Path = ROOT) -> list[str]:
    cache: dict = {}
    out = []
    for f in scanned_files(root):
        for i, text in text_lines(f):
            out += [f"{f.relative_to(root)}:{i}: {p}" for p in problems_in_line(text, root / "docs", cache)]
    return out


# ---------------------------------------------------------------------------------------------
@pytest.fixture()
def docs(tmp_path):
    d = tmp_path / "docs"
    d.mkdir()
    (d / "recipe.md").write_text("# R\n## The pipeline\n## 1. Cold-start data: Modality Bridging\n1. a list item\n"
                                 "## 4. RL: GRPO\n## 6. The analyses\n- (A) buckets\n- (C) words\n- (D) a, (E) b, (F) c\n")
    (d / "style.md").write_text("# S\n## Examples to follow\n1. A notebook opens\n2. The parameters cell\n"
                                "   2. an indented item is not a section\n## More examples\n9. a list under another heading\n")
    (d / "platform.md").write_text("# P\n## Teaching a tiny model to see (an experiment)\n"
                                   "## Several processes: pitfalls\n## The GPU machine (lent to some sessions only)\n")
    return d


@pytest.mark.parametrize("line, found", [
    ("see docs/recipe.md §4", []),
    ("docs/recipe.md §1-§4", ["no §2", "no §3"]),                         # a range names what lies between
    ("docs/recipe.md §1, §4; docs/platform.md last section", []),          # a list; free text after a doc
    ("docs/recipe.md §5", ["no §5 in docs/recipe.md (its sections: §1, §4, §6)"]),
    ("(docs/recipe.md §6 D-F) and (docs/recipe.md §6 C)", []),             # lettered parts of a section
    ("docs/recipe.md §6 B)", ["no part (B)"]),
    ("docs/recipe.md §4 PTST", []),                                       # a word after the number is no part
    ("docs/style.md §2", []),                                             # style.md: its numbered list
    ("docs/style.md §9", []),                                             # ... under any heading
    ("docs/style.md §3", ["no §3 in docs/style.md"]),                      # an indented item is no section
    ('docs/platform.md "Several processes"', []),                         # the heading before its subtitle
    ('docs/platform.md, "Teaching a tiny model to see"', []),
    ('docs/recipe.md "Cold-start data"', []),                             # a numbered heading, number dropped
    ('docs/platform.md "GPU"', ['no heading "GPU"']),
    ("docs/missing.md", ["docs/missing.md does not exist"]),
    ("https://github.com/o/r/blob/main/docs/other.md", []),               # another repository's docs
    ("RECIPE §4 and RECIPE §6 D-F", ["'RECIPE §4': an old name; write 'docs/recipe.md §4'",  # with its sections
                                     "write 'docs/recipe.md §6 D-F'"]),
    ("(PLATFORM) and STYLE.md", ["write 'docs/platform.md'", "write 'docs/style.md'"]),
    ("../shared/RECIPE.md and ../shared/data/x.json", ["write 'docs/recipe.md'", "write 'a file in this repository'"]),
    ("RECIPE_VERSION = 3", []),                                           # a name that only starts alike
    ("docs/recipe.md §6 A) and the counts (§6 C)", ["'§6' names no doc"]),  # a § on its own
])
def test_problems_in_line(docs, line, found):
    got = problems_in_line(line, docs)
    assert len(got) == len(found), got
    for want, g in zip(found, got):
        assert want in g, (want, g)


def test_a_notebook_line_reads_as_its_cell_shows_it(tmp_path):
    nb = tmp_path / "n.ipynb"
    nb.write_text(json.dumps({"cells": [{"cell_type": "markdown", "metadata": {},
                                         "source": ['see docs/platform.md "GPU"\n', "fine\n"]}]}, indent=1))
    lines = dict(text_lines(nb))
    assert 'see docs/platform.md "GPU"\n' in lines.values()


def test_every_doc_reference_resolves():
    found = all_problems()
    assert not found, f"{len(found)} doc reference(s) to fix:\n  " + "\n  ".join(found)


def test_architecture_lists_every_module():
    """docs/architecture.md's module table has a row for every module and subpackage of
    lib/visionr1 (and its data folders), and none for a module that is gone."""
    pkg = ROOT / "lib" / "visionr1"
    text = (DOCS / "architecture.md").read_text()
    table = text[text.index("## Modules of"):]
    rows = set(re.findall(r"^\| `([\w/]+)` \|", table, re.M))
    tree = {p.stem for p in pkg.glob("*.py") if p.stem != "__init__"}
    tree |= {f"{d.name}/" for d in pkg.iterdir() if d.is_dir() and d.name not in SKIPPED_DIRS}
    assert not tree - rows, f"modules of lib/visionr1 without a row in docs/architecture.md: {sorted(tree - rows)}"
    assert not rows - tree, f"docs/architecture.md names modules that are not in lib/visionr1: {sorted(rows - tree)}"
