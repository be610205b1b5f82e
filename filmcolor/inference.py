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
- CUDA, optional: ``auto_batch`` grows the batch from free device memory (measured on one frame,
  see :meth:`Colorizer.plan_batch`); :meth:`Colorizer.compose_uv` builds the output chroma planes on
  the device (Y upload, L* lookup, area resize, a/b upsampling, Lab -> sRGB -> U/V) on its own CUDA
  stream, so the host only encodes.
- CPU: bf16 autocast where the CPU has native bf16 (AVX512-BF16/AMX), else fp32 (bf16 emulation
  is slower than fp32); an explicit precision overrides; channels_last. ``threads`` > 0 sets
  ``torch.set_num_threads`` once at construction (on CUDA too); 0 leaves torch's own choice (its
  default is one thread per physical core; a process pool that split the cores keeps its split).
  Construction also caps OpenCV's process-wide pool at ``OPENCV_MAX_THREADS``.
- Always: BatchNorm folded into the preceding (transposed) convolution and dropout removed
  (:func:`fold_batchnorm`, exact for an eval-mode network up to float rounding). Optional
  ``compile=True``: ``torch.compile`` (on CPU with ``freezing``); it compiles on the first call of
  each shape, so warm up before timing.

Nothing happens at import time; the device is resolved once by :func:`resolve_device` and passed in.
"""

from __future__ import annotations

import copy
import os
import threading
from contextlib import nullcontext
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import color
from .config import MAX_SATURATION
from .cpu import cpu_flags
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


#: OpenCV's thread pool is capped at this many threads: the pipeline's OpenCV work is render-size
#: images (optical flow, remaps) split across several threads of our own, where a wide pool spends
#: more on hand-offs than it saves (H200 host, 16 cores, 1080p: the flow thread took 1.94 ms/frame
#: with 16 OpenCV threads and 1.11 with 4; docs/BENCHMARKS.md, "GPU")
OPENCV_MAX_THREADS = 4


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bf16 natively (x86 ``avx512_bf16`` or ``amx_bf16``, from Linux's
    ``/proc/cpuinfo`` flags; ``cpuinfo`` is that file's text, for tests). Elsewhere False: oneDNN
    then emulates bf16, which is slower than fp32."""
    return bool(cpu_flags(cpuinfo) & {"avx512_bf16", "amx_bf16"})


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """``auto`` -> bf16 on CUDA GPUs that support it, fp16 on older ones; on CPU bf16 where the CPU
    has native bf16 (``cpu_has_native_bf16``: about 2x faster than fp32 there, a/b within a few
    hundredths of a unit), else fp32."""
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
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


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An inference copy of ``model`` with every ``BatchNorm2d`` that directly follows a ``Conv2d`` or
    ``ConvTranspose2d`` inside an ``nn.Sequential`` folded into that convolution (weights scaled per
    output channel, bias added) and replaced by ``nn.Identity``; ``nn.Dropout`` becomes ``nn.Identity``.

    Exact for the eval-mode network up to float rounding (uses the BatchNorm running statistics).
    ``model`` itself is not modified. A BatchNorm that follows anything else is left as it is.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = copy.deepcopy(model).eval()
    for seq in [m for m in folded.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for prev, name in zip(names, names[1:]):
            conv, bn = seq._modules[prev], seq._modules[name]
            if isinstance(bn, nn.BatchNorm2d) and isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) \
                    and bn.track_running_stats and bn.running_mean is not None:
                seq._modules[prev] = fuse_conv_bn_eval(conv, bn, transpose=isinstance(conv, nn.ConvTranspose2d))
                seq._modules[name] = nn.Identity()
        for name in names:
            if isinstance(seq._modules[name], nn.Dropout):
                seq._modules[name] = nn.Identity()
    return folded


