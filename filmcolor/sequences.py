"""Image sequences: film scans, one picture file per frame, read as one film.

- ``image_sequence(folder) -> ImageSequence`` (``sequence_in`` when one must be there) finds a
  folder's numbered frames; ``media.open_input`` reads them through FFmpeg's image2 demuxer.
- ``scan_header(path) -> ScanHeader`` reads what a DPX (or Cineon) frame's header states about the
  film: its frame rate, its SMPTE timecode and its transfer (log / printing density, linear or video
  levels). FFmpeg's DPX reader exports none of them, so a 25 fps reel would otherwise play at the
  ``--fps`` default and lose its timecode.
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from .errors import InputError

# photos OpenCV reads (JPEG 2000 and PNM too: scans come in both); media.py judges stills by these
STILL_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".jp2", ".j2k",
                              ".pgm", ".ppm", ".pbm", ".pnm"})
SEQUENCE_FPS = "24"  # frames a second of an image sequence unless told (film is shot at 24)
SEQUENCE_EXTENSIONS = STILL_EXTENSIONS | {".dpx", ".cin", ".exr"}
_NUMBERED = re.compile(r"^(.*?)(\d+)(\.[A-Za-z0-9]+)$")


@dataclass(frozen=True)
class ImageSequence:
    """A folder's numbered frames ``<prefix><number><ext>``, numbers ``first .. first + count - 1``;
    ``pattern`` is the FFmpeg image2 file pattern for them (printf-style, ``%`` escaped)."""

    folder: Path
    pattern: str
    first: int
    count: int
    files: tuple[str, ...] = ()  # the member files' names
    missing: tuple[int, ...] = ()  # numbers absent between the first and the last


def image_sequence(folder: str | Path, *, gaps_ok: bool = False) -> ImageSequence | None:
    """The numbered image sequence a folder holds - the largest group of at least 2 picture files
    sharing a name prefix, extension and digit count - or None. Raises ``InputError`` naming the
    first missing frame when the numbering has gaps (FFmpeg's reader stops at a gap, which would
    end the film there without a word), unless ``gaps_ok`` (then ``missing`` lists them)."""
    folder = Path(folder)
    groups: dict[tuple[str, str], list[str]] = {}
    for entry in folder.iterdir():
        m = _NUMBERED.match(entry.name)
        if m and m[3].lower() in SEQUENCE_EXTENSIONS and not entry.name.startswith(".") and entry.is_file():
            groups.setdefault((m[1], m[3]), []).append(m[2])
    if not groups:
        return None
    (prefix, ext), found = max(groups.items(), key=lambda kv: len(kv[1]))
    lengths = {len(d) for d in found}
    if len(lengths) == 1:  # zero-padded (0001 ...) or all of one magnitude (86400 ...)
        width = lengths.pop()
    elif not any(d.startswith("0") and d != "0" for d in found):  # 1, 2, ... 10, 11: unpadded
        width = 0
    else:  # stray files beside a padded sequence: keep the padded ones
        width = max(lengths, key=lambda n: sum(len(d) == n for d in found))
        found = [d for d in found if len(d) == width]
    numbers = sorted(int(d) for d in found)
    if len(numbers) < 2:
        return None
    missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
    digits = f"%0{width}d" if width else "%d"
    shown = f"{prefix}{digits}{ext}"
    if missing and not gaps_ok:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise InputError(folder, f"image sequence {shown} has gaps: frame {missing[0]}{more} missing "
                                 "(fill or renumber them: the film would stop there)")
    return ImageSequence(folder, prefix.replace("%", "%%") + digits + ext.replace("%", "%%"), numbers[0],
                         len(numbers), tuple(f"{prefix}{d}{ext}" for d in sorted(found, key=int)), tuple(missing))


def sequence_in(folder: str | Path) -> ImageSequence:
    """``image_sequence(folder)``, or ``InputError`` when the folder holds none (or one with gaps)."""
    seq = image_sequence(folder)
    if seq is None:
        raise InputError(folder, "is a directory without an image sequence (`filmcolor batch` colours "
                                 "folders of films and photos)")
    return seq


# --- what a scan's header states (DPX: SMPTE 268M; Cineon: Kodak's format before it) ---------------
_DPX_MAGIC = {b"SDPX": ">", b"XPDS": "<"}
_CINEON_MAGIC = (b"\x80\x2a\x5f\xd7", b"\xd7\x5f\x2a\x80")
# DPX image element 1's transfer characteristic (byte 801): the values that are not video levels
_DPX_TRANSFERS = {1: "printing density (log)", 2: "linear light", 3: "logarithmic"}
_DPX_FILM_FPS, _DPX_TIMECODE, _DPX_TV_FPS = 1724, 1920, 1940  # film and television header fields


@dataclass(frozen=True)
class ScanHeader:
    """What one scan file states about the film: ``fps`` (None when unsaid), ``timecode``
    (``HH:MM:SS:FF``, ``;`` before the frames when drop-frame) and ``transfer``: None for video
    levels or unsaid, else how the values are coded (``"printing density (log)"``, ``"logarithmic"``,
    ``"linear light"``) - not what the network was trained on."""

    fps: Fraction | None = None
    timecode: str | None = None
    transfer: str | None = None


def _header_rate(value: float) -> Fraction | None:
    """A header's frame rate as a ratio: 24.0 -> 24, 23.976 -> 24000/1001; None when unset (DPX
    fills unset fields with all ones, a NaN) or absurd."""
    if not math.isfinite(value) or not 0 < value < 1000:
        return None
    if abs(value - round(value)) < 1e-3:
        return Fraction(round(value))
    ntsc = round(value * 1.001)
    if abs(value * 1.001 - ntsc) < 0.01:
        return Fraction(ntsc * 1000, 1001)
    return Fraction(value).limit_denominator(1001)


def _bcd_timecode(word: int, fps: Fraction | None) -> str | None:
    """SMPTE 12M time code packed as BCD ``0xHHMMSSFF`` (bit 0x40 of the frames byte: drop-frame)
    -> ``"HH:MM:SS:FF"``; None when unset or not a valid time code at ``fps``."""
    if word == 0xFFFFFFFF:
        return None
    hh, mm, ss, ff = word >> 24, (word >> 16) & 0xFF, (word >> 8) & 0xFF, word & 0xFF
    drop = bool(ff & 0x40)
    fields = [hh & 0x3F, mm & 0x7F, ss & 0x7F, ff & 0x3F]
    if any((f >> 4) > 9 or (f & 0xF) > 9 for f in fields):
        return None
    h, m, s, f = ((f >> 4) * 10 + (f & 0xF) for f in fields)
    if h > 23 or m > 59 or s > 59 or (fps is not None and f >= round(fps)):
        return None
    return f"{h:02d}:{m:02d}:{s:02d}{';' if drop else ':'}{f:02d}"


def scan_header(path: str | Path) -> ScanHeader:
    """The frame rate, timecode and transfer a DPX file's header states (a Cineon file: its log
    coding); an empty ``ScanHeader`` for any other file, or one that cannot be read."""
    try:
        with open(path, "rb") as f:
            head = f.read(2048)
    except OSError:
        return ScanHeader()
    if head[:4] in _CINEON_MAGIC:
        return ScanHeader(transfer="printing density (log)")  # Cineon is log by definition
    order = _DPX_MAGIC.get(head[:4])
    if order is None or len(head) < 2048:
        return ScanHeader()

    def word(offset: int) -> int:
        return struct.unpack_from(order + "I", head, offset)[0]

    def real(offset: int) -> float:
        return struct.unpack_from(order + "f", head, offset)[0]

    # the film and television headers (bytes 1664-2047) are there only when the file says so: FFmpeg's
    # writer, for one, starts the picture at byte 1664
    if word(4) < 2048 or word(28) == 0:
        return ScanHeader(transfer=_DPX_TRANSFERS.get(head[801]))
    fps = _header_rate(real(_DPX_TV_FPS)) or _header_rate(real(_DPX_FILM_FPS))
    return ScanHeader(fps=fps, timecode=_bcd_timecode(word(_DPX_TIMECODE), fps),
                      transfer=_DPX_TRANSFERS.get(head[801]))
