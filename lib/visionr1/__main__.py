"""Command line: `python -m visionr1 COMMAND ...`

  run PARAMS... [--only S] [--from S] [--resume] [--set k=v]   run the stage notebooks (papermill)
  run PARAMS... --dry-run                                       every check run makes, then the plan (commands, GPUs,
                                                                memory per GPU); runs and writes nothing; exit 0 / 2
  sweep PARAMS... --seeds 0 1 2 [--grid K=V1,V2] [--variants vision-r1,zero,long] [--jobs N] [--dry-run]
                                                                every seed x grid point x variant as a run folder
                                                                (resumable), then notebooks/06_compare.ipynb
  nano-steps RUN [--models ci rl] [--json]                     where a nano run's CoTs go wrong: each 04 answer
                                                                parsed into its steps (overview, facts, arithmetic, option)
  build-tiny OUT [--size test|nano] [--seed N]                  build a random-init tiny Qwen2.5-VL
  data check PATH                                               check every dataset beneath a folder or in a file
  params PARAMS... [--set k=v]                                  print the resolved params (keys and types checked
                                                                only: `run PARAMS --dry-run` checks everything)
  preflight PARAMS... [--gpu-gib G]                             per-stage memory (24/48/80 GB) and SFT data length
  score FILE [-o OUT] [--official]                              grade a MathVista-format prediction file (ours / calculate_score.py)
  infer --model M --image IMG --prompt TEXT [--backend hf|vllm]  answer one image + prompt, streaming tokens
  serve --model M [--port P] [--dry-run]                        OpenAI-compatible vLLM server
  lab [JUPYTER ARGS]                                            JupyterLab with caches kept in .cache/
"""

from __future__ import annotations

import sys

USAGE = __doc__


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd == "run":
        from visionr1.runner import main as run_main

        return run_main(rest)
    if cmd == "sweep":
        from visionr1.sweep import main as sweep_main

        return sweep_main(rest)
    if cmd == "nano-steps":
        from visionr1.nano_steps import main as steps_main

        return steps_main(rest)
    if cmd == "build-tiny":
        from visionr1.tiny_model import main as tiny_main

        return tiny_main(rest)
    if cmd == "data":
        if not rest or rest[0] != "check":
            print("usage: python -m visionr1 data check PATH", file=sys.stderr)
            return 2
        from visionr1.data_stage import main_data_check

        return main_data_check(rest[1:])
    if cmd == "params":
        return params_main(rest)
    if cmd == "preflight":
        from visionr1.preflight import main as preflight_main

        return preflight_main(rest)
    if cmd == "infer":
        from visionr1.infer import main as infer_main

        return infer_main(rest)
    if cmd == "serve":
        from visionr1.infer import serve_main

        return serve_main(rest)
    if cmd == "score":
        from visionr1.scoring import main as score_main

        return score_main(rest)
    if cmd == "lab":
        import os

        from visionr1 import env

        env.setup_environment()
        os.execvp(sys.executable, [sys.executable, "-m", "jupyter", "lab", f"--notebook-dir={env.PROJECT_ROOT}", *rest])
    print(f"unknown command {cmd!r}\n{USAGE}", file=sys.stderr)
    return 2


def params_main(argv: list[str]) -> int:
    import argparse

    import yaml

    from visionr1 import env
    from visionr1.params import ParamsError, declarations, resolve
    from visionr1.runner import stage_notebooks

    ap = argparse.ArgumentParser(
        prog="python -m visionr1 params", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Print the resolved params and where each value came from.\n\n"
                    "Checks keys and declared types only. Cross-key rules (e.g. a batch that does not hold\n"
                    "whole groups of num_generations), data and benchmark paths, finished or stale stages\n"
                    "and memory per GPU are checked by\n"
                    "  python -m visionr1 run PARAMS... --dry-run\n"
                    "which exits 0 only when the run can start.")
    ap.add_argument("params", nargs="*")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args(argv)
    try:
        r = resolve(args.params, args.sets, declarations(stage_notebooks(env.NOTEBOOKS_DIR)))
    except ParamsError as e:
        print(f"params error: {e}", file=sys.stderr)
        return 2
    for k in sorted(r.values):
        print(f"{yaml.safe_dump({k: r.values[k]}, default_flow_style=True).strip()[1:-1]:60s} # {r.sources[k]}")
    print("keys and types checked only; everything run checks: python -m visionr1 run "
          f"{' '.join(args.params + [f'--set {x}' for x in args.sets])} --dry-run", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
