"""04 on every GPU of the box: engines side by side, each answering its share of the questions.

vLLM 0.31's offline engine refuses data parallelism in one process (vllm/entrypoints/llm.py,
`LLM.__init__`: "LLM(data_parallel_size=N) is not supported for single-process usage and may
hang"), so 04 starts `eval_data_parallel` engines, one process each, on `eval_tensor_parallel`
GPUs each (CUDA_VISIBLE_DEVICES; without CUDA, processes sharing the cores). A 7B model needs no
coordination between its replicas: each engine is an independent `LLM` (or HF model).

The questions are shared out by batch: engine r answers batches r, r + N, r + 2N, ... of
`eval_batch_size` questions of every benchmark, in the order one process would ask them. Each batch
holds the questions it holds in a one-process run, and a response's seed depends on its batch's
first question (hf) or on its own id (vllm), never on the engine: N engines give the responses of
one. Engine r writes `<model>/<benchmark>.part-r-of-N.jsonl` (resumable like the one file); the main
process folds the parts into `<model>/<benchmark>.jsonl` in question order (evaluate.fold_parts) and
tallies the one table from it, as after a one-process run.

    python -m visionr1.eval_parallel JOB_JSON --rank R     # one engine (`launch` starts them all)
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from visionr1 import benchmarks, dist, evaluate

JOB_FILE = "eval_job.json"  # in 04's folder: what every engine answers


@dataclass
class EvalJob:
    """What the engines of one evaluation answer; `launch` writes it to 04's folder."""
    out_dir: str                     # 04's folder: <model>/<benchmark>.jsonl
    models: dict[str, str]           # name -> model folder or hub name
    benchmarks: dict[str, str]       # name -> local file or folder
    sampling: dict                   # evaluate.Sampling's fields
    backend: str = "vllm"            # hf | vllm
    system: str | None = None        # system prompt (None: the model's default)
    tensor_parallel: int = 1         # GPUs per engine (vllm)
    data_parallel: int = 1           # engines side by side
    limit: int | None = None         # the first N questions of each benchmark
    ids_sha: dict[str, str] = field(default_factory=dict)  # benchmark -> its question ids as 04 loaded them

    @classmethod
    def from_json(cls, path: str | Path) -> "EvalJob":
        return cls(**json.loads(Path(path).read_text()))


def batch_shard(items: list, rank: int, n: int, batch_size: int) -> list:
    """Engine `rank`'s share of `items`: batches rank, rank + n, ... of `batch_size`, concatenated.

    >>> batch_shard(list(range(10)), 0, 2, 3), batch_shard(list(range(10)), 1, 2, 3)
    ([0, 1, 2, 6, 7, 8], [3, 4, 5, 9])
    """
    return [x for b in range(rank * batch_size, len(items), n * batch_size) for x in items[b:b + batch_size]]


def ids_sha(items: list) -> str:
    """Fingerprint of a benchmark's question ids in order: every engine must read the questions
    the main process tallies."""
    return hashlib.sha1(json.dumps([i.id for i in items]).encode()).hexdigest()[:12]


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them (its entries, else 0..N-1);
    empty without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return []
    n = torch.cuda.device_count()
    named = os.environ.get("CUDA_VISIBLE_DEVICES")
    return [g.strip() for g in named.split(",")][:n] if named else [str(i) for i in range(n)]


def gpu_groups(n: int, tensor_parallel: int, gpus: list[str]) -> list[str]:
    """CUDA_VISIBLE_DEVICES of each of `n` engines on `tensor_parallel` consecutive GPUs each.

    >>> gpu_groups(2, 4, [str(i) for i in range(8)])
    ['0,1,2,3', '4,5,6,7']
    """
    if n * tensor_parallel > len(gpus):
        raise ValueError(f"eval_data_parallel {n} x eval_tensor_parallel {tensor_parallel} = {n * tensor_parallel} "
                         f"GPUs, but {len(gpus)} are visible ({','.join(gpus) or 'none'})")
    return [",".join(gpus[r * tensor_parallel:(r + 1) * tensor_parallel]) for r in range(n)]


# ---------------------------------------------------------------------------------------------
# One engine
# ---------------------------------------------------------------------------------------------
def answer_shard(job: EvalJob, rank: int) -> dict:
    """Engine `rank`: every model answers its share of every benchmark into the part files, skipping
    what `<benchmark>.jsonl` holds already; each model is loaded only if it has something to answer.
    Returns {"<model>/<benchmark>": {"answered": n, "seconds": s}}, also written to
    `engine-<rank>-of-<N>.json` in the job's folder."""
    s = evaluate.Sampling(**job.sampling)
    n, out_dir = job.data_parallel, Path(job.out_dir)
    data = {b: load_checked(job, b) for b in job.benchmarks}
    timing = {}
    for name, model in job.models.items():
        mine, left = shares(job, data, name, rank)
        # built before the clock starts (speeds leave loading out), and only if a question is left
        make = lambda model=model: evaluate.make_responder(  # noqa: E731
            job.backend, model, s, job.system, tensor_parallel=job.tensor_parallel)
        respond = make() if any(left.values()) else evaluate.lazy(make)
        for bench, items in mine.items():
            t0 = time.perf_counter()
            evaluate.run(items, respond, evaluate.part_path(out_dir / name / f"{bench}.jsonl", rank, n), s,
                         desc=f"{name} / {bench} (engine {rank} of {n})")
            timing[f"{name}/{bench}"] = {"answered": left[bench], "seconds": round(time.perf_counter() - t0, 3)}
        del respond  # one model in memory at a time
    (out_dir / f"engine-{rank}-of-{n}.json").write_text(json.dumps(timing, indent=1))
    return timing


