"""Modality bridging over HTTP: records per second through `cold_start.bridge` with two openai
teachers (MLLM, reasoner) against the scripted local server of tests/fake_openai.py.

    .venv/bin/python bench/cold_start_http.py [--rows 64] [--latency 0.05] [--concurrency 1 16]

Each record is three requests (pseudo-CoT, description, CoT), each answered after `--latency`
seconds, a stand-in for a real server's generation time; so at concurrency c the ceiling is
c / (3 x latency) records per second, and the gap to it is our overhead (PNG encoding, JSON, the
client, the JSONL store). The fake's replies chain the gold answer through the three steps, so the
CoTs are well-formed R1 text and the filter (when cold_start has one) should keep every record.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import tempfile
import time
from pathlib import Path

from visionr1 import nano_task
from visionr1.teachers import OpenAITeacher

FAKE_PATH = Path(__file__).resolve().parents[1] / "tests" / "fake_openai.py"


def load_fake_server():
    """tests/fake_openai.py is a test helper, not part of the package: load it from its file."""
    spec = importlib.util.spec_from_file_location("fake_openai", FAKE_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FakeOpenAI


def fake_reply(body: dict) -> str:
    """What a good teacher would write for each step, told apart by the prompt's wording
    (lib/visionr1/prompts/default); the gold answer travels pseudo-CoT -> description -> CoT."""
    prompt = body["messages"][0]["content"][-1]["text"]
    if "think step by step and answer" in prompt:  # cot.txt: the text reasoner
        m = re.search(r"the value the question asks for is (\S+?)\.", prompt)
        ans = m.group(1) if m else "0"
        return (f"<think> Okay, let's see. The image shows a grid of cells with coloured shapes. "
                f"I count what the question needs, row by row. Wait, let me recount to be sure. "
                f"Yes, the value the question asks for is {ans}. So the result is {ans}. </think> "
                f"Final Answer: {ans}")
    if "provide a detailed description" in prompt:  # description.txt: the MLLM, second step
        m = re.search(r"So the answer is (\S+?)\.", prompt)
        ans = m.group(1) if m else "0"
        return (f"The image shows a 3 by 3 grid of cells on a white background, each empty or holding a "
                f"red, green or blue circle, square or triangle; the value the question asks for is {ans}.")
    m = re.search(r"^Answer: (.*)$", prompt, re.M)  # pseudo_cot.txt: the MLLM, first step
    ans = m.group(1).strip() if m else "0"
    return f"Caption: a grid of coloured shapes. Counting the shapes the question names gives it. So the answer is {ans}."


def make_rows(n: int) -> list[dict]:
    samples = nano_task.build_splits(seed=0, n_test=10, n_cold_start=n, n_rl=10)["cold_start"]
    return [{"id": s.id, "image": s.image, "question": s.question, "answer": s.answer,
             "description": s.scene.description(), "facts": s.facts, "choices": s.choices} for s in samples]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=64, help="cold-start source rows bridged per run")
    ap.add_argument("--latency", type=float, default=0.05, help="seconds the fake server takes per request")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 16], help="rows in flight")
    args = ap.parse_args()

    from visionr1 import cold_start  # written alongside this bench; imported late so --help works without it

    FakeOpenAI = load_fake_server()
    rows = make_rows(args.rows)
    print(f"{len(rows)} nano cold-start rows, fake server latency {args.latency}s per request, 3 requests per record")
    print(f"{'concurrency':>11} {'records':>8} {'seconds':>8} {'records/s':>10} {'requests/s':>11} "
          f"{'ceiling/s':>10} {'kept':>5} {'failed':>6}")
    for c in args.concurrency:
        with FakeOpenAI(reply=fake_reply, latency_s=args.latency) as srv, tempfile.TemporaryDirectory() as tmp:
            mllm = OpenAITeacher(base_url=srv.base_url, model="fake-vl", concurrency=c, max_retries=2, timeout_s=30)
            reasoner = OpenAITeacher(base_url=srv.base_url, model="fake-r1", concurrency=c, max_retries=2,
                                     timeout_s=30)
            out = Path(tmp) / "raw.jsonl"
            t0 = time.perf_counter()
            stats = cold_start.bridge(rows, mllm, reasoner, prompt_set="default", out_jsonl=out,
                                      concurrency=c, progress=False)
            seconds = time.perf_counter() - t0
            kept = "-"
            if hasattr(cold_start, "filter_records") and hasattr(cold_start, "read_raw"):
                kept_rows, _reasons = cold_start.filter_records(cold_start.read_raw(out))
                kept = str(len(kept_rows))
            n_req = len(srv.requests)
        records = stats["written"]
        ceiling = f"{c / (3 * args.latency):.1f}" if args.latency > 0 else "-"
        print(f"{c:>11} {records:>8} {seconds:>8.2f} {records / seconds:>10.1f} {n_req / seconds:>11.1f} "
              f"{ceiling:>10} {kept:>5} {stats['failed']:>6}")
        if stats["failed"]:
            print("   first errors:", *stats["errors"][:3], sep="\n   ")


if __name__ == "__main__":
    main()
