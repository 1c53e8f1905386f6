"""A smaller nano language model, on the base gate: pretrain a nano base model whose language model
has other layer / width figures, and print its pretraining time and held-out direct accuracy.

    .venv/bin/python bench/nano_base_size.py --seed 0 --text-layers 2
    .venv/bin/python bench/nano_base_size.py --seed 1 --text-layers 2 --text-intermediate 256

The base gate of 00 on the same test split 00 writes for that seed (n=1000), with nano.yaml's
pretraining params (BaseParams defaults). Nothing is cached: the model goes to a temporary folder
unless --out is given. A size that passes here is only a candidate for a cheaper nano recipe; SFT
and RL from it are other draws (docs/results.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

from visionr1 import data_stage, nano_base, nano_task, tiny_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--text-layers", type=int, default=tiny_model.SIZES["nano"].text_layers)
    ap.add_argument("--text-intermediate", type=int, default=tiny_model.SIZES["nano"].text_intermediate)
    ap.add_argument("--out", type=Path, help="keep the model and data here (default: a temporary folder)")
    args = ap.parse_args()

    name = f"nano-l{args.text_layers}-i{args.text_intermediate}"
    tiny_model.SIZES[name] = dataclasses.replace(tiny_model.SIZES["nano"], text_layers=args.text_layers,
                                                 text_intermediate=args.text_intermediate)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        # the sets 00_data builds for this seed (nano.yaml's sizes), so the test split is 00's
        test = data_stage.build_nano_sets(out / "data", args.seed, 1000, 600, 3000, 3, 0.5)["sets"]["test"]
        s = nano_base.pretrain(out / "model", nano_base.BaseParams(seed=args.seed, size=name), eval_samples=test)
    chance = nano_task.chance_accuracy(test)
    print(json.dumps({"size": name, "seed": args.seed, "n_params": s["n_params"],
                      "pretrain_seconds": s["train_seconds"], "s_per_step": s["s_per_step"],
                      "direct_accuracy": round(s["direct_accuracy"], 4), "chance": round(chance, 4),
                      "x_chance": round(s["direct_accuracy"] / chance, 2),
                      "per_type": s["direct_accuracy_per_type"]}, indent=1))


if __name__ == "__main__":
    main()
