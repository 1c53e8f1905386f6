"""Our grader against math-verify on a fixed mixed set: items per second and verdict agreement.

    .venv/bin/python bench/grader.py [--repeat 3] [--mathvista DIR] [--suite JSON] [--suite-only] [--load N]

Also: HFRRF on the right and wrong option written 16 common ways inside <answer>; agreement with
math-verify's own regression suite (--suite-only: that alone; --load N: graded again with N busy-loop
processes competing for the CPUs, to show that a grade does not depend on how busy the machine is);
with --mathvista, agreement with the official verdicts of MathVista output files
(lupantech/MathVista results/*/output_*.json).

Each item is (category, response, gold, choices, truth): `truth` is the right verdict, known by
construction, so every disagreement says which side is wrong. Our grader: `extract_answer` then
`is_equivalent`. math-verify: `verify(parse("$gold$"), parse(response))` with its defaults (main thread).
"""

from __future__ import annotations

import argparse
import gc
import logging
import random
import time
from collections import Counter, defaultdict

from visionr1 import grading

logging.getLogger("math_verify").setLevel(logging.ERROR)

THINK = "<think> Okay, let's see. I look at the figure. Wait, let me check again. </think>"


def items() -> list[tuple]:
    rng = random.Random(0)
    out = []
    opts = ["35°", "145°", "55°", "125°"]
    for i in range(40):  # option letters, in the forms models write
        k = rng.randrange(4)
        letter = "ABCD"[k]
        form = rng.choice([letter, f"({letter})", f"{letter}.", f"{letter}: {opts[k]}", opts[k]])
        right = rng.random() < 0.5
        if not right:
            form = form.replace(letter, "ABCD"[(k + 1) % 4]) if letter in form else opts[(k + 1) % 4]
        out.append(("option", f"{THINK}<answer> Final Answer: {form} </answer>", letter, opts, right))
    for i in range(40):  # integers in free text
        v = rng.randrange(0, 500)
        p = v if rng.random() < 0.5 else v + rng.choice([-2, -1, 1, 3])
        out.append(("integer", f"There are {rng.randrange(2, 9)} groups. So the answer is {p}.", str(v), None, p == v))
    for i in range(40):  # decimals at a precision
        v = round(rng.uniform(0, 100), 3)
        p = round(v, 2) if rng.random() < 0.5 else round(v + 0.05, 2)
        out.append(("decimal", f"{THINK}<answer>{p}</answer>", str(round(v, 2)), None, round(p, 2) == round(v, 2)))
    for i in range(40):  # fractions: LaTeX, plain, decimal
        a, b = rng.randrange(1, 9), rng.randrange(2, 9)
        gold = f"\\frac{{{a}}}{{{b}}}"
        right = rng.random() < 0.5
        num = a if right else a + 1
        form = rng.choice([f"\\frac{{{num}}}{{{b}}}", f"{num}/{b}", f"{num / b:.6f}"])
        out.append(("fraction", f"{THINK}<answer>${form}$</answer>", gold, None, right))
    for c in (2, 3, 5, 7):  # LaTeX arithmetic, sets, intervals of numbers; a new constant each round (no cache helps)
        for p, g, t in [(f"\\frac{{\\sqrt{{{c}}}}}{{2}}", f"\\sqrt{{{c}}}/2", True), (f"\\{{1,{c}\\}}", f"\\{{{c},1\\}}", True),
                        (f"[1,{c})", f"[1, {c})", True), (f"(1,{c}]", f"[1,{c})", False),
                        (f"2\\sqrt{{{c}}}", f"\\sqrt{{{4 * c}}}", True), (f"\\dfrac{{{c}}}{{4}}", f"{c / 4}", True),
                        (f"\\frac{c}{{9}}", f"{c}/9", True), (f"{c}^{{2}}", f"{c * c + 1}", False)]:
            out.append(("latex", f"{THINK}<answer>${p}$</answer>", g, None, t))
    for c in (2, 3, 5, 7):  # symbols (variables, constants, functions): math-verify decides, by design
        for p, g, t in [(f"x^2+{c}", f"{c}+x^2", True), (f"{c}x", f"x \\cdot {c}", True), (f"{c}\\pi", f"{c}", False),
                        (f"x^2-{c * c}", f"(x-{c})(x+{c})", True), (f"\\pi/{c}", f"{180 // c}", False),
                        (f"\\sin^2({c}x)+\\cos^2({c}x)", "1", True), (f"x={c}", f"{c}", True),
                        (f"\\log_{{{c}}}({c * c})", "2", True), (f"\\sin({c}x)", f"\\cos({c}x)", False)]:
            out.append(("symbolic", f"{THINK}<answer>${p}$</answer>", g, None, t))
    out += real_style(rng)
    for i in range(20):  # long free text (~30K characters) with the answer at the end
        v = rng.randrange(0, 100)
        p = v if i % 2 else v + 1
        body = " ".join(rng.choice(["Wait,", "Hmm,", "let", "me", "recount", "the", "circles", "3", "plus", "4"])
                        for _ in range(6000))
        out.append(("long_text", f"<think>{body}</think><answer> Final Answer: {p} </answer>", str(v), None, p == v))
    return out


