"""The optional LLM judge of the benchmarks (docs/recipe.md §5) and its agreement with the rule-based verdicts.

The paper judged MathVista/MathVerse with gpt-4o-mini through VLMEvalKit; `judge` asks any
OpenAI-compatible model the same yes/no question (`JUDGE_PROMPT`, on the response's <answer>
block or its last `JUDGE_RESPONSE_CHARS` characters) and `agreement` compares its verdicts with
visionr1.benchmarks.score's.
"""

from __future__ import annotations

import logging
import re
import warnings
from concurrent.futures import ThreadPoolExecutor

from visionr1.benchmarks.common import BenchItem, _pct
from visionr1.reader import DataWarning

log = logging.getLogger(__name__)

JUDGE_PROMPT = """You are grading an answer to a math question about an image.

Question:
{question}

Reference answer: {answer}

Final part of the model's response:
{response}

Does the model's final answer match the reference answer? Treat equivalent forms as a match
(0.5 and 1/2, an option letter and that option's text, units written or left out); a different
value, a different option or several hedged answers do not match.
Reply with one word: yes or no."""

JUDGE_RESPONSE_CHARS = 3000  # the response tail the judge sees: the final answer is at the end


def _judge_view(response: str) -> str:
    if response.count("<answer>") == 1 and response.count("</answer>") == 1:
        return response[response.index("<answer>"):response.index("</answer>") + len("</answer>")]
    return response[-JUDGE_RESPONSE_CHARS:]


def parse_judgement(text: str | None) -> bool | None:
    """yes -> True, no -> False, anything else (both, neither) -> None.

    >>> parse_judgement("Yes."), parse_judgement("Judgement: no"), parse_judgement("maybe")
    (True, False, None)
    """
    words = set(re.findall(r"\b(yes|no)\b", (text or "").lower()))
    return (words == {"yes"}) if len(words) == 1 else None


def judge(items: list[BenchItem], responses: list[str], client, model: str, max_workers: int = 8) -> list[bool | None]:
    """Ask an OpenAI-compatible model (an `openai.OpenAI` client) whether each response's final
    answer matches the reference. None: an unparseable reply, or a request that failed after the
    client's own retries (a warning counts them)."""
    import openai

    if len(items) != len(responses):
        raise ValueError(f"{len(items)} items but {len(responses)} responses")

    def ask(pair) -> bool | None:
        item, response = pair
        prompt = JUDGE_PROMPT.format(question=item.question, answer=item.answer, response=_judge_view(response))
        try:
            reply = client.chat.completions.create(model=model, temperature=0.0, max_tokens=8,
                                                   messages=[{"role": "user", "content": prompt}])
        except openai.OpenAIError as exc:
            log.warning("judge: %s item %s failed: %s: %s", item.benchmark, item.id, type(exc).__name__, exc)
            failed.append(item.id)
            return None
        return parse_judgement(reply.choices[0].message.content)

    failed: list[str] = []
    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        out = list(pool.map(ask, zip(items, responses)))
    if failed:
        warnings.warn(f"judge: {len(failed)} of {len(items)} requests failed after the client's retries "
                      f"(verdict None), first ids {failed[:5]}", DataWarning, stacklevel=2)
    return out


def agreement(rule: list[bool | None], judge: list[bool | None]) -> dict:
    """How often the rule-based verdicts and the judge's agree, over pairs where both exist.
    `agreement` is a percent with 1 decimal.

    >>> agreement([True, False, True, None], [True, True, None, False])
    {'n_compared': 2, 'agree': 1, 'agreement': 50.0, 'rule_yes_judge_no': 0, 'rule_no_judge_yes': 1}
    """
    if len(rule) != len(judge):
        raise ValueError(f"{len(rule)} rule verdicts but {len(judge)} judge verdicts")
    pairs = [(r, j) for r, j in zip(rule, judge) if r is not None and j is not None]
    agree = sum(r == j for r, j in pairs)
    return {"n_compared": len(pairs), "agree": agree, "agreement": _pct(agree, len(pairs)),
            "rule_yes_judge_no": sum(r and not j for r, j in pairs),
            "rule_no_judge_yes": sum(j and not r for r, j in pairs)}
