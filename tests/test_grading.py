"""The grader and the rewards: every rule, the reward-hacking cases and the time bounds."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from visionr1 import grading, rewards
from visionr1.grading import check_format, extract_answer, is_equivalent, match_option

GOOD = "<think> Okay, let's see. 2+2=4. </think><answer> Final Answer: 4 </answer>"


@pytest.mark.parametrize(
    "text, ok, reason",
    [
        (GOOD, True, "ok"),  # the released data's style, spaces inside the tags
        ("<think>a</think><answer>4</answer>", True, "ok"),  # compact
        ("\n <think>a</think>\n\n<answer>4</answer>\n", True, "ok"),  # whitespace around and between
        ("<think>a</think><answer>4</answer> The answer is 4.", False, "text after </answer>"),  # trailing text
        ("Sure! <think>a</think><answer>4</answer>", False, "text before <think>"),  # leading text
        ("<think>a</think> so <answer>4</answer>", False, "text between </think> and <answer>"),  # text between
        ("<think> </think><answer>4</answer>", False, "empty think"),  # empty think
        ("<think>a</think><answer> </answer>", False, "empty answer"),  # empty answer
        ("<think>a</think>", False, "<answer> appears 0 times"),  # missing answer
        ("<answer>4</answer>", False, "<think> appears 0 times"),  # missing think
        ("<think>a</think><answer>4</answer><answer>5</answer>", False, "<answer> appears 2 times"),  # two answers
        ("<think>a<think>b</think></think><answer>4</answer>", False, "<think> appears 2 times"),  # nested think
        ("<think>a<answer>4</answer></think>", False, "tags out of order"),  # answer nested in think
        ("<answer>4</answer><think>a</think>", False, "tags out of order"),  # wrong order
    ],
)
def test_format(text, ok, reason):
    got = check_format(text)
    assert (got.ok, got.reason) == (ok, reason)


def test_format_strictness():
    prefilled = "a reasoning </think><answer>4</answer>"  # the template prefilled <think>
    assert not check_format(prefilled, "strict").ok
    assert check_format(prefilled, "lenient").ok
    assert not check_format("x </think><answer>4</answer> more", "lenient").ok  # trailing text still fails
    with pytest.raises(ValueError, match="strictness"):
        check_format(GOOD, "loose")


@pytest.mark.parametrize(
    "text, choices, answer, method",
    [
        (GOOD, None, "4", "answer_block"),  # "Final Answer:" inside the block is stripped
        ("<answer> $\\frac{1}{2}$ </answer>", None, "\\frac{1}{2}", "answer_block"),  # $...$ stripped
        ("<answer>\\boxed{x^2}</answer>", None, "x^2", "answer_block"),  # boxed inside the block
        ("so it is \\boxed{\\frac{3}{4}} indeed", None, "\\frac{3}{4}", "boxed"),  # nested braces in boxed
        ("a \\boxed{1}\nthen \\boxed{2}", None, "2", "boxed"),  # the last boxed wins
        ("so \\boxed{1}, \\boxed{2}", None, "1, 2", "boxed"),  # several on the final line: a list (math-verify's reading)
        ("Final Answer: 145°\nthanks", None, "145°", "statement"),  # up to the end of the line
        ("Thus the answer is 12.5. Done.", None, "12.5", "statement"),  # up to the sentence end
        ("The correct answer is (B), because of X.", ["1", "2"], "(B)", "statement"),  # option form
        ("B", ["1", "2"], "B", "option"),  # a bare letter
        ("B: 145°", ["35°", "145°"], "B: 145°", "option"),  # letter and option text
        ("I count 3 then 5 shapes", None, "5", "last_value"),  # free-text fallback: the last number
        ("no idea", None, None, "none"),  # nothing to extract
        ("<answer>1</answer><answer>2</answer>", None, None, "none"),  # two answer blocks: ambiguous
        ("so $x = \\frac{1+\\sqrt{5}}{2}$", None, "x = \\frac{1+\\sqrt{5}}{2}", "last_value"),  # the span, never its last number
        ("The value is .4 here", None, ".4", "last_value"),  # a leading decimal point
        ("about 1 000 people", None, "1 000", "last_value"),  # a space as thousands separator
        ("Final Answer: The largest $n$ is 34.", None, "34", "statement"),  # the value in a sentence
        ("So the answer is 1982 with an actual total income of $931,441.", None, "1982", "statement"),  # MV bard pid 588: the first value of prose
        ("Therefore, there are **3** groups of bars that contain a bar smaller than 40.", None, "3", "bold"),  # MV bard pid 873: a bold value
        ("There are three groups of bars that contain at least one bar with a value smaller than 40.", None, "3", "count"),  # MV llava pid 873
        ("There are 2 bars with values larger than 4.", None, "2", "count"),  # MV llavar pid 794: the count, not the last number
        ("The p-values lower than 0.50 are 0.01, 0.10, 0.43, and 0.01.\n\nSo, there are 4 queries that have a p-value lower than 0.50.",
         None, "4", "count"),  # MV gpt4 2shot_solution_use_ocr pid 552: a concluding count, not the threshold after it
        ("So, there is 1 block that has exactly 36 houses.", None, "1", "count"),  # MV gpt4 2shot_solution_use_ocr pid 72
        ("Total objects - 5 brown things = Remaining objects\n\nThe final value will depend on the total number of objects. Without "
         "that information, we cannot provide a specific integer answer.", None, None, "refusal"),  # MV chatgpt 2shot_solution pid 570
        ("The detected text contains some numbers. Since there are no bars with values below 6, the number of bars smaller than 6 is 0.",
         None, "0", "last_value"),  # MV claude 2shot_solution_use_ocr pid 38: a refusal word earlier is no refusal
        ("For each option is:\n\n0-10%: 2 responses\n\nTherefore, the highest number is 17.", None, "17", "last_value"),  # MV chatgpt 2shot_ocr pid 664: "option is:" then a list is no answer
    ],
)
def test_extract(text, choices, answer, method):
    got = extract_answer(text, choices)
    assert (got.answer, got.method) == (answer, method)


OCTOPUS = ["squid", "lantern fish", "octopus", "sea horse"]
YES_NO = ["Yes", "No"]
MV = "lupantech/MathVista results/"  # public model outputs with official verdicts: results/<model>/output_*.json


# Real phrasings: (response, choices, gold letter, expected verdict); each from a public model output
@pytest.mark.parametrize(
    "response, choices, gold, correct",
    [
        ("Thus, the answer is A (9π).", ["9π", "6π", "3π", "π"], "A", True),  # MV gpt4/output_gpt4_2shot_solution pid 538
        ("The correct option is (C) decrease.", ["remains the same", "increase", "decrease", "NA"], "C", True),  # MV chatgpt 2shot_solution_use_ocr pid 431
        ("Among the given options, (A) 3 main veins indicates the lowest number of main veins.\n\nThus, the correct option is A.",
         ["3 main veins", "pinnate", "reticulate", "palmate"], "A", True),  # MV chatgpt 2shot_solution pid 514: not the 3
        ("Okay, here is my response:\n\nC\n\nThe clams feed on plankton and detritus on the seafloor.", OCTOPUS, "C", True),  # MV claude pid 939
        ("The correct answer is the frontal lobe.", ["motor cortex", "occipital lobe", "temporal lobe", "frontal lobe"], "D", True),  # MV llavar pid 576
        ("answer is (C), May.\n\nThe graph shows that the average precipitation is highest in May.", ["August", "April", "May"], "C", True),  # MV bard pid 43
        ("Therefore, the correct answer is (B) 7.</s>", ["1.5", "7", "11", "12.5"], "B", True),  # MV minigpt4 pid 375: trailing </s>
        ("$CD=3\\cdot KF=3\\cdot 8=\\boxed{\\textbf{(C) }18}$.", ["9", "12", "18", "20"], "C", True),  # MV chatgpt 2shot_solution_use_ocr pid 781
        ("Therefore, the function in the image is most likely a polynomial function.",
         ["a polynomial", "a trigonometric function", "an exponential function", "a logarithmic function"], "A", True),  # MV bard pid 755
        ("The grasshopper population would increase if the grasses increase. (C)",
         ["grouse decrease", "chipmunk increases", "grasses increases", "elk increase"], "C", True),  # MV chatgpt pid 293
        ("No, the number of gray cars is not less than the number of small metallic minivans.", YES_NO, "B", True),  # MV-style yes/no free text
        ("So the answer to the question is no, there are not less metal biplanes.", YES_NO, "B", True),  # MV bard pid 976
        ("Thus, the answer is B (plants increase).", ["plants decrease", "plants increase", "nothing happens", "none of the above"], "B", True),  # MV gpt4 2shot pid 125
        ("Answer: (A) 16π/5", ["16*\\pi/5", "32*\\pi/5", "36*\\pi", "288*\\pi/5"], "A", True),  # letter with an option text written differently
        ("Option B) No", YES_NO, "B", True),  # the option named after a cue, not a number before it
        ("The angle is 41 degrees. The choice that matches this is B.", ["35", "41", "45", "55"], "B", True),  # the statement, not 41
        ("We get 12. The correct option is E.", ["1", "2", "3", "4", "12"], "E", True),  # a letter after an earlier number
        ("The answer is C (octopus).", OCTOPUS, "C", True),  # letter with its text in parentheses
        ("**(B) Solution A**", ["Solution B", "Solution A"], "B", True),  # markdown bold; the option text has a letter
        ("$\\boxed{\\text{(C) } 5}$", ["3", "4", "5", "6"], "C", True),  # LaTeX text inside boxed
        ("\\textbf{(A) } 20.25", ["20.25", "21"], "A", True),  # LaTeX bold letter
        ("所以答案是C", ["1", "2", "3", "4"], "C", True),  # Chinese: "so the answer is C"
        ("由图可知，选C", ["1", "2", "3", "4"], "C", True),  # Chinese: "choose C"
        ("故选：B", ["1", "2", "3", "4"], "B", True),  # Chinese textbook style: "hence choose: B"
        ("所以答案是D（7）。", ["14", "12", "9", "7"], "D", True),  # MV gpt4 2shot_solution_use_ocr pid 274: full-width parentheses
        ("A: No, Periwinkle is not the maximum.", ["yes", "no"], "B", True),  # MV mplugowl pid 24: "A:" for "Answer:"
        ("The correct option is (B) R, D, N.", ["A, R, N", "R, D, N", "I, A, M", "H, O, W"], "B", True),  # MV chatgpt 2shot_ocr pid 958: letters in options
        ("The minimum age group shown in the 'plots' is 0-5 years old.", ["11-15", "21-25", "6-10", "16-20", "0-5"], "E", True),  # MV llavar pid 688
        ("The function is not differentiable at every point.", YES_NO, "B", True),  # MV llava pid 493: a one-sentence answer by its polarity
        ("Based on the image, Cyan has the minimum area under the curve.", ["yes", "no"], "A", True),  # MV llava pid 385
        ("所以，S(△ABC) = 18，选项B正确。", ["30", "36", "72", "24"], "B", True),  # MV chatgpt 2shot_ocr pid 622: "option B is correct"
        ("The correct option is C (Adult spider population would decrease).",
         ["remain the same", "double", "Adults spider population would decrease", "increase"], "C", True),  # MV chatgpt 2shot_ocr pid 46: text paraphrased
        ("Choice (B) is incorrect because the image shows that the epigraph is infinite.", YES_NO, "B", False),  # MV bard pid 235: a rejected option
        ("The text does not provide information needed to answer the question.", YES_NO, "B", False),  # MV gpt4 pid 758: a refusal is no "No"
        ("The image of the dot (8,-2) under a clockwise rotation by 270° about the origin is:\n\n(C) C", list("ABCDE"), "C", True),  # MV llava pid 706: a last line naming the option
        ("The top view of the image is option (B) B.", list("ABCDE"), "B", True),  # MV llava pid 647
        ("The next shape that comes next is letter D.", list("ABCDE"), "D", True),  # MV llama_adapter_v2 pid 123
        ("Option D is a mirror image of Option A.\nOption E is not a cube.\n\nTherefore, the only cube that can be formed is Option A.",
         list("ABCDE"), "A", True),  # MV bard pid 358: the conclusion, not the options discussed before it
        ('The correct answer is "soup." Soup typically contains very few carbs, if any, compared to other foods like buns.',
         ["soup", "water", "sandwich", "buns"], "A", True),  # MV llama_adapter_v2 pid 140: a quoted answer
        ("Option A: odd\nOption B: even\n\nThe correct answer is:\n(A) odd\n", ["odd", "even"], "A", True),  # MV idefics pid 39: the answer on the next line
        ("The graph shows a minimum area under the curve of 10. Therefore, option (B) is the correct answer.</s>",
         ["yes", "no"], "B", True),  # MV minigpt4 pid 724: an option endorsed
        ("Based on the image, Crimson is not less than Gray. In fact, Crimson is greater than Gray.", ["yes", "no"], "B", True),  # MV llava pid 861: the first sentence's polarity
        ("(C) yes\n(D) no", ["yes", "no"], "B", True),  # MV instruct_blip2 pid 24: the official extraction reads the last line (kept)
        ("Is Sky Blue the minimum?", ["yes", "no"], "A", False),  # MV llavar pid 239: the question repeated is no "Yes"
        ("Unfortunately I do not have enough context to determine if Dark Periwinkle intersects Yellow Green. If provided more details, "
         "I could make a better attempt.", ["yes", "no"], "B", False),  # MV claude 2shot_solution pid 466: a refusal is no "No"
        ("Sure, I'd be happy to help! Here is what I see.\n\nThe cars are red.", ["Yes", "No"], "A", False),  # a pleasantry has no polarity
        ("Thus, the answer would be B (a).", ["(c)", "(a)", "(e)", "(d)", "(b)"], "(b)", False),  # MV gpt4 2shot_solution pid 168: the gold "(b)" is option E's text
        ("Thus, the answer would be E (b).", ["(c)", "(a)", "(e)", "(d)", "(b)"], "(b)", True),  # ... and E names it
        ("The solution cannot be provided as the function is not specified.", ["Yes", "No"], "B", False),  # MV gpt4 2shot_solution pid 439: a refusal
        ("The answer is C (octopus).", OCTOPUS, "A", False),  # the wrong option stays wrong
        ("The answer is A or B.", OCTOPUS, "A", False),  # hedging names no option
        ("The answer is B (octopus).", OCTOPUS, "B", False),  # letter and text contradict: names none
        ("It could be the squid or the octopus.", OCTOPUS, "C", False),  # two options mentioned: none
    ],
)
def test_real_option_answers(response, choices, gold, correct):
    ext = extract_answer(response, choices)
    assert (ext.answer is not None and is_equivalent(ext.answer, gold, choices=choices)) is correct


def test_extract_block_only_ignores_answers_outside_the_block():
    # the RL rewards read only the answer block: an answer stated outside it is not an answer
    assert extract_answer("<think>x</think> The answer is 4", block_only=True).answer is None
    assert extract_answer("\\boxed{4}", block_only=True).answer is None


@pytest.mark.parametrize(
    "answer, choices, letter",
    [
        ("B", ["1", "2"], "B"),  # bare letter
        ("(B)", ["1", "2"], "B"),  # parenthesised
        ("B.", ["1", "2"], "B"),  # with a full stop
        ("B: 145°", ["35°", "145°"], "B"),  # letter and the matching option text
        ("B: 35°", ["35°", "145°"], None),  # letter and the other option's text: contradictory
        ("145°", ["35°", "145°"], "B"),  # the option's text alone
        ("145", ["35°", "145°"], "B"),  # the option's text without its unit
        ("A or B or C", ["1", "2", "3"], None),  # several letters: reward hacking, names none
        ("E", ["1", "2"], None),  # a letter beyond the options
        ("7", ["1", "2"], None),  # a value that is no option
        ("C (octopus)", OCTOPUS, "C"),  # letter and its text in parentheses
        ("**C**", OCTOPUS, "C"),  # markdown bold
        ("**(C) 145°**", ["35°", "45°", "145°"], "C"),  # bold letter and text
        ("Option C", OCTOPUS, "C"),  # "Option" before the letter
        ("\\text{(C)} 5", ["3", "4", "5"], "C"),  # LaTeX text around the letter
        ("B) No", YES_NO, "B"),  # a closing parenthesis only
        ("A triangle", ["square", "triangle"], None),  # an article, not the letter A: names none
        ("A, then B", ["1", "2"], None),  # two letters
        ("no", YES_NO, "B"),  # the yes/no option by its word
    ],
)
def test_match_option(answer, choices, letter):
    assert match_option(answer, choices) == letter


@pytest.mark.parametrize(
    "pred, gold, kw, same",
    [
        ("4", "4", {}, True),  # integers
        ("4.0", "4", {}, True),  # integer and decimal
        ("1,000", "1000", {}, True),  # thousands separator
        ("0.5", "\\frac{1}{2}", {}, True),  # decimal and LaTeX fraction
        ("1/2", "0.5", {}, True),  # plain fraction
        ("-\\frac{3}{4}", "-0.75", {}, True),  # negative fraction
        ("3.14", "3.1416", {"precision": 2}, True),  # equal at the benchmark's precision
        ("3.14", "3.1416", {}, False),  # not equal without it
        ("50%", "50", {}, True),  # percentage
        ("145°", "145", {}, True),  # degrees
        ("145^{\\circ}", "145", {}, True),  # LaTeX degrees
        ("12 cm", "12", {}, True),  # units stripped
        ("5", "6", {}, False),  # different numbers
        ("yes", "Yes", {}, True),  # case
        ("no", "yes", {}, False),  # different words
        ("(B)", "B", {"choices": ["1", "2"]}, True),  # option letter forms
        ("2", "B", {"choices": ["1", "2"]}, True),  # option text for a letter gold
        ("B", "2", {"choices": ["1", "2"]}, True),  # letter for an option-text gold
        ("A or B", "B", {"choices": ["1", "2"]}, False),  # hedged letters
        ("x^2+1", "1+x^2", {}, True),  # expressions (math-verify)
        ("2x", "x+x", {}, True),  # expressions (math-verify)
        ("\\{1, 2\\}", "\\{2, 1\\}", {}, True),  # sets (math-verify)
        ("[1, 2)", "[1,2)", {}, True),  # intervals
        ("(1, 2]", "[1, 2)", {}, False),  # different intervals
        ("3\\pi", "3", {}, False),  # wrapped whole: 3π is not 3 (math-verify alone says it is)
        ("\\sqrt{2}", "1.4142", {"precision": 4}, True),  # a surd at the benchmark's precision
        ("", "4", {}, False),  # empty prediction
        (None, "4", {}, False),  # no prediction
        ("**7**", "7", {}, True),  # markdown bold
        ("*7*", "7", {}, True),  # markdown italics
        ("7</s>", "7", {}, True),  # an end-of-text token
        ("\\dfrac{1}{3}", "1/3", {}, True),  # \\dfrac
        ("\\frac13", "1/3", {}, True),  # \\frac without braces (math-verify test_all.py)
        ("\\sqrt3", "\\sqrt{3}", {}, True),  # \\sqrt without braces (math-verify test_all.py)
        ("\\frac{1}{3} \\text{meters}", "1/3", {}, True),  # a unit in \\text
        ("x \\geq 5", "x >= 5", {}, True),  # relations spelled two ways
        (".4", "0.4", {}, True),  # a leading decimal point
        ("1 000", "1000", {}, True),  # a space as thousands separator
        ("k = \\frac{1}{3}", "1/3", {}, True),  # the value after "="
        ("\\frac{1+\\sqrt{5}}{2}", "2", {}, False),  # the last number of an expression is not its value
        ("\\begin{pmatrix}1 & 0 \\\\ 0 & 1\\end{pmatrix}", "\\begin{bmatrix}1 & 0 \\\\ 0 & 1\\end{bmatrix}", {}, True),  # matrices (math-verify)
        ("18", "18", {"choices": ["9", "12", "18", "18"]}, True),  # an option text listed twice
    ],
)
def test_equivalence(pred, gold, kw, same):
    assert is_equivalent(pred, gold, **kw) is same


@pytest.mark.parametrize(
    "pred",
    [
        "10^{10^{10^{10}}}",  # an exponent tower: refused up front
        "2^{99999999}",  # a huge exponent: refused up front
        "9" * 400,  # longer than any answer: refused up front
        "(x+1)^{300}*(x-1)^{300}",  # passes the filters; sympy is slow: stopped at its budget of work
    ],
)
def test_pathological_inputs_are_refused_or_cut_off(pred):
    is_equivalent("\\sin(x)", "\\sin(x)+0")  # the worker process starts once per process
    before = grading.STATS["refused"] + grading.STATS["timeouts"]
    t0 = time.perf_counter()
    assert is_equivalent(pred, "\\sin(x)^{2}+\\cos(x)^{2}-1") is False
    # refused up front or stopped at its budget (a count of work, not a clock); the generous
    # bound only catches a hang
    assert grading.STATS["refused"] + grading.STATS["timeouts"] == before + 1
    assert time.perf_counter() - t0 < 30


def test_megabyte_completion_is_graded_fast():
    t0 = time.perf_counter()
    big = "<think>" + "Wait, " * 200_000 + "</think><answer>" + "1" * 1_000_000 + "</answer>"
    assert rewards.hfrrf_reward([big], answer=["1"]) == [0.0]
    assert rewards.accuracy_reward(["x" * 1_000_000], answer=["1"]) == [0.0]
    assert time.perf_counter() - t0 < 30  # generous: catches a quadratic scan, not a loaded machine


def test_works_outside_the_main_thread():
    out = []
    t = threading.Thread(target=lambda: out.append((is_equivalent("x^2+1", "1+x^2"),
                                                    rewards.hfrrf_reward([GOOD], answer=["4"]))))
    t.start()
    t.join(10)
    assert out == [(True, [1.0])]


# reward-hacking and reward cases: (completion, gold, choices) -> (format, accuracy, hfrrf)
REWARD_CASES = [
    (GOOD, "4", None, (1.0, 1.0, 1.0)),  # right format, right answer: paid
    ("<think>a</think><answer>5</answer>", "4", None, (1.0, 0.0, 0.0)),  # right format, wrong answer
    ("<answer>4</answer>", "4", None, (0.0, 1.0, 0.0)),  # right answer, no think: HFRRF pays nothing
    ("<think>a</think><answer>A or B or C</answer>", "B", ["1", "2", "3"], (1.0, 0.0, 0.0)),  # hedged options
    ("<think>a</think><answer>4</answer><answer>5</answer>", "4", None, (0.0, 0.0, 0.0)),  # two answers
    ("<think>a</think><answer>4</answer><answer>4</answer>", "4", None, (0.0, 0.0, 0.0)),  # the same answer twice
    ("<think>the answer is 4</think><answer></answer>", "4", None, (0.0, 0.0, 0.0)),  # answer outside the block
    ("<think>a</think><answer>x</answer> \\boxed{4}", "4", None, (0.0, 0.0, 0.0)),  # boxed after the block
    ("<think>a</think><answer> Final Answer:B </answer>", "B", ["35°", "145°"], (1.0, 1.0, 1.0)),  # released style
    ("<think>a</think><answer>145°</answer>", "B", ["35°", "145°"], (1.0, 1.0, 1.0)),  # option text for a letter
]


@pytest.mark.parametrize("completion, gold, choices, expected", REWARD_CASES)
def test_rewards(completion, gold, choices, expected):
    kw = {"answer": [gold], "choices": [choices]}
    conversational = [[{"role": "assistant", "content": completion}]]  # TRL's conversational form
    got = (rewards.format_reward([completion], **kw)[0], rewards.accuracy_reward(conversational, **kw)[0],
           rewards.hfrrf_reward([completion], **kw)[0])
    assert got == expected


@pytest.mark.parametrize("gold", [None, "", "nan", "\\frac{1}{2"])
def test_ungradeable_gold_is_skipped_and_counted(gold):
    before = grading.STATS["ungradeable_gold"]
    assert rewards.hfrrf_reward([GOOD], answer=[gold]) == [None]  # None: TRL leaves it unscored
    assert rewards.accuracy_reward([GOOD], answer=[gold]) == [None]
    assert grading.STATS["ungradeable_gold"] == before + 1  # the same batch is graded once


def test_an_exception_in_one_completion_does_not_kill_the_batch(monkeypatch):
    real = grading.grade

    def flaky(text, gold, **kw):
        if "boom" in text:
            raise RuntimeError("boom")
        return real(text, gold, **kw)

    monkeypatch.setattr(grading, "grade", flaky)
    assert rewards.hfrrf_reward(["boom", GOOD], answer=["4", "4"]) == [None, 1.0]


def test_reward_sets_by_name():
    funcs, weights = rewards.reward_set("hfrrf")
    assert [f.__name__ for f in funcs] == ["hfrrf_reward", "format_reward", "accuracy_reward"]
    assert weights == [1.0, 0.0, 0.0]  # the parts are logged, not paid
    funcs, weights = rewards.reward_set("zero")
    assert [f.__name__ for f in funcs] == ["format_reward", "accuracy_reward"] and weights == [1.0, 1.0]
    with pytest.raises(ValueError, match="unknown reward set 'x'"):
        rewards.reward_set("x")


def test_reward_set_strictness():
    prefilled = "reasoning </think><answer>4</answer>"  # the chat template prefilled <think>
    strict, _ = rewards.reward_set("hfrrf")
    lenient, _ = rewards.reward_set("hfrrf", strictness="lenient")
    assert strict[0]([prefilled], answer=["4"]) == [0.0]
    assert lenient[0]([prefilled], answer=["4"]) == [1.0]
    with pytest.raises(ValueError, match="strictness"):
        rewards.reward_set("hfrrf", strictness="loose")


@pytest.mark.parametrize(
    "pred, gold, verdict",
    [
        ("\\frac{\\sqrt{2}}{2}", "\\sqrt{2}/2", True),  # nested frac and sqrt
        ("2\\sqrt{3}", "\\sqrt{12}", True),  # surds
        ("\\{1,2\\}", "\\{2,1\\}", True),  # sets of numbers, any order
        ("\\{1,2\\}", "\\{1,2,3\\}", False),  # sets of different size
        ("(1,2]", "[1,2)", False),  # intervals with other brackets
        ("2^{10}", "1024", True),  # powers
        ("\\frac{1}{0}", "1", None),  # undefined: left to math-verify
        ("x^2+2", "2+x^2", None),  # a variable: math-verify decides
        ("2\\pi", "2", None),  # a constant: math-verify decides
        ("2.718", "e", None),  # e is a constant, not a variable at a random point
        ("\\sin(x)", "1", None),  # functions: left to math-verify
        ("x=2", "2", None),  # equations: left to math-verify
    ],
)
def test_latex_fast_path(pred, gold, verdict):
    assert grading.latex_fast_equal(pred, gold) is verdict


def test_symbols_reach_math_verify(monkeypatch):
    # the fast path decides only symbol-free arithmetic: e, pi, letters and functions go to math-verify
    asked = []
    monkeypatch.setattr(grading, "_math_verify", lambda p, g, *a: asked.append((p, g)) or False)
    for pred, gold in [("2.718", "e"), ("3.14", "\\pi"), ("x", "y"), ("\\sin(1)", "0.84")]:
        is_equivalent(pred, gold)
    assert asked == [("2.718", "e"), ("3.14", "\\pi"), ("x", "y"), ("\\sin(1)", "0.84")]


@pytest.mark.parametrize(
    "expr, refused",
    [
        ("10^{10^{10^{10}}}", True),  # a tower in braces
        ("2^2^2", True),  # a bare tower
        ("2^{99999}", True),  # a 5-digit exponent
        ("99999!", True),  # a 5-digit factorial
        ("\\sin^2(2x)+\\cos^2(2x)", False),  # two powers side by side are no tower
        ("x^2+y^2", False),  # an ordinary polynomial
    ],
)
def test_pathological_filter(expr, refused):
    assert bool(grading._PATHOLOGICAL.search(expr)) is refused


def test_a_reward_set_grades_each_completion_once(monkeypatch):
    # HFRRF, format and accuracy read one grading pass; the counters count each completion once
    calls = []
    real = grading.grade
    monkeypatch.setattr(grading, "grade", lambda text, gold, **kw: calls.append(text) or real(text, gold, **kw))
    funcs, _ = rewards.reward_set("hfrrf")
    batch = [GOOD, "<think>a</think><answer>5</answer>"]
    got = [f(batch, answer=["4", "4"]) for f in funcs]
    assert got == [[1.0, 0.0], [1.0, 1.0], [1.0, 0.0]] and calls == batch
    funcs[0](batch, answer=["5", "5"])  # another step's batch is graded anew
    assert len(calls) == 4


def test_grading_metrics_per_step():
    before = dict(grading.STATS)
    rewards.hfrrf_reward(["<think>a</think><answer>7</answer>"], answer=[None])
    m = rewards.grading_metrics(before)
    assert m["grading/ungradeable_gold"] == 1 and m["grading/timeouts"] == 0 and "grading/mean_ms" in m


UNGUARDED = """
from visionr1 import grading
cases = [("\\\\sin(x)^2+\\\\cos(x)^2", "1"), ("x^2-1", "(x-1)(x+1)"), ("\\\\sin(x)", "\\\\cos(x)")]
print(*(grading.is_equivalent(p, g) for p, g in cases))
"""


def test_a_plain_script_without_main_guard_grades_right(tmp_path):
    # the worker is its own program: a script without `if __name__ == "__main__":` is not re-run
    script = tmp_path / "plain.py"
    script.write_text(UNGUARDED)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True", "False"]


GARBLED = """
from visionr1 import grading
# from a nano RL run (seed 1, step 69): math-verify reads the answer as 0/(0*g*r*E*E*n*s*...)
print(grading.is_equivalent("0: green squares0", "0"), grading.is_equivalent("x^2-1", "(x-1)(x+1)"))
"""


def test_the_same_answer_gets_the_same_grade_in_every_process(tmp_path):
    # sympy's answer to 0 - 0/(0*y) followed the process's hash seed and its unseeded random state:
    # graded right in one run and wrong in its rerun. A division by zero is now wrong in every process.
    script = tmp_path / "garbled.py"
    script.write_text(GARBLED)
    outputs = set()
    for hash_seed in ("1", "2", "3", "4"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(Path(grading.__file__).parents[1])}
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                              cwd=tmp_path, env=env)
        assert proc.returncode == 0, proc.stderr
        outputs.add(proc.stdout.strip())
    assert outputs == {"False True"}


def test_a_worker_that_cannot_start_fails_loudly(monkeypatch):
    grading.shutdown_worker()
    monkeypatch.setattr(grading.sys, "executable", "/nonexistent/python")
    with pytest.raises(RuntimeError, match="math-verify worker"):
        is_equivalent("\\sin(x)", "\\cos(x)")
