"""Where a nano CoT goes wrong: 04's answers on the nano test split, each parsed into the steps the
oracle's CoTs take (teachers.OracleTeacher), and each step checked against the scene.

  overview    the count overview ("red3 green0 blue2, circle1 square2 triangle2.") is the scene's
  named       every fact the question combines is named with a number ("blue shapes3")
  values      ... and the first number given for each is the scene's count
  arithmetic  every "a×b=c", "a+b=c", "a-b=c" in the CoT is right
  option      multiple choice answered with a letter: the letter is the one whose option is the CoT's
              own result ("So the result is 6."), right or wrong: the lookup alone, apart from counting
  mc_value    multiple choice answered with a value instead of a letter (the grader maps an option's
              text to its letter, as MathVista's extraction does; the nano base answers so)
  row_checks  share of answers that count a fact row by row (the "rows" style)

A step that an answer does not take (no overview, no arithmetic, free form) is left out of that
step's share. Written by hand: the CoT wording is this project's own (nano_task, teachers).

    python -m visionr1 nano-steps outputs/nano [--models ci rl]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from visionr1 import grading, nano_task

STEPS = ("overview", "named", "values", "arithmetic", "option")
_OVERVIEW = re.compile(r"red(\d+) green(\d+) blue(\d+), circle(\d+) square(\d+) triangle(\d+)")
_EQUATION = re.compile(r"(\d+)([×+-])(\d+)=(\d+)")
_RESULT = re.compile(r"So the result is (-?\d+)")
_ROW_CHECK = re.compile(r"count the [a-z ]+ row by row")


def parse(sample: nano_task.Sample, response: str, extraction: str | None = None) -> dict:
    """The steps of one answer: each True / False, or None where the answer does not take it.
    `extraction`: 04's extracted answer, else the grader's extraction from the <answer> block."""
    think = response.split("</think>")[0]
    out: dict = {"row_checks": bool(_ROW_CHECK.search(think))}
    m = _OVERVIEW.search(think)
    out["overview"] = None if m is None else dict(zip(nano_task.COLORS + nano_task.SHAPES, map(int, m.groups()))) \
        == nano_task.scene_counts(sample.scene)
    facts = {k: v for k, v in sample.facts.items() if k != "factor"}
    given = {k: re.search(re.escape(k) + r"(-?\d+)", think) for k in facts}
    out["named"] = all(given.values())
    out["values"] = out["named"] and all(int(given[k].group(1)) == v for k, v in facts.items())
    eqs = _EQUATION.findall(think)
    out["arithmetic"] = None if not eqs else all(
        {"×": int(a) * int(b), "+": int(a) + int(b), "-": int(a) - int(b)}[op] == int(c) for a, op, b, c in eqs)
    out["option"] = out["mc_value"] = None
    if sample.choices is not None:
        if extraction is None:
            extraction = grading.extract_answer(response, sample.choices, block_only=True).answer
        letter = grading.match_option(extraction, sample.choices) if extraction else None
        letter = letter if letter and (extraction or "").strip("() .") == letter else None  # a value names its option too
        out["mc_value"] = letter is None
        result = _RESULT.search(think)
        if letter is not None and result:
            out["option"] = sample.choices[nano_task.LETTERS.index(letter)] == result.group(1)
    return out


def step_accuracy(samples: dict[str, nano_task.Sample], rows: list[dict]) -> dict[str, dict]:
    """Per question type (and "all"): n, accuracy (04's verdicts) and each step's share right."""
    groups: dict[str, list[tuple[dict, bool]]] = {}
    for r in rows:
        if r["id"] not in samples:
            raise KeyError(f"answer {r['id']!r} is not in the test split")
        s = samples[r["id"]]
        parsed = (parse(s, r["response"], r.get("extraction")), bool(r["correct"]))
        groups.setdefault(s.qtype, []).append(parsed)
        groups.setdefault("all", []).append(parsed)
    out = {}
    for qtype, items in sorted(groups.items(), key=lambda kv: (kv[0] == "all", kv[0])):
        entry = {"n": len(items), "accuracy": round(sum(c for _, c in items) / len(items), 3)}
        for step in STEPS + ("mc_value", "row_checks"):
            taken = [p[step] for p, _ in items if p[step] is not None]
            entry[step] = round(sum(taken) / len(taken), 3) if taken else None
            if step in ("overview", "arithmetic", "option", "mc_value"):
                entry[f"{step}_n"] = len(taken)
        out[qtype] = entry
    return out


def run_steps(run_dir: str | Path, models: list[str]) -> dict[str, dict]:
    """step_accuracy of each model's 04 answers in a run folder, on its own test split or, for a
    variant run (params eval_source_run), its source run's."""
    run = Path(run_dir)
    test_path = run / "00_data" / "test.jsonl"
    params = run / "params.yaml"
    if not test_path.exists() and params.exists():  # a Zero / Long run answers its source run's test split
        import yaml

        source = (yaml.safe_load(params.read_text()) or {}).get("eval_source_run")
        if source:
            test_path = run.parent / source / "00_data" / "test.jsonl"
    if not test_path.exists():
        raise FileNotFoundError(f"{test_path} not found: nano-steps needs a nano run that ran 00_data")
    samples = {s.id: s for s in nano_task.read_jsonl(test_path)}
    out = {}
    for model in models:
        path = run / "04_evaluate" / model / "nano.jsonl"
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: has 04_evaluate answered with {model!r}?")
        out[model] = step_accuracy(samples, [json.loads(line) for line in path.open() if line.strip()])
    return out


def markdown(result: dict[str, dict]) -> str:
    def pct(v):
        return "-" if v is None else f"{100 * v:.0f}%"

    lines = ["| model | question type | n | right | overview | named | values | arithmetic | option | value for a letter | row checks |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for model, per_type in result.items():
        for qtype, e in per_type.items():
            lines.append(f"| {model} | {qtype} | {e['n']} | {pct(e['accuracy'])} | " + " | ".join(
                pct(e[k]) for k in STEPS + ("mc_value", "row_checks")) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m visionr1 nano-steps", description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a nano run folder (outputs/<run>)")
    ap.add_argument("--models", nargs="+", default=["ci", "rl"], help="04's model names (default: ci rl)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a markdown table")
    a = ap.parse_args(argv)
    try:
        result = run_steps(a.run, a.models)
    except (FileNotFoundError, KeyError) as e:
        print(f"nano-steps: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=1) if a.json else markdown(result))
    return 0
