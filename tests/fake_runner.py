"""`python -m visionr1 run` without the notebooks, for the sweep's fast tests: the real params
resolution and the runner's own records (runner.RunState, runner._hash), so a stage "runs" by being
recorded done with its params hash, and `--resume` skips what is recorded done with the same hash.

    python tests/fake_runner.py PARAMS... [--resume] [--only STAGE]

Environment: FAKE_RUNNER_LOG (a JSONL file: one line per invocation with its run, threads, start
and end time and the stages it ran), FAKE_RUNNER_FAIL (a run name that exits 1), FAKE_RUNNER_SLEEP
(seconds each invocation takes, so runs side by side overlap).
"""

from __future__ import annotations

import json
import os
import sys
import time

from visionr1 import env, runner
from visionr1.params import declarations, resolve, stage_notebooks


def main(argv: list[str]) -> int:
    only = argv[argv.index("--only") + 1] if "--only" in argv else None
    files = [a for a in argv if a.endswith(".yaml")]
    nbs = stage_notebooks(env.NOTEBOOKS_DIR)
    r = resolve(files, [], declarations(nbs))
    name = r.values["run_name"]
    run_dir = env.run_dir(r.values["output_root"], name)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = runner.RunState(run_dir / "run_state.json")
    start = time.time()
    time.sleep(float(os.environ.get("FAKE_RUNNER_SLEEP", "0")))
    if os.environ.get("FAKE_RUNNER_FAIL") == name:
        print(f"boom: {name} fails on purpose", file=sys.stderr)
        return 1
    ran = []
    for nb in nbs:
        h = runner._hash(r.for_notebook(nb.name))
        if (only and nb.stem != only) or nb.stem in r.values["skip_stages"]:
            continue
        if "--resume" in argv and state.get(nb.stem).get("params_hash") == h:
            print(f"{nb.stem}: done earlier with the same params and inputs, skipped")
            continue
        state.set(nb.stem, status="done", params_hash=h, seconds=1.5, finished_at=runner._now(), inputs={})
        ran.append(nb.stem)
        print(f"{nb.stem} done")
    with open(os.environ["FAKE_RUNNER_LOG"], "a") as f:
        f.write(json.dumps({"run": name, "only": only, "threads": os.environ.get("OMP_NUM_THREADS"),
                            "start": start, "end": time.time(), "ran": ran}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
