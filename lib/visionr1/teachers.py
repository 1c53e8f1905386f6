"""Teachers for modality bridging (docs/recipe.md §1), behind one interface chosen in params.

A teacher answers one request: `complete(step, prompt, image, row) -> Reply`. `step` is
"pseudo_cot", "description" (the MLLM's two steps) or "cot" (the text reasoning LLM); `prompt` is
the filled template from prompts/<set>/<step>.txt; `image` is a PIL image or None (the reasoner is
text-only); `row` is the source row, which only the oracle reads.

  openai  any OpenAI-compatible endpoint (vLLM serve, a hosted API): the real-scale teachers
  hf      a local transformers model (the tiny model in tests)
  oracle  the nano task's stand-in: reads the scene description and facts of the source row and
          writes a caption, a pseudo-CoT, a detailed description and an R1-style CoT with self-checks;
          `wrong_rate` of its CoTs are wrong on purpose (a miscount, a contradiction, or a cut-off
          CoT), so the filter has real work; the raw record says which (`oracle_error`)

The clients and models behind the openai and hf teachers are built by visionr1.backends.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from visionr1 import backends, nano_task


@dataclass
class Reply:
    text: str
    truncated: bool = False  # the teacher stopped at its token limit (finish_reason "length")
    meta: dict = field(default_factory=dict)


class Teacher:
    name = "teacher"

    def complete(self, step: str, prompt: str, image=None, row: dict | None = None) -> Reply:
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------
class OracleTeacher(Teacher):
    """Writes what a perfect teacher would, from the nano source row (scene description, facts),
    except for a `wrong_rate` share of CoTs that it spoils on purpose, deterministically by row id."""

    name = "oracle"
    ERRORS = ("miscount", "contradiction", "truncated")
    # "counts": the arithmetic in one line ("2×3+4=10.") and the option named at once ("10 is option (C).");
    # "steps": one small fact per step ("2×3=6. 6+4=10.", nano_task.arithmetic_steps) and each option
    # restated and compared in turn ("(A) 7, no. (B) 3, no. (C) 10, yes."), so no step needs a lookup
    # the tiny model has not learned (measured on "counts": arithmetic right 28% on weighted_sum, the
    # letter wrong on 39% of count_color answers whose counts were all right; docs/results.md);
    # "rows": as "steps", and half of the counts are checked row by row ("Wait, let me count the blue
    # shapes row by row: 1, 2, 0. 1+2=3. 3+0=3. Yes, 3."), a third of those after a first count one
    # off, which the check corrects ("So the blue shapes are 3, not 4."): a longer CoT that is more
    # often right, which RL can learn to write more of
    STYLES = ("counts", "steps", "rows")
    # multiple choice answered with the option's letter, or with its value (the grader maps an option's
    # text to its letter, as MathVista's extraction does; the nano base answers so, and RL from a
    # "letter" CI model learns to: docs/results.md, 2026-12-07)
    MC_ANSWERS = ("letter", "value")

    def __init__(self, wrong_rate: float = 0.2, seed: int = 0, style: str = "counts", mc_answer: str = "letter"):
        if not 0.0 <= wrong_rate <= 1.0:
            raise ValueError(f"oracle wrong_rate must be in [0, 1], got {wrong_rate}")
        if style not in self.STYLES:
            raise ValueError(f"unknown oracle CoT style {style!r} (cs_oracle_style); choose {' or '.join(self.STYLES)}")
        if mc_answer not in self.MC_ANSWERS:
            raise ValueError(f"unknown oracle multiple-choice answer {mc_answer!r} (cs_mc_answer); "
                             f"choose {' or '.join(self.MC_ANSWERS)}")
        self.wrong_rate = wrong_rate
        self.seed = seed
        self.style = style
        self.mc_answer = mc_answer

    def error_for(self, row: dict) -> str | None:
        rng = random.Random(f"{self.seed}:{row['id']}")
        return rng.choice(self.ERRORS) if rng.random() < self.wrong_rate else None

    def complete(self, step: str, prompt: str, image=None, row: dict | None = None) -> Reply:
        if row is None or "facts" not in row or "description" not in row:
            raise ValueError("the oracle teacher needs nano source rows (with 'facts' and 'description'); "
                             "use the openai or hf teacher for other data")
        if step == "pseudo_cot":
            return Reply(self._pseudo_cot(row))
        if step == "description":
            return Reply(row["description"])
        if step == "cot":
            error = self.error_for(row)
            text = self._cot(row, error)
            return Reply(text, truncated=error == "truncated", meta={"oracle_error": error})
        raise ValueError(f"unknown bridging step {step!r}")

    @staticmethod
    def _facts(row: dict) -> list[tuple[str, int]]:
        return [(k, v) for k, v in row["facts"].items() if k != "factor"]

    def _pseudo_cot(self, row: dict) -> str:
        counts = ", ".join(f"{k}: {v}" for k, v in self._facts(row))
        return (f"The image shows a grid of coloured shapes. Counting what the question needs: {counts}. "
                f"So the answer is {row['answer']}.")

    def _cot(self, row: dict, error: str | None) -> str:
        rng = random.Random(f"cot:{self.seed}:{row['id']}")
        facts = self._facts(row)
        miscounted = rng.randrange(len(facts)) if error in ("miscount", "contradiction") else None
        seen = []
        counts = row.get("counts") or {}
        overview = (" ".join(f"{c}{counts[c]}" for c in ("red", "green", "blue") if c in counts) + ", "
                    + " ".join(f"{s}{counts[s]}" for s in ("circle", "square", "triangle") if s in counts) + ".")
        lines = ["Okay, let's see. The description lists the cells row by row, so I count them by colour and shape: "
                 + overview if counts else
                 "Okay, let's see. The description lists the cells row by row, so I count what the question needs."]
        for i, (name, value) in enumerate(facts):
            v = value + (1 if value == 0 or rng.random() < 0.5 else -1) if i == miscounted else value
            seen.append(v)
            if self.style == "rows":
                lines.append(self._counted_by_rows(row, name, v, rng, checkable=i != miscounted))
                continue
            lines.append(f"{name}{v}.")
            r = rng.random()
            if r < 0.4:
                lines.append(f"Wait, let me recount the {name}: {name}{v}. Yes.")
            elif r < 0.55:
                lines.append(f"Alternatively, counting column by column: {name}{v}. Same.")
            elif r < 0.65:
                lines.append(f"Let me check the {name} once more: {name}{v}. No mistake.")
        result = self._combine(row, seen)
        lines.append(self._arithmetic(row, seen, result) if self.style == "counts" else self._steps(row, seen))
        lines.append(f"So the result is {result}.")
        final = self._final(row, result)
        if error == "contradiction":
            final = self._final(row, self._combine(row, [v for _, v in facts]))  # answer block disagrees
        if row.get("choices") and self.mc_answer == "letter":
            if self.style != "counts":
                lines.append(self._option_walk(row, result))
            else:
                lines.append(f"Hmm, {result} is option ({self._letter(row, result) or '?'}).")
        think = " ".join(lines)
        if error == "truncated":
            return "<think> " + think[: len(think) // 2]
        return f"<think> {think} </think> Final Answer: {final}"

    @staticmethod
    def _arithmetic(row: dict, v: list[int], result: int) -> str:
        factor = row["facts"].get("factor")
        if factor is not None:
            return f"{factor}×{v[0]}+{v[1]}={result}."
        if row["question"].startswith("How many more"):
            return f"{max(v)}-{min(v)}={result}."
        if len(v) == 2:
            return f"{v[0]}+{v[1]}={result}."
        return f"That makes {result}."

    @staticmethod
    def _counted_by_rows(row: dict, name: str, value: int, rng: random.Random, checkable: bool) -> str:
        """One count in the "rows" style: stated, then (half the time) checked row by row, the first
        count one off in a third of the checks; a spoiled count (`checkable` False) is never checked."""
        r = rng.random()
        if checkable and r < 0.5:
            per_row = nano_task.count_by_rows(row["description"], name)
            first = value
            if rng.random() < 1 / 3:
                first = value + (1 if value == 0 or rng.random() < 0.5 else -1)
            steps, total = [], per_row[0]
            for n in per_row[1:]:
                steps.append(nano_task.arithmetic_steps("plus", [total, n]))
                total += n
            check = (f"Wait, let me count the {name} row by row: {', '.join(map(str, per_row))}. {' '.join(steps)}")
            end = f"Yes, {value}." if first == value else f"So the {name} are {value}, not {first}."
            return f"{name}{first}. {check} {end}"
        if r < 0.6:
            return f"{name}{value}. Let me check the {name} once more: {name}{value}. No mistake."
        return f"{name}{value}."

    @staticmethod
    def _steps(row: dict, v: list[int]) -> str:
        factor = row["facts"].get("factor")
        if factor is not None:
            return nano_task.arithmetic_steps("times_plus", v, factor)
        if row["question"].startswith("How many more"):
            return nano_task.arithmetic_steps("minus", [max(v), min(v)])
        if len(v) == 2:
            return nano_task.arithmetic_steps("plus", v)
        return f"That makes {v[0]}."

    @staticmethod
    def _option_walk(row: dict, value: int) -> str:
        return nano_task.option_walk(row["choices"], value)

    @staticmethod
    def _combine(row: dict, values: list[int]) -> int:
        q = row["question"]
        factor = row["facts"].get("factor")
        if factor is not None:
            return factor * values[0] + values[1]
        if q.startswith("How many more"):
            return abs(values[0] - values[1])
        if len(values) == 2:
            return values[0] + values[1]
        return values[0]

    @staticmethod
    def _letter(row: dict, value: int) -> str | None:
        choices = row.get("choices") or []
        return "ABCD"[choices.index(str(value))] if str(value) in choices else None

    def _final(self, row: dict, value: int) -> str:
        if row.get("choices") and self.mc_answer == "letter":
            return self._letter(row, value) or str(value)
        return str(value)


# ---------------------------------------------------------------------------------------------
class HFTeacher(Teacher):
    """A local transformers Qwen2.5-VL-style model (a folder or hub name), greedy or sampled."""

    name = "hf"

    def __init__(self, model_path: str, max_new_tokens: int = 512, temperature: float = 0.0):
        # on CPU in float32: the tiny model in tests; at scale the teachers are `vllm serve` (openai)
        self.model, self.processor = backends.hf_model(model_path, device="cpu")
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature

    def complete(self, step: str, prompt: str, image=None, row: dict | None = None) -> Reply:
        import torch

        from visionr1 import generation

        text = generation.chat_prompt(self.processor, prompt, image=image is not None)
        enc = self.processor(text=[text], images=[image] if image is not None else None, return_tensors="pt")
        with torch.no_grad():
            out = self.model.generate(**enc, max_new_tokens=self.max_new_tokens,
                                      do_sample=self.temperature > 0, temperature=self.temperature or None)
        new = out[0, enc["input_ids"].shape[1]:]
        eos = set(self.model.generation_config.eos_token_id or [])
        truncated = len(new) >= self.max_new_tokens and int(new[-1]) not in eos
        return Reply(self.processor.decode(new, skip_special_tokens=True), truncated=truncated)


# ---------------------------------------------------------------------------------------------
class OpenAITeacher(Teacher):
    """One chat-completions request per bridging step, against `base_url` (None: api.openai.com).

    The paper ran its bridging teachers (Qwen2.5-VL-72B for the pseudo-CoT and the description,
    DeepSeek-R1 for the long CoT) on 128 GPUs. Here the same steps go over HTTP to whatever speaks
    the chat-completions API: `vllm serve Qwen/Qwen2.5-VL-72B-Instruct` on the 8-GPU box, a second
    `vllm serve` with a reasoning parser for the text reasoner, or a hosted API. One request per
    step: the image (when the step has one) as a PNG data URL, then the filled prompt.

    Retries and timeouts are the openai client's own (visionr1.backends.openai_client); what
    survives them propagates as the openai exception, and the caller records the failed row. The
    caller's `concurrency` worker threads share one client.

    Reasoning servers (vLLM with `--reasoning-parser deepseek_r1`, the DeepSeek API) return the
    thinking in `message.reasoning_content` (or `reasoning`) apart from the answer; the teacher
    glues it back as `<think>{reasoning}</think>{content}`, the R1 form the CoT filter expects.
    """

    name = "openai"

    def __init__(self, base_url: str | None, model: str, api_key_env: str = "OPENAI_API_KEY",
                 timeout_s: float = 600.0, max_retries: int = 5, max_tokens: int = 4096,
                 temperature: float = 0.6, concurrency: int = 16):
        if not model:
            raise ValueError("the openai teacher needs a model name (the one `vllm serve` or the API serves)")
        if concurrency < 1:
            raise ValueError(f"openai teacher concurrency must be >= 1, got {concurrency}")
        self.base_url = base_url
        self.model = model
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.concurrency = concurrency  # the caller runs this many requests at once, sharing self.client
        self.client = backends.openai_client(base_url, api_key_env, timeout=timeout_s, max_retries=max_retries)

    def complete(self, step: str, prompt: str, image=None, row: dict | None = None) -> Reply:
        t0 = time.perf_counter()
        resp = self.client.chat.completions.create(
            model=self.model, messages=backends.chat_messages(prompt, image),
            max_tokens=self.max_tokens, temperature=self.temperature)
        latency = time.perf_counter() - t0  # includes the client's retries and backoff
        choice = resp.choices[0]
        text = choice.message.content or ""
        reasoning = self._reasoning(choice.message)
        if reasoning:
            text = f"<think>{reasoning}</think>{text}"
        usage = resp.usage.model_dump() if resp.usage is not None else None
        return Reply(text=text, truncated=choice.finish_reason == "length",
                     meta={"usage": usage, "latency_s": round(latency, 4), "finish_reason": choice.finish_reason})

    @staticmethod
    def _reasoning(message) -> str:
        """The separately returned thinking, if the server has a reasoning parser; else ''."""
        for key in ("reasoning_content", "reasoning"):
            value = getattr(message, key, None)
            if isinstance(value, str) and value.strip():
                return value
        return ""


def make_teacher(kind: str, **kw) -> Teacher:
    """Build a teacher by kind from params: oracle(wrong_rate, seed, style, mc_answer), hf(model_path, ...),
    openai(base_url, model, api_key_env, concurrency, timeout_s, max_retries, max_tokens, temperature)."""
    if kind == "oracle":
        return OracleTeacher(wrong_rate=kw.get("wrong_rate", 0.2), seed=kw.get("seed", 0),
                             style=kw.get("style", "counts"), mc_answer=kw.get("mc_answer", "letter"))
    if kind == "hf":
        if not kw.get("model_path"):
            raise ValueError("the hf teacher needs a model path (cs_hf_model)")
        return HFTeacher(kw["model_path"], kw.get("max_tokens", 512), kw.get("temperature", 0.0))
    if kind == "openai":
        return OpenAITeacher(**{k: v for k, v in kw.items() if k not in ("wrong_rate", "seed", "style", "mc_answer", "model_path")})
    raise ValueError(f"unknown teacher kind {kind!r}; choose oracle, hf or openai")
