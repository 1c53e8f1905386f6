"""The paper's findings (docs/recipe.md §4-§6), each judged on a sweep's runs: reproduced, not
reproduced or not measurable, with the paper's figure beside ours (issue 41, deliverable 3).

Each finding is one function of a grid label's runs by variant (visionr1.compare.Run lists under
"vision-r1", "zero", "long") returning {"id", "finding", "paper", "ours", "values", "verdict",
"reason"}. The definitions were fixed before anything was measured, and stay fixed: a finding
that does not reproduce is reported as such (issue 41's rules for the evidence).

  F1  cold start teaches the format: 02's CI format rate >= 0.9 on every seed.
  F2  CI below base by a margin comparable to the paper's 5.1 points: 0 < mean(base - CI) <= 10.2
      points on 04's benchmark accuracy (within a factor 2).
  F3  RL from CI >= CI + 0.10 held-out (03's ci_accuracy, rl_accuracy) on every seed, AND RL > the
      compute-matched SFT control (03's control_accuracy; rl_sft_control) on every seed.
  F4  RL improves the multi-step questions: pooled over 04's nano question types of level 2-3,
      mean RL > mean CI and mean RL > mean base.
  F5  Vision-R1 >= base overall: means of 04's benchmark accuracy.
  F6  Zero learns (03's reward_last10 > reward_first10 on every seed), Vision-R1 > Zero (04's
      accuracy means) and Zero's CoTs do not lengthen (seed means: length_last10 <= 1.1 x
      length_first10).
  F7  Long lengthens its CoTs (seed means: length_last10 > length_first10) and ends below
      Vision-R1 (04's accuracy means); PTST first shortens then lengthens: on Vision-R1's seed-mean
      length curve, some k-step window of stage 1 averages below the first k steps, and the last k
      steps average above that window (k = 10, or half the steps on a run shorter than 20,
      as curves.first_last_mean).
  F8  overthinking at CI: CI's 04 outputs in 05's length buckets, seed means: accuracy of the
      longest bucket < that of the shortest.

Means between variants are over the seeds both have. A finding whose inputs are absent (no zero
variant, no SFT control, no 05 buckets) is "not measurable", naming what is missing; one measured
on fewer than 2 seeds says so in its reason. A conjunction is "not reproduced" when any measured
part fails, else "not measurable" when any part could not be measured.
"""

from __future__ import annotations

import json
from pathlib import Path

from visionr1.compare import Run, Sweep, mean_sd, seeds_count

REPRODUCED, NOT_REPRODUCED, NOT_MEASURABLE = "reproduced", "not reproduced", "not measurable"
F2_MAX_GAP = 2 * (49.6 - 44.5)  # points: the paper's base -> CI drop, within a factor 2
F3_MIN_GAIN = 0.10  # share of held-out questions
F6_MAX_GROWTH = 1.1  # Zero's last-10 over first-10 mean length


# ---------------------------------------------------------------------------------------------
# Shared pieces
# ---------------------------------------------------------------------------------------------
def seed_values(runs: list[Run], key: str) -> dict[int, float]:
    """{seed: figure `key`} of the runs that hold it."""
    return {r.seed: r.figures[key] for r in runs if key in r.figures}


def common(*per_seed: dict[int, float]) -> list[int]:
    """The seeds every mapping has, sorted."""
    seeds = set(per_seed[0])
    for d in per_seed[1:]:
        seeds &= set(d)
    return sorted(seeds)


def mean(values: dict[int, float] | list[float]) -> float:
    vals = list(values.values()) if isinstance(values, dict) else values
    return sum(vals) / len(vals)


def fmt(values: dict[int, float] | list[float], scale: float = 1.0, decimals: int = 1) -> str:
    """'mean ± sd' of `values` x `scale` at `decimals` places (the mean alone for one value).

    >>> fmt({0: 0.70, 1: 0.72}, scale=100)
    '71.0 ± 1.4'
    >>> fmt([66.5])
    '66.5'
    """
    vals = [scale * v for v in (values.values() if isinstance(values, dict) else values)]
    m, sd = mean_sd(vals)
    return f"{m:.{decimals}f}" if sd is None else f"{m:.{decimals}f} ± {sd:.{decimals}f}"


def seeds_text(seeds) -> str:
    return ", ".join(str(s) for s in sorted(seeds))


