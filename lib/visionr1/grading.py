"""Answer grading: the format check, answer extraction and equivalence behind HFRRF (RECIPE §4)
and the benchmark scores (RECIPE §5).

HFRRF pays 1 only when the format is right AND the final answer is correct, so this module decides
what RL learns and what the tables say. Three parts:

  check_format(text)               exactly one non-empty <think>...</think> followed by exactly one
                                   <answer>...</answer>, nothing else but whitespace
  extract_answer(text, choices)    the answer block, \\boxed{}, "Final Answer:", "the answer is",
                                   option forms "(B)", "B.", "B: 145°", or the last number
  is_equivalent(pred, gold, ...)   a fast path (numbers at a precision, fractions, percentages,
                                   degrees, units, option letters, normalized strings) and
                                   math-verify for LaTeX, expressions, sets and intervals

Every check is bounded in time. math-verify runs in a worker process (its own timeouts use
signal.alarm, which fails outside the main thread, and sympy can hang on inputs such as
10^{10^{10^{10}}}): a call that exceeds its budget kills the worker and grades the answer wrong.
Inputs no answer needs (an answer over MAX_ANSWER_CHARS, exponent towers) are refused up front.

Written by hand where no library does the job: math-verify misses bare option letters and reads a
bare `3\\pi` as `3` (docs/platform.md), so letters and plain numbers never reach it, and what does reach
it is wrapped in `$...$` so it is read whole.
"""

from __future__ import annotations

import ast
import functools
import math
import multiprocessing as mp
import re
import threading
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

MAX_ANSWER_CHARS = 300  # an "answer" longer than this is not an answer: graded wrong, never parsed
MATH_VERIFY_TIMEOUT_S = 0.5  # budget of one math-verify comparison (worker killed past it)

STATS: Counter = Counter()  # process-wide counts: ungradeable_gold, timeouts, refused, errors

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
    method: str         # where it came from: answer_block, boxed, final_answer, answer_is, option, last_number, none


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


_FINAL = re.compile(r"final answer\s*(?:is)?\s*[:：]?\s*", re.I)
_ANSWER_IS = re.compile(r"(?:the )?(?:correct )?answer is\s*[:：]?\s*", re.I)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")


def _after_last(pattern: re.Pattern, text: str) -> str | None:
    last = None
    for m in pattern.finditer(text):
        last = m
    if last is None:
        return None
    rest = text[last.end():].strip()
    line = rest.split("\n", 1)[0].strip()
    # "the answer is 5." / "the answer is (B), because ..." -> up to the sentence end
    line = re.split(r"\.(?=\s|$)|,\s(?=because|since|as|which)", line, maxsplit=1)[0]
    return line.strip() or None


def clean_answer(a: str) -> str:
    """Strip wrappers around an extracted answer: 'Final Answer:', $...$, \\boxed{}, a full stop."""
    a = a.strip()
    a = _FINAL.sub("", a, count=1) if _FINAL.match(a) else a
    boxed = last_boxed(a)
    if boxed is not None:
        a = boxed
    a = a.strip()
    if len(a) >= 2 and a[0] == "$" and a[-1] == "$":
        a = a.strip("$").strip()
    if a.startswith("\\(") and a.endswith("\\)"):
        a = a[2:-2].strip()
    return a.rstrip(".").strip()


def extract_answer(text: str, choices: list[str] | None = None, block_only: bool = False) -> Extraction:
    """The final answer of a response.

    With `block_only` (the RL rewards) only a single <answer> block counts: two blocks, or an
    answer outside the block, extract nothing. Otherwise (benchmark responses) the answer block,
    then the last \\boxed{}, "Final Answer:", "the answer is", a lone option letter, the last number.
    """
    n_open = text.count("<answer>")
    if n_open == 1 and text.count("</answer>") == 1 and text.index("<answer>") < text.index("</answer>"):
        inner = text[text.index("<answer>") + len("<answer>"):text.index("</answer>")]
        return Extraction(clean_answer(inner) or None, "answer_block")
    if block_only or n_open > 1:
        return Extraction(None, "none")
    text = text[-20000:]  # the answer is at the end; bounded work on megabyte responses
    boxed = last_boxed(text)
    if boxed is not None:
        return Extraction(clean_answer(boxed), "boxed")
    for pattern, method in ((_FINAL, "final_answer"), (_ANSWER_IS, "answer_is")):
        found = _after_last(pattern, text)
        if found:
            return Extraction(clean_answer(found), method)
    stripped = text.strip()
    if choices and re.fullmatch(r"\(?[A-Z]\)?[.:)]?", stripped):
        return Extraction(stripped, "option")
    if choices and len(stripped) <= MAX_ANSWER_CHARS and match_option(stripped, choices) is not None:
        return Extraction(stripped, "option")
    nums = _NUMBER.findall(text)
    if nums:
        return Extraction(nums[-1], "last_number")
    return Extraction(None, "none")