def shares(job: EvalJob, data: dict[str, list], name: str, rank: int) -> tuple[dict, dict]:
    """({benchmark: engine `rank`'s questions that model `name`'s one file lacks}, {benchmark: how
    many of them its part file lacks too: what it will answer})."""
    mine, left = {}, {}
    for bench, items in data.items():
        out = Path(job.out_dir) / name / f"{bench}.jsonl"
        done = evaluate.finished_ids(out)  # folded before this launch: no engine's to answer
        mine[bench] = [i for i in batch_shard(items, rank, job.data_parallel, job.sampling["batch_size"])
                       if i.id not in done]
        part = evaluate.finished_ids(evaluate.part_path(out, rank, job.data_parallel))
        left[bench] = len({i.id for i in mine[bench]} - part)
    return mine, left


def load_checked(job: EvalJob, bench: str) -> list:
    """A benchmark's questions as the main process loaded them (same ids, same order), or an error."""
    items = benchmarks.load(bench, job.benchmarks[bench], limit=job.limit)
    if job.ids_sha.get(bench) not in (None, ids_sha(items)):
        raise RuntimeError(f"{bench}: this engine read other questions from {job.benchmarks[bench]} than the main "
                           f"process did (ids {ids_sha(items)} != {job.ids_sha[bench]}); was the file changed?")
    return items