def verdict(parts: list[tuple[bool | None, str]]) -> tuple[str, str]:
    """(verdict, reason) of a finding's parts, each (held: True, failed: False, not measurable:
    None; its sentence). Any failed part fails the finding; else any unmeasured part leaves it
    not measurable; the reason names the parts that decided it.

    >>> verdict([(True, "a held"), (None, "b absent")])
    ('not measurable', 'b absent (a held)')
    >>> verdict([(False, "a failed"), (None, "b absent")])
    ('not reproduced', 'a failed (b absent)')
    """
    for decisive, name in ((False, NOT_REPRODUCED), (None, NOT_MEASURABLE)):
        deciding = [t for ok, t in parts if ok is decisive]
        if deciding:
            rest = [t for ok, t in parts if ok is not decisive]
            return name, "; ".join(deciding) + (f" ({'; '.join(rest)})" if rest else "")
    return REPRODUCED, "; ".join(t for _, t in parts)


def finding(fid: str, title: str, paper: str, ours: str, values: dict, parts: list[tuple[bool | None, str]],
            seeds) -> dict:
    """A finding's record; the reason ends with a note when one seed alone was measured (with none,
    it already says which input is missing)."""
    result, reason = verdict(parts)
    if len(seeds) == 1:
        reason += f"; measured on 1 seed ({seeds_text(seeds)}), no spread over seeds"
    return {"id": fid, "finding": title, "paper": paper, "ours": ours or "-", "values": values,
            "verdict": result, "reason": reason + "."}


def acc_key(model: str, benchmark: str) -> str:
    return f"04.{model}.{benchmark}.accuracy"


# ---------------------------------------------------------------------------------------------
# The findings
# ---------------------------------------------------------------------------------------------
def cold_start_format(groups: dict[str, list[Run]], benchmark: str = "nano") -> dict:
    """F1: the cold-start SFT alone teaches the <think>/<answer> format (RL then needs no system prompt)."""
    rate = seed_values(groups.get("vision-r1", []), "02.format_rate")
    if not rate:
        parts = [(None, "no CI format rate (02_cold_start_sft/metrics.json format_rate) in the vision-r1 runs")]
    else:
        low = {s: v for s, v in rate.items() if v < 0.9}
        if low:
            parts = [(False, "CI format rate below 0.9 on seed " + ", ".join(f"{s} ({v:.3f})" for s, v in low.items()))]
        else:
            parts = [(True, f"CI format rate >= 0.9 on every seed (lowest {min(rate.values()):.3f})")]
    return finding("F1", "Cold start teaches the format (CI format rate >= 0.9 on every seed)",
                   "the CI model follows the `<think>` / `<answer>` format without a system prompt, so RL uses none "
                   "(no rate published)", f"CI format rate {fmt(rate, 100)}%" if rate else "", rate, parts, rate)


def ci_below_base(groups: dict[str, list[Run]], benchmark: str = "nano") -> dict:
    """F2: the CI model scores below the base model, by about the paper's margin."""
    runs = groups.get("vision-r1", [])
    base, ci = seed_values(runs, acc_key("base", benchmark)), seed_values(runs, acc_key("ci", benchmark))
    seeds = common(base, ci)
    gap = {s: base[s] - ci[s] for s in seeds}
    values = {s: {"base": base[s], "ci": ci[s], "gap": round(gap[s], 2)} for s in seeds}
    if not seeds:
        parts = [(None, f"no base and CI accuracy on {benchmark} (04_evaluate/metrics.json) in the vision-r1 runs")]
        ours = ""
    else:
        g = mean(gap)
        ok = 0 < g <= F2_MAX_GAP
        where = "not below base" if g <= 0 else f"{'within' if ok else 'beyond'} the paper's 5.1 x 2 = {F2_MAX_GAP:.1f}"
        parts = [(ok, f"CI is {g:.1f} points under base on {benchmark} ({where})")]
        ours = (f"base {fmt({s: base[s] for s in seeds})} -> CI {fmt({s: ci[s] for s in seeds})} "
                f"({benchmark}, {fmt(gap)} points below)")
    return finding("F2", "CI below base by a margin comparable to the paper's (0 < base - CI <= 10.2 points)",
                   "base 49.6 -> CI 44.5 (avg MathVista / MathVerse / MM-Math): 5.1 points below",
                   ours, values, parts, seeds)


