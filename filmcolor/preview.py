"""``run --preview N``: a PNG of N frames sampled across a film, each B&W | colour side by side.

The film is not encoded. Its frames are sampled once (``media.iter_sample_frames``, at least
``bars.SAMPLES`` of them) and the same frames serve both to find the picture inside black bars and
the colour check (``look.look_of``) and as the rows of the sheet, coloured as ``run`` colours them
(``pipeline.colorize_rgb``: only the picture inside the bars, chroma at the render size on the
full-size L*). A photo gives one row.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import av
import cv2
import numpy as np

from . import bars, color, compose, look, media, outputs, stills, transfer
from .config import RunConfig
from .errors import InputError, OutputError
from .inference import Colorizer
from .pipeline import Progress, RunResult, colorize_rgb

Warn = Callable[[str], None]

PANEL_HEIGHT = 360  # px: panels taller than this are shrunk


def sample_film(src: Path, info, n: int, config: RunConfig) -> tuple[list[np.ndarray], look.Look]:
    """Up to ``n`` evenly spaced frames of the film (or its ``start``/``duration`` stretch), upright
    RGB uint8 as the network is shown them (at video levels with ``--scan-transfer``), and the
    :class:`look.Look` of the frames sampled with them: one pass over the film for both."""
    convert = transfer.converter(config.scan_transfer)
    turns = media.quarter_turns(info.rotation)
    planes, images = [], []
    for frame in media.iter_sample_frames(src, max(n, bars.SAMPLES), config.start, config.duration,
                                          fps=config.sequence_fps):
        try:
            shown = convert(frame) if convert else frame
            planes.append(media.frame_to_planes(shown, "yuv420p"))
            rgb = shown.to_ndarray(format="rgb24")
        except (ValueError, av.FFmpegError):
            continue
        images.append(np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb)
    if len(images) > n:  # n of them, evenly spaced
        images = [images[int((k + 0.5) * len(images) / n)] for k in range(n)]
    return images, look.look_of(src, info, config, planes)


def _panel(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    if h <= PANEL_HEIGHT:
        return rgb
    nw = max(1, round(w * PANEL_HEIGHT / h))
    return cv2.resize(rgb, (nw, PANEL_HEIGHT), interpolation=cv2.INTER_AREA)


def preview_sheet(images: list[np.ndarray], colorizer: Colorizer, area: bars.Area | None = None) -> np.ndarray:
    """RGB uint8 frames -> one sRGB float sheet: one row per frame, B&W | colour (only the picture
    inside black bars ``area`` coloured, as ``run`` colours it)."""
    rows = []
    for img in images:
        rgb = img.astype(np.float32) / 255.0
        L = color.rgb_to_lab_np(rgb)[..., 0]
        rows.append(np.hstack([_panel(compose.grey_rgb(L)), _panel(colorize_rgb(L, colorizer, area))]))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    return np.vstack(rows)


def write_preview(src: str | Path, out_png: str | Path | None = None, n: int = 6, config: RunConfig | None = None,
                  *, colorizer: Colorizer | None = None, progress: Progress | None = None,
                  warn: Warn | None = None) -> RunResult:
    """Write a PNG of ``n`` evenly spaced frames, each B&W | colour side by side (a row per frame;
    panels taller than 360 px are shrunk), without encoding the film. A still gives one row."""
    config = config or RunConfig()
    if n < 1:
        raise ValueError(f"preview needs n >= 1, got {n}")
    src = Path(src)
    outputs.check_input(src)
    info = media.probe_film(src, config.sequence_fps)
    still = info is None
    dst = Path(out_png) if out_png is not None else outputs.default_preview_output(src)
    outputs.check_output(src, dst, config.overwrite)
    if problem := stills.output_problem(dst):
        raise OutputError(dst, problem)
    colorizer = colorizer or Colorizer.from_config(config)
    t0 = time.perf_counter()
    if still:
        photo = stills.read_still(src)
        look.warn_photo_in_colour(src, photo, warn)
        images = [np.rint(photo.rgb * 255).astype(np.uint8)]
        area = look.still_area(src, photo.L, config.bars)
    else:
        info = transfer.as_decoded(info, config)
        images, seen = sample_film(src, info, n, config.on_timeline(info.start_time))
        if not images:
            raise InputError(src, "no decodable video frames")
        look.warn_in_colour(src, seen, warn)
        area = seen.area.turned(media.quarter_turns(info.rotation))  # the images are upright
    area = None if area is None or area.whole else area
    sheet = preview_sheet(images, colorizer, area)
    with outputs.atomic_output(dst) as tmp:
        stills.write_image(tmp, sheet, 8, final=dst)
    if progress is not None:
        progress(len(images), len(images))
    return RunResult(src, dst, len(images), time.perf_counter() - t0, "preview", area)
