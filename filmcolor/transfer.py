"""Scans coded as log (Cineon/DPX printing density) or linear light (OpenEXR), not video levels.

The network learnt colour from video-level pictures, so with ``--scan-transfer`` each decoded frame
is shown at video levels first (:func:`to_video_levels`) and the writer gets 16-bit RGB, sRGB-coded
(:func:`as_decoded`); without it, a film whose pictures say they are log or linear
(:func:`stated_transfer`) is coloured as stored and :func:`warn_transfer` says so.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import av
import numpy as np

from . import color, sequences
from .config import RunConfig

Warn = Callable[[str], None]

_FLOAT_FORMATS = ("f32", "f16")


def to_video_levels(frame: av.VideoFrame, transfer: str) -> av.VideoFrame:
    """A scan coded as ``transfer`` (``"log"``: Cineon printing density; ``"linear"``: linear light)
    -> the same picture at video levels, as 16-bit RGB with the frame's timestamps
    (``color.scan_to_video``: a table for integer scans, the formula for floating-point ones)."""
    if any(tag in frame.format.name for tag in _FLOAT_FORMATS):
        values = frame.reformat(format="gbrpf32le").to_ndarray()  # (H, W, 3) RGB, linear floats
        if transfer == "log":
            values = np.clip(values, 0.0, 1.0)
        video = np.round(color.scan_to_video(values, transfer) * 65535).astype(np.uint16)
    else:
        video = color.scan_to_video_lut16(transfer)[frame.reformat(format="rgb48le").to_ndarray()]
    out = av.VideoFrame.from_ndarray(np.ascontiguousarray(video), format="rgb48le")
    out.pts = frame.pts
    if frame.time_base is not None:
        out.time_base = frame.time_base
    return out


def converter(transfer: str | None) -> Callable[[av.VideoFrame], av.VideoFrame] | None:
    """``to_video_levels`` for scans coded as ``transfer`` ("log", "linear"); None for video levels."""
    if not transfer:
        return None
    return lambda frame: to_video_levels(frame, transfer)


_TRC_LINEAR, _TRC_SRGB = 8, 13  # AVColorTransferCharacteristic: linear light (OpenEXR...), IEC 61966-2-1


def as_decoded(info, config: RunConfig):
    """``info`` as the writer gets the frames: with ``config.scan_transfer``, 16-bit RGB at video
    levels, sRGB-coded (``to_video_levels``)."""
    if not config.scan_transfer:
        return info
    return dataclasses.replace(info, pix_fmt="rgb48le", bit_depth=max(10, min(16, info.bit_depth)),
                               color_trc=_TRC_SRGB)


def stated_transfer(src: Path, info) -> str | None:
    """How a film's pictures say they are coded when not at video levels (``ScanHeader.transfer``
    names: a DPX/Cineon header's, or "linear light" from the decoder's tag, as for OpenEXR)."""
    transfer = None
    if src.is_dir():
        transfer = sequences.scan_header(src / sequences.sequence_in(src).files[0]).transfer
    if transfer is None and info.color_trc == _TRC_LINEAR:
        transfer = sequences.TRANSFER_NAMES["linear"]
    return transfer


def warn_transfer(src: Path, transfer: str | None, asked: str | None, warn: Warn | None) -> None:
    """Say when a film's pictures are log-coded or linear light (``transfer``, see
    ``stated_transfer``) and ``--scan-transfer`` does not convert them: they would be coloured as
    stored, but the network learnt colour from video-level pictures. Also say when ``asked`` differs
    from what the pictures state."""
    if warn is None or not transfer and not asked:
        return
    stated = sequences.transfer_kind(transfer)
    if asked is None:
        warn(f"{src}: the pictures are coded as {transfer}, not video levels, and are coloured as stored (the "
             f"colour comes out weak); --scan-transfer {stated} shows them at video levels first")
    elif stated is not None and stated != asked:
        warn(f"{src}: the pictures say they are coded as {transfer}; converted as {asked}, as asked")