# Ways real models state an answer, in free text and inside <answer> (phrasings from the public
# MathVista outputs, lupantech/MathVista results/*/output_*.json, and math-verify's test suite)
FREE_FORMS = ["Thus, the answer is {v}.", "Therefore, the correct answer is {v}.</s>", "**Answer:** {v}",
              "So the final answer is $\\boxed{{{v}}}$.", "Final Answer: The final answer is ${v}$. I hope it is correct.",
              "There are 3 rows, so the total is $3 \\times 4 = {v}$", "答案是{v}"]
OPTION_FORMS = ["Thus, the answer is {L} ({T}).", "The correct option is ({L}) {T}.", "Answer: ({L}) {T}",
                "Therefore, the correct answer is ({L}) {T}.</s>", "The choice that matches this is {L}.",
                "<answer>**({L}) {T}**</answer>", "<answer>{L} ({T})</answer>", "<answer>The answer is {L}.</answer>",
                "<answer>Option {L}</answer>", "<answer>\\text{{({L})}} {T}</answer>", "故选：{L}"]


def real_style(rng: random.Random) -> list[tuple]:
    """Free-text and in-block answers as models write them; half right, half wrong by construction."""
    out = []
    for i in range(60):
        v = rng.randrange(2, 400)
        right = i % 2 == 0
        val = rng.choice([str(v), f"\\frac{{{2 * v}}}{{2}}", f"{v}.0"]) if right else str(v + rng.choice([-3, 1, 7]))
        out.append(("real_style", rng.choice(FREE_FORMS).format(v=val), str(v), None, right))
    opts = ["35°", "145°", "octopus", "decrease"]
    for i in range(60):
        k = rng.randrange(4)
        right = i % 2 == 0
        j = k if right else (k + 1 + rng.randrange(3)) % 4
        text = rng.choice(OPTION_FORMS).format(L="ABCD"[j], T=opts[j])
        out.append(("real_style", (THINK + text) if text.startswith("<answer>") else text, "ABCD"[k], opts, right))
    return out


HFRRF_FORMS = ["{L}", "({L})", "{L}.", "{L}: {T}", "({L}) {T}", "{L} ({T})", "{T}", "**{L}**", "**({L}) {T}**",
               "The answer is {L}.", "Option {L}", "\\text{{({L})}} {T}", "$\\boxed{{{L}}}$", "Final Answer: {L}",
               "$\\boxed{{\\text{{({L}) }} {T}}}$", "答案是{L}"]


def hfrrf_forms(items: list[dict]) -> dict:
    """HFRRF on multiple-choice items with the right option written in each of HFRRF_FORMS inside
    <answer> (must pay), and the next option written the same way (must not)."""
    from visionr1 import rewards

    paid = {"right": [], "wrong": []}
    for it in items:
        choices, k = it["choices"], it["choices"].index(it["answer"])
        j = (k + 1) % len(choices)
        for kind, idx in (("right", k), ("wrong", j)):
            if kind == "wrong" and choices[j] == choices[k]:
                continue
            comps = [f"{THINK}<answer>{f.format(L='ABCDEFGH'[idx], T=choices[idx])}</answer>" for f in HFRRF_FORMS]
            paid[kind] += rewards.hfrrf_reward(comps, answer=["ABCDEFGH"[k]] * len(comps), choices=[choices] * len(comps))
    return {k: sum(v) / len(v) for k, v in paid.items()} | {"items": len(items), "forms": len(HFRRF_FORMS)}


