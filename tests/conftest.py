"""Shared fixtures. Caches (HF, W&B, Jupyter, matplotlib) go to the project's .cache/, never $HOME."""

from __future__ import annotations

import pytest

from visionr1 import env

env.setup_environment()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A test-size tiny Qwen2.5-VL folder, built once per session."""
    from visionr1 import tiny_model

    return tiny_model.build_tiny(tmp_path_factory.mktemp("tiny") / "model", size="test", seed=0)