# ---------------------------------------------------------------------------------------------
# All engines, from the main process
# ---------------------------------------------------------------------------------------------
def launch(job: EvalJob, data: dict[str, list], log=print) -> dict:
    """Answer every benchmark with `job.data_parallel` engines side by side and fold their parts
    into the one file per model and benchmark. `data`: benchmark -> questions as 04 loaded them.
    Engines on GPUs where there is CUDA (`job.tensor_parallel` each, in the order visible_gpus
    lists them), CPU processes sharing the cores otherwise. An engine that fails stops the others
    and raises, naming it. Returns samples per second {model: {benchmark: rate}}: the engines'
    rates summed (None where nothing was answered)."""
    out_dir, n = Path(job.out_dir), job.data_parallel
    out_dir.mkdir(parents=True, exist_ok=True)
    job.ids_sha = {b: ids_sha(items) for b, items in data.items()}
    fold_all(job, data)  # what an earlier run left in parts (of any number of engines) is not asked again
    path = out_dir / JOB_FILE
    path.write_text(json.dumps(asdict(job), indent=2))
    gpus = visible_gpus()
    groups = gpu_groups(n, job.tensor_parallel, gpus) if gpus else [None] * n
    for r in range(n):
        (out_dir / f"engine-{r}-of-{n}.json").unlink(missing_ok=True)
    cmds = [engine_command(path, r) for r in range(n)]
    envs = [{"CUDA_VISIBLE_DEVICES": g} if g is not None else
            {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // n)))}
            for g in groups]
    run_engines(cmds, envs, log)
    fold_all(job, data)
    return engine_speed(out_dir, n, job)


def engine_command(job_path: str | Path, rank: int) -> list[str]:
    """Engine `rank`'s command line (the dry run's plan prints it too)."""
    return [sys.executable, "-m", "visionr1.eval_parallel", str(job_path), "--rank", str(rank)]


def fold_all(job: EvalJob, data: dict[str, list]) -> None:
    """evaluate.fold_parts for every model and benchmark of the job."""
    for name in job.models:
        for bench, items in data.items():
            evaluate.fold_parts(items, Path(job.out_dir) / name / f"{bench}.jsonl")


def engine_speed(out_dir: Path, n: int, job: EvalJob) -> dict:
    """{model: {benchmark: samples per second}}: each engine's rate, summed (they ran at once)."""
    timings = [json.loads((out_dir / f"engine-{r}-of-{n}.json").read_text()) for r in range(n)]
    speed: dict = {}
    for name in job.models:
        for bench in job.benchmarks:
            rates = [t[f"{name}/{bench}"] for t in timings]
            rates = [x["answered"] / x["seconds"] for x in rates if x["answered"] and x["seconds"] > 1e-3]
            speed.setdefault(name, {})[bench] = round(sum(rates), 2) if rates else None
    return speed


def run_engines(cmds: list[list[str]], envs: list[dict], log=print) -> None:
    """Run the engine commands at once (each under dist.start's watchdog: they end with this process),
    streaming their logs prefixed `[engine r]`; the first to fail stops the rest and raises."""
    procs, readers, failed = [], [], None
    with dist.sigterm_raises():
        try:
            for r, (cmd, env) in enumerate(zip(cmds, envs)):
                log(f"engine {r}: " + " ".join(f"{k}={v}" for k, v in env.items()) + " " + " ".join(cmd))
                proc = dist.start(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                                  env={**os.environ, "PYTHONUNBUFFERED": "1", **env}, cwd=Path.cwd())
                procs.append(proc)
                readers.append(threading.Thread(target=_stream, args=(proc, f"[engine {r}] ", log), daemon=True))
                readers[-1].start()
            failed = _first_failure(procs)
        finally:
            for proc in procs:
                dist.stop(proc)
            for t in readers:
                t.join()
    if failed is not None:
        r, rc = failed
        raise RuntimeError(f"evaluation engine {r} of {len(cmds)} exited with {rc}: {' '.join(cmds[r])}")


def _stream(proc: subprocess.Popen, prefix: str, log) -> None:
    for line in proc.stdout:
        log(prefix + line.rstrip())
    proc.stdout.close()


def _first_failure(procs: list[subprocess.Popen]) -> tuple[int, int] | None:
    """Wait until every process exited 0 (None) or one failed ((its index, exit status))."""
    while True:
        codes = [p.poll() for p in procs]
        bad = [(r, c) for r, c in enumerate(codes) if c not in (None, 0)]
        if bad:
            return bad[0]
        if all(c == 0 for c in codes):
            return None
        time.sleep(0.2)


# ---------------------------------------------------------------------------------------------
# The dry run's plan
# ---------------------------------------------------------------------------------------------
def plan(v: dict, stage_dir: str) -> list[str]:
    """04's lines of `run --dry-run`: what answers, on which GPUs, and vLLM's memory per GPU."""
    backend, n, tp = v["eval_backend"], int(v.get("eval_data_parallel") or 1), int(v["eval_tensor_parallel"])
    benches = ", ".join(f"{b} ({p or '00_data/test.jsonl'})" for b, p in (v.get("eval_benchmarks") or {}).items())
    head = f"evaluate {', '.join(v['eval_models'])} on {benches}: "
    if backend == "openai":
        return [head + f"requests to {v.get('eval_base_url')}"]
    engine = {"hf": "HF generate", "vllm": "vLLM"}[backend]
    if n == 1:
        return [head + f"{engine} in the notebook kernel on GPU(s) {','.join(map(str, range(tp)))} (or the CPU)",
                *memory_lines(v)]
    lines = [head + f"{n} {engine} engines side by side (eval_data_parallel {n} x eval_tensor_parallel {tp} = "
             f"{n * tp} GPUs), engine r answering batches r, r + {n}, ... of {v['eval_batch_size']} questions; "
             f"their parts merged in question order"]
    for r, g in enumerate(gpu_groups(n, tp, visible_gpus() or [str(i) for i in range(n * tp)])):
        cmd = ["python", *engine_command(f"{stage_dir}/{JOB_FILE}", r)[1:]]
        lines.append(f"  engine {r}: CUDA_VISIBLE_DEVICES={g} {' '.join(cmd)}")
    return lines + memory_lines(v)


def memory_lines(v: dict) -> list[str]:
    """vLLM's memory per GPU of one engine (preflight.vllm_engine_gib) for the run's model size."""
    from visionr1 import preflight

    if v["eval_backend"] != "vllm":
        return []
    try:
        name, arch = preflight.architecture(str(v.get("base_model") or ""))
    except preflight.PreflightError:
        return []
    s = evaluate.Sampling(max_new_tokens=int(v["eval_max_new_tokens"]), max_pixels=int(v["eval_max_pixels"]))
    m = preflight.vllm_engine_gib(arch, int(v["eval_tensor_parallel"]), evaluate.max_model_len(s),
                                  int(v["eval_batch_size"]))
    gpu = float(v.get("sft_preflight_gpu_gib") or 80.0)
    room = round(gpu * preflight.VLLM_GPU_MEMORY_UTILIZATION, 1)
    verdict = "fits" if m["total"] <= room else "DOES NOT FIT"
    return [f"  memory per GPU of an engine (preflight, {name}): weights {m['weights']} GiB + KV cache "
            f"{m['kv_per_sequence']} GiB per {evaluate.max_model_len(s):,}-token sequence x {v['eval_batch_size']} "
            f"at once (eval_batch_size) = {m['total']} GiB: {verdict} vLLM's {room} GiB of {gpu:g}"]


def main(argv: list[str] | None = None) -> int:
    """`python -m visionr1.eval_parallel JOB_JSON --rank R`: one engine."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3 or argv[1] != "--rank":
        print("usage: python -m visionr1.eval_parallel JOB_JSON --rank R", file=sys.stderr)
        return 2
    answer_shard(EvalJob.from_json(argv[0]), int(argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