def rl_beats_ci(groups: dict[str, list[Run]], benchmark: str = "nano") -> dict:
    """F3: RL from CI gains at least 10 held-out points on every seed, and beats more SFT for the
    same compute (the control answers whether RL beats simply training longer)."""
    runs = groups.get("vision-r1", [])
    ci, rl, ctl = (seed_values(runs, f"03.{k}_accuracy") for k in ("ci", "rl", "control"))
    seeds = common(ci, rl)
    gain = {s: rl[s] - ci[s] for s in seeds}
    values = {s: {"ci": ci[s], "rl": rl[s], "control": ctl.get(s)} for s in seeds}
    if not seeds:
        missing = "no held-out ci_accuracy and rl_accuracy (03_grpo_ptst/metrics.json) in the vision-r1 runs"
        return finding("F3", F3_TITLE, F3_PAPER, "", values, [(None, missing)], [])
    short = {s: g for s, g in gain.items() if g < F3_MIN_GAIN - 1e-9}
    parts = [(not short, "RL >= CI + 0.10 held-out on every seed (smallest gain "
              f"{min(gain.values()):+.3f})" if not short else
              "RL < CI + 0.10 held-out on seed " + ", ".join(f"{s} ({g:+.3f})" for s, g in short.items()))]
    no_ctl = [s for s in seeds if s not in ctl]
    if len(no_ctl) == len(seeds):
        parts.append((None, "no SFT control (03's control_accuracy; rl_sft_control was off), "
                            "so RL vs control is not measurable"))
    elif no_ctl:
        parts.append((None, f"no SFT control on seed {seeds_text(no_ctl)}, "
                            "so RL vs control is not measurable on every seed"))
    else:
        lost = {s: rl[s] - ctl[s] for s in seeds if rl[s] <= ctl[s]}
        parts.append((not lost, "RL > SFT control on every seed" if not lost else
                       "RL <= SFT control on seed " + ", ".join(f"{s} ({d:+.3f})" for s, d in lost.items())))
    ours = (f"held-out CI {fmt({s: ci[s] for s in seeds}, 100)} -> RL {fmt({s: rl[s] for s in seeds}, 100)} "
            f"({fmt(gain, 100)} points)" + (f"; SFT control {fmt(ctl, 100)}" if ctl else ""))
    return finding("F3", F3_TITLE, F3_PAPER, ours, values, parts, seeds)


F3_TITLE = "RL from CI >= CI + 0.10 held-out on every seed, and above the compute-matched SFT control"
F3_PAPER = "CI 44.5 -> Vision-R1 55.4 (+10.9 points); the paper has no compute-matched SFT control"


def multi_step(groups: dict[str, list[Run]], benchmark: str = "nano") -> dict:
    """F4: RL's gain reaches the questions that need several steps, not only one-step counting
    (on the nano split, where each question type has a step count)."""
    runs = groups.get("vision-r1", [])
    per = {m: seed_values(runs, f"04.{m}.nano.multi_step") for m in ("base", "ci", "rl")}
    seeds = common(*per.values())
    one = {m: seed_values(runs, f"04.{m}.nano.one_step") for m in per}
    values = {s: {**{m: per[m][s] for m in per}, **{f"{m}_one_step": one[m].get(s) for m in one}} for s in seeds}
    if not seeds:
        parts = [(None, "no multi-step accuracy of base, CI and RL on nano (04_evaluate/metrics.json per question type)")]
        ours = ""
    else:
        m = {k: mean({s: v[s] for s in seeds}) for k, v in per.items()}
        parts = [(m["rl"] > m["ci"], f"multi-step RL {m['rl']:.1f} {'>' if m['rl'] > m['ci'] else '<='} CI {m['ci']:.1f}"),
                 (m["rl"] > m["base"], f"RL {'>' if m['rl'] > m['base'] else '<='} base {m['base']:.1f}")]
        ours = "multi-step (levels 2-3) " + ", ".join(f"{k} {fmt({s: v[s] for s in seeds})}" for k, v in per.items())
    return finding("F4", "RL improves the multi-step questions (RL > CI and RL > base on them)",
                   "gains on multi-step math: MathVerse 46.7 -> 52.4, MM-Math 34.1 -> 40.2 (base -> Vision-R1-7B)",
                   ours, values, parts, seeds)


