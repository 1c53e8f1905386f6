"""What 00_data does, as functions the notebook calls: build the nano sets or load the released
data, describe them, and produce the base model's direct-answer figures.

Files written under outputs/<run>/00_data/ (the contract later stages read):
  test.jsonl                 nano test split (one Sample record per line, scene included)
  rl/train.parquet           the RL set in the Vision-R1-rl (geometry3k) schema
  cold_start_source/         source.jsonl (+ images/): image, question, answer, scene description
  metrics.json               statistics, paths, base model figures
"""

from __future__ import annotations

import json
from pathlib import Path

from visionr1 import loaders, nano_task


def build_nano_sets(out_dir: Path, seed: int, n_test: int, n_cold_start: int, n_rl: int,
                    grid: int, mc_fraction: float) -> dict:
    """Generate the nano sets and write them in their formats; returns paths and statistics."""
    sets = nano_task.build_splits(seed, n_test, n_cold_start, n_rl, 0, grid, mc_fraction)
    paths = {
        "test": str(nano_task.write_jsonl(sets["test"], out_dir / "test.jsonl")),
        "rl": str(loaders.write_geometry3k_parquet(nano_task.geometry3k_records(sets["rl"]),
                                                   out_dir / "rl" / "train.parquet")),
        "cold_start_source": str(nano_task.write_cold_start_source(sets["cold_start"],
                                                                   out_dir / "cold_start_source")),
    }
    stats = {name: nano_task.statistics(samples) for name, samples in sets.items() if samples}
    overlap = {f"{a}&{b}": len(nano_task.scene_keys(sets[a]) & nano_task.scene_keys(sets[b]))
               for a, b in (("test", "cold_start"), ("test", "rl"), ("cold_start", "rl"))}
    return {"sets": sets, "paths": paths, "stats": stats, "shared_images": overlap}


def load_released(rl_data_dir: str | None, cold_data_dir: str | None, cold_datasets: list[str],
                  max_bad_fraction: float) -> dict:
    """Load the released Vision-R1-rl / Vision-R1-cold folders named in params.

    Bad rows are left out and reported; past `max_bad_fraction` the loader raises DataError with
    the report (file, row, reason), which fails the stage.
    """
    out: dict = {"records": {}, "stats": {}, "problems": {}}
    if rl_data_dir:
        for split in ("train", "test"):
            if not loaders.find_parquet_files(rl_data_dir, split):
                continue
            recs = loaders.load_geometry3k(rl_data_dir, split, max_bad_fraction=max_bad_fraction)
            out["records"][f"rl_{split}"] = recs
            out["stats"][f"rl_{split}"] = {"rows": len(recs), "bad_rows": recs.report.bad_rows,
                                          "images": sum(len(r["images"]) for r in recs)}
            out["problems"][f"rl_{split}"] = [str(p) for p in recs.report.problems]
    if cold_data_dir:
        for name in cold_datasets:
            recs = loaders.load_sharegpt(cold_data_dir, name, max_bad_fraction=max_bad_fraction)
            out["records"][name] = recs
            out["stats"][name] = {"rows": len(recs), "bad_rows": recs.report.bad_rows,
                                  "images": sum(len(r["images"]) for r in recs)}
            out["problems"][name] = [str(p) for p in recs.report.problems]
    if not out["records"]:
        raise ValueError("data_source is 'released' but neither rl_data_dir nor cold_data_dir is set")
    return out


def released_grid_items(records: dict[str, list[dict]], n: int) -> list[tuple]:
    """(image, "[set] question -> answer") panels, an even share of `n` from each loaded set."""
    from PIL import Image

    items = []
    for name, recs in records.items():
        for r in recs[: max(1, n // len(records))]:
            if "messages" in r:  # sharegpt: images are paths; question = first user turn
                img = Image.open(r["images"][0]).convert("RGB") if r["images"] else Image.new("RGB", (28, 28), "white")
                user = next(m["content"] for m in r["messages"] if m["role"] == "user")
                answer = r["messages"][-1]["content"][-80:]
            else:  # geometry3k: decoded images, problem, answer
                img, user, answer = r["images"][0], r["problem"], r["answer"]
            items.append((img, f"[{name}] {user[:120]} -> {answer}"))
    return items


def write_metrics(path: Path, metrics: dict) -> Path:
    path.write_text(json.dumps(metrics, indent=2, default=str))
    return path
