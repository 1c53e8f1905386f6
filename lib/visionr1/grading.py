"""Answer grading: the format check, answer extraction and equivalence behind HFRRF (docs/recipe.md §4)
and the benchmark scores (docs/recipe.md §5).

HFRRF pays 1 only when the format is right AND the final answer is correct, so this module decides
what RL learns and what the tables say. Three parts:

  check_format(text)               exactly one non-empty <think>...</think> followed by exactly one
                                   <answer>...</answer>, nothing else but whitespace
  extract_answer(text, choices)    the answer block, \\boxed{}, "Final Answer:", "the answer is",
                                   option forms "(B)", "B.", "B: 145°", or the last number
  is_equivalent(pred, gold, ...)   a fast path (numbers at a precision, fractions, percentages,
                                   degrees, units, option letters, normalized strings) and
                                   math-verify for LaTeX, expressions, sets and intervals

Every check is bounded, and the bound does not depend on how busy the machine is. math-verify
runs in a worker process (its own timeouts use signal.alarm, which fails outside the main thread,
and sympy can hang on inputs such as 10^{10^{10^{10}}}). Its budget (MATH_VERIFY_TIMEOUT_S) is
counted by the worker as work done, not as time (`_within_budget`): a comparison that exceeds it is
graded wrong and counted in `timeouts`. A wall-clock budget made the grade depend on the load: the
same comparison finished in time on an idle machine and timed out beside a training run, and an RL
box grades while 8 ranks and vLLM compete for its CPUs, so one completion earned different rewards
from run to run. The parent keeps only a generous wall-clock safety net for a worker that is stuck
(`wall_timeouts`, counted apart).
Inputs no answer needs (an answer over MAX_ANSWER_CHARS, exponent towers) are refused up front.

Written by hand where no library does the job: math-verify misses bare option letters and reads a
bare `3\\pi` as `3` (docs/platform.md), so letters and plain numbers never reach it, and what does reach
it is wrapped in `$...$` so it is read whole.
"""

from __future__ import annotations

import ast
import functools
import logging
import os
import re
import select
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

MAX_ANSWER_CHARS = 300  # an "answer" longer than this is not an answer: graded wrong, never parsed
# math-verify's budget per comparison: past it the answer is graded wrong and counted in `timeouts`.
# Measured as work, not time (see _within_budget): the same answers get the same verdict on an idle
# or a loaded machine, a fast or a slow one.
MATH_VERIFY_TIMEOUT_S = 0.5  # the budget, in seconds of typical sympy work (WORK_PER_S passes a second)
MATH_VERIFY_WORK_PER_S = 150  # garbage-collector passes per second of budget (sympy: 100-200 per CPU second)
MATH_VERIFY_CPU_FACTOR = 4  # a CPU-time backstop at 4x the budget, for work that keeps no objects alive
MATH_VERIFY_HARD_CPU_S = 2  # and the kernel's (RLIMIT_CPU) this much later, for C code that never returns
# The parent's safety net, wall clock: a worker silent for max(MIN_S, FACTOR x budget) is killed and
# counted in `wall_timeouts`. Far above the budget, so that load alone never reaches it (4 busy
# processes on 2 cores stretch a comparison's wall time ~7x); only a worker that is stuck does.
MATH_VERIFY_WALL_FACTOR = 20
MATH_VERIFY_WALL_MIN_S = 10.0
# The worker's str hash seed and sympy's random seed (sympy shuffles facts while it infers
# assumptions, and orders sets by str hashes). Left random, sympy simplified 0 - 0/(0 g r E ...)
# (math-verify's reading of "0: green squares0") to 0 in one process and to nan in the next, so the
# same answer graded right in one run and wrong in its rerun, and one such grade changed a nano RL
# run from step 69 on. Fixed (and sympy reseeded before every comparison), the same answers get the
# same grades in every run.
WORKER_HASH_SEED = "0"
SYMPY_SEED = 0

log = logging.getLogger(__name__)

# what can go wrong while grading; `timeouts`: math-verify spent its budget of work (a property of
# the answers), `wall_timeouts`: the worker went silent past the safety net (stuck, never just slow)
COUNTERS = ("timeouts", "refused", "ungradeable_gold", "errors", "wall_timeouts")
STATS: Counter = Counter()  # process-wide: the COUNTERS, graded (comparisons made), grading_s (their time)

# ---------------------------------------------------------------------------------------------
# 1. Format
# ---------------------------------------------------------------------------------------------
TAGS = ("<think>", "</think>", "<answer>", "</answer>")


@dataclass(frozen=True)
class FormatCheck:
    ok: bool
    reason: str  # "ok" or why not
    think: str | None = None
    answer: str | None = None


def check_format(text: str, strictness: str = "strict") -> FormatCheck:
    """Is `text` exactly `<think>T</think><answer>A</answer>` (whitespace around allowed)?

    strictness "strict": the completion starts with <think>. "lenient": the opening <think> may be
    missing (chat templates that prefill it), everything else as strict.

    >>> check_format("<think> 2+2=4 </think><answer> Final Answer: 4 </answer>").ok
    True
    >>> check_format("<think>x</think><answer>4</answer> and more").reason
    'text after </answer>'
    """
    if strictness not in ("strict", "lenient"):
        raise ValueError(f"strictness must be 'strict' or 'lenient', got {strictness!r}")
    counts = {t: text.count(t) for t in TAGS}
    if strictness == "lenient" and counts["<think>"] == 0 and counts["</think>"] == 1:
        text, counts["<think>"] = "<think>" + text.lstrip(), 1
    for t, n in counts.items():
        if n != 1:
            return FormatCheck(False, f"{t} appears {n} times")
    i0, i1, i2, i3 = (text.index(t) for t in TAGS)
    if not i0 < i1 < i2 < i3:
        return FormatCheck(False, "tags out of order")
    if text[:i0].strip():
        return FormatCheck(False, "text before <think>")
    if text[i1 + len("</think>"):i2].strip():
        return FormatCheck(False, "text between </think> and <answer>")
    if text[i3 + len("</answer>"):].strip():
        return FormatCheck(False, "text after </answer>")
    think = text[i0 + len("<think>"):i1]
    answer = text[i2 + len("<answer>"):i3]
    if not think.strip():
        return FormatCheck(False, "empty think")
    if not answer.strip():
        return FormatCheck(False, "empty answer")
    return FormatCheck(True, "ok", think, answer)