def mathvista_agreement(folder: str) -> None:
    """Our verdicts against the official ones on MathVista output files (output_*.json with
    response, extraction, true_false: lupantech/MathVista results/), code-execution settings and
    the random baselines left out; prints agreement per file and overall, and HFRRF on its items."""
    import glob
    import json

    from visionr1 import scoring

    files = [f for f in sorted(glob.glob(f"{folder}/output_*.json"))
             if not any(x in f for x in ("_code", "random", "frequent", "template"))]
    tot = agree = 0
    by_type: Counter = Counter()
    n_type: Counter = Counter()
    mc_items = {}
    t0 = time.perf_counter()
    for f in files:
        data = json.loads(open(f).read())
        a = 0
        for pid, rec in data.items():
            ok = scoring.score_record(rec)["true_false"] == bool(rec.get("true_false"))
            a += ok
            by_type[rec["question_type"]] += ok
            n_type[rec["question_type"]] += 1
            if rec["question_type"] == "multi_choice":
                mc_items[pid] = rec
        tot += len(data)
        agree += a
        print(f"{f.rsplit('/', 1)[-1]:50s} {a / len(data):.3f} ({len(data)})")
    dt = time.perf_counter() - t0
    print(f"agreement with the official verdicts {agree / tot:.4f} ({agree}/{tot}, {len(files)} files, "
          f"{tot / dt:.0f} answers/s); " + ", ".join(f"{k} {by_type[k] / n_type[k]:.4f}" for k in sorted(n_type)))
    h = hfrrf_forms(list(mc_items.values()))
    print(f"HFRRF on {h['items']} multiple-choice items x {h['forms']} forms: right options paid {h['right']:.4f}, "
          f"wrong options paid {h['wrong']:.4f}")
    print("grading counters:", {k: grading.STATS[k] for k in grading.COUNTERS})


def spin() -> None:
    while True:
        pass


def math_verify_suite(path: str, load: int = 0) -> None:
    """Our verdicts against math-verify's expected ones on its own regression cases (a JSON list
    of {gold, pred, expected}; tests/fixtures/grading/math_verify_cases.json holds them). With
    `load`, graded twice, each from a fresh worker: alone, then with `load` busy-loop processes
    competing for the CPUs; prints both and how many verdicts differ."""
    import json
    import multiprocessing

    data = json.loads(open(path).read())
    cases = data["cases"] if isinstance(data, dict) else data
    runs = []
    for busy in sorted({0, load}):
        grading.shutdown_worker()
        grading.clear_caches()  # both passes start from the same state
        grading.is_equivalent("x^2+1", "1+x^2")  # the worker starts outside the measurement
        before = dict(grading.STATS)
        spinners = [multiprocessing.Process(target=spin, daemon=True) for _ in range(busy)]
        for p in spinners:
            p.start()
        t0 = time.perf_counter()
        verdicts = []
        for c in cases:
            ext = grading.extract_answer(c["pred"], block_only=False)
            gold = grading.extract_answer(c["gold"]).answer if "\\boxed" in c["gold"] else grading.clean_answer(c["gold"])
            verdicts.append(ext.answer is not None and grading.gradeable(gold or "")
                            and grading.is_equivalent(ext.answer, gold or ""))
        dt = time.perf_counter() - t0
        for p in spinners:
            p.kill()
        agree = sum(v is bool(c["expected"]) for v, c in zip(verdicts, cases))
        runs.append(verdicts)
        print(f"math-verify regression suite, {busy} busy processes beside it: agreement {agree / len(cases):.4f} "
              f"({agree}/{len(cases)}), {len(cases) / dt:.0f} cases/s; "
              f"counters {dict((k, grading.STATS[k] - before.get(k, 0)) for k in grading.COUNTERS)}")
    if len(runs) == 2:
        print(f"verdicts that differ between the two: {sum(a != b for a, b in zip(*runs))} of {len(cases)}")


def ours(response, gold, choices):
    ext = grading.extract_answer(response, choices, block_only=False)
    precision = 2 if gold.replace(".", "", 1).isdigit() and "." in gold else None
    return ext.answer is not None and grading.is_equivalent(ext.answer, gold, precision=precision, choices=choices)


