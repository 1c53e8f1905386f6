"""Generation for the evaluation stage (04): responses to benchmark items from HF generate (CPU,
one GPU), vLLM's offline engine (GPU boxes) or any OpenAI-compatible endpoint, cached per sample.
The responders adapt the backends that visionr1.backends builds to benchmark items and Sampling.

Each finished sample is one line of `<name>.jsonl` (flushed and fsynced, visionr1.cold_start's
JsonlStore): an interrupted evaluation resumes where it stopped, and a torn last line is cut off.
The paper's sampling is the default (temperature 0.6, top_p 0.95, max tokens 16000, docs/recipe.md §5);
`reask` re-generates a response without `</answer>` up to that many more times (the authors: 5).
Several engines side by side (visionr1.eval_parallel) each write a part file beside `<name>.jsonl`;
`run` folds the parts into it, in question order, before it asks anything.
"""

from __future__ import annotations

import json
import time
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from visionr1 import backends, benchmarks, grading, training
from visionr1.cold_start import JsonlStore

Responder = Callable[[list], list[str]]  # items -> responses


@dataclass
class Sampling:
    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int = 16000
    reask: int = 0                  # more tries when a response has no </answer> (the paper: up to 5)
    batch_size: int = 32            # items per generate call (hf, vllm) / parallel requests (openai)
    seed: int = 0                   # sampling seed: the same items draw the same responses on a rerun
    # one image budget for every model compared (not each model's saved processor, which differ
    # between SFT and RL): images are resized to within these many pixels
    min_pixels: int = 3136
    max_pixels: int = 12845056

    def pixels(self) -> dict:
        return {"min_pixels": self.min_pixels, "max_pixels": self.max_pixels}


def hf_responder(model_path: str, s: Sampling, system: str | None = None) -> Responder:
    """Batched HF generate (left padding), on the GPU when there is one."""
    import torch

    from visionr1 import generation

    model, processor = backends.hf_model(model_path, **s.pixels())
    tries: Counter = Counter()

    def respond(items):
        # seeded by the batch's first item and its try, not by call order: a resumed run draws the
        # same responses, and a re-ask draws new ones
        key = items[0].id if items else ""
        tries[key] += 1
        torch.manual_seed(zlib.crc32(f"{s.seed}:{key}:{tries[key]}".encode()))
        return generation.generate(model, processor, [benchmarks.load_image(i) for i in items],
                                   [i.question for i in items], max_new_tokens=s.max_new_tokens,
                                   batch_size=s.batch_size, temperature=s.temperature, top_p=s.top_p, system=system)
    respond.processor = processor  # what images are resized with (one budget for every model compared)
    return respond


def max_model_len(s: Sampling) -> int:
    """Tokens of the longest sequence 04 asks vLLM for: the completion, the largest image (one
    token per 28 x 28 pixels) and 1,024 for the question and the template.

    >>> max_model_len(Sampling(max_new_tokens=16000, max_pixels=1003520))
    18304
    """
    return s.max_new_tokens + s.max_pixels // (28 * 28) + 1024


def vllm_responder(model_path: str, s: Sampling, system: str | None = None, tensor_parallel: int = 1) -> Responder:
    """vLLM's offline engine (GPU boxes, requirements-gpu.txt). Each request draws from its own seed,
    the item's id and its try: a response does not depend on the batch it came in (one engine or
    several give the same), and a re-ask draws a new one (one seed for every request would give a
    re-asked prompt the same response again)."""
    from vllm import SamplingParams

    llm = backends.vllm_engine(model_path, tensor_parallel, max_model_len=max_model_len(s),
                               mm_processor_kwargs=s.pixels())
    tries: Counter = Counter()

    def params(item) -> SamplingParams:
        tries[item.id] += 1
        return SamplingParams(temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_new_tokens,
                              seed=zlib.crc32(f"{s.seed}:{item.id}:{tries[item.id]}".encode()))

    def respond(items):
        convs = [backends.chat_messages(i.question, benchmarks.load_image(i), system, pil=True) for i in items]
        return [r.outputs[0].text for r in llm.chat(convs, [params(i) for i in items], use_tqdm=False)]
    return respond