# ---------------------------------------------------------------------------------------------
# 2. Extraction
# ---------------------------------------------------------------------------------------------
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class Extraction:
    answer: str | None  # the extracted answer text (None: nothing found, or ambiguous)
    method: str         # where it came from: answer_block, boxed, statement, option, mention, last_value, none


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}), braces balanced; linear time."""
    for cmd in ("\\boxed{", "\\fbox{"):
        i = text.rfind(cmd)
        if i < 0:
            continue
        depth, j = 1, i + len(cmd)
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        if depth == 0:
            return text[i + len(cmd):j - 1]
    return None


def _all_boxed(text: str) -> list[str]:
    out, i = [], text.find("\\boxed{")
    while i >= 0:
        depth, j = 1, i + len("\\boxed{")
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        if depth:
            break
        out.append(text[i + len("\\boxed{"):j - 1])
        i = text.find("\\boxed{", j)
    return out


# End-of-text tokens that chat models leave in decoded text (seen in MathVista's minigpt4 outputs)
_END_TOKENS = re.compile(r"(?:\s*(?:</s>|<\|im_end\|>|<\|endoftext\|>|<\|eot_id\|>|<\|end\|>|<end_of_turn>|<eos>))+\s*$")
def _strip_end_tokens(a: str) -> str:
    return _END_TOKENS.sub("", a) if a.rstrip().endswith(">") else a


_FINAL = re.compile(r"final answer\s*(?:is)?\s*[:：]?\s*", re.I)
# Cues that introduce a final answer, English and Chinese; the text after the last cue is the answer
# statement ("The correct option is (C) decrease.", "Answer: (A) 16π/5", "the choice that matches
# this is B", "Option B) No", "答案是C", "故选：B")
_CUES = re.compile(
    r"final answer\s*(?:is)?\s*[:：]?"
    r"|\b(?:answer|option|choice)\b[^.\n:：?!]{0,40}?\b(?:is|would be|should be|will be|must be)\b\s*[:：]?"
    r"|\banswer\s*[:：]"
    r"|(?:^|(?<=[.:!\n]))\s*(?:option|choice)\s+(?=\(?[A-Z]\b)"  # opening a sentence: "Option B) No"
    r"|\bis\s+(?:option|choice|letter)\s+(?=\(?[A-Z]\b)"  # "The top view is option (B) B.", "... is letter D."
    r"|答案(?:应该?是|应为|是|为)?\s*[:：]?"
    r"|(?:故|所以|因此|应|则)?选(?:择|项)?(?:为|是)?\s*[:：]?\s*(?=\(?[A-Z])",
    re.I)
_SENTENCE_END = re.compile(r"\.(?=\s|$)|。|,\s(?=because|since|as|which)|;\s|\n")


_QUOTED = re.compile(r'^["“]([^"”\n]{1,100}?)[.。]?["”]')


def _statement_after(m: re.Match, text: str) -> str | None:
    rest = text[m.end():].lstrip("*_ \t")  # "**Answer:** 12": the bold's closing marks
    if rest.startswith("\n") and "answer" in m.group().lower():  # "The correct answer is:\n(A) odd": the next line
        rest = rest.lstrip()
    quoted = _QUOTED.match(rest)
    if quoted:  # 'The correct answer is "soup." Soup typically ...': the quotation
        return quoted.group(1).strip() or None
    rest = _SENTENCE_END.split(rest, maxsplit=1)[0]
    return rest.strip() or None


def statements(text: str) -> list[str]:
    """The answer statements of a text, last first: what follows each answer cue up to the end of
    its sentence.

    >>> statements("I think the answer is B (no). Final answer: C")
    ['C', 'B (no)']
    """
    out = []
    for m in _CUES.finditer(text):
        s = _statement_after(m, text)
        if s:
            out.append(s)
    return out[::-1]


_DRESSING = re.compile(r"[*_`$\\<]|final answer", re.I)  # what clean_answer may remove: else only a full stop


@functools.lru_cache(maxsize=65536)
def clean_answer(a: str) -> str:
    """Strip wrappers around an extracted answer: 'Final Answer:', $...$, \\boxed{}, markdown bold or
    italics, a trailing end-of-text token or full stop."""
    if not _DRESSING.search(a):
        return a.strip().rstrip(".。").strip()
    prev = None
    while a != prev:
        prev = a
        a = _strip_end_tokens(a).strip()
        a = _FINAL.sub("", a, count=1) if _FINAL.match(a) else a
        boxed = last_boxed(a) if a.startswith(("\\boxed", "\\fbox", "$\\boxed")) or "\\boxed" in a else None
        if boxed is not None:
            a = boxed
        a = a.strip()
        for lo, hi in (("**", "**"), ("__", "__"), ("*", "*"), ("`", "`"), ("$$", "$$"), ("$", "$"),
                       ("\\(", "\\)"), ("\\[", "\\]")):
            if len(a) >= len(lo) + len(hi) and a.startswith(lo) and a.endswith(hi):
                a = a[len(lo):len(a) - len(hi)].strip()
        a = a.rstrip(".。").strip()
    return a


# a LaTeX math span; the last one in a text is the answer when no statement is found
_MATH_SPAN = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|\$([^$\n]+?)\$|\\\((.+?)\\\)", re.S)
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d{1,3}(?: \d{3})+(?![\d.])|\d+)?(?:\.\d+)?(?:/\d+)?(?![\w])")


def _numbers(text: str) -> list[re.Match]:
    """Plain numbers of a text; a number inside LaTeX structure (`{2}`, `^2`, `_1`) is part of an
    expression, not a value."""
    return [m for m in _NUMBER.finditer(text) if any(ch.isdigit() for ch in m.group())
            and text[m.start() - 1:m.start()] not in ("{", "^", "_", "\\") and text[m.end():m.end() + 1] not in ("}", "^")]


def last_value(text: str) -> str | None:
    """The last math span ($...$, \\(...\\), \\[...\\]) or the last number outside one, whichever ends
    later. A number inside an expression is never taken alone: `$\\frac{1+\\sqrt{5}}{2}$` is the
    whole fraction, not 2."""
    spans = list(_MATH_SPAN.finditer(text))
    span = spans[-1] if spans else None
    bare = clean_answer(text)
    if not spans and "\\" in bare and len(bare) <= MAX_ANSWER_CHARS and \
            not re.search(r"[a-zA-Z]{3,}", re.sub(r"\\[a-zA-Z]+", " ", bare)):
        return bare  # an expression without delimiters: `\\frac{10}{9}`
    nums = [m for m in _numbers(text) if not any(s.start() <= m.start() < s.end() for s in spans)]
    num = nums[-1] if nums else None
    if span is not None and (num is None or span.end() >= num.end()):
        inner = next(g for g in span.groups() if g is not None).strip()
        return clean_answer(inner) or None
    return num.group().strip() if num is not None else None


_WORDS = {w: str(i) for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve "
                                            "thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty".split())}
_WORD_NUMBER = re.compile(r"\b(" + "|".join(_WORDS) + r")\b", re.I)
_THERE_ARE = re.compile(r"\bthere (?:are|is|were|was) (?:a total of |only |exactly )?(\d+|" + "|".join(_WORDS) + r")\b", re.I)
_CONCLUSION = re.compile(r"(?:so|therefore|thus|hence|in total|in conclusion)\b,?\s", re.I)
_BOLD_NUMBER = re.compile(r"\*\*\s*(-?[\d,]*\.?\d+)\s*\*\*")


def first_value(text: str) -> str | None:
    """The first number of a sentence, outside math spans, or the first math span with a digit;
    number words count ("the answer is three objects" -> 3). For answer statements in prose, where
    the value comes first ("the answer is 1982 with a total income of $931,441")."""
    spans = list(_MATH_SPAN.finditer(text))
    cands = [(m.start(), m.group().strip()) for m in _numbers(text)
             if not any(s.start() <= m.start() < s.end() for s in spans)]
    cands += [(m.start(), _WORDS[m.group(1).lower()]) for m in _WORD_NUMBER.finditer(text)
              if not any(s.start() <= m.start() < s.end() for s in spans)]
    cands += [(s.start(), clean_answer(next(g for g in s.groups() if g is not None)))
              for s in spans if re.search(r"\d", s.group())]
    return min(cands)[1] if cands else None


def extract_answer(text: str, choices: list[str] | None = None, block_only: bool = False) -> Extraction:
    """The final answer of a response.

    With `block_only` (the RL rewards) only a single <answer> block counts: two blocks, or an
    answer outside the block, extract nothing. Inside the block: the block's text, or the answer
    statement it makes ("The answer is C."). Otherwise (benchmark responses) the answer block, then
    the last \\boxed{}, the last answer statement ("the answer is", "Final Answer:", "The correct
    option is", "答案是"), for multiple choice an option the text names or mentions alone; for free
    form, nothing when the last sentence refuses ("we cannot provide a specific answer"), else a
    stated count, and finally the last math span or number.
    """
    n_open = text.count("<answer>")
    if n_open == 1 and text.count("</answer>") == 1 and text.index("<answer>") < text.index("</answer>"):
        inner = text[text.index("<answer>") + len("<answer>"):text.index("</answer>")]
        if len(inner) > 20 * MAX_ANSWER_CHARS:  # no answer is this long: not worth a scan
            return Extraction(clean_answer(inner[:MAX_ANSWER_CHARS + 1]) or None, "answer_block")
        a = clean_answer(inner)
        if a and choices and match_option(a, choices) is None:
            named = _named_option(statements(inner), choices)
            if named is not None:
                return Extraction(named, "answer_block")
        elif a and not choices and to_number(normalize(a)) is None:
            st = statements(inner)
            if st and len(st[0]) < len(a):
                return Extraction(clean_answer(st[0]) or a, "answer_block")
        return Extraction(a or None, "answer_block")
    if block_only or n_open > 1:
        return Extraction(None, "none")
    text = _strip_end_tokens(text[-20000:])  # the answer is at the end; bounded work on megabyte responses
    boxed = last_boxed(text)
    if boxed is not None:
        line = text[:text.rfind("\\boxed")].rsplit("\n", 1)[-1] if "\\boxed" in text else ""
        earlier = [clean_answer(b) for b in _all_boxed(line)]
        if earlier:  # several boxed answers on the final line: "\\boxed{1}, \\boxed{2}" is the list 1, 2
            items = list(dict.fromkeys(earlier + [clean_answer(boxed)]))  # the same answer repeated counts once
            return Extraction(", ".join(items), "boxed")
        return Extraction(clean_answer(boxed), "boxed")
    found = statements(text)
    if choices:
        named = _named_option(found[:1], choices)  # the last statement decides (a text that goes on to new questions)
        if named is not None:
            return Extraction(named, "statement")
        endorsed = _ENDORSED.findall(text)
        if endorsed and LETTERS.index(endorsed[-1].upper()) < len(choices):  # "Therefore, option (B) is the correct answer."
            return Extraction(endorsed[-1].upper(), "statement")
        stripped = clean_answer(text)
        if len(stripped) <= MAX_ANSWER_CHARS and match_option(stripped, choices) is not None:
            return Extraction(stripped, "option")
        lines = [ln for ln in (clean_answer(x) for x in text.split("\n")) if ln]
        for ln in lines[::-1]:  # a line that is an option letter alone ("C" before the explanation)
            if re.fullmatch(r"\(?[A-Z]\)?[.:)]?", ln) and match_option(ln, choices) is not None:
                return Extraction(ln, "option")
        if lines:
            listed = sum(1 for ln in lines if _LISTED.match(ln))  # 1: a chosen option, not the options again
            if listed == 1 and len(lines[-1]) <= 80 and _LISTED.match(lines[-1]) and match_option(lines[-1], choices) is not None:
                return Extraction(lines[-1], "option")  # a last line "(C) C" after the working
            tail = re.search(r"\(([A-Z])\)\W*$", lines[-1])  # "... if the grasses increase. (C)"
            if tail and LETTERS.index(tail.group(1)) < len(choices):
                return Extraction(tail.group(1), "option")
            first = match_option(lines[0], choices) if _is_yes_no(choices) else None
            if first is not None:  # "No, the number of gray cars is not less than ..."
                return Extraction(lines[0], "option")
            mentioned = _mentioned_option(lines[-1], choices)
            if mentioned is not None:
                return Extraction(mentioned, "mention")
            polar = _polarity(stripped) if _is_yes_no(choices) else None
            if polar is None and _is_yes_no(choices) and len(stripped) <= 400 and not _REFUSAL.search(stripped):
                first = re.split(r"(?<=[.!])\s+", stripped)[0]  # "Crimson is not less than Gray. In fact, ..."
                if not re.search(r"option|answer|letter|correct|incorrect|:|\n|^(?:sure|okay|ok|here)\b|happy to", first, re.I):
                    polar = _polarity(first)
            if polar is not None:
                return Extraction(polar, "polarity")
    if found:
        st = clean_answer(found[0])
        prose = re.sub(r"\\[a-zA-Z]+", " ", _MATH_SPAN.sub(" ", found[0]))
        if to_number(normalize(st)) is None and re.search(r"[a-zA-Z]{3,}", prose) and not choices:
            # "The largest $n$ is 34" -> 34; plain prose: the first value ("1982 with a total of $931,441" -> 1982)
            st = (last_value(found[0]) if _MATH_SPAN.search(found[0]) else first_value(found[0])) or st
        return Extraction(st, "statement")
    if not choices and _REFUSAL.search(_last_sentence(text)):
        return Extraction(None, "refusal")  # "... Without that information, we cannot provide a specific answer."
    if not choices:
        bold = _BOLD_NUMBER.findall(text)
        if bold:  # "Therefore, there are **3** groups of bars ..."
            return Extraction(bold[-1], "bold")
        one = clean_answer(text)
        there = _THERE_ARE.search(one) if len(one) <= 200 and not re.search(r"[\n$=]", one) else None
        if not (there and len([x for x in re.split(r"[.!?](?:\s|$)", one) if x.strip()]) == 1):
            # a one-sentence count: "There are three groups of bars ... smaller than 40."; else a concluding
            # count: "So, there are 4 queries with a p-value lower than 0.50."
            last = _last_sentence(one)
            there = _THERE_ARE.search(last) if _CONCLUSION.match(last) and not re.search(r"[$=]", last) else None
        if there:
            v = there.group(1).lower()
            return Extraction(_WORDS.get(v, v), "count")
    v = last_value(text)
    if v is not None:
        return Extraction(v, "last_value")
    return Extraction(None, "none")


def _last_sentence(text: str) -> str:
    """The last sentence of a text's last line."""
    return re.split(r"(?<=[.!?])\s+", text.rstrip().rsplit("\n", 1)[-1].strip())[-1]


_ENDORSED = re.compile(r"\b(?:option|choice)\s*[(（]?([A-Z])[)）]?\s+is\s+(?:the\s+)?(?:correct|right|best)\b", re.I)
_LISTED = re.compile(r"[(（][A-Z][)）]\s*\S")  # a line opening with an option letter: "(C) 145°"


def _named_option(found: list[str], choices: list[str]) -> str | None:
    """The first of the statements (last first) that names exactly one option."""
    for s in found:
        s = clean_answer(s)
        if match_option(s, choices) is not None:
            return s
    return None


_REFUSAL = re.compile(r"not (?:provide|possible|clear|enough|valid|specify)|enough (?:information|context)|cannot be (?:determined|answered)"
                      r"|(?:cannot|can't|unable to) (?:determine|answer|tell|see|view)|does not (?:show|contain|include)"
                      r"|insufficient|impossible to|(?:do|does) not have enough|cannot be provided|not specified"
                      r"|(?:need|requires?) more (?:information|context|details)|please provide", re.I)
_NEGATION = re.compile(r"\b(?:not|no|never|neither|nor|none|cannot)\b|n't\b", re.I)


def _polarity(text: str) -> str | None:
    """A one-sentence answer to a yes/no question read by its polarity, as MathVista's GPT-4
    extraction reads it: "The function is not differentiable at every point." -> "No", "Dark
    Magenta has the maximum area under the curve." -> "Yes". Longer texts: None."""
    t = text.strip()
    if len(t) > 200 or len([x for x in re.split(r"[.!?](?:\s|$)", t) if x.strip()]) != 1 or _REFUSAL.search(t) \
            or t.endswith("?"):  # "Is Sky Blue the minimum?": the question repeated, not an answer
        return None
    return "No" if _NEGATION.search(t) else "Yes"


def _is_yes_no(choices: list[str]) -> bool:
    return sorted(normalize(c) for c in choices) == ["no", "yes"]


def _mentioned_option(line: str, choices: list[str]) -> str | None:
    """The one option whose text a sentence mentions as a phrase ("... is most likely a polynomial
    function." -> "a polynomial"); None when it mentions none or several. Free text only: an
    <answer> block must name its option."""
    low = line.lower()
    hits = []
    for c in choices:
        t = c.strip().lower()
        if len(t) < 2 or re.fullmatch(r"-?[\d.,]+", t):  # numbers are read as values, not mentions
            continue
        if re.search(r"(?<!\w)" + re.escape(t) + r"(?!\w)", low):
            hits.append(c)
    hits = [h for h in hits if not any(h != o and h.lower() in o.lower() for o in hits)]  # "sample A" in "sample A and B"
    return hits[0] if len(hits) == 1 else None


_CHOICES = re.compile(r"(?:choices|options)\s*:\s*(.*)", re.I | re.S)
_CHOICE_SPLIT = re.compile(r"(?:^|\s)\(([A-Z])\)\s*")


def choices_in(question: str) -> list[str] | None:
    """The options listed after "Choices:" in a question (nano, MathVista and Vision-R1-rl style),
    in letter order; None when the question lists none.

    >>> choices_in("How many?\\nChoices: (A) 7 (B) 3 (C) 2 (D) 1\\nAnswer with the option's letter.")
    ['7', '3', '2', '1']
    >>> choices_in("Find x.\\nChoices:\\n(A) 3/11\\n(B) 8/11"), choices_in("Find x.")
    (['3/11', '8/11'], None)
    """
    m = _CHOICES.search(question or "")
    if not m:
        return None
    parts = _CHOICE_SPLIT.split(m.group(1))
    letters, texts = parts[1::2], parts[2::2]
    if len(letters) < 2 or "".join(letters) != LETTERS[:len(letters)]:
        return None
    texts[-1] = texts[-1].split("\n")[0]  # the instruction after the last option
    return [t.strip() for t in texts]


# an option letter leading an answer: "(B)", "B.", "B)", "B:", "Option B", "**B**", "[B]"
_LEAD = re.compile(r"^(?:(?:option|choice)\s*)?([(\[（]?)([A-Z])([)\]）]?)(?=$|[\s.:：,;)）(（]|[\u4e00-\u9fff])\s*[.:：,;]?\s*(.*)$", re.S | re.I)
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")


def _plain(a: str) -> str:
    """An answer without dressing, for option matching: `**(B) Solution A**` -> `(B) Solution A`,
    `\\text{(C)} 5` -> `(C) 5`."""
    a = clean_answer(a)
    if "\\" not in a and "**" not in a:
        return a
    a = _TEXT_WRAP.sub(r"\1", a).replace("**", "").replace("\\%", "%")
    return clean_answer(a)


def match_option(answer: str, choices: list[str]) -> str | None:
    """The option letter `answer` names, by letter ("B", "(B)", "B.", "B: 145°", "C (octopus)",
    "Option B) No", "**C**") or by the option's text ("145°"); None when it names none or several
    ("A or B or C") or its letter and text contradict ("B: 35°" when 35° is A).

    >>> match_option("B: 145°", ["35°", "145°"]), match_option("A or B", ["1", "2"]), match_option("2", ["1", "2"])
    ('B', None, 'B')
    """
    return _match_option(answer, tuple(choices))


@functools.lru_cache(maxsize=65536)
def _match_option(answer: str, choices: tuple[str, ...]) -> str | None:
    a = _plain(answer)
    if not a:
        return None
    n = len(choices)
    m = _LEAD.match(a)
    if m and (m.group(2).isupper() or m.group(1) or a[:6].lower() in ("option", "choice")):
        letter, k = m.group(2).upper(), LETTERS.index(m.group(2).upper())
        rest = m.group(4).strip()
        delimited = bool(m.group(1) or m.group(3)) or not rest or a[len(m.group(1)) + 1:][:1] in ".:：,;" \
            or rest[:1] in "(（" or "\u4e00" <= rest[:1] <= "\u9fff"  # "C (Adult spider ...)", "B正确"
        if k < n:
            inner = re.sub(r"^[(（\[]\s*(.*?)\s*[)）\]]$", r"\1", rest).rstrip(".。").strip()
            if not inner or _same_text(inner, choices[k]) or _same_text(rest, choices[k]):
                return letter
            if re.match(r"(?:is\s+)?(?:incorrect|wrong|not\b|false\b)|(?:错误|不正确)", inner, re.I):
                return None  # "Choice (B) is incorrect because ..."
            others = [i for i, c in enumerate(choices) if i != k and _same_text(inner, c)]
            if others:
                return None  # letter and text name different options
            if re.search(r"(?<![A-Za-z])[A-Z](?![A-Za-z])", inner) and not _mentions(choices[k], inner):
                return None  # another letter: "A or B", "A, then B"
            w = re.match(r"(yes|no)\b", inner, re.I) if _is_yes_no(list(choices)) else None
            if w:  # "A: No, ..." (mPLUG-Owl writes "A:" for "Answer:"): the word, not the letter
                return next(LETTERS[i] for i, c in enumerate(choices) if normalize(c) == w.group(1).lower())
            if delimited or inner.lower() in choices[k].lower() or choices[k].lower() in inner.lower():
                return letter
    hits = [LETTERS[i] for i, c in enumerate(choices) if _same_text(a, c)]
    if len(hits) == 1:
        return hits[0]
    if not hits and _is_yes_no(choices):
        w = re.match(r"(yes|no)\b", a, re.I)
        if w:
            return next(LETTERS[i] for i, c in enumerate(choices) if normalize(c) == w.group(1).lower())
    return None


def _mentions(option: str, text: str) -> bool:
    return bool(option.strip()) and option.strip().lower() in text.lower()


def _same_text(a: str, b: str) -> bool:
    na, nb = normalize(a), normalize(b)
    if na == nb:
        return True
    x, y = to_number(na), to_number(nb)
    return x is not None and y is not None and abs(x - y) <= 1e-9 * max(1.0, abs(y))


# ---------------------------------------------------------------------------------------------
# 3. Equivalence
# ---------------------------------------------------------------------------------------------
_UNITS = re.compile(
    r"(?:\^\s*\{?\\circ\}?|\\circ|\*?\s*\\degree|°|\\%|%|厘米|米|海里|千米|度|元|个|\\(?:text|textbf|mathrm|mbox)\{\s*[a-zA-Z ]*\}|"
    r"\b(?:degrees?|deg|units?|sq|square|cm|mm|km|m|meters?|inches|inch|in|ft|feet|yards?|"
    r"cm\^2|m\^2|kg|g|grams?|seconds?|s|hours?|h|minutes?|min|years?|dollars?|cents?|people|points?)\b)"
)


_THOUSANDS_TEX = re.compile(r"(?<=\d),\\!\s*(?=\d{3})")  # 11,\! 111: a thousands separator
_TEXT_ONLY = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")
_FRAC_VARIANT = re.compile(r"\\[dtc]frac")
_FRAC_DIGITS = re.compile(r"\\frac\s*(\d)\s*(\d)")
_FRAC_DIGIT_BRACE = re.compile(r"\\frac\s*(\d)\s*\{")
_FRAC_BRACE_DIGIT = re.compile(r"\\frac\s*(\{[^{}]*\})\s*(\d)")
_SQRT_DIGITS = re.compile(r"\\sqrt\s*(\d+)")
_REL_OPS = {"\\geq": ">=", "\\ge": ">=", "\\leq": "<=", "\\le": "<=", "\\neq": "!=", "\\ne": "!=",
            "\\lt": "<", "\\gt": ">", "≥": ">=", "≤": "<=", "≠": "!="}
_REL = re.compile(r"\\(?:geq|ge|leq|le|neq|ne|lt|gt)(?![a-zA-Z])|[≥≤≠]")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_THOUSANDS_SPACE = re.compile(r"(?<=\d) (?=\d{3}(?!\d))")


@functools.lru_cache(maxsize=65536)
def normalize(s: str) -> str:
    """Lower-case, drop $, spaces, thousands separators, \\left/\\right, units and degree marks;
    spell \\frac13 and \\sqrt3 with braces, relations as >=, <=, !=.

    >>> normalize(" $145^{\\\\circ}$ "), normalize("1,000 cm"), normalize("\\\\text{Yes}"), normalize("\\\\dfrac13")
    ('145', '1000', 'yes', '\\\\frac{1}{3}')
    """
    s = s.strip().strip("$").strip()
    if "\\" in s:
        s = _THOUSANDS_TEX.sub("", s)
        s = s.replace("\\left", "").replace("\\right", "").replace("\\!", "").replace("\\,", "").replace("\\;", "")
        s = _TEXT_ONLY.sub(r"\1", s) if _TEXT_ONLY.fullmatch(s) else s
    s = _UNITS.sub("", s)
    if "\\" in s:
        s = _FRAC_VARIANT.sub(r"\\frac", s)
        s = _FRAC_DIGITS.sub(r"\\frac{\1}{\2}", s)  # \frac13
        s = _FRAC_DIGIT_BRACE.sub(r"\\frac{\1}{", s)  # \frac3{4}
        s = _FRAC_BRACE_DIGIT.sub(r"\\frac\1{\2}", s)  # \frac{3}4
        s = _SQRT_DIGITS.sub(r"\\sqrt{\1}", s)  # \sqrt3
    if "\\" in s or "≥" in s or "≤" in s or "≠" in s:
        s = _REL.sub(lambda m: _REL_OPS[m.group(0)], s)
    if "," in s:
        s = _THOUSANDS.sub("", s)
    if " " in s:
        s = _THOUSANDS_SPACE.sub("", s)
    s = re.sub(r"\s+", "", s).lower().rstrip(".")
    return s


_FRAC = re.compile(r"^(-?)\\frac\{?(-?\d+)\}?\{?(\d+)\}?$")


@functools.lru_cache(maxsize=65536)
def to_number(s: str) -> float | None:
    """A plain number: integer, decimal, a/b, \\frac{a}{b}, or a percentage already stripped."""
    if not s or len(s) > 60:
        return None
    try:
        if re.fullmatch(r"[-+]?\d+", s):
            return float(int(s))
        if re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+)(e[-+]?\d+)?", s):
            return float(s)
        if re.fullmatch(r"[-+]?\d+/\d+", s):
            return float(Fraction(s))
        m = _FRAC.match(s)
        if m:
            v = Fraction(int(m.group(2)), int(m.group(3)))
            return float(-v if m.group(1) else v)
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    return None


