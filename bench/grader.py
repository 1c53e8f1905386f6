"""Our grader against math-verify on a fixed mixed set: items per second and verdict agreement.

    .venv/bin/python bench/grader.py [--repeat 3]

Each item is (category, response, gold, choices, truth): `truth` is the right verdict, known by
construction, so every disagreement says which side is wrong. Our grader: `extract_answer` then
`is_equivalent`. math-verify: `verify(parse("$gold$"), parse(response))` with its defaults (main thread).
"""

from __future__ import annotations

import argparse
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
    for c in (2, 3, 5, 7):  # LaTeX expressions, sets, intervals; a new constant each round (no cache helps)
        for p, g, t in [(f"x^2+{c}", f"{c}+x^2", True), (f"{c}x", f"x \\cdot {c}", True),
                        (f"\\frac{{\\sqrt{{{c}}}}}{{2}}", f"\\sqrt{{{c}}}/2", True),
                        (f"\\{{1,{c}\\}}", f"\\{{{c},1\\}}", True), (f"[1,{c})", f"[1, {c})", True),
                        (f"(1,{c}]", f"[1,{c})", False), (f"{c}\\pi", f"{c}", False),
                        (f"2\\sqrt{{{c}}}", f"\\sqrt{{{4 * c}}}", True), (f"x^2-{c * c}", f"(x-{c})(x+{c})", True),
                        (f"\\pi/{c}", f"{180 // c}", False)]:
            out.append(("latex", f"{THINK}<answer>${p}$</answer>", g, None, t))
    for c in (2, 3, 5, 7):  # beyond the hand-written fast path (functions, equations): math-verify decides
        for p, g, t in [(f"\\sin^2({c}x)+\\cos^2({c}x)", "1", True), (f"x={c}", f"{c}", True),
                        (f"\\log_{{{c}}}({c * c})", "2", True), (f"\\sin({c}x)", f"\\cos({c}x)", False)]:
            out.append(("latex_other", f"{THINK}<answer>${p}$</answer>", g, None, t))
    for i in range(20):  # long free text (~30K characters) with the answer at the end
        v = rng.randrange(0, 100)
        p = v if i % 2 else v + 1
        body = " ".join(rng.choice(["Wait,", "Hmm,", "let", "me", "recount", "the", "circles", "3", "plus", "4"])
                        for _ in range(6000))
        out.append(("long_text", f"<think>{body}</think><answer> Final Answer: {p} </answer>", str(v), None, p == v))
    return out


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
    args = ap.parse_args()
    data = items()
    ours(*data[-1][1:4])  # start the math-verify worker outside the timing
    math_verify(*data[0][1:4])
    times = {"ours": defaultdict(float), "math-verify": defaultdict(float)}
    verdicts = {}
    for name, fn in (("ours", ours), ("math-verify", math_verify)):
        for _ in range(args.repeat):
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
