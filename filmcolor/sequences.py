"""Image sequences: film scans, one picture file per frame, read as one film and written as one.

- ``image_sequence(folder) -> ImageSequence`` (``sequence_in`` when one must be there) finds a
  folder's numbered frames; ``media.open_input`` reads them through FFmpeg's image2 demuxer.
  ``sound_files(folder)`` are the reel's sound, delivered beside the scans (WAV/BWF, AIFF, FLAC).
- ``scan_header(path) -> ScanHeader`` reads what a DPX (or Cineon) frame's header states about the
  film: its frame rate, its SMPTE timecode and its transfer (log / printing density, linear or video
  levels). FFmpeg's DPX reader exports none of them, so a 25 fps reel would otherwise play at the
  ``--fps`` default and lose its timecode.
- ``SequenceWriter`` writes a coloured film as numbered DPX, TIFF or PNG pictures (``run
  --frames-as``; names from ``frame_names``, sizes from ``picture_bytes``), DPX with the film's
  rate and each frame's timecode in its header, and the sound and subtitles beside them in
  ``side_name(src)`` (Matroska audio).
"""

from __future__ import annotations

import functools
import math
import os
import re
import struct
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Sequence

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from . import carry, color, tags
from .config import FRAME_FORMATS
from .errors import InputError

# photos OpenCV reads (JPEG 2000 and PNM too: scans come in both); media.py judges stills by these
STILL_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".jp2", ".j2k",
                              ".pgm", ".ppm", ".pbm", ".pnm"})
SEQUENCE_FPS = "24"  # frames a second of an image sequence unless told (film is shot at 24)
SCAN_EXTENSIONS = frozenset({".dpx", ".cin", ".exr"})  # film-scan formats that are never a photo here
SEQUENCE_EXTENSIONS = STILL_EXTENSIONS | SCAN_EXTENSIONS
_NUMBERED = re.compile(r"^(.*?)(\d+)(\.[A-Za-z0-9]+)$")
#: Of two sequences of the same frames (a scanner's DPX beside its JPEG proxies) the film is the deeper
_SCAN_RANK = {".dpx": 0, ".cin": 0, ".exr": 0, ".tif": 1, ".tiff": 1, ".png": 2}
#: Another sequence in the folder with at least this share of the film's pictures is a second reel, not strays
RIVAL_SHARE = 0.5


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
    rivals: tuple[str, ...] = ()  # other sequences as large as a reel beside it ("reelB_*.dpx (1440 pictures)")


def image_sequence(folder: str | Path, *, gaps_ok: bool = False) -> ImageSequence | None:
    """The numbered image sequence a folder holds - the largest group of at least 2 picture files
    sharing a name prefix, extension and digit count (of the same frames in two formats, the deeper:
    DPX over its JPEG proxies) - or None. Raises ``InputError`` naming the first missing frame when
    the numbering has gaps (FFmpeg's reader stops at a gap, which would end the film there without a
    word), and naming both when a second sequence holds at least ``RIVAL_SHARE`` as many pictures (two
    reels in one folder: one would be coloured without a word), unless ``gaps_ok`` (then ``missing``
    and ``rivals`` list them).

    A run asks several times (check, probe, decode, output names); the listing is read once per
    state of the folder (its modification time changes when a file is added, removed or renamed;
    one changed in the last two seconds is always read again): 0.23 s for 100,000 scans on this
    project's CPU machine, 0.13 ms from the cache (``scripts/bench_pieces.py --only listing``)."""
    folder = Path(folder)
    try:
        stamp = folder.stat().st_mtime_ns
    except OSError:
        stamp = None
    # a folder changed in the last two seconds is listed afresh: some file systems keep whole seconds
    fresh = stamp is None or time.time_ns() - stamp < 2_000_000_000
    seq = _listed.__wrapped__(folder, stamp) if fresh else _listed(folder, stamp)
    if seq is not None and seq.rivals and not gaps_ok:  # two reels in one folder: which is the film?
        shown = re.sub(r"%0?\d*d", "*", seq.pattern).replace("%%", "%")
        raise InputError(folder, f"holds more than one image sequence: {shown} "
                                 f"({seq.count} pictures) and {', '.join(seq.rivals)}; put each reel in a "
                                 "folder of its own")
    if seq is not None and seq.missing and not gaps_ok:
        missing = seq.missing
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        shown = seq.pattern.replace("%%", "%")
        raise InputError(folder, f"image sequence {shown} has gaps: frame {missing[0]}{more} missing "
                                 "(fill or renumber them: the film would stop there)")
    return seq