def clear_caches() -> None:
    """Forget the memoized string work (benchmarks time a cold grader)."""
    for f in (normalize, clean_answer, to_number, _match_option):
        f.cache_clear()


def gradeable(gold) -> bool:
    """Can this gold answer be graded at all? (None, empty, 'nan' or unbalanced LaTeX cannot.)"""
    if gold is None:
        return False
    g = str(gold).strip()
    if not g or g.lower() in ("none", "nan", "null", "n/a") or len(g) > MAX_ANSWER_CHARS:
        return False
    return g.count("{") == g.count("}") and g.count("$") % 2 == 0


# inputs that blow sympy up and that no real answer has: exponent towers a^{b^{c}}, exponents or
# factorials of 4+ digit numbers
_PATHOLOGICAL = re.compile(r"\^\s*\{[^{}]*\^|\^\s*\w{1,20}\s*\^|\^\s*\{?\s*\d{4,}|\d{4,}\s*!")


def is_equivalent(pred: str | None, gold: str, *, precision: int | None = None,
                  choices: list[str] | None = None, timeout: float | None = None) -> bool:
    """Does `pred` answer `gold`? Fast path first; math-verify (bounded) for what remains.

    `precision`: decimal places at which numbers are compared (the benchmark's); `choices`: the
    options of a multiple-choice question, `gold` then being a letter or an option's text;
    `timeout`: math-verify's budget in seconds of typical sympy work (default MATH_VERIFY_TIMEOUT_S,
    read at each call), counted as work, not time: the same verdict however busy the machine is.

    >>> is_equivalent("0.5", "\\\\frac{1}{2}"), is_equivalent("3.14", "3.1416", precision=2)
    (True, True)
    >>> is_equivalent("(B)", "B", choices=["1", "2"]), is_equivalent("A or B", "B", choices=["1", "2"])
    (True, False)
    """
    t0 = time.perf_counter()
    try:
        return _is_equivalent(pred, gold, precision, choices, MATH_VERIFY_TIMEOUT_S if timeout is None else timeout)
    finally:
        STATS["graded"] += 1
        STATS["grading_s"] += time.perf_counter() - t0