def _compile(model: nn.Module, device: torch.device) -> nn.Module:
    """``torch.compile`` for inference: on CPU with ``freezing`` (weights become constants; without it
    compiling gained nothing here), static shapes (one render size per film)."""
    options = {"freezing": True} if device.type == "cpu" else None
    mode = None if device.type == "cpu" else "max-autotune-no-cudagraphs"
    return torch.compile(model, dynamic=False, mode=mode, options=options)


def _area_resize(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(N, C, h, w)``: area averaging when shrinking (as ``cv2.INTER_AREA``),
    bilinear (half-pixel centres, as ``cv2.INTER_LINEAR``) when growing."""
    if tuple(x.shape[-2:]) == (h, w):
        return x
    if h <= x.shape[-2] and w <= x.shape[-1]:
        return F.interpolate(x, size=(h, w), mode="area")
    return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)


def uv_from_lab(L: torch.Tensor, ab: torch.Tensor, matrix: str, bit_depth: int, full_range: bool
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Torch twin of ``compose``'s chroma step: L* ``(N, 1, h, w)`` and a/b ``(N, 2, h, w)`` (same
    size, float32, any device) -> U, V code values ``(N, h, w)`` (uint8 for 8 bit, else int32 to be
    cast by the caller), with ``color.rgb_to_chroma``'s matrix, range and rounding."""
    rgb = color.lab_to_rgb(torch.cat([L, ab], 1).float())
    u, v, top = color.chroma_codes(rgb[:, 0], rgb[:, 1], rgb[:, 2], matrix, bit_depth, full_range)
    u, v = torch.round(u).clamp_(0, top), torch.round(v).clamp_(0, top)
    dtype = torch.uint8 if bit_depth == 8 else torch.int32
    return u.to(dtype), v.to(dtype)


class Colorizer:
    """A generator on a device, ready to turn render-size L* into a/b (see the module docstring)."""

    def __init__(self, model: nn.Module, device: torch.device | str = "cpu", precision: str = "auto",
                 batch_size: int = 8, render_size: int = 192, *, threads: int = 0, fold_bn: bool = True,
                 compile: bool = False, auto_batch: bool = False, max_batch: int = 64,
                 workers: int = 0, saturation: float = 1.0) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if render_size < 8:
            raise ValueError(f"render_size must be >= 8, got {render_size}")
        if not 0.0 <= saturation <= MAX_SATURATION:
            raise ValueError(f"saturation must be in [0, {MAX_SATURATION:g}], got {saturation}")
        self.device = torch.device(device)
        #: the user's colour strength: every a/b the network predicts is multiplied by it (1 = as predicted)
        self.saturation = float(saturation)
        self.dtype = resolve_precision(precision, self.device)
        self.batch_size = batch_size
        self.render_size = render_size
        self.multiple = _model_multiple(model)
        #: CPU: a batch is split into ``workers`` slices run side by side, each with ``intra_threads``
        #: torch threads (measured on 2 cores: 2 x 1 thread beats 1 x 2 threads by ~20% for the model
        #: alone, and much more next to decode/encode threads, which stall a multi-threaded region)
        self.workers, self.intra_threads = 1, 0
        self._pool = None
        if self.device.type == "cpu":
            total = threads if threads > 0 else min(torch.get_num_threads(), cpu_threads())
            self.workers = max(1, min(workers if workers > 0 else total, batch_size, total))
            self.intra_threads = max(1, total // self.workers)
            if self.workers == 1:
                torch.set_num_threads(self.intra_threads)
        elif threads > 0:  # CUDA: torch's CPU threads only copy batches and planes to and from the device
            torch.set_num_threads(threads)
        if cv2.getNumThreads() > OPENCV_MAX_THREADS:
            cv2.setNumThreads(OPENCV_MAX_THREADS)
        model = model.eval()
        if fold_bn:
            model = fold_batchnorm(model)
        self.model = model.to(self.device).to(memory_format=torch.channels_last)
        self.compiled = bool(compile)
        if compile:
            self.model = _compile(self.model, self.device)
        #: CUDA only: grow the batch from free device memory (see plan_batch); config.batch_size is the floor
        self.auto_batch = bool(auto_batch) and self.device.type == "cuda"
        self.max_batch = max(1, max_batch)
        self._planned: set[tuple[int, int]] = set()
        self._compose_stream = None  # CUDA stream for compose_uv (created on first use)
        self._luts: dict[tuple[int, bool], torch.Tensor] = {}
        self._lock = threading.Lock()  # plan_batch vs predict_ab from different threads
        #: called with (old, new) batch size when an out-of-memory error halves the batch
        self.on_oom: Callable[[int, int], None] | None = None

    def close(self) -> None:
        """Stop the CPU worker threads (a later call starts them again)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def _forward(self, L: np.ndarray) -> np.ndarray:
        """One batch ``(b, rh, rw)`` L* -> ``(b, 2, rh, rw)`` a/b: on CPU split into ``workers`` slices
        run on the worker threads, else one network call."""
        n = L.shape[0]
        k = min(self.workers, n)
        if k <= 1:
            return self._forward_slice(L)
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            intra = self.intra_threads
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="filmcolor-infer",
                                            initializer=lambda: torch.set_num_threads(intra))
        bounds = np.linspace(0, n, k + 1).round().astype(int)
        parts = list(self._pool.map(self._forward_slice, [L[a:b] for a, b in zip(bounds, bounds[1:])]))
        return np.concatenate(parts)

    @classmethod
    def from_config(cls, config) -> "Colorizer":
        """Load ``config.model`` (name or path) onto ``config.device`` with the config's settings."""
        from .weights import load_generator

        device = resolve_device(config.device)
        model, _info = load_generator(config.model, device)
        return cls(model, device, config.precision, config.batch_size, config.render_size,
                   threads=getattr(config, "threads", 0), compile=bool(getattr(config, "compile", False)),
                   auto_batch=device.type == "cuda", saturation=getattr(config, "saturation", 1.0))

    @property
    def on_device_compose(self) -> bool:
        """True when :meth:`compose_uv` should build the chroma planes (CUDA devices)."""
        return self.device.type == "cuda"

    # --- shapes ----------------------------------------------------------------------------------
    def render_shape(self, h: int, w: int) -> tuple[int, int]:
        """``(rh, rw)``: the short side becomes ``render_size``, the long side keeps the aspect."""
        if h <= 0 or w <= 0:
            raise ValueError(f"frame size must be positive, got {h}x{w}")
        s = self.render_size
        if h <= w:
            return s, max(1, round(w * s / h))
        return max(1, round(h * s / w)), s

    def padded_shape(self, h: int, w: int) -> tuple[int, int]:
        """The ``(h, w)`` the network actually runs at for a render-size input (padded to ``multiple``)."""
        m = self.multiple
        return h + (-h) % m, w + (-w) % m

    def plan_batch(self, rh: int, rw: int, fraction: float = 0.5) -> int:
        """CUDA with ``auto_batch``: raise ``batch_size`` (never above ``max_batch``) so a batch of
        ``(rh, rw)`` frames uses at most ``fraction`` of the free device memory, measured on one frame
        (peak allocation of a forward pass). Elsewhere a no-op. Returns ``batch_size``."""
        if not self.auto_batch or (rh, rw) in self._planned:
            return self.batch_size
        with self._lock:
            self._planned.add((rh, rw))
            dev = self.device
            torch.cuda.synchronize(dev)
            base = torch.cuda.memory_allocated(dev)
            torch.cuda.reset_peak_memory_stats(dev)
            self._forward(np.zeros((1, rh, rw), np.float32))
            torch.cuda.synchronize(dev)
            per_frame = max(1, torch.cuda.max_memory_allocated(dev) - base)
            free, _total = torch.cuda.mem_get_info(dev)
            fit = int(free * fraction // per_frame)
            self.batch_size = max(self.batch_size, min(self.max_batch, fit))
        return self.batch_size

    def _lut(self, bit_depth: int, full_range: bool) -> torch.Tensor:
        key = (bit_depth, full_range)
        if key not in self._luts:
            self._luts[key] = torch.from_numpy(color.luma_to_L_lut(bit_depth, full_range)).to(self.device)
        return self._luts[key]

    def compose_uv(self, y: np.ndarray, ab: np.ndarray, chroma_shape: tuple[int, int], matrix: str,
                   bit_depth: int, full_range: bool) -> tuple[np.ndarray, np.ndarray]:
        """On the device: the source Y plane ``(H, W)`` (uint8/uint16 code values) and a/b ``(2, rh, rw)``
        -> U, V planes of ``chroma_shape`` (uint8 or uint16), as ``compose.compose_planes`` computes them
        on the host (L* lookup of Y, area resize to the chroma size, bilinear a/b, Lab -> sRGB -> U/V);
        equal up to resampling rounding. Runs on its own CUDA stream so it overlaps the network."""
        ch, cw = chroma_shape
        dev = self.device
        cuda = dev.type == "cuda"
        if cuda and self._compose_stream is None:
            self._compose_stream = torch.cuda.Stream(dev)
        ctx = torch.cuda.stream(self._compose_stream) if cuda else nullcontext()
        with torch.inference_mode(), ctx:
            yt = torch.from_numpy(np.ascontiguousarray(y).astype(np.uint8 if y.dtype == np.uint8 else np.int32,
                                                                   copy=False))
            abt = torch.from_numpy(np.ascontiguousarray(ab, dtype=np.float32))
            if cuda:
                yt, abt = yt.pin_memory().to(dev, non_blocking=True), abt.pin_memory().to(dev, non_blocking=True)
            L = self._lut(bit_depth, full_range)[yt.long()][None, None]
            L = _area_resize(L, ch, cw)
            abu = abt[None] if tuple(abt.shape[-2:]) == (ch, cw) else \
                F.interpolate(abt[None], size=(ch, cw), mode="bilinear", align_corners=False)
            u, v = uv_from_lab(L, abu, matrix, bit_depth, full_range)
            dtype = np.uint8 if bit_depth == 8 else np.uint16
            if cuda:
                uv = torch.empty((2, ch, cw), dtype=u.dtype, pin_memory=True)
                uv.copy_(torch.stack([u[0], v[0]]), non_blocking=True)
                self._compose_stream.synchronize()
            else:
                uv = torch.stack([u[0], v[0]])
            uv = uv.numpy().astype(dtype, copy=False)
        return uv[0], uv[1]

    # --- prediction ------------------------------------------------------------------------------
    def predict_ab(self, L: np.ndarray) -> np.ndarray:
        """``(N, rh, rw)`` float32 L* in [0, 100] -> ``(N, 2, rh, rw)`` float32 a/b (times ``saturation``).

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
                chunk = L[i:i + bs]
                if self.compiled and bs < self.batch_size:  # keep one static shape: pad with the last frame
                    chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self.batch_size - bs, axis=0)])
                out[i:i + bs] = self._forward(chunk)[:bs]
            except torch.OutOfMemoryError as exc:
                if bs <= 1:
                    raise ProcessingError(None, f"out of memory on {self.device} even at batch size 1 at "
                                                f"render size {self.render_size} (try a smaller --set render_size "
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

    def _forward_slice(self, L: np.ndarray) -> np.ndarray:
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
            if cuda:  # one pinned buffer, a non-blocking copy, then wait for it
                host = torch.empty(y.shape, dtype=y.dtype, pin_memory=True)
                host.copy_(y, non_blocking=True)
                torch.cuda.current_stream(self.device).synchronize()
                y = host
            else:
                y = y.contiguous()
        ab = color.denormalize_ab(y.numpy())
        if self.saturation != 1.0:
            ab *= np.float32(self.saturation)
        return ab
