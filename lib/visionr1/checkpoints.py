"""Checkpoint helpers shared by the training stages: the newest checkpoint, a guard against
continuing a checkpoint made with other params, and fingerprints of weights for tests and logs
(of a live model, or of the saved files: under ZeRO-3 a live model holds only empty shards)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def newest_checkpoint(output_dir: str | Path) -> Path | None:
    """`output_dir/checkpoint-N` with the largest N that holds a trainer state, or None."""
    cks = [p for p in Path(output_dir).glob("checkpoint-*") if (p / "trainer_state.json").exists()]
    return max(cks, key=lambda p: int(p.name.split("-")[1])) if cks else None


def guard_params(out: Path, fingerprint: dict, resume: Path | None) -> None:
    """Refuse to resume `resume` when `out/trained_with.json` records other training params; then
    record this run's params there."""
    stamp = out / "trained_with.json"
    if resume and stamp.exists():
        old = json.loads(stamp.read_text())
        if old != fingerprint:
            changed = sorted(k for k in set(fingerprint) | set(old) if old.get(k) != fingerprint.get(k))
            raise ValueError(f"{out} holds {resume.name} trained with other params ({', '.join(changed)} changed); "
                             f"delete the folder to start over, or set the old values to resume")
    stamp.write_text(json.dumps(fingerprint, indent=2, default=str))


def weights_sha(model) -> str:
    """Fingerprint of a live model's weights, 12 hex digits (see `tensors_sha`)."""
    return tensors_sha(model.state_dict().values())


def saved_weights_sha(folder: str | Path, cache: str | Path | None = None) -> str:
    """Fingerprint of the weights saved in a model folder's safetensors files, comparable with
    `weights_sha` of the loaded model, whatever process or sharding saved them.

    `cache`: a JSON file of the fingerprints taken before, each under its folder with the name,
    size and modification time of every weights file: a folder whose files are unchanged is not
    read again (a 7B fingerprint reads 16 GB: PTST stage k's final, hashed when written, is stage
    k + 1's start). One writer: the main process."""
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{folder}: no *.safetensors weights to fingerprint")
    key, stamp = str(Path(folder).resolve()), [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]
    known = json.loads(Path(cache).read_text()) if cache is not None and Path(cache).exists() else {}
    if known.get(key, {}).get("files") == stamp:
        return known[key]["sha"]
    sha = files_sha(files)
    if cache is not None:
        known[key] = {"files": stamp, "sha": sha}
        tmp = Path(cache).with_suffix(".tmp")
        tmp.write_text(json.dumps(known, indent=1))
        tmp.replace(cache)  # atomic: a kill leaves the old cache or the new one
    return sha


def files_sha(files: list[Path]) -> str:
    """`tensors_sha` of every tensor in these safetensors files (reads them all)."""
    from safetensors import safe_open

    handles = [safe_open(str(f), framework="pt") for f in files]
    return tensors_sha(fh.get_tensor(n) for fh in handles for n in fh.keys())


def tensors_sha(tensors) -> str:
    """sha1 over the set of tensors (shape and float32 bytes of each), 12 hex digits: equal iff the
    weights are equal. Names are left out because transformers 5 renames Qwen2.5-VL's keys between
    the saved files and the loaded model (`model.layers.*` vs `model.language_model.layers.*`);
    a set, so tied weights saved once count once."""
    digests = set()
    for t in tensors:
        t = t.detach().float().cpu().contiguous()
        digests.add(hashlib.sha1(str(tuple(t.shape)).encode() + t.numpy().tobytes()).hexdigest())
    return hashlib.sha1("".join(sorted(digests)).encode()).hexdigest()[:12]