_RELATION = re.compile(r"<|>|!=|\\approx|\\in\b|\\sim")
# words math-verify reads as constants or functions: never decided as "two different words"
_MATH_WORDS = {"e", "i", "pi", "inf", "infty", "sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "sqrt"}


def _is_equivalent(pred, gold, precision, choices, timeout) -> bool:
    if pred is None or not str(pred).strip():
        return False
    pred, gold = str(pred).strip(), str(gold).strip()
    if len(pred) > MAX_ANSWER_CHARS:
        STATS["refused"] += 1
        return False
    if choices:
        exact = [LETTERS[i] for i, c in enumerate(choices) if c.strip() == gold]
        g = exact[0] if exact else match_option(gold, choices)  # the gold "(b)" is the option "(b)", not letter B
        if g is not None:  # a gold option's text may be listed twice: either letter is right
            text = choices[LETTERS.index(g)]
            same = [LETTERS[i] for i, c in enumerate(choices) if c == text]
        else:
            same = [LETTERS[i] for i, c in enumerate(choices) if _same_text(gold, c)]
        if g is not None or len(same) > 1:
            allowed = ({g} | set(same)) - {None}
            p = match_option(pred, choices)
            if p is None:
                p_same = {LETTERS[i] for i, c in enumerate(choices) if _same_text(pred, c)}
                return bool(p_same) and p_same <= allowed
            return p in allowed
    pred, gold = clean_answer(pred), clean_answer(gold)
    np_, ng = normalize(pred), normalize(gold)
    if np_ == ng:
        return True
    if "=" in np_ and "=" not in ng and not _RELATION.search(np_):
        rhs = pred.rsplit("=", 1)[1]  # "k = \\frac{1}{3}" against "1/3": the value after the last =
        pred, np_ = rhs.strip(), normalize(rhs)
        if np_ == ng:
            return True
    xp, xg = to_number(np_), to_number(ng)
    if xp is not None and xg is not None:
        if precision is not None:
            return round(xp, precision) == round(xg, precision)
        return abs(xp - xg) <= 1e-6 * max(1.0, abs(xg))
    if xg is not None and re.fullmatch(r"[-+]?[\d.,/]+", np_):
        return False  # two plain numbers that differ; nothing for math-verify to add
    if all(re.fullmatch(r"[a-z][a-z ]+", x) and x not in _MATH_WORDS for x in (np_, ng)):
        return False  # two different words
    if _PATHOLOGICAL.search(pred) or _PATHOLOGICAL.search(gold):
        STATS["refused"] += 1
        return False
    fast = latex_fast_equal(np_, ng, precision)
    if fast is not None:
        return fast
    return _math_verify(pred, gold, precision, timeout)


# A fast path for common LaTeX: written by hand because math-verify's LaTeX-to-sympy parse costs
# ~10 ms per answer, and RL grades thousands per step. It decides only what it can decide exactly:
# arithmetic on numbers (\\frac, \\sqrt, powers, sets of numbers and intervals), turned into a
# Python expression (validated node by node, floats only) and evaluated. Anything with a symbol (a
# letter, a constant such as e or \\pi, a function) returns None and goes to math-verify.
_TOKEN = re.compile(r"\\(frac|dfrac|tfrac|sqrt|cdot|times|div)(?![a-zA-Z])|(\d+\.?\d*|\.\d+)|([-+*/^(){}\[\]])|(\s+)")
_ALLOWED = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Add, ast.Sub, ast.Mult,
            ast.Div, ast.Pow, ast.USub, ast.UAdd, ast.Load)


