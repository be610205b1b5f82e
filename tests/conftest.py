"""Shared fixtures: synthetic clips built on demand in a per-test temporary folder."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from filmcolor.synth import make_clip


@pytest.fixture
def clip(tmp_path: Path) -> Callable[..., Path]:
    """``clip("name.mkv", **make_clip_kwargs)`` -> path of a small synthetic film (12 frames, 64x48)."""

    def make(name: str = "clip.mp4", **kwargs) -> Path:
        kwargs.setdefault("frames", 12)
        return make_clip(tmp_path / name, **kwargs)

    return make
