"""What a film or photo looks like before it is coloured: where its picture is, and whether it is
in colour already.

:func:`look_at` samples ``bars.SAMPLES`` frames across a film once and gives a :class:`Look`: the
picture inside black bars as ``--bars`` has it (``auto``: found by ``bars``; ``off``: the whole
frame; ``WxH+X+Y``: named, :func:`chosen_area`) and how many sampled frames have hues of their own
(``color.hue_variety``): a film in colour already is named in a warning, since its colours would
be replaced. Photos get the same two answers from :func:`still_area` and :func:`photo_in_colour`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from . import bars, color, media, stills, transfer
from .config import RunConfig
from .errors import SettingsError

Warn = Callable[[str], None]

COLOURED_SHARE = 2.0  # per cent of a frame's pixels with a hue of their own (color.hue_variety): a colour frame


@dataclass(frozen=True)
class Look:
    """What frames sampled across a film show before it is coloured: the picture inside black bars
    (the whole frame when there are none, or with ``--bars off``), and how many of the ``sampled``
    frames are in colour already (``coloured``: hues vary across the picture; a toned or tinted B&W
    film is not)."""

    area: bars.Area
    coloured: int
    sampled: int

    @property
    def in_colour(self) -> bool:
        """A colour film: at least a third of the sampled frames in colour (a colour title card or an
        archive's logo before a B&W film is not enough)."""
        return self.sampled > 0 and 3 * self.coloured >= self.sampled


def look_at(src: Path, info, config: RunConfig) -> Look:
    """:class:`Look` from ``bars.SAMPLES`` frames sampled across the film, or across its
    ``start``/``duration`` stretch, as the network sees them (shown at video levels with
    ``--scan-transfer``); the area in stored orientation."""
    convert = transfer.converter(config.scan_transfer)
    planes = media.sample_planes(src, bars.SAMPLES, config.start, config.duration, fps=config.sequence_fps,
                                 convert=convert)
    return look_of(src, info, config, planes)


def look_of(src: Path, info, config: RunConfig, planes: Sequence[media.Planes]) -> Look:
    """:class:`Look` from frames already sampled (8-bit 4:2:0 planes in stored orientation); a frame
    of another size than ``info``'s (a rescanned one) is not counted."""
    whole = bars.Area.whole_frame(info.height, info.width)
    planes = [p for p in planes if p.y.shape == whole.frame]
    area = chosen_area(src, config.bars, whole.frame, media.quarter_turns(info.rotation))
    if area is None:  # auto
        found = bars.find_in_planes(planes)
        area = found if found is not None else whole
    rows, cols = area.on_plane(*planes[0].u.shape) if planes else (slice(None), slice(None))
    coloured = sum(color.hue_variety(p.u[rows, cols], p.v[rows, cols]) >= COLOURED_SHARE for p in planes)
    return Look(area, coloured, len(planes))


def chosen_area(src: Path, setting: str, frame: tuple[int, int], turns: int = 0) -> bars.Area | None:
    """The picture area ``--bars`` names for a stored frame of ``frame`` = ``(H, W)``: the whole frame
    for "off", the given ``WxH+X+Y`` - measured on the picture as shown, i.e. the stored frame turned
    by ``turns`` quarter turns (a phone film's display rotation) - or None for "auto" (to be found).
    Raises ``SettingsError`` for an area outside the frame."""
    if setting == "auto":
        return None
    if setting == "off":
        return bars.Area.whole_frame(*frame)
    shown = frame if turns % 2 == 0 else (frame[1], frame[0])
    try:
        return bars.from_geometry(setting, shown).turned(-turns % 4)
    except ValueError as exc:
        raise SettingsError(src, f"--bars {setting}: {exc}") from None


def still_area(src: Path, L: np.ndarray, setting: str) -> bars.Area | None:
    """The picture area of a photo (L* ``(H, W)``) as ``--bars`` has it; None for the whole photo."""
    area = chosen_area(src, setting, L.shape)
    if area is None:
        area = bars.find_picture([L])
    return None if area is None or area.whole else area


def picture_area(src: Path, info, config: RunConfig) -> bars.Area:
    """Where a film's picture is inside black bars (:func:`look_at`); the whole frame with
    ``config.bars == "off"`` or when the frames do not tell."""
    return look_at(src, info, config).area


def photo_in_colour(rgb: np.ndarray) -> bool:
    """Whether a photo (sRGB float in [0, 1]) has colours of its own, not only a tone (``color.hue_variety``,
    on the photo shrunk to 512 px at most: a 24-megapixel scan is judged as fast as a frame)."""
    h, w = rgb.shape[:2]
    s = min(1.0, 512 / max(h, w))
    small = rgb if s == 1.0 else cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))),
                                            interpolation=cv2.INTER_AREA)
    yuv = cv2.cvtColor(np.clip(np.rint(small * 255), 0, 255).astype(np.uint8), cv2.COLOR_RGB2YUV)
    return color.hue_variety(yuv[..., 1], yuv[..., 2]) >= COLOURED_SHARE


def warn_photo_in_colour(src: Path, still: stills.Still, warn: Warn | None) -> bool:
    """Say when a photo is in colour already (its colours would be replaced); returns whether it is."""
    coloured = still.colour_source and photo_in_colour(still.rgb)
    if coloured and warn is not None:
        warn(f"{src}: the photo is in colour already; its colours are replaced by the model's")
    return coloured


def warn_in_colour(src: Path, look: Look, warn: Warn | None) -> None:
    """Say when the film is in colour already: ``run`` would replace its colours with the model's."""
    if warn is not None and look.in_colour:
        warn(f"{src}: the film is in colour already ({look.coloured} of {look.sampled} sampled frames); its "
             "colours are replaced by the model's")