def _latex_to_python(s: str) -> str | None:
    """`2\\sqrt{3}x^2 + \\frac{1}{2}` -> `2.0*(3.0)**0.5*x**(2.0)+((1.0)/(2.0))`, or None."""
    toks, pos = [], 0
    while pos < len(s):
        m = _TOKEN.match(s, pos)
        if not m:
            return None
        pos = m.end()
        if m.group(4) is None:
            toks.append(m.group(0))
    out, i = [], 0

    def group() -> str | None:  # a {...} group or one token, converted
        nonlocal i
        if i < len(toks) and toks[i] == "{":
            depth, j = 1, i + 1
            while j < len(toks) and depth:
                depth += {"{": 1, "}": -1}.get(toks[j], 0)
                j += 1
            if depth:
                return None
            inner = _latex_to_python("".join(t if not t.startswith("\\") else t + " " for t in toks[i + 1:j - 1]))
            i = j
            return None if inner is None else f"({inner})"
        if i < len(toks):
            t = _latex_to_python(toks[i])
            i += 1
            return None if t is None else f"({t})"
        return None

    while i < len(toks):
        t = toks[i]
        i += 1
        if t in ("\\frac", "\\dfrac", "\\tfrac"):
            a, b = group(), group()
            if a is None or b is None:
                return None
            piece = f"({a}/{b})"
        elif t == "\\sqrt":
            a = group()
            if a is None:
                return None
            piece = f"({a}**0.5)"
        elif t in ("\\cdot", "\\times"):
            out.append("*")
            continue
        elif t == "\\div":
            out.append("/")
            continue
        elif t == "^":
            a = group()
            if a is None:
                return None
            out.append(f"**{a}")
            continue
        elif t == "{":
            i -= 1
            piece = group()
            if piece is None:
                return None
        elif t == "(":
            if out and (out[-1][-1].isalnum() or out[-1][-1] in ")."):  # (a)(b), 2(x+1)
                out.append("*")
            out.append(t)
            continue
        elif t in "+-*/)":
            out.append(t)
            continue
        elif t[0].isdigit() or t[0] == ".":
            piece = repr(float(t))
        else:
            return None
        if out and (out[-1][-1].isalnum() or out[-1][-1] in ")."):  # implicit multiplication: 2x, 2\\pi, (a)(b)
            out.append("*")
        out.append(piece)
    return "".join(out) or None


