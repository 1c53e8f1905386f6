"""What SFT (02) and GRPO (03) share: the TRL message format, the per-step metrics log, LoRA's
target layers and merge, the DeepSpeed configs shipped in visionr1/configs/, and the progress
lines of long work (SFT, RL under PTST, the nano base pretraining, evaluation).

The workarounds for the pinned libraries are not here but in visionr1.compat.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

from visionr1 import released_data


def to_multimodal(messages: list[dict], n_images: int, where: str) -> list[dict]:
    """sharegpt-style messages with `<image>` placeholders -> TRL's content lists, an image part
    at each placeholder (anywhere in a turn). The placeholder count must equal `n_images`."""
    out, seen = [], 0
    for m in messages:
        text = m["content"]
        parts = []
        pieces = text.split(released_data.IMAGE_TAG)
        for i, piece in enumerate(pieces):
            if i > 0:
                parts.append({"type": "image"})
                seen += 1
            if piece:
                parts.append({"type": "text", "text": piece})
        out.append({"role": m["role"], "content": parts})
    if seen != n_images:
        raise ValueError(f"{where}: {seen} <image> tags for {n_images} images")
    return out


class MetricsJsonl:
    """A TrainerCallback appending every logged step's numbers (loss, learning rate, grad norm, and
    whatever else the trainer logs) to JSONL; `step` is the trainer's step plus `step_offset`, and
    `extra` fields (e.g. the PTST stage) are added to each record."""

    def __new__(cls, path: Path, step_offset: int = 0, **extra):
        from transformers import TrainerCallback

        class _CB(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kw):
                if logs and state.is_world_process_zero:
                    rec = {"step": state.global_step + step_offset, "epoch": state.epoch, "time": time.time(), **extra,
                           **{k: v for k, v in logs.items() if isinstance(v, (int, float))}}
                    with path.open("a") as f:
                        f.write(json.dumps(rec) + "\n")

        return _CB()


# ---------------------------------------------------------------------------------------------
# Progress of long work, as lines
# ---------------------------------------------------------------------------------------------
PROGRESS_EVERY_S = 30.0  # seconds between two progress lines (plus the first step's and the last)


def _print_line(line: str) -> None:
    """To stderr, as tqdm's bars: a kernel sends stdout and stderr apart, and a line on stdout can
    overtake the newline that ends a bar on stderr and land at that bar's end."""
    from tqdm.std import tqdm

    tqdm.write(line, file=sys.stderr)  # clears and redraws a terminal's tqdm bars around the line
    sys.stderr.flush()


class ProgressLines:
    """Progress as plain lines: `SFT step 120/2010 (6%) 8 step/s, elapsed 00:15, ETA 03:56`
    (times in tqdm's format; a rate under one unit a second as seconds per unit: `12.5 s/step`).

    One line at the first update, then at most one every `every_s` seconds (default
    `PROGRESS_EVERY_S`, read when the display starts), and the last at `close()`. Lines, not
    tqdm's bars: the runner streams a stage's output through papermill into the terminal and into
    the executed notebook, where a bar redrawn with carriage returns is one line that never ends
    (and the Trainer draws an HTML bar in a kernel, which a terminal never shows). The rate counts
    the units done since this display started (a resumed run's earlier units are `initial`); `whole` = (units done before this part, units of the whole) adds the
    progress of a larger whole at the same rate (RL: all PTST stages). `write` takes each line;
    `clock` gives seconds (tests pass fakes for both)."""

    def __init__(self, label: str, total: int | None, unit: str = "step", initial: int = 0,
                 every_s: float | None = None, whole: tuple[int, int] | None = None, disable: bool = False,
                 write: Callable[[str], None] = _print_line, clock: Callable[[], float] = time.monotonic):
        self.label, self.total, self.unit, self.whole = label, total, unit, whole
        self.every_s = PROGRESS_EVERY_S if every_s is None else every_s
        self.n = self.initial = initial
        self.disable, self.write, self.clock = disable, write, clock
        self.postfix = ""
        self.start = clock()
        self._last: float | None = None  # when the last line was written
        self._last_n: int | None = None

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        if self._last is None or now - self._last >= self.every_s:
            self._emit(now)

    def set_postfix(self, **values) -> None:
        """Figures shown after the times (`loss=0.412` -> `, loss 0.412`), as tqdm's set_postfix."""
        self.postfix = "".join(f", {k} {v}" for k, v in values.items())

    def close(self) -> None:
        if self._last_n != self.n:  # the last line, unless the one just written says it
            self._emit(self.clock())

    def __enter__(self) -> "ProgressLines":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def line(self, now: float | None = None) -> str:
        from tqdm.std import tqdm

        elapsed = (self.clock() if now is None else now) - self.start
        done = self.n - self.initial
        rate = done / elapsed if done > 0 and elapsed > 0 else None
        out = f"{self.label} {self.unit} {self.n}"
        if self.total:
            out += f"/{self.total} ({100 * self.n / self.total:.0f}%)"
        if rate is None:
            out += f" ? {self.unit}/s"
        elif rate >= 1:
            out += f" {tqdm.format_num(rate)} {self.unit}/s"
        else:
            out += f" {tqdm.format_num(1 / rate)} s/{self.unit}"
        out += f", elapsed {tqdm.format_interval(elapsed)}"
        if self.total:
            out += ", ETA " + (tqdm.format_interval((self.total - self.n) / rate) if rate else "?")
        out += self.postfix
        if self.whole:
            before, all_units = self.whole
            n = before + self.n
            out += f"; overall {n}/{all_units} ({100 * n / max(1, all_units):.0f}%)"
            out += ", ETA " + (tqdm.format_interval(max(0, all_units - n) / rate) if rate else "?")
        return out

    def _emit(self, now: float) -> None:
        self._last, self._last_n = now, self.n
        if not self.disable:
            self.write(self.line(now))