def openai_responder(base_url: str, model: str, s: Sampling, api_key_env: str = "OPENAI_API_KEY",
                     system: str | None = None, timeout: float = 600.0, max_retries: int = 5) -> Responder:
    """Any OpenAI-compatible endpoint (a local `python -m visionr1 serve`, vLLM, a hosted API);
    retries and back-off are the client's own. The key is read from `api_key_env` ("EMPTY" if unset)."""
    client = backends.openai_client(base_url, api_key_env, timeout=timeout, max_retries=max_retries)

    def one(item):
        msgs = backends.chat_messages(item.question, benchmarks.load_image(item), system)
        r = client.chat.completions.create(model=model, messages=msgs, temperature=s.temperature, top_p=s.top_p,
                                           max_tokens=s.max_new_tokens, seed=s.seed)
        return r.choices[0].message.content or ""

    def respond(items):
        with ThreadPoolExecutor(max_workers=max(1, s.batch_size)) as pool:
            return list(pool.map(one, items))
    return respond


def run(items: list, respond: Responder, out: str | Path, s: Sampling, desc: str = "evaluating") -> list[dict]:
    """Responses and verdicts for `items`, resuming from `out` (JSONL keyed by item id). Returns one
    record per item, in item order: {id, response, tries, extraction, correct, format_ok, seconds,
    grading} (`grading`: the comparisons and counters grading it took; `grading_summary` sums them)."""
    ids = [i.id for i in items]
    if len(set(ids)) != len(ids):
        dup = next(x for x in ids if ids.count(x) > 1)
        raise ValueError(f"{desc}: item id {dup!r} appears more than once; ids must be unique to resume")
    fold_parts(items, out)
    store = JsonlStore(out)
    todo = [i for i in items if i.id not in store]
    bar = training.progress(len(items), desc if desc == "evaluating" else f"evaluating {desc}", unit="sample",
                            initial=len(items) - len(todo), dynamic_ncols=True)
    try:
        for k in range(0, len(todo), s.batch_size):
            batch = todo[k:k + s.batch_size]
            t0 = time.perf_counter()
            responses, tries = respond(batch), [1] * len(batch)
            for _ in range(s.reask):  # re-ask the ones without </answer>, together
                again = [j for j, r in enumerate(responses) if "</answer>" not in r]
                if not again:
                    break
                for j, r in zip(again, respond([batch[j] for j in again])):
                    responses[j], tries[j] = r, tries[j] + 1
            per = (time.perf_counter() - t0) / len(batch)
            for item, r, t in zip(batch, responses, tries):
                before = dict(grading.STATS)
                verdict = benchmarks.score(item, r)
                store.append({"id": item.id, "response": r, "tries": t, "seconds": round(per, 4), **verdict,
                              "grading": _grading_delta(before)})
            bar.update(len(batch))
    finally:
        bar.close()
        store.close()
    return [store.records[i] for i in ids]


def part_path(out: str | Path, rank: int, n: int) -> Path:
    """The file engine `rank` of `n` side by side writes its share of `out` to.

    >>> part_path("04_evaluate/rl/mathvista.jsonl", 2, 8).name
    'mathvista.part-2-of-8.jsonl'
    """
    out = Path(out)
    return out.with_name(f"{out.stem}.part-{rank}-of-{n}.jsonl")


