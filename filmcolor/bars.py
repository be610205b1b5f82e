"""Black bars around the picture: letterbox, pillarbox, a scan's black surround.

Old films reach archives inside black bars: a 4:3 picture pillarboxed in a 16:9 transfer, a wide
film letterboxed in a 4:3 one, a scan with its black gate around the frame. The network's colours
depend on the bars it is shown (letterboxed film frames came out 65% further from their true
colours in CIEDE2000: ``scripts/bench_bars.py``), so ``run`` finds the bars on frames sampled across
the film and colours only the picture inside them, at the render size of the picture; the bars get
neutral chroma (black stays black). The same picture then gets the same colours however it was
framed.

:func:`find_picture` takes L* frames (0-100, as ``color.luma_to_L`` gives) and returns the
:class:`Area` holding every row and column that is picture in at least one of them: a row or column
is black where no more than ``BRIGHT_SHARE`` of its pixels rise above ``DARK_L`` (about FFmpeg
``cropdetect``'s default limit, 24/255), so dust and noise in a bar do not make it picture, and a
dark scene does not make its edge a bar unless every sampled frame is dark there. Something bright
set apart from the picture by black - subtitles burnt into a letterbox bar, a channel's logo in a
pillarbox bar - is not picture either: the picture is the longest run of picture rows (columns),
gaps narrower than ``GAP_SHARE`` of the frame bridged. Areas are in the
stored frame's pixels, widened to even coordinates so they fall on whole chroma samples of 4:2:0 and
4:2:2 planes (:meth:`Area.on_plane`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from . import compose, media
from .config import PICTURE_AREA

DARK_L = 8.0          # L* at or below which a pixel counts as black (video black is 0; Y=36 of 8-bit video)
BRIGHT_SHARE = 0.01   # a row/column with more than this share of pixels above DARK_L is picture
MIN_PICTURE = 0.25    # a "picture" narrower or lower than this share of the frame is not believed
GAP_SHARE = 0.02      # black lines narrower than this share of the frame inside the picture are picture
SAMPLES = 12          # frames sampled across a film to find its bars
ALIGN = 2             # areas start and end on even pixels (whole chroma samples of 4:2:0 / 4:2:2)


@dataclass(frozen=True)
class Area:
    """The picture inside a frame of ``frame`` = ``(H, W)`` pixels: rows ``top:top+height``, columns
    ``left:left+width`` (stored orientation). ``whole`` when it is the whole frame (no bars)."""

    top: int
    left: int
    height: int
    width: int
    frame: tuple[int, int]

    @classmethod
    def whole_frame(cls, h: int, w: int) -> "Area":
        return cls(0, 0, h, w, (h, w))

    @property
    def whole(self) -> bool:
        return (self.top, self.left, self.height, self.width) == (0, 0) + tuple(self.frame)

    def fits(self, shape: tuple[int, ...]) -> bool:
        """Whether a plane of ``shape`` is a frame this area was found for (a rescanned frame of
        another size is coloured whole)."""
        return tuple(shape[:2]) == tuple(self.frame)

    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.top + self.height), slice(self.left, self.left + self.width)

    def on_plane(self, h: int, w: int) -> tuple[slice, slice]:
        """The area on a plane of ``(h, w)`` covering the frame, e.g. a chroma plane of ``ceil(H/2)``
        rows: starts rounded down, ends up, so every picture pixel's chroma sample is inside."""
        H, W = self.frame
        sy, sx = -(-H // h), -(-W // w)  # 1 or 2 (chroma subsampling)
        bottom, right = self.top + self.height, self.left + self.width
        return (slice(self.top // sy, min(h, -(-bottom // sy))), slice(self.left // sx, min(w, -(-right // sx))))

    def turned(self, turns: int) -> "Area":
        """The area on the frame turned by ``np.rot90(frame, turns)`` (counter-clockwise quarter turns)."""
        a = self
        for _ in range(turns % 4):
            H, W = a.frame
            a = Area(W - (a.left + a.width), a.top, a.width, a.height, (W, H))
        return a

    def __str__(self) -> str:
        return f"{self.width}x{self.height} at ({self.left}, {self.top}) of {self.frame[1]}x{self.frame[0]}"


def from_geometry(text: str, frame: tuple[int, int]) -> Area:
    """``"WxH+X+Y"`` - the picture's width, height, left and top in the stored frame's pixels, as
    ImageMagick and X11 write a geometry - -> its :class:`Area` in a frame of ``frame`` = ``(H, W)``.
    Raises ``ValueError`` for another form, an empty area or one reaching outside the frame."""
    m = PICTURE_AREA.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"{text!r} is not a picture area WxH+X+Y")
    w, h, x, y = map(int, m.groups())
    H, W = frame
    if w < 1 or h < 1 or x + w > W or y + h > H:
        raise ValueError(f"the picture area {text} does not fit the {W}x{H} frame")
    return Area(y, x, h, w, (H, W))


def picture_lines(L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (rows, columns) of one L* frame that are picture, not black bar."""
    bright = np.asarray(L) > DARK_L
    return bright.mean(axis=1) > BRIGHT_SHARE, bright.mean(axis=0) > BRIGHT_SHARE


def find_picture(frames: Iterable[np.ndarray]) -> Area | None:
    """L* frames of one size (stored orientation) -> the :class:`Area` of the picture inside black
    bars; the whole frame when there are none. ``None`` when there is nothing to go on: no frames,
    every frame black, or a picture smaller than ``MIN_PICTURE`` of the frame either way (a film
    dark almost everywhere is coloured whole rather than trusted)."""
    rows = cols = None
    shape = None
    for L in frames:
        r, c = picture_lines(L)
        if shape is None:
            shape, rows, cols = np.shape(L)[:2], r, c
        elif np.shape(L)[:2] == shape:
            rows, cols = rows | r, cols | c
    if shape is None or not rows.any() or not cols.any():
        return None
    H, W = shape
    top, bottom = _span(rows)
    left, right = _span(cols)
    top, left = top - top % ALIGN, left - left % ALIGN
    bottom, right = min(H, bottom + (-bottom) % ALIGN), min(W, right + (-right) % ALIGN)
    if bottom - top < MIN_PICTURE * H or right - left < MIN_PICTURE * W:
        return None
    return Area(top, left, bottom - top, right - left, (H, W))


def find_in_film(path: str | Path, start: float | None = None, duration: float | None = None, *,
                 fps: str | None = None, convert: Callable | None = None) -> Area | None:
    """:func:`find_in_planes` of ``SAMPLES`` frames sampled across a film or its ``start``/``duration``
    stretch (``media.sample_planes``; a folder of scans at ``fps``; ``convert``: a frame -> frame map
    applied first, e.g. log scans shown at video levels)."""
    return find_in_planes(media.sample_planes(path, SAMPLES, start, duration, fps=fps, convert=convert))


def find_in_planes(planes: Iterable) -> Area | None:
    """:func:`find_picture` on the L* of 8-bit ``media.Planes`` (frames of another size than the first
    are not counted)."""
    return find_picture(compose.planes_L(p) for p in planes)


def _span(picture: np.ndarray) -> tuple[int, int]:
    """First and one-past-last index of the longest run of picture lines, black gaps narrower than
    ``GAP_SHARE`` of the frame (at least 2 lines) counted as picture."""
    idx = np.flatnonzero(picture)
    gap = max(2, int(GAP_SHARE * len(picture)))
    breaks = np.flatnonzero(np.diff(idx) > gap + 1)  # a black gap wider than ``gap`` between two picture lines
    starts = np.concatenate([[idx[0]], idx[breaks + 1]])
    ends = np.concatenate([idx[breaks], [idx[-1]]]) + 1
    k = int(np.argmax(ends - starts))
    return int(starts[k]), int(ends[k])
