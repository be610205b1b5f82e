"""Inference: L* at render size -> predicted a/b, batched, padded to the U-Net's multiple.

:class:`Colorizer` wraps a generator (see :mod:`filmcolor.model`) on one device:

- ``render_shape(h, w)`` is the size the network runs at: short side ``render_size``, aspect kept.
- ``predict_ab(L)`` takes ``(N, rh, rw)`` float32 L* in [0, 100] and returns ``(N, 2, rh, rw)``
  float32 a/b (roughly [-110, 110]). Inside: ``L/50-1``, reflect padding (centred) up to a multiple
  of ``2 ** num_downs``, ``torch.inference_mode``, crop, ``x110``.
- CUDA: pinned host memory, non-blocking copies, channels_last, bf16 (or fp16 where bf16 is not
  supported) autocast. A ``torch.OutOfMemoryError`` halves the batch and retries the same frames;
  at batch 1 it raises :class:`~filmcolor.errors.ProcessingError`, so a frame is never passed on
  uncoloured.
- CPU: fp32 (unless a precision is asked for explicitly), channels_last, ``torch.set_num_threads``
  set once at construction (``threads``, else every core this process may use).

Nothing happens at import time; the device is resolved once by :func:`resolve_device` and passed in.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import color
from .errors import EXIT_USAGE, FilmcolorError, ProcessingError

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class DeviceError(FilmcolorError):
    """The requested device cannot be used (e.g. ``--device cuda`` without a CUDA GPU)."""

    exit_code = EXIT_USAGE


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> ``cuda`` when a CUDA GPU is usable, else ``cpu``; ``cuda`` without one raises
    :class:`DeviceError`. Also accepts ``cuda:N``."""
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(None, "--device cuda was asked for but no CUDA GPU is usable here (try --device cpu)")
        return torch.device(name)
    raise DeviceError(None, f"unknown device {name!r}; known: auto, cpu, cuda")


def cpu_threads() -> int:
    """Cores this process may run on (respects taskset/cgroup affinity where the OS reports it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """``auto`` -> bf16 on CUDA GPUs that support it, fp16 on older ones, fp32 on CPU."""
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    try:
        return _DTYPES[precision]
    except KeyError:
        raise ValueError(f"unknown precision {precision!r}; known: auto, {', '.join(_DTYPES)}") from None


def _model_multiple(model: nn.Module) -> int:
    multiple = getattr(model, "multiple", None)
    if multiple is None:
        raise ValueError(f"{type(model).__name__} does not say what input sizes it needs (no .multiple)")
    return int(multiple)


def pad_amounts(h: int, w: int, multiple: int) -> tuple[int, int, int, int]:
    """Centred padding ``(left, right, top, bottom)`` that makes ``(h, w)`` multiples of ``multiple``."""
    ph, pw = (-h) % multiple, (-w) % multiple
    return pw // 2, pw - pw // 2, ph // 2, ph - ph // 2


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Pad ``(N, C, h, w)`` up to multiples of ``multiple``: reflect where the image is large enough
    (a reflection needs pad < side), else replicate. Returns the padded tensor and the pads."""
    h, w = x.shape[-2:]
    pads = pad_amounts(h, w, multiple)
    if not any(pads):
        return x, pads
    l, r, t, b = pads
    mode = "reflect" if max(l, r) < w and max(t, b) < h else "replicate"
    return F.pad(x, pads, mode=mode), pads


class Colorizer:
    """A generator on a device, ready to turn render-size L* into a/b (see the module docstring)."""

    def __init__(self, model: nn.Module, device: torch.device | str = "cpu", precision: str = "auto",
                 batch_size: int = 8, render_size: int = 192, *, threads: int = 0) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if render_size < 8:
            raise ValueError(f"render_size must be >= 8, got {render_size}")
        self.device = torch.device(device)
        self.dtype = resolve_precision(precision, self.device)
        self.batch_size = batch_size
        self.render_size = render_size
        self.multiple = _model_multiple(model)
        if self.device.type == "cpu":
            torch.set_num_threads(threads if threads > 0 else cpu_threads())
        self.model = model.to(self.device).eval().to(memory_format=torch.channels_last)
        #: called with (old, new) batch size when an out-of-memory error halves the batch
        self.on_oom: Callable[[int, int], None] | None = None

    @classmethod
    def from_config(cls, config) -> "Colorizer":
        """Load ``config.model`` (name or path) onto ``config.device`` with the config's settings."""
        from .weights import load_generator

        device = resolve_device(config.device)
        model, _info = load_generator(config.model, device)
        return cls(model, device, config.precision, config.batch_size, config.render_size,
                   threads=getattr(config, "threads", 0))

    # --- shapes ----------------------------------------------------------------------------------
    def render_shape(self, h: int, w: int) -> tuple[int, int]:
        """``(rh, rw)``: the short side becomes ``render_size``, the long side keeps the aspect."""
        if h <= 0 or w <= 0:
            raise ValueError(f"frame size must be positive, got {h}x{w}")
        s = self.render_size
        if h <= w:
            return s, max(1, round(w * s / h))
        return max(1, round(h * s / w)), s

    # --- prediction ------------------------------------------------------------------------------
    def predict_ab(self, L: np.ndarray) -> np.ndarray:
        """``(N, rh, rw)`` float32 L* in [0, 100] -> ``(N, 2, rh, rw)`` float32 a/b.

        Runs in batches of at most ``batch_size`` (halved for good on out-of-memory)."""
        L = np.asarray(L)
        if L.ndim != 3:
            raise ValueError(f"L must have shape (N, h, w), got {L.shape}")
        n = L.shape[0]
        out = np.empty((n, 2) + L.shape[1:], dtype=np.float32)
        i = 0
        while i < n:
            bs = min(self.batch_size, n - i)
            try:
                out[i:i + bs] = self._forward(L[i:i + bs])
            except torch.OutOfMemoryError as exc:
                if bs <= 1:
                    raise ProcessingError(None, f"out of memory on {self.device} even at batch size 1 at "
                                                f"render size {self.render_size} (try a smaller --render-size "
                                                f"or --device cpu)") from exc
                new = max(1, bs // 2)
                if self.on_oom is not None:
                    self.on_oom(bs, new)
                self.batch_size = new
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                continue  # retry the same frames with the smaller batch
            i += bs
        return out

    def _forward(self, L: np.ndarray) -> np.ndarray:
        """One network call on ``(b, rh, rw)`` L* -> ``(b, 2, rh, rw)`` a/b (float32, host)."""
        h, w = L.shape[1:]
        x = torch.from_numpy(np.ascontiguousarray(color.normalize_L(L.astype(np.float32, copy=False))))
        x = x.unsqueeze(1)
        cuda = self.device.type == "cuda"
        if cuda:
            x = x.pin_memory().to(self.device, non_blocking=True)
        x, (l, _r, t, _b) = pad_to_multiple(x, self.multiple)
        x = x.contiguous(memory_format=torch.channels_last)
        autocast = (torch.autocast(self.device.type, dtype=self.dtype) if self.dtype != torch.float32
                    else nullcontext())
        with torch.inference_mode(), autocast:
            y = self.model(x)
        y = y[:, :, t:t + h, l:l + w].float()
        return color.denormalize_ab(y.cpu().numpy())
