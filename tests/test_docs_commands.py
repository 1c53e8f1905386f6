"""The README and docs/ cannot drift from the code: every project path they name exists, and every
`python -m visionr1 ...` command they show parses.

A command in a fenced code block is parsed whole by the real command-line parser (argparse), with
the run stopped right after parsing, so an unknown flag, a missing argument or a bad value fails
here. A command in running text may hold placeholders (`PARAMS`, `--set k=v`): there its
subcommand must answer `--help` and each `--flag` it names must be in that help.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import re
import shlex
from pathlib import Path

import pytest

from visionr1 import __main__ as cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "outputs" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# a project path: under one of the repo's own folders, or one of its top-level files
PATH = re.compile(r"(?<![\w/.-])((?:lib|params|notebooks|tests|bench|docs|\.ci)/[\w./-]*[\w/]"
                  r"|requirements(?:-\w+)?\.txt|pyproject\.toml|Makefile)")
# what names a path only by shape: placeholders, globs, the runs a pipeline writes
NOT_A_PATH = re.compile(r"[<>*{}]|\.\.\.|^tests/fixtures/.*\b(?:K|N)\b")
# a module path written without its lib/ folder ("visionr1/validate.py")
BARE_MODULE = re.compile(r"(?<![\w/.-])visionr1/[\w/]+\.py")
COMMAND = re.compile(r"python3? -m visionr1(?P<mod>\.\w+)?(?P<args>(?: [^`\n|]*)?)")
PLACEHOLDER = re.compile(r"\b[A-Z][A-Z_]+\b(?![=/.])|<[^>]+>|\.\.\.|\bk=v\b")


def doc_lines() -> list[tuple[Path, int, str, bool]]:
    """(doc, line number, text, in a fenced code block); a line ending in `\\` continues."""
    out = []
    for doc in DOCS:
        fenced, pending = False, None
        for i, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            if line.lstrip().startswith("```"):
                fenced = not fenced
                continue
            if pending:
                start, text = pending
                line, i = text + " " + line.strip(), start
            pending = (i, line.rstrip("\\").rstrip()) if line.rstrip().endswith("\\") else None
            if not pending:
                out.append((doc, i, line, fenced))
    return out


def named_paths() -> list[tuple[str, str]]:
    return [(f"{doc.relative_to(ROOT)}:{i}", m.group(1).rstrip("."))
            for doc, i, line, _ in doc_lines() for m in PATH.finditer(line)
            if not NOT_A_PATH.search(m.group(1))]


def commands() -> list[tuple[str, str, str, bool]]:
    """(where, module suffix, argument string, parse whole): the commands the docs show."""
    out = []
    for doc, i, line, fenced in doc_lines():
        code = line.split(" #")[0] if fenced else line
        for m in COMMAND.finditer(code):
            args = m.group("args").strip().rstrip(".,;:)")
            out.append((f"{doc.relative_to(ROOT)}:{i}", m.group("mod") or "", args,
                        fenced and not PLACEHOLDER.search(args)))
    return out


def test_the_docs_name_paths_and_commands():
    """The scan itself finds what the README is known to hold, so an empty scan cannot pass."""
    paths = {p for _, p in named_paths()}
    assert {"params/nano.yaml", "params/qwen2.5-vl-7b-8gpu.yaml", "docs/results.md"} <= paths
    subs = {args.split()[0] for _, mod, args, _ in commands() if not mod and args}
    assert {"run", "params", "data", "preflight", "score", "infer", "serve", "build-tiny"} <= subs


@pytest.mark.parametrize("where,path", named_paths())
def test_named_path_exists(where, path):
    assert (ROOT / path).exists(), f"{where} names {path}, which is not in the repo"


def test_module_paths_name_their_lib_folder():
    bare = [f"{doc.relative_to(ROOT)}:{i}: {m.group(0)}" for doc, i, line, _ in doc_lines()
            for m in BARE_MODULE.finditer(line)]
    assert not bare, "write lib/visionr1/..., the path from the repo root:\n" + "\n".join(bare)


class _Parsed(Exception):
    """Raised right after a command's arguments parsed: nothing runs."""


def _parse_only(monkeypatch):
    real = argparse.ArgumentParser.parse_args

    def parse_args(self, args=None, namespace=None):
        real(self, args, namespace)  # exits 2 on an unknown flag or a missing argument
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_args)


def _help(sub: list[str]) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            code = cli.main([*sub, "--help"])
        except SystemExit as e:  # argparse's --help
            code = e.code
    assert code == 0, f"python -m visionr1 {' '.join(sub)} --help exited {code}"
    return buf.getvalue()


@pytest.mark.parametrize("where,mod,args,whole", commands())
def test_documented_command_parses(where, mod, args, whole, monkeypatch):
    if mod:
        assert importlib.util.find_spec(f"visionr1{mod}"), f"{where}: no module visionr1{mod}"
        return
    argv = shlex.split(args)
    assert argv, f"{where}: a bare `python -m visionr1`"
    if argv[0].isupper():  # `python -m visionr1 COMMAND`: the command itself is the placeholder
        return
    if argv[0] == "lab":  # starts JupyterLab in place of this process: its arguments are Jupyter's
        return
    sub = argv[:2] if argv[0] == "data" else argv[:1]
    assert argv[0] in cli.USAGE, f"{where}: unknown command {argv[0]!r}"
    help_text = _help(sub)
    for flag in re.findall(r"(?<!\S)--[\w-]+", args):
        assert flag in help_text, f"{where}: {' '.join(sub)} has no option {flag}"
    if whole:
        _parse_only(monkeypatch)
        with pytest.raises(_Parsed):
            cli.main(argv)


README_REF = re.compile(r'README(?:\.md)? "(?P<title>[^"]+)"')
SCANNED_FOR_README_REFS = ["lib", "notebooks", "params", "bench", "tests", "docs", "Makefile"]


def test_readme_sections_named_elsewhere_exist():
    """`README "Real scale"` in a comment or a doc names a heading the README has."""
    headings = {m.group(1).strip() for m in re.finditer(r"^#{1,6} (.+)$", (ROOT / "README.md").read_text(), re.M)}
    bad = []
    for entry in SCANNED_FOR_README_REFS:
        root = ROOT / entry
        for f in [root] if root.is_file() else sorted(root.rglob("*")):
            if not f.is_file() or f.suffix not in {".py", ".md", ".yaml", ".ipynb", ""} or f == Path(__file__):
                continue
            for i, line in enumerate(f.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
                for m in README_REF.finditer(line.replace('\\"', '"')):
                    if m.group("title") not in headings and "github" not in line and "Vision-R1's" not in line:
                        bad.append(f"{f.relative_to(ROOT)}:{i}: README \"{m.group('title')}\"")
    assert not bad, "no such README heading:\n" + "\n".join(bad)