def fold_parts(items: list, out: str | Path) -> int:
    """Move the records of `out`'s part files (engines side by side, whatever their number) into
    `out`: in question order (`items`), then any record of another question (an eval_limit since
    lowered), never one twice; then delete the parts. Returns how many records moved. A kill in
    between leaves parts whose records are folded (or skipped as present) on the next call."""
    out = Path(out)
    parts = sorted(out.parent.glob(f"{out.stem}.part-*-of-*.jsonl"))
    if not parts:
        return 0
    found: dict[str, dict] = {}
    for part in parts:
        store = JsonlStore(part)  # cuts a torn last line
        store.close()
        found.update({k: v for k, v in store.records.items() if k not in found})
    order = [i.id for i in items if i.id in found] + [k for k in found if k not in {i.id for i in items}]
    store, moved = JsonlStore(out), 0
    try:
        for rid in order:
            if rid not in store:
                store.append(found[rid])
                moved += 1
    finally:
        store.close()
    for part in parts:
        part.unlink()
    return moved


def finished_ids(path: str | Path) -> set[str]:
    """Ids of the complete records of a JSONL store, read without repairing it (what several
    engines may read at once; JsonlStore would cut a torn last line, a write)."""
    path = Path(path)
    if not path.exists():
        return set()
    out = set()
    for line in path.read_bytes().split(b"\n")[:-1]:  # after the last newline: a partial line
        try:
            out.add(json.loads(line)["id"])
        except json.JSONDecodeError:
            break
    return out


def lazy(make: Callable[[], Responder]) -> Responder:
    """A responder built by `make()` at its first call: a model whose every answer is on disk
    already (a resumed run, engines side by side) is never loaded."""
    built: list = []

    def respond(items):
        if not built:
            built.append(make())
        return built[0](items)
    return respond


def _grading_delta(before: dict) -> dict:
    """What grading one response cost and hit: its comparisons, seconds and nonzero counters."""
    d = {k: grading.STATS[k] - before.get(k, 0) for k in ("graded",) + grading.COUNTERS}
    return {**{k: v for k, v in d.items() if v}, "seconds": round(grading.STATS["grading_s"] - before.get("grading_s", 0), 6)}


def grading_summary(records: list[dict]) -> dict:
    """A benchmark's grading counters over its records (the per-record "grading" field, kept in the
    JSONL so a resumed run still counts them): timeouts, refused, ungradeable_gold, errors, graded
    and mean_ms, the mean time of one comparison."""
    tot: Counter = Counter()
    for r in records:
        tot.update(r.get("grading") or {})
    out = {k: int(tot[k]) for k in grading.COUNTERS + ("graded",)}
    return {**out, "mean_ms": round(1000 * tot["seconds"] / tot["graded"], 4) if tot["graded"] else 0.0}


# ---------------------------------------------------------------------------------------------
# Models, benchmarks and the results table of a run
# ---------------------------------------------------------------------------------------------
def make_responder(backend: str, model: str, s: Sampling, system: str | None = None, base_url: str | None = None,
                   api_key_env: str = "OPENAI_API_KEY", tensor_parallel: int = 1) -> Responder:
    if backend == "hf":
        return hf_responder(model, s, system)
    if backend == "vllm":
        return vllm_responder(model, s, system, tensor_parallel)
    if backend == "openai":
        if not base_url:
            raise ValueError("the openai backend needs eval_base_url (e.g. http://localhost:8000/v1)")
        return openai_responder(base_url, model, s, api_key_env, system)
    raise ValueError(f"eval_backend must be hf, vllm or openai, got {backend!r}")


def results_table(results: dict[str, dict[str, dict]], paper: dict[str, dict] | None = None):
    """A DataFrame, one row per model (this run's, then the paper's), one column per benchmark
    score and sub-score (percent)."""
    import pandas as pd

    rows = {}
    for model, per_bench in results.items():
        row = {}
        for bench, agg in per_bench.items():
            row[bench] = agg["accuracy"]
            for k, v in agg.items():
                if k not in ("accuracy", "n") and isinstance(v, (int, float)) and not isinstance(v, bool):
                    row[f"{bench} {k}"] = v
        rows[model] = row
    for model, scores in (paper or {}).items():
        rows[f"paper: {model}"] = dict(scores)
    return pd.DataFrame.from_dict(rows, orient="index")