def _evaluate(expr: str, points: list[dict]) -> list[float] | None:
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError:
        return None
    if not all(isinstance(n, _ALLOWED) for n in ast.walk(tree)):
        return None
    code = compile(tree, "<answer>", "eval")
    vals = []
    for env in points:
        try:
            v = eval(code, {"__builtins__": {}}, env)  # noqa: S307 - only arithmetic nodes pass the check above
        except (ZeroDivisionError, OverflowError, NameError, TypeError):
            return None
        if isinstance(v, complex) or v != v:
            return None
        vals.append(float(v))
    return vals


_POINTS = [{}]  # no symbols: one evaluation decides
_SET = re.compile(r"^\\\{(.*)\\\}$")
_INTERVAL = re.compile(r"^([\[(])(.*),(.*)([\])])$")


def latex_fast_equal(pred: str, gold: str, precision: int | None = None) -> bool | None:
    """True/False when both answers are plain LaTeX arithmetic, sets of numbers or intervals that
    this fast path reads; None when either is not (math-verify decides)."""
    p, g = pred.strip().strip("$").strip(), gold.strip().strip("$").strip()
    sp, sg = _SET.match(p), _SET.match(g)
    if sp or sg:
        if not (sp and sg):
            return None
        a, b = [_values(x.group(1).split(",")) for x in (sp, sg)]
        return None if a is None or b is None else len(a) == len(b) and _close(sorted(a), sorted(b), precision)
    ip, ig = _INTERVAL.match(p), _INTERVAL.match(g)
    if ip or ig:
        if not (ip and ig):
            return None
        a, b = _values([ip.group(2), ip.group(3)]), _values([ig.group(2), ig.group(3)])
        if a is None or b is None:
            return None
        return (ip.group(1), ip.group(4)) == (ig.group(1), ig.group(4)) and _close(a, b, precision)
    ep, eg = _latex_to_python(p), _latex_to_python(g)
    if ep is None or eg is None:
        return None
    vp, vg = _evaluate(ep, _POINTS), _evaluate(eg, _POINTS)
    if vp is None or vg is None:
        return None
    return _close(vp, vg, precision)