@functools.lru_cache(maxsize=16)
def _listed(folder: Path, stamp: int | None) -> ImageSequence | None:
    """``image_sequence`` of ``folder`` as listed now (``stamp``: its mtime, the cache key), gaps kept."""
    groups: dict[tuple[str, str], list[str]] = {}
    for entry in os.scandir(folder):
        m = _NUMBERED.match(entry.name)
        if m and m[3].lower() in SEQUENCE_EXTENSIONS and not entry.name.startswith(".") and entry.is_file():
            groups.setdefault((m[1], m[3]), []).append(m[2])
    if not groups:
        return None
    ranked = sorted(groups.items(), key=lambda kv: (-len(kv[1]), _SCAN_RANK.get(kv[0][1].lower(), 3), kv[0]))
    (prefix, ext), found = ranked[0]
    rivals = tuple(f"{p}*{e} ({len(f)} pictures)" for (p, e), f in ranked[1:]
                   if len(f) >= max(2, RIVAL_SHARE * len(found))
                   and not (p == prefix and sorted(map(int, f)) == sorted(map(int, found))))  # not its proxies
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
    return ImageSequence(folder, prefix.replace("%", "%%") + digits + ext.replace("%", "%%"), numbers[0],
                         len(numbers), tuple(f"{prefix}{d}{ext}" for d in sorted(found, key=int)), tuple(missing),
                         rivals)


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
# --scan-transfer's two codings <-> the names above (a logarithmic scan is read as Cineon log too)
TRANSFER_NAMES = {"log": _DPX_TRANSFERS[1], "linear": _DPX_TRANSFERS[2]}


def transfer_kind(name: str | None) -> str | None:
    """``"log"`` or ``"linear"`` for a ``ScanHeader.transfer`` name, None for video levels or unsaid."""
    return None if name is None else "linear" if name == TRANSFER_NAMES["linear"] else "log"


_DPX_FILM_FPS, _DPX_TIMECODE, _DPX_TV_FPS = 1724, 1920, 1940  # film and television header fields
_DPX_FRAME_POSITION, _DPX_INTERLACE = 1712, 1928


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


# --- writing: a coloured film as numbered pictures (for grading, conform, a DI pipeline) ----------
_FRAME_EXT = {"dpx": ".dpx", "tiff": ".tif", "png": ".png"}
_FRAME_FORMAT_OF = {".dpx": "dpx", ".tif": "tiff", ".tiff": "tiff", ".png": "png"}
# the RGB layout each picture format is written in, by the source's bit depth (8, 10, 12, 16)
_FRAME_PIX_FMT = {
    "dpx": {8: "rgb24", 10: "gbrp10le", 12: "gbrp12le", 16: "rgb48le"},
    "tiff": {8: "rgb24", 10: "rgb48le", 12: "rgb48le", 16: "rgb48le"},
    "png": {8: "rgb24", 10: "rgb48be", 12: "rgb48be", 16: "rgb48be"},
}
_RANGE_PC, _RANGE_TV = 2, 1  # AVColorRange: full, limited
_SIDE_SUFFIX = ".mka"  # the film's sound and subtitles, beside its frames
SOUND_EXTENSIONS = frozenset({".wav", ".bwf", ".w64", ".rf64", ".aif", ".aiff", ".flac"})


def _depth(bit_depth: int) -> int:
    return bit_depth if bit_depth in (8, 10, 12, 16) else 16


def frame_names(src: str | Path, fmt: str) -> tuple[str, int]:
    """The image2 pattern and first number of the pictures a ``SequenceWriter`` writes for ``src``:
    a sequence keeps its own names and numbers (and its extension's spelling, when it is ``fmt``'s),
    a film file becomes ``<stem>.0000001.<ext>`` on."""
    src, ext = Path(src), _FRAME_EXT[fmt]
    if src.is_dir():
        seq = sequence_in(src)
        pattern, own = seq.pattern, Path(seq.files[0]).suffix
        if _FRAME_FORMAT_OF.get(own.lower()) == fmt:  # the scans' own spelling: .DPX, .tiff
            ext = own.replace("%", "%%")
        return pattern[: len(pattern) - len(own.replace("%", "%%"))] + ext, seq.first
    return src.stem.replace("%", "%%") + ".%07d" + ext, 1