def progress(total: int, desc: str, unit: str = "step", initial: int = 0, disable: bool = False, **tqdm_kw):
    """A progress display with tqdm's `update(n)`, `set_postfix(**kw)` and `close()`: lines
    (`ProgressLines`) in the runner's headless kernels and the processes they launch (the runner
    sets VISIONR1_HEADLESS); tqdm's bar anywhere else (a widget in JupyterLab, `\\r` in a terminal)."""
    if os.environ.get("VISIONR1_HEADLESS"):
        return ProgressLines(desc, total, unit, initial, disable=disable)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, initial=initial, disable=disable, **tqdm_kw)


class TrainingProgress:
    """A TrainerCallback writing the trainer's progress as `ProgressLines` on the main process:
    `SFT step 120/2010 (6%) 8 step/s, elapsed 00:15, ETA 03:56, loss 0.412`. For RL, the label
    names the PTST stage and `whole` = (steps of the earlier stages, steps of all stages) adds the
    overall progress: `RL stage 2/3 step 40/60 (67%) ...; overall 100/180 (56%), ETA 01:20`.
    Written in every session: a kernel's Trainer draws an HTML bar that neither the terminal nor a
    text log shows, and no bar knows the PTST stages."""

    POSTFIX = ("loss", "reward")  # figures of the trainer's last log shown in the line

    def __new__(cls, label: str, whole: tuple[int, int] | None = None, every_s: float | None = None,
                write: Callable[[str], None] = _print_line, clock: Callable[[], float] = time.monotonic):
        from transformers import TrainerCallback

        class _CB(TrainerCallback):
            lines: ProgressLines | None = None

            def on_train_begin(self, args, state, control, **kw):
                if state.is_world_process_zero:
                    self.lines = ProgressLines(label, state.max_steps, "step", state.global_step, every_s, whole,
                                               write=write, clock=clock)

            def on_log(self, args, state, control, logs=None, **kw):
                if self.lines and logs:
                    shown = {k: f"{logs[k]:.4g}" for k in cls.POSTFIX if isinstance(logs.get(k), (int, float))}
                    if shown:
                        self.lines.set_postfix(**shown)

            def on_step_end(self, args, state, control, **kw):
                if self.lines:
                    self.lines.update(state.global_step - self.lines.n)

            def on_train_end(self, args, state, control, **kw):
                if self.lines:
                    self.lines.close()

        return _CB()


# LoRA on every linear layer of the language model; the vision tower stays frozen
LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


def merge_adapter(base: str, adapter: Path, final: Path, bf16: bool = False) -> None:
    """Base weights plus the saved LoRA adapter, merged and saved to `final`. Read from the saved
    files after every rank has finished: under ZeRO-3 the live model holds only this rank's shards,
    so merging it would save empty tensors."""
    import torch
    from peft import PeftModel

    from visionr1 import tiny_model

    model = tiny_model.load_model(base, dtype=torch.bfloat16 if bf16 else torch.float32)
    PeftModel.from_pretrained(model, str(adapter)).merge_and_unload().save_pretrained(str(final))


DEEPSPEED_CONFIGS = ("none", "zero2", "zero3", "zero3_offload")
ZERO_STAGE = {"none": 0, "zero2": 2, "zero3": 3, "zero3_offload": 3}


def deepspeed_config(name: str) -> str | None:
    """Path of a DeepSpeed config shipped in visionr1/configs/ (zero2, zero3, zero3_offload), or
    None for "none" (plain DDP: several CPU processes on gloo, or GPUs without DeepSpeed)."""
    from importlib import resources

    if name not in DEEPSPEED_CONFIGS:
        raise ValueError(f"sft_deepspeed / rl_deepspeed must be one of {', '.join(DEEPSPEED_CONFIGS)}, got {name!r}")
    if name == "none":
        return None
    return str(resources.files("visionr1") / "configs" / f"{name}.json")
