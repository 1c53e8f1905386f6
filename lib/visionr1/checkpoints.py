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


def saved_weights_sha(folder: str | Path) -> str:
    """Fingerprint of the weights saved in a model folder's safetensors files, comparable with
    `weights_sha` of the loaded model, whatever process or sharding saved them."""
    from safetensors import safe_open

    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{folder}: no *.safetensors weights to fingerprint")
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