def picture_bytes(fmt: str, width: int, height: int, bit_depth: int) -> int:
    """The size of one picture a ``SequenceWriter`` writes, uncompressed: exact for DPX (its header,
    rows padded to 32 bits, 10-bit samples packed three to a word), an upper bound for TIFF and PNG
    (what deflate saves depends on the picture)."""
    rgb = _FRAME_PIX_FMT[fmt][_depth(bit_depth)]
    if rgb == "gbrp10le":
        row = 4 * width
    else:
        row = 3 * width * (1 if rgb == "rgb24" else 2)
        row = -(-row // 4) * 4 if fmt == "dpx" else row
    return row * height + (2048 if fmt == "dpx" else 0)


def side_name(src: str | Path) -> str:
    """The file beside a film's pictures that holds its sound and subtitles: ``<stem>.mka`` (a
    sequence folder: ``<folder name>.mka``)."""
    src = Path(src)
    return (src.name if src.is_dir() else src.stem) + _SIDE_SUFFIX


def sound_files(folder: str | Path) -> list[Path]:
    """The sound files inside a folder of scans (a scanned optical or magnetic track, as archives
    deliver it beside the pictures: WAV/BWF, AIFF, FLAC), sorted: the film's sound."""
    return sorted(p for p in Path(folder).iterdir()
                  if p.suffix.lower() in SOUND_EXTENSIONS and p.is_file() and not p.name.startswith("."))


def names_pattern(pattern: str) -> re.Pattern:
    """A regular expression matching the file names of image2 ``pattern`` (``%07d``, ``%d``, ``%%``)."""
    parts = re.split(r"(%%|%0?\d*d)", pattern)
    return re.compile("".join("%" if x == "%%" else r"\d+" if x.startswith("%") else re.escape(x)
                              for x in parts if x) + "$")


_TIMECODE = re.compile(r"^(\d\d):(\d\d):(\d\d)([:;.,])(\d\d)$")


def _bcd_word(timecode: str | None) -> int | None:
    """``"HH:MM:SS:FF"`` (``;`` before the frames: drop-frame) -> SMPTE 12M BCD ``0xHHMMSSFF`` with
    the drop-frame bit; None for anything else."""
    m = _TIMECODE.match(timecode or "")
    if m is None:
        return None
    word = 0
    for digits in (m[1], m[2], m[3], m[5]):
        word = (word << 8) | (int(digits[0]) << 4) | int(digits[1])
    return word | (0x40 if m[4] != ":" else 0)


def dpx_transfer_code(transfer: str | None) -> int | None:
    """The DPX transfer characteristic code of a ``ScanHeader.transfer`` name ("linear light" -> 2)."""
    return next((code for code, name in _DPX_TRANSFERS.items() if name == transfer), None)


def _dpx_with_film_headers(data: bytes, fps: Fraction | None, timecode: str | None,
                           transfer: int | None = None, number: int | None = None,
                           interlaced: bool = False) -> bytes:
    """A DPX file as FFmpeg writes it (the picture at byte 1664, no film or television header) ->
    the same with both headers, stating ``fps`` and ``timecode``, every other field unset; and
    ``transfer`` (a DPX code) as its picture's transfer characteristic instead of FFmpeg's
    "unspecified video", where the pictures keep a log or linear coding; ``number`` as the frame
    position, and 2:1 interlace for a picture of two fields."""
    order = _DPX_MAGIC.get(data[:4])
    if order is None or len(data) < 1664 or struct.unpack_from(order + "I", data, 4)[0] != 1664 \
            or struct.unpack_from(order + "I", data, 808)[0] != 1664:
        return data  # not the layout expected: written as it is
    head, industry = bytearray(data[:1664]), bytearray(b"\xff" * 384)
    struct.pack_into(order + "I", head, 4, 2048)  # offset to the picture
    struct.pack_into(order + "I", head, 16, len(data) + 384)  # file size
    struct.pack_into(order + "I", head, 28, 384)  # industry header length
    struct.pack_into(order + "I", head, 808, 2048)  # image element 1's data offset
    if transfer is not None:
        head[801] = transfer
    if fps:
        for offset in (_DPX_FILM_FPS, _DPX_TV_FPS):
            struct.pack_into(order + "f", industry, offset - 1664, float(fps))
    word = _bcd_word(timecode)
    if word is not None:
        struct.pack_into(order + "I", industry, _DPX_TIMECODE - 1664, word)
    if number is not None and 0 <= number < 0xFFFFFFFF:
        struct.pack_into(order + "I", industry, _DPX_FRAME_POSITION - 1664, number)
    industry[_DPX_INTERLACE - 1664] = 1 if interlaced else 0
    return bytes(head + industry) + data[1664:]


class SequenceWriter:
    """Write coloured frames as numbered DPX, TIFF or PNG pictures into the folder ``dst`` (created
    by the caller), named as ``frame_names`` says; the film's sound, subtitles and labels, and those
    of the added ``tracks``, go beside them into ``<stem>.mka`` (``carry.Carried``), timed from the
    first picture written.

    Frames given to ``write`` are planar YUV in ``pix_fmt`` (4:4:4 at the source's depth), tagged
    with their matrix and range; each is turned to full-range RGB at the source's depth (8-bit RGB,
    or 10/12-bit DPX, 16-bit TIFF/PNG/DPX above 8 bits), upright when the film is rotated, with the
    film's pixel aspect ratio.
    ``start`` numbers an excerpt's pictures by their place in the film. ``transfer`` (a
    ``ScanHeader.transfer`` name) is the log or linear coding the pictures are in, stated in each
    DPX header so a grading tool reads them right; ``recode`` (``"log"``, ``"linear"``) codes
    frames that arrive at video levels back into it (``color.video_to_scan``).
    """

    def __init__(self, src: str | Path, dst: str | Path, info, fmt: str, *, start: float | None = None,
                 duration: float | None = None, warn: Callable[[str], None],
                 tracks: Sequence[str | Path] = (), transfer: str | None = None,
                 recode: str | None = None) -> None:
        if fmt not in FRAME_FORMATS:
            raise ValueError(f"picture format must be one of {', '.join(FRAME_FORMATS)}, got {fmt!r}")
        self.src, self.dst, self.info, self.fmt, self._warn = Path(src), Path(dst), info, fmt, warn
        depth = _depth(info.bit_depth)
        self.pix_fmt = "yuv444p" if depth == 8 else f"yuv444p{depth}le"
        self._rgb = _FRAME_PIX_FMT[fmt][depth]
        self.pattern, self._base = frame_names(self.src, fmt)
        t0 = Fraction(start).limit_denominator(1_000_000) if start else None
        self.frames_written = 0
        rotation = int(round(info.rotation or 0)) % 360  # counter-clockwise quarter turns that show it upright
        self._turns = rotation // 90 if rotation % 90 == 0 else 0
        rate = info.fps if info.fps and info.fps > 0 else Fraction(24)
        self._rate, self._tb = rate, 1 / rate
        # a picture's number is its place in the film (its time at the film's rate), so an excerpt
        # and a frame lost to damage keep every other picture under its own number
        self._origin = Fraction(info.start_time or 0).limit_denominator(1_000_000)
        self.first = self._base + (tags.frames_before(t0, self._origin, rate) if t0 else 0)
        self._last: tuple[int, av.VideoFrame] | None = None
        self._size_in = (info.width, info.height)  # the size of the frames arriving now
        # PNG at zlib's default level: 88.7 ms an 854x480 photo, at level 3 32.1 ms for as many bytes
        # (scripts/bench_pieces.py --only pictures)
        self._options = {"compression_algo": "deflate"} if fmt == "tiff" else \
            {"compression_level": "3"} if fmt == "png" else {}
        # pictures are encoded and written by a few threads (FFmpeg's encoders release the GIL; one
        # thread of PNG or deflate TIFF was slower than the network), each with its own encoder
        self._workers = min(8, os.cpu_count() or 1)  # 2*workers frames wait at most (a 4K one: ~50 MB)
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="filmcolor-pictures")
        self._local = threading.local()
        self._pending: deque[Future] = deque()
        # a DPX picture states the film's rate and its own timecode, as a scanner's do (conform reads them)
        self._timecode = info.timecode if fmt == "dpx" else None
        self._transfer = dpx_transfer_code(transfer)  # what log/linear coding the pictures keep
        # frames shown at video levels for the network, coded back to the scans' log or linear
        self._recode = color.video_to_scan_lut16(recode) if recode else None
        # non-square pixels (an anamorphic scan): each format states the aspect (DPX header, TIFF
        # resolution, PNG pHYs); turned a quarter, the picture's aspect turns too
        sar = info.sample_aspect_ratio
        self._sar = (1 / sar if self._turns % 2 else sar) if sar and sar != 1 else None
        self._side, self._carried = None, []
        own = not self.src.is_dir() and (info.audio_streams or info.subtitle_streams)
        if own or tracks:
            side = self._side_path = self.dst / side_name(self.src)
            self._side = av.open(str(side), "w", format="matroska",
                                 options={"avoid_negative_ts": "disabled", "fflags": "+bitexact"})
            t1 = None if duration is None else (t0 or Fraction(0)) + Fraction(duration).limit_denominator(1_000_000)
            if own:
                self._carried.append(carry.Carried(self.src, info, self._side, None, t0, t1, warn))
            self._carried += [carry.Carried(track, info, self._side, None, t0, t1, warn, tracks_only=True)
                              for track in tracks]
            for carried in self._carried:
                carried.write_covers()

    def write(self, frame: av.VideoFrame) -> None:
        """One coloured frame -> the picture numbered by its time (written by a worker thread; an error
        there is raised by a later ``write`` or by ``close``). Numbers the source skips (a damaged
        frame) get the previous picture again, as a player holds it in the film. A frame of another
        size than the film's (a rescanned frame) is written at its own size, with a ``warn``."""
        size = (frame.width, frame.height)
        if size != self._size_in:
            if size != (self.info.width, self.info.height):
                self._warn(f"{self.src}: a picture of {size[0]}x{size[1]} from {float(frame.pts * frame.time_base):.2f}"
                           f" s on, the film {self.info.width}x{self.info.height}; written at its own size")
            self._size_in = size
        number = self.first if self._last is None else self._last[0] + 1
        if frame.pts is not None and frame.time_base is not None:
            number = max(number, self._base + round((frame.pts * frame.time_base - self._origin) * self._rate))
        if self._last is not None:
            for held in range(self._last[0] + 1, number):
                self._submit(self._last[1], held)
        self._submit(frame, number)
        self._last = (number, frame)
        self.frames_written += 1

    def _submit(self, frame: av.VideoFrame, number: int) -> None:
        timecode = tags.shift_timecode(self._timecode, number - self._base, self._rate) if self._timecode else None
        self._pending.append(self._pool.submit(self._picture, frame, number, timecode))
        while len(self._pending) > 2 * self._workers or (self._pending and self._pending[0].done()):
            self._pending.popleft().result()

    def _encoder(self, size: tuple[int, int]):
        """This worker's encoder for pictures of ``size`` (width, height)."""
        encoders = self._local.__dict__.setdefault("encoders", {})
        cc = encoders.get(size)
        if cc is None:
            cc = encoders[size] = av.CodecContext.create(self.fmt, "w")
            cc.width, cc.height = size
            cc.pix_fmt, cc.time_base, cc.options = self._rgb, self._tb, dict(self._options)
            if self._sar:
                cc.sample_aspect_ratio = self._sar
        return cc

    def _picture(self, frame: av.VideoFrame, number: int, timecode: str | None) -> None:
        """In a worker: one frame -> RGB, upright -> encoded -> its file."""
        space = "itu709" if frame.colorspace == 1 else "itu601"
        # this worker's own swscale context: a held frame (a damaged number) is converted by two workers
        # at once, and frame.reformat() shares one context per frame between them, which crashes FFmpeg
        reformatter = self._local.__dict__.setdefault("reformatter", VideoReformatter())
        rgb = reformatter.reformat(frame, format=self._rgb, src_colorspace=space, dst_colorspace=space,
                                   src_color_range=frame.color_range or _RANGE_TV, dst_color_range=_RANGE_PC)
        if self._turns or self._recode is not None:  # turned upright (no rotation flag in a picture file),
            packed = "rgb24" if self._rgb == "rgb24" else "rgb48le"  # coded back to log or linear
            pixels = rgb.reformat(format=packed).to_ndarray()
            if self._turns:
                pixels = np.rot90(pixels, self._turns)
            if self._recode is not None:
                pixels = self._recode[pixels] if packed == "rgb48le" else \
                    (self._recode[pixels.astype(np.uint16) * 257] >> 8).astype(np.uint8)
            rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format=packed).reformat(format=self._rgb)
        rgb.pts, rgb.time_base = number, self._tb
        data = b"".join(bytes(packet) for packet in self._encoder((rgb.width, rgb.height)).encode(rgb))
        if self.fmt == "dpx":
            data = _dpx_with_film_headers(data, self._rate, timecode, self._transfer, number, self.info.interlaced)
        with open(self.dst / (self.pattern % number), "wb") as f:
            f.write(data)

    def close(self) -> None:
        """Wait for the last pictures; write the sound and subtitles file (none when nothing went in)."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._side is not None:
            try:
                for carried in self._carried:
                    carried.finish()
                streams = sum(carried.streams for carried in self._carried)
            finally:
                self._side.close()
                for carried in self._carried:
                    carried.close()
            if not streams:
                self._side_path.unlink(missing_ok=True)

    def _abort(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)  # before the caller deletes the folder
        for c in (self._side, *self._carried):
            if c is not None:
                try:
                    c.close()
                except Exception:  # noqa: BLE001 - already failing; the folder is deleted by the caller
                    pass

    def __enter__(self) -> "SequenceWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._abort()
        else:
            self.close()