def beats_base(groups: dict[str, list[Run]], benchmark: str = "nano") -> dict:
    """F5: the end of the recipe scores at least as well as where it started."""
    runs = groups.get("vision-r1", [])
    base, rl = seed_values(runs, acc_key("base", benchmark)), seed_values(runs, acc_key("rl", benchmark))
    seeds = common(base, rl)
    values = {s: {"base": base[s], "rl": rl[s]} for s in seeds}
    if not seeds:
        parts, ours = [(None, f"no base and RL accuracy on {benchmark} (04_evaluate/metrics.json)")], ""
    else:
        b, r = mean({s: base[s] for s in seeds}), mean({s: rl[s] for s in seeds})
        parts = [(r >= b, f"Vision-R1 {r:.1f} {'>=' if r >= b else '<'} base {b:.1f} on {benchmark}")]
        ours = f"base {fmt({s: base[s] for s in seeds})}, Vision-R1 {fmt({s: rl[s] for s in seeds})} ({benchmark})"
    return finding("F5", "Vision-R1 >= base overall", "Vision-R1 55.4 vs base 49.6 (avg MathVista / MathVerse / MM-Math)",
                   ours, values, parts, seeds)


def variant_below(groups: dict[str, list[Run]], variant: str, benchmark: str) -> tuple[bool | None, str, dict]:
    """(Vision-R1 > `variant` on 04's accuracy means over their common seeds, its sentence, the values)."""
    vr = seed_values(groups.get("vision-r1", []), acc_key("rl", benchmark))
    other = seed_values(groups.get(variant, []), acc_key("rl", benchmark))
    seeds = common(vr, other)
    if not seeds:
        return None, f"no RL accuracy on {benchmark} of both vision-r1 and {variant} (04_evaluate/metrics.json)", {}
    a, b = mean({s: vr[s] for s in seeds}), mean({s: other[s] for s in seeds})
    return (a > b, f"Vision-R1 {a:.1f} {'>' if a > b else '<='} {variant.capitalize()} {b:.1f} on {benchmark}",
            {s: {"vision-r1": vr[s], variant: other[s]} for s in seeds})


def zero(groups: dict[str, list[Run]], benchmark: str = "nano") -> dict:
    """F6: RL straight from the base model learns, but less than Vision-R1, and without long CoTs."""
    runs = groups.get("zero", [])
    title = "Zero learns (reward rises), Vision-R1 > Zero, Zero's CoTs do not lengthen"
    paper = "Zero 50.7 vs Vision-R1 55.4; Zero's average output length 1285 tokens (CI 3566, Vision-R1 2057)"
    if not runs:
        return finding("F6", title, paper, "", {}, [(None, "no zero variant in the sweep (--variants ...,zero)")], [])
    r1, r2, l1, l2 = (seed_values(runs, f"03.{k}") for k in ("reward_first10", "reward_last10",
                                                            "length_first10", "length_last10"))
    seeds = common(r1, r2, l1, l2)
    values = {s: {"reward_first10": r1[s], "reward_last10": r2[s], "length_first10": l1[s], "length_last10": l2[s]}
              for s in seeds}
    if not seeds:
        parts = [(None, "no reward / length first10 / last10 in the zero runs' 03_grpo_ptst/metrics.json")]
    else:
        flat = [s for s in seeds if r2[s] <= r1[s]]
        parts = [(not flat, "Zero's reward rises on every seed" if not flat else
                  "Zero's reward does not rise on seed " + ", ".join(f"{s} ({r1[s]:.3f} -> {r2[s]:.3f})" for s in flat))]
        a, b = mean({s: l1[s] for s in seeds}), mean({s: l2[s] for s in seeds})
        parts.append((b <= F6_MAX_GROWTH * a, f"Zero's mean length {a:.0f} -> {b:.0f} tokens "
                      f"({'within' if b <= F6_MAX_GROWTH * a else 'beyond'} x{F6_MAX_GROWTH})"))
    ok, text, acc = variant_below(groups, "zero", benchmark)
    parts.insert(1, (ok, text))
    for s, v in acc.items():
        values.setdefault(s, {}).update(v)
    ours = (f"Zero reward {fmt({s: r1[s] for s in seeds}, 1, 3)} -> {fmt({s: r2[s] for s in seeds}, 1, 3)}, "
            f"length {fmt({s: l1[s] for s in seeds}, 1, 0)} -> {fmt({s: l2[s] for s in seeds}, 1, 0)}" if seeds else "")
    if acc:
        ours += (", " if ours else "") + (f"{benchmark} Vision-R1 {fmt({s: v['vision-r1'] for s, v in acc.items()})} "
                                         f"vs Zero {fmt({s: v['zero'] for s, v in acc.items()})}")
    return finding("F6", title, paper, ours, values, parts, seeds or list(acc))


