"""Rewards with TRL's signature: format, accuracy, HFRRF and the Vision-R1-Zero mix (docs/recipe.md §4).

TRL calls each reward function as `f(prompts=, completions=, completion_ids=, **columns)` and logs
each one under `rewards/<name>/mean`; a None in the returned list marks an item unscored. HFRRF is
the product of format and accuracy, but the two parts are computed and logged on their own: a
named reward set returns the functions with their weights, the parts at weight 0 when they are
only there to be logged.

  hfrrf  HFRRF (weight 1) + format (0) + accuracy (0)       Vision-R1, Vision-R1-Long
  zero   format (1) + accuracy (1)                          Vision-R1-Zero: format and result 1:1

Each completion is graded once per step: the parts of a set read the grades of the one pass
(`_grades` keeps the batch it graded last), so HFRRF, format and accuracy cannot disagree and the
grading counters count each completion once. Only the single <answer> block counts: `<answer>A or B or C</answer>`, two answer blocks or an
answer outside the block score 0. An ungradeable gold answer gives None (skipped, counted in
grading.STATS["ungradeable_gold"]), never a payment; an exception while grading one completion
gives None for that completion (counted in STATS["errors"]) and never kills the step.
"""

from __future__ import annotations

import logging

from visionr1 import grading

log = logging.getLogger(__name__)

FORMAT_STRICTNESS = "strict"  # default of grading.check_format's strictness; reward_set(..., strictness=) sets it


def completion_text(c) -> str:
    """TRL passes a string, or a conversation `[{"role": "assistant", "content": str}]`."""
    if isinstance(c, str):
        return c
    if isinstance(c, list) and c and isinstance(c[-1], dict):
        content = c[-1].get("content", "")
        if isinstance(content, list):  # [{"type": "text", "text": ...}]
            return "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return str(content)
    return str(c)


def _column(kwargs: dict, n: int, *names: str) -> list:
    for name in names:
        if name in kwargs and kwargs[name] is not None:
            return list(kwargs[name])
    return [None] * n


_last_batch: tuple = (None, [])  # (key, grades): the batch graded last, shared by the set's parts


def _grades(completions, kwargs) -> list[grading.Grade | None]:
    """One grade per completion; a batch is graded once however many parts of a set read it (TRL
    calls each reward function in turn with the same completions and columns)."""
    global _last_batch
    strictness = kwargs.get("strictness", FORMAT_STRICTNESS)
    texts = [completion_text(c) for c in completions]
    golds = _column(kwargs, len(texts), "answer", "solution", "gold")
    choices = [list(ch) if ch is not None else None for ch in _column(kwargs, len(texts), "choices")]
    precision = [int(p) if p is not None else None for p in _column(kwargs, len(texts), "precision")]
    key = (strictness, tuple(texts), tuple(map(str, golds)), tuple(tuple(c) if c else None for c in choices),
           tuple(precision))
    if _last_batch[0] == key:
        return _last_batch[1]
    out = []
    for text, gold, ch, prec in zip(texts, golds, choices, precision):
        try:
            out.append(grading.grade(text, gold, choices=ch, precision=prec, block_only=True, strictness=strictness))
        except Exception:  # noqa: BLE001 - one bad completion must not kill a training step
            grading.STATS["errors"] += 1
            log.exception("grading one completion failed; it is left unscored")
            out.append(None)
    _last_batch = (key, out)
    return out


def grading_metrics(before: dict, after: dict | None = None) -> dict[str, float]:
    """The grading counters between two `dict(grading.STATS)` snapshots, as logged per step:
    grading/{graded, timeouts, refused, ungradeable_gold, errors, wall_timeouts, mean_ms}.

    >>> grading_metrics({"graded": 2, "grading_s": 0.01}, {"graded": 4, "grading_s": 0.03, "timeouts": 1})
    {'grading/graded': 2, 'grading/timeouts': 1, 'grading/refused': 0, 'grading/ungradeable_gold': 0, 'grading/errors': 0, 'grading/wall_timeouts': 0, 'grading/mean_ms': 10.0}
    """
    after = dict(grading.STATS) if after is None else after
    d = {k: after.get(k, 0) - before.get(k, 0) for k in ("graded",) + grading.COUNTERS}
    seconds = after.get("grading_s", 0.0) - before.get("grading_s", 0.0)
    return {**{f"grading/{k}": v for k, v in d.items()},
            "grading/mean_ms": round(1000 * seconds / d["graded"], 4) if d["graded"] else 0.0}


def format_reward(completions, **kwargs) -> list[float]:
    """1.0 when the completion is exactly <think>...</think><answer>...</answer>, else 0.0.

    >>> format_reward(["<think>2+2</think><answer>4</answer>", "<answer>4</answer>"])
    [1.0, 0.0]
    """
    strictness = kwargs.get("strictness", FORMAT_STRICTNESS)
    if not any(k in kwargs for k in ("answer", "solution", "gold")):  # no gold column: nothing to grade
        return [float(grading.check_format(completion_text(c), strictness).ok) for c in completions]
    return [float(g.format_ok) if g is not None else float(grading.check_format(completion_text(c), strictness).ok)
            for g, c in zip(_grades(completions, kwargs), completions)]


def accuracy_reward(completions, **kwargs) -> list[float | None]:
    """1.0 when the answer block grades equal to the `answer` column; None for ungradeable gold.

    >>> accuracy_reward(["<answer>B</answer>", "<answer>A or B</answer>"], answer=["B", "B"], choices=[["1", "2"]] * 2)
    [1.0, 0.0]
    """
    return [None if g is None or g.correct is None else float(g.correct) for g in _grades(completions, kwargs)]


def hfrrf_reward(completions, **kwargs) -> list[float | None]:
    """HFRRF: 1.0 only when the format is right AND the answer is correct, else 0.0.

    >>> hfrrf_reward(["<think>x</think><answer>4</answer>", "<think>x</think><answer>4</answer> 4"], answer=["4", "4"])
    [1.0, 0.0]
    """
    out = []
    for g in _grades(completions, kwargs):
        out.append(None if g is None or g.correct is None else float(g.format_ok and g.correct))
    return out


REWARD_SETS: dict[str, list[tuple]] = {
    "hfrrf": [(hfrrf_reward, 1.0), (format_reward, 0.0), (accuracy_reward, 0.0)],
    "zero": [(format_reward, 1.0), (accuracy_reward, 1.0)],
}


def reward_set(name: str, strictness: str = FORMAT_STRICTNESS) -> tuple[list, list[float]]:
    """(reward functions, weights) for GRPOConfig(reward_weights=...), chosen by name in params;
    `strictness` is the format check's ("strict" or "lenient"). Names are kept for TRL's logs."""
    if name not in REWARD_SETS:
        raise ValueError(f"unknown reward set {name!r}; choose one of {sorted(REWARD_SETS)}")
    grading.check_format("", strictness)  # fail now on a bad strictness, not in the first step
    funcs, weights = [], []
    for fn, w in REWARD_SETS[name]:
        def bound(completions, _fn=fn, **kw):
            return _fn(completions, **{**kw, "strictness": strictness})
        bound.__name__ = bound.__qualname__ = fn.__name__
        funcs.append(bound)
        weights.append(w)
    return funcs, weights
