"""The pinned-library workarounds (visionr1.compat): each is for the installed version, and each
check still finds the problem it works around. A version bump fails here until someone re-checks
the list; a check that stops finding its problem means the workaround can go."""

import importlib.util

import pytest

from visionr1 import compat

CHECKABLE = [w for w in compat.WORKAROUNDS if compat.installed(w.library)]


def test_every_workaround_names_where_it_lives_and_why():
    assert len({w.name for w in compat.WORKAROUNDS}) == len(compat.WORKAROUNDS)
    for w in compat.WORKAROUNDS:
        assert w.where and w.why and w.version


@pytest.mark.parametrize("w", CHECKABLE, ids=[w.name for w in CHECKABLE])
def test_written_for_the_installed_version(w):
    # the GPU-only libraries (unsloth) are not installed on the CPU stack and are checked there
    assert compat.installed(w.library) == w.version, (
        f"{w.library} is now {compat.installed(w.library)}, {w.name!r} was written for {w.version}: check "
        f"whether it is still needed (python -m visionr1.compat), then update compat.WORKAROUNDS")


@pytest.mark.parametrize("w", CHECKABLE, ids=[w.name for w in CHECKABLE])
def test_still_needed(w):
    needed = w.still_needed()
    if w.still_needed.__name__ == "_triton_missing" and importlib.util.find_spec("triton"):
        assert needed is False  # with Triton (GPU boxes) TRL's own kernel runs and nothing is patched
    elif needed is not None:
        assert needed is True, f"{w.name}: its check no longer finds the problem; remove it ({w.where})"


def test_the_torch_fallback_is_installed_only_where_triton_is_missing():
    from trl.trainer import utils as trl_utils

    compat.torch_logprobs_fallback()
    if importlib.util.find_spec("triton") is None:
        assert trl_utils._ChunkedLogProbFunction is compat.TorchChunkedLogProb
        assert compat.sft_trainer_class().__name__ == "SFTTrainerWithoutTriton"


def test_report_lists_every_workaround():
    rows = compat.report()
    assert [r["name"] for r in rows] == [w.name for w in compat.WORKAROUNDS]
    assert all(r["still_needed"] in (True, False, None) for r in rows)