def window_dip(steps: list[dict], key: str = "completions/mean_length", n: int = 10) -> dict | None:
    """PTST's length dip on one length curve (per-step records with "stage"): the first k steps'
    mean, the lowest mean of k consecutive steps within stage 1, and the last k steps' mean (k = n,
    or half the steps on a shorter run, as curves.first_last_mean). None when stage 1 has fewer
    than k steps.

    >>> rows = [{"stage": 1 if i < 6 else 2, key: v} for i, v in enumerate([9, 9, 5, 5, 6, 6, 8, 8])
    ...         for key in ["completions/mean_length"]]
    >>> window_dip(rows, n=2)
    {'k': 2, 'first': 9.0, 'stage1_min': 5.0, 'last': 8.0}
    """
    k = min(n, max(1, len(steps) // 2))
    vals = [r[key] for r in steps]
    stage1 = [r[key] for r in steps if int(r.get("stage", 1)) == 1]
    if len(stage1) < k:
        return None
    windows = [sum(stage1[i:i + k]) / k for i in range(len(stage1) - k + 1)]
    return {"k": k, "first": sum(vals[:k]) / k, "stage1_min": min(windows), "last": sum(vals[-k:]) / k}


def seed_mean_curve(runs: list[Run], key: str = "completions/mean_length") -> list[dict]:
    """Per step, the mean over seeds of `key`, with the step's PTST stage (from the first seed
    that logged the step)."""
    by_step: dict[int, list] = {}
    for r in runs:
        for rec in r.steps:
            if key in rec:
                by_step.setdefault(int(rec["step"]), []).append(rec)
    return [{"step": s, "stage": recs[0].get("stage", 1), key: sum(x[key] for x in recs) / len(recs)}
            for s, recs in sorted(by_step.items())]


def long_and_ptst(groups: dict[str, list[Run]], benchmark: str = "nano") -> dict:
    """F7: one long stage lengthens the CoTs and ends below PTST, while PTST first shortens the
    CoTs and then lets them grow (the overthinking optimization problem, docs/recipe.md §6 D)."""
    long_runs = groups.get("long", [])
    parts: list[tuple[bool | None, str]] = []
    values: dict = {}
    ours = []
    if not long_runs:
        parts.append((None, "no long variant in the sweep (--variants ...,long)"))
    else:
        l1, l2 = (seed_values(long_runs, f"03.{k}") for k in ("length_first10", "length_last10"))
        seeds = common(l1, l2)
        if seeds:
            a, b = mean({s: l1[s] for s in seeds}), mean({s: l2[s] for s in seeds})
            trend = "lengthens" if b > a else "does not lengthen"
            parts.append((b > a, f"Long's mean length {a:.0f} -> {b:.0f} tokens ({trend})"))
            ours.append(f"Long length {fmt({s: l1[s] for s in seeds}, 1, 0)} -> {fmt({s: l2[s] for s in seeds}, 1, 0)}")
            values.update({s: {"long_length_first10": l1[s], "long_length_last10": l2[s]} for s in seeds})
        else:
            parts.append((None, "no length first10 / last10 in the long runs' 03_grpo_ptst/metrics.json"))
        ok, text, acc = variant_below(groups, "long", benchmark)
        parts.append((ok, text))
        for s, v in acc.items():
            values.setdefault(s, {}).update(v)
        if acc:
            ours.append(f"{benchmark} Vision-R1 {fmt({s: v['vision-r1'] for s, v in acc.items()})} "
                        f"vs Long {fmt({s: v['long'] for s, v in acc.items()})}")
    vr = [r for r in groups.get("vision-r1", []) if r.steps]
    dip = window_dip(seed_mean_curve(vr)) if vr else None
    if dip is None:
        parts.append((None, "no Vision-R1 length curve with a stage 1 of enough steps (03_grpo_ptst/metrics.json)"))
    else:
        ok = dip["stage1_min"] < dip["first"] and dip["last"] > dip["stage1_min"]
        parts.append((ok, f"Vision-R1's {dip['k']}-step mean length {dip['first']:.0f} -> stage-1 low "
                      f"{dip['stage1_min']:.0f} -> last {dip['last']:.0f} tokens "
                      f"({'shortens then lengthens' if ok else 'not a dip then a rise'})"))
        ours.append(f"Vision-R1 length {dip['first']:.0f} -> {dip['stage1_min']:.0f} -> {dip['last']:.0f} (seed mean)")
        values["vision-r1_length_curve"] = dip
    seeds = sorted({s for s in values if isinstance(s, int)} | {r.seed for r in vr})
    return finding("F7", "Long without PTST lengthens its CoTs and ends below Vision-R1; PTST first shortens, "
                   "then lengthens", "Long (16K x 4) 47.7 vs Vision-R1 55.4, Long's length 3107 tokens; Vision-R1's "
                   "length ~2.3K -> ~1.3K by step 100 -> ~2K by step 200", "; ".join(ours), values, parts, seeds)


def overthinking(groups: dict[str, list[Run]], benchmark: str = "nano") -> dict:
    """F8: at CI, longer outputs are less often right (05's length buckets of CI's 04 outputs)."""
    runs = [r for r in groups.get("vision-r1", []) if r.buckets.get("ci")]
    title = "Overthinking at CI: longer outputs less accurate (longest length bucket < shortest)"
    paper = "CI on MathVerse, outputs 0-4K / 4K-8K / 8K+ tokens: accuracy 41% / 28% / 7% (75% / 11% / 14% of outputs)"
    if not runs:
        return finding("F8", title, paper, "", {}, [(None, "no length buckets of CI in 05_curves/metrics.json")], [])
    first, last = runs[0].buckets["ci"][0]["label"], runs[0].buckets["ci"][-1]["label"]
    values = {r.seed: {b["label"]: {"share": b["share"], "accuracy": b["accuracy"], "n": b["n"]}
                       for b in r.buckets["ci"]} for r in runs}
    short = {r.seed: r.buckets["ci"][0]["accuracy"] for r in runs if r.buckets["ci"][0]["accuracy"] is not None}
    long_ = {r.seed: r.buckets["ci"][-1]["accuracy"] for r in runs if r.buckets["ci"][-1]["accuracy"] is not None}
    shares = {r.seed: r.buckets["ci"][-1]["share"] for r in runs}
    n_long = sum(r.buckets["ci"][-1]["n"] for r in runs)
    if not short or not long_:
        empty = first if not short else last
        parts = [(None, f"no CI output fell in the {empty} bucket on any seed")]
        ours = f"CI outputs in {last}: {fmt(shares, 100)}%"
    else:
        a, b = mean(short), mean(long_)
        parts = [(b < a, f"CI accuracy {100 * b:.1f}% in the longest bucket ({last}, {n_long} outputs over "
                  f"{len(runs)} seeds) {'<' if b < a else '>='} {100 * a:.1f}% in the shortest ({first})")]
        ours = (f"CI accuracy {first}: {fmt(short, 100)}%, {last}: {fmt(long_, 100)}% "
                f"({fmt(shares, 100)}% of outputs in {last})")
    return finding("F8", title, paper, ours, values, parts, [r.seed for r in runs])


FINDINGS = (cold_start_format, ci_below_base, rl_beats_ci, multi_step, beats_base, zero, long_and_ptst, overthinking)


# ---------------------------------------------------------------------------------------------
# A sweep's findings and their files
# ---------------------------------------------------------------------------------------------
def judge(sweep: Sweep, benchmark: str = "nano") -> list[dict]:
    """Every finding for each grid label of the sweep (each record carries its "label"; '' without a grid)."""
    out = []
    for label in sweep.labels():
        groups = {variant: runs for (lab, variant), runs in sweep.groups().items() if lab == label}
        out += [{**f(groups, benchmark), "label": label} for f in FINDINGS]
    return out


def markdown(found: list[dict]) -> str:
    """The findings as a markdown table, one row per finding (and grid label): finding, paper,
    ours, verdict, reason: the README's table."""
    labelled = any(f["label"] for f in found)
    head = (["grid"] if labelled else []) + ["finding", "paper", "ours", "verdict", "reason"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for f in found:
        cells = ([f["label"]] if labelled else []) + [f"{f['id']}. {f['finding']}", f["paper"], f["ours"],
                                                        f"**{f['verdict']}**", f["reason"]]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def write(sweep: Sweep, found: list[dict], out_dir: str | Path) -> tuple[Path, Path]:
    """findings.json ({"sweep", "command", "seeds", "findings"}) and findings.md in `out_dir`."""
    out_dir = Path(out_dir)
    js = out_dir / "findings.json"
    js.write_text(json.dumps({"sweep": sweep.name, "command": sweep.command, "seeds": sweep.seeds,
                              "findings": found}, indent=2, default=str))
    md = out_dir / "findings.md"
    md.write_text(f"Sweep `{sweep.name}` ({seeds_count(len(sweep.seeds))}: {seeds_text(sweep.seeds)}), made by\n\n"
                  f"    {sweep.command}\n\n" + markdown(found))
    return js, md