def math_verify(response, gold, choices):
    from math_verify import parse, verify

    return bool(verify(parse(f"${gold}$"), parse(response)))  # gold wrapped so it is read whole


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--mathvista", metavar="DIR", help="also: agreement with official verdicts on DIR/output_*.json")
    ap.add_argument("--suite", metavar="JSON", default="tests/fixtures/grading/math_verify_cases.json",
                    help="math-verify's regression cases (default: the repo's fixture)")
    ap.add_argument("--suite-only", action="store_true", help="only the agreement on math-verify's regression cases")
    ap.add_argument("--load", type=int, default=0, metavar="N",
                    help="grade the regression cases twice, from a fresh worker each time: alone, then with N "
                         "busy-loop processes competing for the CPUs; prints how many verdicts differ")
    args = ap.parse_args()
    if args.suite_only:
        math_verify_suite(args.suite, args.load)
        return
    if args.mathvista:
        mathvista_agreement(args.mathvista)
    else:
        import json

        rows = json.loads(open("tests/fixtures/grading/mathvista_sample.json").read())["rows"]
        mc = {str(r["choices"]) + r["answer"]: r for r in rows if r["question_type"] == "multi_choice"}
        h = hfrrf_forms(list(mc.values()))
        print(f"HFRRF on {h['items']} multiple-choice items (fixture) x {h['forms']} forms: right options paid "
              f"{h['right']:.4f}, wrong options paid {h['wrong']:.4f}")
    if args.suite:
        math_verify_suite(args.suite, args.load)
    data = items()
    for cat in {d[0]: d for d in data}.values():  # warm both on one item per category (worker, parsers, regexes)
        ours(*cat[1:4])
        math_verify(*cat[1:4])
    times = {"ours": defaultdict(float), "math-verify": defaultdict(float)}
    verdicts = {}
    for name, fn in (("ours", ours), ("math-verify", math_verify)):
        for _ in range(args.repeat):
            grading.clear_caches()  # every round starts cold: no memoized answer helps
            gc.collect()  # and the freed caches are not collected inside the first timed item
            for i, (cat, resp, gold, ch, truth) in enumerate(data):
                t0 = time.perf_counter()
                v = fn(resp, gold, ch)
                times[name][cat] += time.perf_counter() - t0
                verdicts[name, i] = v
    cats = sorted({d[0] for d in data})
    n_cat = {c: sum(d[0] == c for d in data) * args.repeat for c in cats}
    print(f"{'category':10s} {'items':>5s} {'ours items/s':>13s} {'math-verify items/s':>20s} {'speed-up':>9s}"
          f" {'ours right':>10s} {'m-v right':>9s}")
    for c in cats + ["all"]:
        sel = cats if c == "all" else [c]
        n = sum(n_cat[x] for x in sel)
        to, tm = sum(times["ours"][x] for x in sel), sum(times["math-verify"][x] for x in sel)
        idx = [i for i, d in enumerate(data) if d[0] in sel]
        right_o = sum(verdicts["ours", i] == data[i][4] for i in idx)
        right_m = sum(verdicts["math-verify", i] == data[i][4] for i in idx)
        print(f"{c:10s} {n // args.repeat:>5d} {n / to:>13.0f} {n / tm:>20.0f} {tm / to:>8.1f}x"
              f" {right_o:>6d}/{len(idx):<3d} {right_m:>5d}/{len(idx):<3d}")
    dis = [i for i in range(len(data)) if verdicts["ours", i] != verdicts["math-verify", i]]
    print(f"\nagreement {1 - len(dis) / len(data):.3f} ({len(data) - len(dis)}/{len(data)}); "
          "disagreements by category (count, who is wrong, one example):")
    by_cat: dict[str, list[int]] = defaultdict(list)
    for i in dis:
        by_cat[data[i][0]].append(i)
    for i, d in enumerate(data):
        if verdicts["ours", i] != d[4]:
            print(f"  ours wrong: [{d[0]}] gold {d[2]!r} truth {d[4]} | {d[1][-60:]!r}")
    for cat, idx in by_cat.items():
        wrong = Counter("math-verify" if verdicts["ours", i] == data[i][4] else "ours" for i in idx)
        cat_, resp, gold, ch, truth = data[idx[0]]
        shown = resp if len(resp) < 110 else resp[:30] + " ... " + resp[-70:]
        print(f"  {cat:9s} {len(idx):3d}  wrong: {dict(wrong)}  e.g. gold {gold!r} (truth {truth}): {shown!r}")


if __name__ == "__main__":
    main()