def _values(items: list[str]) -> list[float] | None:
    out = []
    for it in items:
        e = _latex_to_python(it.strip())
        v = _evaluate(e, _POINTS[:1]) if e else None
        if v is None:
            return None
        out.append(v[0])
    return out


def _close(a: list[float], b: list[float], precision: int | None) -> bool:
    if precision is not None:
        return all(round(x, precision) == round(y, precision) for x, y in zip(a, b))
    return all(abs(x - y) <= 1e-6 * max(1.0, abs(y)) for x, y in zip(a, b))


# math-verify in a worker process --------------------------------------------------------------
# The worker is its own program (`python -m visionr1.grading --worker`), talking JSON lines over
# pipes: multiprocessing's spawn re-runs the caller's script (an unguarded script or notebook never
# gets a worker) and fork is unsafe next to torch's threads. A worker that cannot start is an error.
_worker_lock = threading.Lock()
_worker: subprocess.Popen | None = None
WORKER_START_TIMEOUT_S = 120.0


class _OverBudget(BaseException):
    """The comparison spent its budget. A BaseException: math-verify and sympy catch Exception
    (and math-verify its own TimeoutException) inside, and would swallow it."""


_GC_THRESHOLD = (700, 10, 10)  # Python's defaults, fixed while a budget runs: one unit of work is one pass


def _within_budget(budget_s: float, fn):
    """fn() within `budget_s` seconds of typical sympy work: ("ok", value) or ("timeout", None).
    Main thread only (signal handlers); what it changes in the process is restored on return.

    Why work and not time: under a wall-clock budget the verdict depended on the load (the same
    comparison finished in time idle and timed out beside a training run: on math-verify's
    regression cases 16-28 of 247 verdicts changed when 4 busy processes shared the 2 cores), and
    even CPU time grows 15-20% when other processes share the cores (caches, clocks), enough to
    flip a comparison near its budget. Work is counted as the garbage collector's passes: Python
    runs one per 700 new objects kept alive, so their number follows from the answers (and from
    the hash seed and sympy's seed, both fixed in the worker), never from the clock. sympy makes
    100-200 passes per CPU second; the budget is MATH_VERIFY_WORK_PER_S passes per second. Past it
    the answer is wrong however soon the interruption lands: the count decides, not a race.

    Every pass past the budget interrupts fn again, in case a handler inside the libraries
    swallows one interruption. Backstops for work that keeps no objects alive (a big-integer
    loop): MATH_VERIFY_CPU_FACTOR x budget_s of CPU time (ITIMER_PROF: this process's user and
    system time; then every 50 ms), and RLIMIT_CPU MATH_VERIFY_HARD_CPU_S later, which ends the
    process in C code that never returns to Python.
    """
    import gc
    import resource
    import signal

    limit, cpu_s = round(MATH_VERIFY_WORK_PER_S * budget_s), MATH_VERIFY_CPU_FACTOR * budget_s
    passes, armed = 0, True

    # _OverBudget must be raised in fn's code: raised in the collector's callback it is printed and
    # ignored. From there (or when the timer's signal is handled there), a trace function raises it
    # at fn's next function call instead.
    def tracer(frame, event, arg):
        if armed and frame.f_code is not on_gc.__code__:
            raise _OverBudget

    def on_signal(signum, frame) -> None:
        if armed and frame is not None and frame.f_code is on_gc.__code__:
            sys.settrace(tracer)
        elif armed:
            raise _OverBudget

    def on_gc(phase: str, info: dict) -> None:
        nonlocal passes
        if phase == "start" and armed:
            passes += 1
            if passes > limit:
                sys.settrace(tracer)

    used = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
    saved = (signal.getsignal(signal.SIGPROF), gc.get_threshold(), resource.getrlimit(resource.RLIMIT_CPU),
             sys.gettrace())
    resource.setrlimit(resource.RLIMIT_CPU, (int(used + cpu_s) + 1 + MATH_VERIFY_HARD_CPU_S, saved[2][1]))
    signal.signal(signal.SIGPROF, on_signal)
    gc.set_threshold(*_GC_THRESHOLD)
    gc.callbacks.append(on_gc)
    try:
        try:
            signal.setitimer(signal.ITIMER_PROF, cpu_s, 0.05)
            value = fn()
        finally:
            armed = False  # first: a signal from here on finds it disarmed (or is caught below)
            sys.settrace(saved[3])
            signal.setitimer(signal.ITIMER_PROF, 0)
            gc.callbacks.remove(on_gc)
            gc.set_threshold(*saved[1])
            signal.signal(signal.SIGPROF, saved[0])
            resource.setrlimit(resource.RLIMIT_CPU, saved[2])
    except _OverBudget:
        return "timeout", None
    return ("timeout", None) if passes > limit else ("ok", value)