_OPTION = re.compile(r"^\(?([A-Z])\)?(?:\s*[.:)]\s*|\s+|$)(.*)$", re.S)


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


def match_option(answer: str, choices: list[str]) -> str | None:
    """The option letter `answer` names, by letter ("B", "(B)", "B.", "B: 145°") or by the option's
    text ("145°"); None when it names none or several ("A or B or C").

    >>> match_option("B: 145°", ["35°", "145°"]), match_option("A or B", ["1", "2"]), match_option("2", ["1", "2"])
    ('B', None, 'B')
    """
    a = answer.strip()
    m = _OPTION.match(a)
    if m and LETTERS.index(m.group(1)) < len(choices):
        letter, rest = m.group(1), m.group(2).strip()
        if not rest or _same_text(rest, choices[LETTERS.index(letter)]):
            return letter
    hits = [LETTERS[i] for i, c in enumerate(choices) if _same_text(a, c)]
    return hits[0] if len(hits) == 1 else None


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
    r"(?:\^\s*\{?\\circ\}?|\\circ|°|\\%|%|\\text\{\s*[a-zA-Z ]*\}|\\mathrm\{\s*[a-zA-Z ]*\}|"
    r"\b(?:degrees?|deg|units?|sq|square|cm|mm|km|m|meters?|inches|inch|in|ft|feet|yards?|"
    r"cm\^2|m\^2|kg|g|grams?|seconds?|s|hours?|h|minutes?|min|years?|dollars?|cents?|people|points?)\b)"
)


@functools.lru_cache(maxsize=65536)
def normalize(s: str) -> str:
    """Lower-case, drop $, spaces, thousands commas, \\left/\\right, units and degree marks.

    >>> normalize(" $145^{\\\\circ}$ "), normalize("1,000 cm"), normalize("\\\\text{Yes}")
    ('145', '1000', 'yes')
    """
    s = s.strip().strip("$").strip()
    s = s.replace("\\left", "").replace("\\right", "").replace("\\!", "").replace("\\,", "")
    s = re.sub(r"\\text\{([^{}]*)\}", r"\1", s) if re.fullmatch(r"\\text\{[^{}]*\}", s) else s
    s = _UNITS.sub("", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = re.sub(r"(?<=\d),(?=\d{3}\b)", "", s)
    s = re.sub(r"\s+", "", s).lower().rstrip(".")
    return s


_FRAC = re.compile(r"^(-?)\\frac\{?(-?\d+)\}?\{?(\d+)\}?$")


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
                  choices: list[str] | None = None, timeout: float = MATH_VERIFY_TIMEOUT_S) -> bool:
    """Does `pred` answer `gold`? Fast path first; math-verify (bounded) for what remains.

    `precision`: decimal places at which numbers are compared (the benchmark's); `choices`: the
    options of a multiple-choice question, `gold` then being a letter or an option's text.

    >>> is_equivalent("0.5", "\\\\frac{1}{2}"), is_equivalent("3.14", "3.1416", precision=2)
    (True, True)
    >>> is_equivalent("(B)", "B", choices=["1", "2"]), is_equivalent("A or B", "B", choices=["1", "2"])
    (True, False)
    """
    if pred is None or not str(pred).strip():
        return False
    pred, gold = str(pred).strip(), str(gold).strip()
    if len(pred) > MAX_ANSWER_CHARS:
        STATS["refused"] += 1
        return False
    if choices:
        g = match_option(gold, choices)
        p = match_option(pred, choices)
        if g is not None:
            return p == g
    np_, ng = normalize(pred), normalize(gold)
    if np_ == ng:
        return True
    xp, xg = to_number(np_), to_number(ng)
    if xp is not None and xg is not None:
        if precision is not None:
            return round(xp, precision) == round(xg, precision)
        return abs(xp - xg) <= 1e-6 * max(1.0, abs(xg))
    if xg is not None and re.fullmatch(r"[-+]?[\d.,/]+", np_):
        return False  # two plain numbers that differ; nothing for math-verify to add
    if re.fullmatch(r"[a-z ]+", np_) and re.fullmatch(r"[a-z ]+", ng):
        return False  # two different words
    if _PATHOLOGICAL.search(pred) or _PATHOLOGICAL.search(gold):
        STATS["refused"] += 1
        return False
    fast = latex_fast_equal(pred, gold, precision)
    if fast is not None:
        return fast
    return _math_verify(pred, gold, precision, timeout)


