"""Test helpers: a tiny random generator whose output is not grey, and hashing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from filmcolor import weights
from filmcolor.model import UNetGenerator, init_weights

TINY_ARGS = {"ngf": 4, "num_downs": 5}


def tiny_generator(seed: int = 0, bias: tuple[float, float] = (0.35, -0.3)) -> UNetGenerator:
    """A 5-down, 4-wide U-Net with random weights; the last layer's bias pushes ab away from 0 so
    the colour it adds is visible (a = +38, b = -33 before tanh saturation, roughly)."""
    torch.manual_seed(seed)
    model = UNetGenerator(**TINY_ARGS)
    init_weights(model)
    last = model.net.model[3]  # outermost ConvTranspose2d -> 2 channels, then tanh
    with torch.no_grad():
        last.bias.copy_(torch.tensor(bias))
    return model.eval()


def tiny_model(path: str | Path, **kwargs) -> Path:
    """Write ``tiny_generator()`` as a filmcolor weights file and return its path."""
    return weights.save_generator(tiny_generator(**kwargs), path, "unet", TINY_ARGS)


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