def _worker_main() -> None:
    """The worker's loop: one JSON request [pred, gold, precision, budget] per stdin line -> one
    JSON reply [status, value] per stdout line; status ok (value: the verdict), timeout or error."""
    import json
    import logging
    import resource

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # timeouts are ours: silence its warning
    import sympy.core.random as sympy_random
    from math_verify import parse, verify
    from math_verify.parser import ExprExtractionConfig, LatexExtractionConfig

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a worker ended by RLIMIT_CPU leaves no core file
    sympy_random.seed(SYMPY_SEED)
    configs = [LatexExtractionConfig(), ExprExtractionConfig()]
    # the first comparison builds the parsers (about a second): done here, not inside a budget.
    # math-verify's own (wall-clock, signal.alarm) timeouts stay off: the budget is _within_budget's
    verify(parse("$x^2+1$", extraction_config=configs, parsing_timeout=None),
           parse("$1+x^2$", extraction_config=configs, parsing_timeout=None), timeout_seconds=None)
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing but replies on the reply channel

    def compare(pred: str, gold: str, precision: int | None) -> bool:
        g = parse(f"${gold}$", extraction_config=configs, parsing_timeout=None)
        p = parse(f"${pred}$", extraction_config=configs, parsing_timeout=None)
        ok = bool(g) and bool(p) and not any(map(_divides_by_zero, p)) and verify(g, p, timeout_seconds=None)
        if not ok and precision is not None and g and p:
            ok = _numeric_equal(g[0], p[0], precision)
        return bool(ok)

    out.write('"ready"\n')
    out.flush()
    for line in sys.stdin:
        pred, gold, precision, budget = json.loads(line)
        sympy_random.seed(SYMPY_SEED)  # a grade depends on the answers, not on what was graded before
        try:
            reply = _within_budget(budget, lambda: compare(pred, gold, precision))
        except Exception as e:  # noqa: BLE001 - report any sympy/parser failure to the caller
            reply = ("error", f"{type(e).__name__}: {e}")
        out.write(json.dumps(reply) + "\n")
        out.flush()


def _divides_by_zero(expr) -> bool:
    """An expression with a division by zero (nan, zoo, x/(0*y)): not an answer, whatever sympy makes of it.

    Decided on the structure, not by evaluating: sympy evaluates 0/(0*y) to 0 or to nan by chance.
    """
    from sympy import Basic, Mul, Pow, S

    if not isinstance(expr, Basic):
        return False
    if expr.has(S.NaN, S.ComplexInfinity):
        return True
    return any(pw.exp.is_number and pw.exp.is_negative and any(f == 0 for f in Mul.make_args(pw.base))
               for pw in expr.atoms(Pow))


def _numeric_equal(a, b, precision: int) -> bool:
    """Two sympy values equal at `precision` decimal places (e.g. \\sqrt{2} and 1.4142 at 4)."""
    try:
        return round(float(a.evalf()), precision) == round(float(b.evalf()), precision)
    except (TypeError, ValueError, AttributeError):
        return False


def _start_worker() -> subprocess.Popen:
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # lib/: importable without install
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (pkg_root, os.environ.get("PYTHONPATH")) if p),
           "PYTHONHASHSEED": WORKER_HASH_SEED}
    cmd = [sys.executable, "-m", "visionr1.grading", "--worker"]
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, bufsize=1, env=env)
    except OSError as e:
        raise RuntimeError(f"cannot start the math-verify worker ({' '.join(cmd)}): {e}") from e
    line = _read_line(proc, WORKER_START_TIMEOUT_S)
    if line is None or line.strip() != '"ready"':
        proc.kill()
        err = proc.stderr.read()[-2000:] if proc.stderr else ""
        raise RuntimeError(f"the math-verify worker ({' '.join(cmd)}) did not start within "
                           f"{WORKER_START_TIMEOUT_S:.0f} s; its output: {(line or '') + err!r}. "
                           "Is math-verify installed in this Python (pip install math-verify)?")
    threading.Thread(target=_drain, args=(proc.stderr,), daemon=True).start()  # a full stderr pipe would block it
    return proc


def _drain(stream) -> None:
    for _ in stream:
        pass


def _read_line(proc: subprocess.Popen, timeout: float) -> str | None:
    """One reply line within `timeout` seconds; None if none came, "" if the worker ended."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        return None
    return proc.stdout.readline()


def _math_verify(pred: str, gold: str, precision: int | None, timeout: float) -> bool:
    """math-verify's verdict from the worker within a budget of `timeout` seconds of work (wrong past it)."""
    import json
    import signal

    global _worker
    wall_s = max(MATH_VERIFY_WALL_MIN_S, MATH_VERIFY_WALL_FACTOR * timeout)  # the safety net only
    with _worker_lock:  # one comparison at a time; safe from any thread
        if _worker is None or _worker.poll() is not None:
            _worker = _start_worker()
        proc = _worker
        try:
            proc.stdin.write(json.dumps([pred, gold, precision, timeout]) + "\n")
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            line = ""
        else:
            line = _read_line(proc, wall_s)
        if not line:  # None: the worker is stuck (the wall-clock safety net); "": it ended
            stuck = line is None
            proc.kill()
            proc.wait(5)
            _worker = None
            if stuck:
                STATS["wall_timeouts"] += 1
                log.warning("the math-verify worker was silent for %.0f s on %r vs %r; restarted",
                            wall_s, pred[:80], gold[:80])
            elif proc.returncode == -signal.SIGXCPU:  # in C code past the CPU backstop: RLIMIT_CPU ended it
                STATS["timeouts"] += 1
            else:
                STATS["errors"] += 1
                log.warning("the math-verify worker ended (exit status %s) on %r vs %r; restarted",
                            proc.returncode, pred[:80], gold[:80])
            threading.Thread(target=_restart_worker, daemon=True).start()  # the next call needn't wait
            return False
    status, value = json.loads(line)
    if status == "timeout":
        STATS["timeouts"] += 1
        return False
    if status == "error":
        STATS["errors"] += 1
        return False
    return bool(value)


def _restart_worker() -> None:
    global _worker
    with _worker_lock:
        if _worker is None:
            try:
                _worker = _start_worker()
            except RuntimeError:
                log.exception("restarting the math-verify worker failed; the next comparison retries")


def shutdown_worker() -> None:
    global _worker
    with _worker_lock:
        if _worker is not None:
            _worker.kill()
            _worker.wait(5)
            _worker = None


# ---------------------------------------------------------------------------------------------
# A whole response
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Grade:
    format_ok: bool
    correct: bool | None  # None: the gold answer is ungradeable (skip, never pay)
    extraction: Extraction
    format_reason: str


def grade(response: str, gold, *, choices: list[str] | None = None, precision: int | None = None,
          block_only: bool = True, strictness: str = "strict") -> Grade:
    """Format and correctness of one response against one gold answer."""
    fmt = check_format(response, strictness)
    ext = extract_answer(response, choices, block_only=block_only)
    if not gradeable(gold):
        STATS["ungradeable_gold"] += 1
        return Grade(fmt.ok, None, ext, fmt.reason)
    ok = ext.answer is not None and is_equivalent(ext.answer, str(gold), precision=precision, choices=choices)
    return Grade(fmt.ok, ok, ext, fmt.reason)


if __name__ == "__main__" and sys.argv[1:] == ["--worker"]:
    _worker_main()