# A fast path for common LaTeX: written by hand because math-verify's LaTeX-to-sympy parse costs
# ~10 ms per answer, and RL grades thousands per step. Plain arithmetic over numbers, one-letter
# variables, \frac, \sqrt, \pi, powers, sets of numbers and intervals is turned into a Python
# expression (validated node by node, floats only) and compared numerically at fixed random points;
# anything else returns None and goes to math-verify.
_TOKEN = re.compile(r"\\(frac|dfrac|tfrac|sqrt|pi|cdot|times|div)|(\d+\.?\d*|\.\d+)|([a-zA-Z])|([-+*/^(){}\[\]])|(\s+)")
_ALLOWED = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Name, ast.Add, ast.Sub, ast.Mult,
            ast.Div, ast.Pow, ast.USub, ast.UAdd, ast.Load)


def _latex_to_python(s: str) -> str | None:
    """`2\\sqrt{3}x^2 + \\frac{1}{2}` -> `2.0*(3.0)**0.5*x**(2.0)+((1.0)/(2.0))`, or None."""
    toks, pos = [], 0
    while pos < len(s):
        m = _TOKEN.match(s, pos)
        if not m:
            return None
        pos = m.end()
        if m.group(5) is None:
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
        elif t == "\\pi":
            piece = "pi"
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
        elif t.isalpha() and len(t) == 1:
            piece = t
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


_POINTS = [{"pi": math.pi, **{c: 0.5 + ((k * 7 + ord(c)) % 13) / 7 for c in "abcdefghijklmnopqrstuvwxyz"}}
           for k in range(3)]
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
        if v is None or any(ch.isalpha() for ch in e.replace("pi", "")):
            return None
        out.append(v[0])
    return out


def _close(a: list[float], b: list[float], precision: int | None) -> bool:
    if precision is not None:
        return all(round(x, precision) == round(y, precision) for x, y in zip(a, b))
    return all(abs(x - y) <= 1e-6 * max(1.0, abs(y)) for x, y in zip(a, b))


# math-verify in a worker process --------------------------------------------------------------
_worker_lock = threading.Lock()
_worker: tuple | None = None  # (process, connection)


def _worker_main(conn) -> None:
    import logging

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # timeouts are ours: silence its warning
    from math_verify import parse, verify
    from math_verify.parser import ExprExtractionConfig, LatexExtractionConfig

    configs = [LatexExtractionConfig(), ExprExtractionConfig()]
    conn.send("ready")
    while True:
        pred, gold, precision = conn.recv()
        try:
            g = parse(f"${gold}$", extraction_config=configs, parsing_timeout=None)
            p = parse(f"${pred}$", extraction_config=configs, parsing_timeout=None)
            ok = bool(g) and bool(p) and verify(g, p, timeout_seconds=None)
            if not ok and precision is not None and g and p:
                ok = _numeric_equal(g[0], p[0], precision)
            conn.send(("ok", ok))
        except Exception as e:  # noqa: BLE001 - report any sympy/parser failure to the caller
            conn.send(("error", f"{type(e).__name__}: {e}"))


def _numeric_equal(a, b, precision: int) -> bool:
    """Two sympy values equal at `precision` decimal places (e.g. \\sqrt{2} and 1.4142 at 4)."""
    try:
        return round(float(a.evalf()), precision) == round(float(b.evalf()), precision)
    except (TypeError, ValueError, AttributeError):
        return False


def _start_worker():
    ctx = mp.get_context("spawn")  # no fork: callers run torch and threads
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_worker_main, args=(child,), daemon=True, name="visionr1-math-verify")
    proc.start()
    if not parent.poll(120) or parent.recv() != "ready":
        proc.kill()
        raise RuntimeError("the math-verify worker process did not start")
    return proc, parent


def _math_verify(pred: str, gold: str, precision: int | None, timeout: float) -> bool:
    global _worker
    with _worker_lock:  # one comparison at a time; safe from any thread
        if _worker is None or not _worker[0].is_alive():
            _worker = _start_worker()
        proc, conn = _worker
        conn.send((pred, gold, precision))
        if not conn.poll(timeout):
            proc.kill()
            proc.join(1)
            _worker = None
            STATS["timeouts"] += 1
            threading.Thread(target=_restart_worker, daemon=True).start()  # the next call needn't wait
            return False
        status, value = conn.recv()
    if status == "error":
        STATS["errors"] += 1
        return False
    return bool(value)


def _restart_worker() -> None:
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = _start_worker()


def shutdown_worker() -> None:
    global _worker
    with _worker_lock:
        if _worker is not None:
            _worker[0].kill()
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
