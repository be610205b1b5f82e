"""Media I/O with PyAV, in-process and streamed: probe, decode, YUV planes, encode + stream copy.

- ``probe(path) -> VideoInfo`` reads the container header and decodes the first frame; anything that
  is not a readable film or photo raises ``errors.InputError(path, cause)`` with a short cause. A
  folder is read as the image sequence it holds (film scans: ``sequences``, ``open_input``).
- ``decode(path) -> Iterator[av.VideoFrame]`` yields frames exactly as the decoder gives them
  (multi-threaded, pts and time base kept); memory does not grow with the film's length.
- ``frame_to_planes`` / ``planes_to_frame`` move between frames and numpy code-value planes
  (``Planes``); for an 8-bit 4:2:0 source the Y plane is copied out untouched.
- ``VideoWriter`` encodes frames with their source timestamps; the source's sound, subtitles,
  labels and cover go with them through ``carry.Carried`` (a second demuxer, interleaved by
  timestamp as the video frames arrive).

Damaged input (the policy; the CLI README repeats it):
- Missing, empty, non-media, audio-only, undecodable files and files whose container says they were
  cut short (an MP4/MOV box, the Matroska segment or the AVI RIFF chunk runs past the end of the
  file) fail in ``probe`` before anything is written.
- A damaged stretch in the middle of a film is *concealed with a warning*: FFmpeg's decoder conceals
  broken macroblocks and frames, a packet it rejects outright is skipped (the neighbouring frames
  keep their own timestamps, so sound stays in sync and the previous picture is held), and ``warn``
  is called once per damaged stretch. Decoding *fails cleanly* (``InputError``) when the demuxer
  cannot read on, or after ``MAX_CONSECUTIVE_ERRORS`` packets in a row fail to decode.
"""

from __future__ import annotations

import functools
import heapq
import math
import warnings
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator, Sequence

import av
import numpy as np

from . import carry, tags
from .color import matrix_for
from .cpu import cpu_flags
from .errors import InputError
from .sequences import SEQUENCE_FPS, STILL_EXTENSIONS, ImageSequence, scan_header, sequence_in

MAX_CONSECUTIVE_ERRORS = 25
REORDER_DEPTH = 8  # frames held back to put decode-order timestamps in presentation order
FIELD_PROGRESSIVE, FIELD_TT, FIELD_BB, FIELD_TB, FIELD_BT = 1, 2, 3, 4, 5  # FFmpeg's AVFieldOrder
ENCODERS = {"h264": "libx264", "ffv1": "ffv1", "prores": "prores_ks"}
# dst extension -> FFmpeg muxer name
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm",
              ".avi": "avi", ".ts": "mpegts", ".mts": "mpegts", ".m2ts": "mpegts", ".nut": "nut",
              ".png": "image2", ".jpg": "image2", ".tif": "image2", ".tiff": "image2"}
# AVColorSpace values -> names that color.matrix_for understands
_COLORSPACE_NAMES = {1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 9: "bt2020nc"}
_UNSPECIFIED = 2  # AVCOL_PRI/TRC/SPC_UNSPECIFIED
_RANGE_TV, _RANGE_PC = 1, 2  # AVCOL_RANGE_MPEG, AVCOL_RANGE_JPEG


def has_alpha(pix_fmt: str) -> bool:
    """Whether frames of ``pix_fmt`` carry an alpha channel (ProRes 4444, PNG/TIFF scans with one)."""
    try:
        return any(c.is_alpha for c in av.VideoFormat(pix_fmt).components)
    except (ValueError, av.error.FFmpegError):
        return False


def is_full_range(pix_fmt: str, color_range: int) -> bool:
    """Whether a picture's code values span the full range (0-255 at 8 bits) rather than video's
    16-235: ``yuvj*`` formats and pictures tagged so. Grey ones that state no range are full range
    where their codec implies it, as FFmpeg reads them (a grey TIFF, DPX or FFV1 master: black is 0;
    taken as video range, its shadows and highlights came out crushed): decoding states their range
    from the codec first (:func:`state_grey_range`; a monochrome H.264 is video range unless it says)."""
    return color_range == _RANGE_PC or pix_fmt.startswith("yuvj")


#: codecs whose grey pictures state no range and are full range: still-picture and lossless codecs;
#: grey from the others (monochrome H.264, HEVC) is video range unless they say otherwise, as their specs have it
_FULL_RANGE_GREY_CODECS = frozenset({"tiff", "dpx", "png", "apng", "exr", "ffv1", "rawvideo", "bmp", "sgi",
                                     "mjpeg", "jpeg2000", "pgm", "pgmyuv", "pam", "targa", "qtrle", "webp"})


def state_grey_range(frame: av.VideoFrame, codec: str) -> av.VideoFrame:
    """``frame`` with the range of a grey picture that states none set by what its ``codec`` implies
    (``_FULL_RANGE_GREY_CODECS``: full; others: video); any other frame as it is."""
    if frame.color_range not in (_RANGE_TV, _RANGE_PC) and frame.format.name.startswith(("gray", "ya")):
        frame.color_range = _RANGE_PC if codec in _FULL_RANGE_GREY_CODECS else _RANGE_TV
    return frame


class MediaWarning(UserWarning):
    """A recoverable media problem (concealed damage, a stream transcoded or dropped)."""


def default_warn(message: str) -> None:
    """Where a warning goes when the caller gives no ``warn``: Python's warnings, as a MediaWarning."""
    warnings.warn(message, MediaWarning, stacklevel=3)


# --- probe ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VideoInfo:
    """What the pipeline needs to know about a film (or a still) before decoding it.

    ``width``/``height`` are the coded size, before the rotation metadata is applied; ``rotation``
    is counter-clockwise degrees as PyAV's ``VideoFrame.rotation`` reports it. Colour tags are
    FFmpeg's integer enums (``None`` when unspecified).
    """

    path: Path
    format_name: str
    width: int
    height: int
    pix_fmt: str
    bit_depth: int
    full_range: bool
    fps: Fraction | None
    time_base: Fraction
    frames: int | None
    duration: float | None
    rotation: int
    sample_aspect_ratio: Fraction | None
    color_primaries: int | None
    color_trc: int | None
    colorspace: int | None
    audio_streams: int
    subtitle_streams: int
    is_still: bool
    codec_name: str = ""
    stream_index: int = 0
    start_time: float | None = None
    field_order: int = FIELD_PROGRESSIVE  # FFmpeg's AVFieldOrder: 1 progressive, 2 TT, 3 BB, 4 TB, 5 BT
    timecode: str | None = None  # SMPTE timecode of the first frame, when the file states one

    @property
    def interlaced(self) -> bool:
        """Interlaced video (DV, broadcast and DVD transfers): two fields per frame."""
        return self.field_order in (FIELD_TT, FIELD_BB, FIELD_TB, FIELD_BT)

    @property
    def top_field_first(self) -> bool:
        return self.field_order in (FIELD_TT, FIELD_TB)

    @property
    def matrix(self) -> str:
        """The YUV matrix of the source ("bt601" or "bt709")."""
        return matrix_for(self.height, _COLORSPACE_NAMES.get(self.colorspace or 0))


def quarter_turns(rotation: int | float | None) -> int:
    """Counter-clockwise quarter turns (0-3) that show a stored frame upright, from the stream's
    display rotation (degrees counter-clockwise, as ``VideoInfo.rotation``); 0 for non-right angles."""
    r = int(round(rotation or 0)) % 360
    return r // 90 if r % 90 == 0 else 0


def _field_order(first: av.VideoFrame, cc) -> int:
    """The source's field order, judged on its first frame: progressive unless that frame is flagged
    interlaced; then the decoder's order, or (unknown) bottom first for DV, as the DV standard has
    it, and top first for anything else."""
    if not first.interlaced_frame:
        return FIELD_PROGRESSIVE
    order = int(cc.field_order or 0)
    if order in (FIELD_TT, FIELD_BB, FIELD_TB, FIELD_BT):
        return order
    return FIELD_BB if cc.name == "dvvideo" else FIELD_TT


def open_input(path: str | Path, fps: str | None = None,
               sequence: ImageSequence | None = None) -> av.container.InputContainer:
    """The demuxer for a film or photo file, or for a folder's image sequence (read at ``fps``
    frames a second, a number or a ratio like ``24000/1001``; when None, the rate its first frame's
    DPX header states, else :data:`SEQUENCE_FPS`). ``sequence``: the folder's, when already listed."""
    p = Path(path)
    if p.is_dir():
        seq = sequence or sequence_in(p)
        rate = fps or scan_header(seq.folder / seq.files[0]).fps or SEQUENCE_FPS
        folder = str(seq.folder).replace("%", "%%")
        return av.open(f"{folder}/{seq.pattern}", "r", format="image2",
                       options={"start_number": str(seq.first), "start_number_range": "1",
                                "framerate": str(rate)})
    return av.open(str(p), "r", metadata_errors="ignore")


def is_still_path(path: str | Path) -> bool:
    """True for a still photo, judged by its extension."""
    return Path(path).suffix.lower() in STILL_EXTENSIONS


def _tag(value: int | None) -> int | None:
    return None if value in (None, 0, _UNSPECIFIED) else int(value)


def film_stream(container: av.container.InputContainer):
    """The container's film: its first video stream that is not a cover picture (None if none)."""
    for s in container.streams.video:
        if not s.disposition & av.stream.Disposition.attached_pic:  # cover art is not a film
            return s
    return None


def frame_rate(stream) -> Fraction | None:
    """A video stream's frame rate: its average, unless that exceeds the rate every timestamp fits
    on (FFmpeg's guess), which no real average can; the raw DV demuxer reports its time base's
    60000 as the average of a 25 fps tape."""
    avg, guessed = stream.average_rate, stream.guessed_rate
    if avg and guessed and avg > Fraction(3, 2) * guessed:
        return Fraction(guessed)
    rate = avg or guessed or stream.base_rate
    return Fraction(rate) if rate else None


def _is_bigtiff(path: Path) -> bool:
    """Whether ``path`` is a BigTIFF (``II+\\0``/``MM\\0+``): a photo OpenCV reads, a scan FFmpeg cannot."""
    try:
        with open(path, "rb") as f:
            return f.read(4) in (b"II+\x00", b"MM\x00+")
    except OSError:
        return False


def _sniff_open_error(path: Path) -> str:
    """A human cause for a file FFmpeg could not open, from its first bytes."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
        return "truncated or damaged MP4/MOV file (its index cannot be read)"
    if head[:4] == b"\x1aE\xdf\xa3":
        return "truncated or damaged Matroska file"
    if head[:4] == b"RIFF":
        return "truncated or damaged AVI file"
    text = sum(32 <= b < 127 or b in (9, 10, 13) for b in head)
    if head and text / len(head) > 0.95:
        return "not a media file (it contains text)"
    return "not a media file (unrecognised format)"


def _read_vint(f, *, keep_marker: bool = False) -> tuple[int, bool] | None:
    """An EBML variable-length integer; returns (value, all_ones) or None at end of file."""
    first = f.read(1)
    if not first:
        return None
    b = first[0]
    length = 1
    while length <= 8 and not b & (0x80 >> (length - 1)):
        length += 1
    if length > 8:
        return None
    rest = f.read(length - 1)
    if len(rest) != length - 1:
        return None
    value = b if keep_marker else b & (0xFF >> length)
    for x in rest:
        value = (value << 8) | x
    all_ones = not keep_marker and value == (1 << (7 * length)) - 1
    return value, all_ones


def _truncation(path: Path, format_name: str) -> str | None:
    """Cheap structural check: does the container say it is longer than the file? Returns a cause."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        if "mp4" in format_name or "mov" in format_name:
            pos = 0
            while pos + 8 <= size:
                f.seek(pos)
                hdr = f.read(8)
                box = int.from_bytes(hdr[:4], "big")
                if box == 1:
                    box = int.from_bytes(f.read(8), "big")
                elif box == 0:  # runs to the end of the file
                    return None
                if box < 8:
                    return None  # not a box structure we understand: let FFmpeg judge
                if pos + box > size:
                    return f"truncated file: its '{hdr[4:8].decode('latin-1')}' box runs past the end"
                pos += box
        elif format_name.startswith("matroska"):
            for _ in range(2):  # EBML header, then the Segment
                elem = _read_vint(f, keep_marker=True)
                sz = _read_vint(f)
                if elem is None or sz is None:
                    return None
                if elem[0] == 0x18538067:
                    if not sz[1] and f.tell() + sz[0] > size:
                        return "truncated file: the Matroska segment runs past the end"
                    return None
                f.seek(sz[0], 1)
        elif format_name == "avi":
            hdr = f.read(8)
            if hdr[:4] == b"RIFF" and int.from_bytes(hdr[4:8], "little") + 8 > size:
                return "truncated file: the AVI data runs past the end"
    return None


def _first_frame(container, stream, max_packets: int = 500):
    """Decode until the first video frame (or give up); returns it or None."""
    seen = 0
    for packet in container.demux(stream):
        try:
            for frame in packet.decode():
                return state_grey_range(frame, stream.codec_context.name)
        except av.error.FFmpegError:
            pass
        seen += 1
        if seen >= max_packets:
            break
    return None


def probe(path: str | Path, fps: str | None = None) -> VideoInfo:
    """Read a film's (or a still's) stream layout; raise ``InputError`` if it is not a usable film.
    A folder is read as its image sequence, at ``fps`` (see :func:`open_input`).

    Decodes the first video frame (to prove decodability and read the rotation); cost does not
    depend on the film's length.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(p, "no such file")
    sequence = sequence_in(p) if p.is_dir() else None
    if sequence is not None and _is_bigtiff(first := sequence.folder / sequence.files[0]):
        raise InputError(p, f"its pictures are BigTIFF ({first.name}), which FFmpeg's TIFF reader does not "
                            "read (every frame would be lost); save them as plain TIFF or DPX")
    if sequence is None:
        try:
            size = p.stat().st_size
        except OSError as e:
            raise InputError(p, f"cannot read: {e.strerror or e}") from e
        if size == 0:
            raise InputError(p, "empty file (0 bytes)")
    try:
        container = open_input(p, fps, sequence)
    except PermissionError as e:
        raise InputError(p, "cannot read: permission denied") from e
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise InputError(p, _sniff_open_error(p)) from e
    with container:
        fmt = container.format.name
        stream = film_stream(container)
        n_audio = len(container.streams.audio)
        n_subs = len(container.streams.subtitles)
        if stream is None:
            only = "audio" if n_audio else "subtitles" if n_subs else None  # (--add-track adds such a file)
            raise InputError(p, f"no video stream ({only} only)" if only else "no video stream")
        cut = None if sequence else _truncation(p, fmt)
        if cut:
            raise InputError(p, cut)
        cc = stream.codec_context
        first = _first_frame(container, stream)
        if first is None and sequence is not None:  # a scan format or feature FFmpeg's reader lacks
            raise InputError(p, f"FFmpeg cannot decode its first picture, {sequence.files[0]} (a kind of "
                                f"{Path(sequence.files[0]).suffix.lstrip('.').upper()} it does not read, e.g. "
                                "floating-point samples); save the scans as 16-bit TIFF or DPX")
        if first is None:
            raise InputError(p, "no decodable video frames")
        pix_fmt = first.format.name
        fmt_obj = av.VideoFormat(pix_fmt)
        bit_depth = max(c.bits for c in fmt_obj.components) if fmt_obj.components else 8
        tb = stream.time_base or Fraction(1, 25)
        end = _declared_end(stream)  # the video's own length (Matroska: its DURATION tag), not the longest track's
        if stream.duration:
            duration = float(stream.duration * tb)
        elif end is not None and end > float((stream.start_time or 0) * tb):
            duration = end - float((stream.start_time or 0) * tb)
        elif container.duration:
            duration = container.duration / 1_000_000
        else:
            duration = None
        fps = frame_rate(stream)
        sar = stream.sample_aspect_ratio or cc.sample_aspect_ratio
        still = not sequence and (is_still_path(p) or fmt in ("image2", "png_pipe", "jpeg_pipe", "tiff_pipe",
                                                               "bmp_pipe", "webp_pipe"))
        return VideoInfo(
            path=p, format_name=fmt, width=first.width, height=first.height, pix_fmt=pix_fmt,
            bit_depth=bit_depth, full_range=is_full_range(pix_fmt, first.color_range),
            fps=Fraction(fps) if fps else None, time_base=Fraction(tb), frames=stream.frames or None,
            duration=duration, rotation=int(round(first.rotation or 0)) % 360,
            sample_aspect_ratio=Fraction(sar) if sar and sar.numerator else None,
            color_primaries=_tag(first.color_primaries if first.color_primaries != _UNSPECIFIED else cc.color_primaries),
            color_trc=_tag(first.color_trc if first.color_trc != _UNSPECIFIED else cc.color_trc),
            colorspace=_tag(first.colorspace if first.colorspace != _UNSPECIFIED else cc.colorspace),
            audio_streams=n_audio, subtitle_streams=n_subs, is_still=still,
            codec_name=cc.name, stream_index=stream.index,
            start_time=float(stream.start_time * tb) if stream.start_time is not None else None,
            field_order=_field_order(first, cc),
            timecode=next((labels[key] for labels in (stream.metadata, container.metadata)
                           if (key := tags.timecode_key(labels or {}))), None)
            or (scan_header(p / sequence.files[0]).timecode if sequence else None),
        )


def probe_film(path: str | Path, fps: str | None = None) -> VideoInfo | None:
    """:func:`probe` for a film or a folder of scans; None for a still photo, told by its name or, when
    the name does not say, by what FFmpeg finds in it."""
    if is_still_path(path):
        return None
    info = probe(path, fps)
    return None if info.is_still else info


def seconds_at(info: VideoInfo, timecode: str, *, length: bool = False) -> float:
    """Where SMPTE ``timecode`` falls in the film, in seconds from its first frame (as ``--start``
    counts): from the film's first-frame timecode (``info.timecode``; 00:00:00:00 when it states
    none) at its frame rate.
    ``length=True`` reads it as a duration instead (frames / frame rate). Raises ``InputError``
    when the timecode comes before the film's first frame or does not fit its frame rate."""
    fps = info.fps or Fraction(25)
    rate = tags.nominal_rate(fps)
    try:
        frames = tags.timecode_to_frames(timecode, rate)
        first = 0 if length or not info.timecode else tags.timecode_to_frames(info.timecode, rate)
    except ValueError as e:
        raise InputError(info.path, f"{e} (the film runs at {float(fps):g} fps)") from None
    if frames < first:
        raise InputError(info.path, f"timecode {timecode} comes before the film's first frame ({info.timecode})")
    return float((frames - first) / Fraction(fps))


# --- decode --------------------------------------------------------------------------------------
def _to_fraction(seconds: float | None) -> Fraction | None:
    return None if seconds is None else Fraction(seconds).limit_denominator(1_000_000)


#: How far before ``--start`` a seek is retried (seconds) when the demuxer's seek lands past it
SEEK_BACK = (0, 1, 10, 60)


def seek_before(container, stream, t0: Fraction) -> None:
    """Seek ``container`` so that decoding ``stream`` starts at or before ``t0`` (seconds on the
    stream's clock): at the keyframe before it. Where the demuxer lands past ``t0`` - MPEG program
    and transport streams seek by byte position - the seek is retried from ``SEEK_BACK`` seconds
    earlier, then from the start of the file; no seek at all where ``t0`` is at the first frame
    (a ``--duration`` alone). A demuxer that cannot seek by time (an FLV without an index) reads
    from the start (:func:`rewind`). The frames before ``t0`` are the caller's to skip."""
    tb = Fraction(stream.time_base)
    first = Fraction(stream.start_time or 0) * tb
    for back in SEEK_BACK:
        target = t0 - back
        if target <= first + tb / 2:
            break
        if not seek_or_rewind(container, max(0, math.floor(target / tb)), stream, backward=True, any_frame=False):
            return
        landed = _first_frame_pts(container, stream)
        if landed is None or landed * tb <= t0 + tb / 2:
            container.seek(max(0, math.floor(target / tb)), stream=stream, backward=True, any_frame=False)
            return
    if t0 > first + tb / 2:  # every seek landed past t0, and probing read on
        rewind(container, stream)


def seek_or_rewind(container, offset: int, stream=None, **options) -> bool:
    """``container.seek(offset, stream=stream, **options)``; where the demuxer cannot seek so (an FLV
    without an index), which leaves it anywhere, :func:`rewind` instead (``stream``, or the file's
    first, for a rewind by time). True when it sought; the frames or packets before the target are
    the caller's to skip either way."""
    try:
        container.seek(offset, stream=stream, **options)
        return True
    except av.error.FFmpegError:
        rewind(container, stream if stream is not None else (container.streams.video or container.streams)[0])
        return False


def rewind(container, stream) -> None:
    """Back to the start of the file: its first byte, where the demuxer that seeks by bytes or not
    at all is (MPEG program and transport streams, FLV, DV), else (MP4, MOV: by time only) the
    first frame of ``stream``. (Matroska, whose first cluster a byte seek to 0 skips, seeks by
    time exactly and never needs it.)"""
    try:
        container.seek(0, unsupported_byte_offset=True)
    except av.error.FFmpegError:
        container.seek(stream.start_time or 0, stream=stream, backward=True, any_frame=False)


def _first_frame_pts(container, stream) -> int | None:
    """The pts of the first frame decoded from where ``container`` stands (None: none, or no pts)."""
    try:
        for packet in container.demux(stream):
            for frame in packet.decode():
                return frame.pts
    except av.error.FFmpegError:
        return None
    return None


def decode(path: str | Path, start: float | None = None, duration: float | None = None, *,
           warn: Callable[[str], None] | None = None, fps: str | None = None) -> Iterator[av.VideoFrame]:
    """Yield the video frames of ``path`` as decoded (pts and time base kept), streamed.

    ``start``/``duration`` (seconds, on the stream's own timeline) keep frames with
    ``start <= t < start + duration``: the demuxer seeks to the keyframe before ``start`` and the
    frames before it are decoded and skipped. Decoding is multi-threaded (``thread_type="AUTO"``).

    Damage (see the module docstring): a packet the decoder rejects is skipped with a ``warn``
    (default: ``warnings.warn(..., MediaWarning)``), once per damaged stretch; frames the decoder
    concealed are yielded as they are. ``InputError`` is raised when the demuxer cannot read on, or
    after ``MAX_CONSECUTIVE_ERRORS`` rejected packets in a row.
    """
    warn = warn or default_warn
    p = Path(path)
    t0, dur = _to_fraction(start), _to_fraction(duration)
    t1 = None if dur is None else (t0 or Fraction(0)) + dur
    try:
        container = open_input(p, fps)  # a folder: its image sequence at ``fps``
    except (av.error.FFmpegError, OSError) as e:
        raise InputError(p, f"cannot open: {e}") from e
    with container:
        stream = film_stream(container)
        if stream is None:
            raise InputError(p, "no video stream")
        stream.thread_type = "AUTO"
        tb = Fraction(stream.time_base)
        if t0:
            seek_before(container, stream, t0)
        eps = tb / 2  # compare on the stream's tick grid
        rate = frame_rate(stream)
        step = max(1, round(1 / (Fraction(rate) * tb))) if rate else None
        max_gap = max(Fraction(1, 4), 6 * step * tb) if step else None  # longer gaps are reported
        last_pts = None
        errors = 0
        damage: list | None = None  # [from (s), packets skipped, frames concealed]

        def report(until: str) -> None:
            warn(f"{p}: damaged video data between {damage[0]:.2f} s and {until} ({damage[1]} packet(s) "
                 f"skipped, {damage[2]} frame(s) patched by the decoder); concealed, the previous "
                 "picture is held where frames are missing")

        def decoded() -> Iterator[av.VideoFrame]:
            """Frames as the decoder gives them; rejected packets counted as damage."""
            nonlocal errors, damage
            packets = container.demux(stream)
            while True:
                try:
                    packet = next(packets)
                except StopIteration:
                    return
                except av.error.FFmpegError as e:
                    at = f" after {float(last_pts * tb):.2f} s" if last_pts is not None else ""
                    raise InputError(p, f"unreadable data{at} (file damaged or truncated): {e}") from e
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as e:
                    errors += 1
                    if damage is None:
                        damage = [float(last_pts * tb) if last_pts is not None else 0.0, 0, 0]
                    damage[1] += 1
                    if errors >= MAX_CONSECUTIVE_ERRORS:
                        raise InputError(p, f"{errors} video packets in a row cannot be decoded "
                                            "(file badly damaged)") from e
                    continue
                if frames:
                    errors = 0
                yield from frames

        frames = decoded()
        if stream.codec_context.has_b_frames and _stamped_in_decode_order(p, stream.index, t0):
            frames = _in_presentation_order(frames, REORDER_DEPTH)
        for frame in frames:
            if frame.pts is None:  # no timestamp from the container: continue the grid
                frame.pts = (last_pts + (step or 1)) if last_pts is not None else 0
                frame.time_base = tb
            if last_pts is not None and max_gap and (frame.pts - last_pts) * tb > max_gap:
                warn(f"{p}: no video frames between {float(last_pts * tb):.2f} s and "
                     f"{float(frame.pts * tb):.2f} s (damaged or missing data); the previous "
                     "picture is held")
            if frame.is_corrupt:
                if damage is None:
                    damage = [float(last_pts * tb) if last_pts is not None else 0.0, 0, 0]
                damage[2] += 1
            elif damage is not None:
                report(f"{float(frame.pts * tb):.2f} s")
                damage = None
            last_pts = frame.pts
            t = frame.pts * tb
            if t0 is not None and t < t0 - eps:
                continue
            if t1 is not None and t >= t1 - eps:
                return
            yield state_grey_range(frame, stream.codec_context.name)
        if damage is not None:
            report("the end")
        end = _declared_end(stream)
        if end is not None and (t1 is None or t1 > end):
            seen = float(last_pts * tb) if last_pts is not None else 0.0
            first = float(stream.start_time * tb) if stream.start_time else 0.0
            if end - seen > max(1.0, 0.02 * (end - first)):
                raise InputError(p, f"video stops at {seen:.2f} s but the stream lasts until {end:.2f} s "
                                    "(damaged or truncated file)")


SAMPLE_DECODE_LIMIT = 300  # frames decoded towards one sample at most (a pathological GOP)
SAMPLE_SHARE = 0.1  # sample_frames decodes at most this share of the film's frames,
SAMPLE_PIXELS = 3e8  # or this many pixels' worth (732 frames of 480p, 145 of 1080p) where that allows more


def sample_frames(path: str | Path, n: int, start: float | None = None, duration: float | None = None, *,
                  fps: str | None = None) -> list[av.VideoFrame]:
    """:func:`iter_sample_frames` as a list."""
    return list(iter_sample_frames(path, n, start, duration, fps=fps))


def iter_sample_frames(path: str | Path, n: int, start: float | None = None, duration: float | None = None, *,
                       fps: str | None = None) -> Iterator[av.VideoFrame]:
    """Up to ``n`` distinct frames spread over the film, or over its ``start``/``duration`` stretch
    (seconds on the stream's own timeline, as :func:`decode`), within a decoding budget of
    ``SAMPLE_SHARE`` of its frames or ``SAMPLE_PIXELS`` worth, whichever is more. A film within the
    budget is decoded through and ``n`` evenly spaced frames taken; a longer one is sampled near ``n``
    evenly spaced times, each by a seek to the keyframe before it and decoding on towards it with a
    ``n``-th of the budget: a feature film is sampled at its times, a short one with long GOPs mostly
    at its keyframes (fewer samples where two seeks land on one keyframe). A film that states no
    length gives every 10th of its first frames. For looking at a film (``bars``, colour), not for
    output: damaged data ends a sample, never the call, and an unreadable file gives no frames. Frames
    are yielded as they are found, so a caller that converts each holds one raw frame at a time (a
    4K 16-bit scan is 76 MB)."""
    p = Path(path)
    count = 0
    try:
        container = open_input(p, fps)
    except (av.error.FFmpegError, OSError, InputError):
        return
    with container:
        stream = film_stream(container)
        if stream is None or n < 1:
            return
        stream.thread_type = "AUTO"
        tb = Fraction(stream.time_base)
        t0 = _to_fraction(start) if start else Fraction(stream.start_time or 0) * tb
        end = _declared_end(stream)
        t1 = None if end is None else _to_fraction(end)
        if duration is not None:
            t1 = t0 + _to_fraction(duration) if t1 is None else min(t1, t0 + _to_fraction(duration))
        rate = float(frame_rate(stream) or 25)
        cc = stream.codec_context
        film_frames = float(t1 - t0) * rate if t1 is not None and t1 > t0 else None
        budget = max(SAMPLE_SHARE * (film_frames or 0), SAMPLE_PIXELS / max(1, (cc.width or 1) * (cc.height or 1)))
        try:
            if film_frames is None or film_frames <= budget:  # decode through: every k-th frame
                step = max(1, round((film_frames or 10 * n) / n))
                if start:
                    seek_before(container, stream, t0)
                i = 0
                for frame in container.decode(stream):
                    if frame.pts is not None and frame.pts * tb < t0 - tb / 2:
                        continue
                    if t1 is not None and frame.pts is not None and frame.pts * tb >= t1 - tb / 2:
                        break
                    if i % step == step // 2:
                        yield state_grey_range(frame, stream.codec_context.name)
                        count += 1
                    i += 1
                    if count >= n or i >= budget + step:
                        break
                return
            per_sample = max(1, min(SAMPLE_DECODE_LIMIT, int(budget / n)))
            taken_pts = set()
            for k in range(n):
                t = t0 + (t1 - t0) * Fraction(2 * k + 1, 2 * n)
                container.seek(max(0, math.floor(t / tb)), stream=stream, backward=True, any_frame=False)
                taken = None
                try:
                    for i, frame in enumerate(container.decode(stream)):
                        taken = frame
                        if frame.pts is None or frame.pts * tb >= t - tb / 2 or i + 1 >= per_sample:
                            break
                except (av.error.FFmpegError, EOFError):
                    pass
                if taken is not None and taken.pts not in taken_pts:  # two seeks to one keyframe: one sample
                    taken_pts.add(taken.pts)
                    yield state_grey_range(taken, stream.codec_context.name)
        except (av.error.FFmpegError, EOFError):
            pass


def sample_planes(path: str | Path, n: int, start: float | None = None, duration: float | None = None, *,
                  fps: str | None = None, convert: Callable | None = None) -> list["Planes"]:
    """8-bit 4:2:0 :class:`Planes` of :func:`sample_frames`' frames, each after ``convert`` (a frame ->
    frame map, e.g. log scans shown at video levels): what the film looks like, for ``bars`` and
    for telling a colour film from a black-and-white one. A frame that cannot be converted is left out."""
    planes = []
    for frame in iter_sample_frames(path, n, start, duration, fps=fps):
        try:
            planes.append(frame_to_planes(convert(frame) if convert else frame, "yuv420p"))
        except (ValueError, av.error.FFmpegError):
            continue
    return planes


def _stamped_in_decode_order(path: Path, index: int, start: Fraction | None, n: int = 48) -> bool:
    """Whether the timestamps of a reordering video stream are only decode-order numbers: its first
    ``n`` packets (from ``start``) never go back in time, as B-frames' must. FFmpeg numbers an AVI's
    packets so (AVI stores no timestamps), and a piece of such a film remuxed elsewhere keeps them."""
    stamps = []
    with av.open(str(path), "r", metadata_errors="ignore") as c:
        stream = c.streams[index]
        if start:  # (where it cannot seek, the first packets of the film tell as well)
            seek_or_rewind(c, max(0, math.floor(start / Fraction(stream.time_base))), stream, backward=True)
        try:
            for packet in c.demux(stream):
                if packet.size and packet.pts is not None:
                    stamps.append(packet.pts)
                if len(stamps) >= n:
                    break
        except av.error.FFmpegError:
            pass
    return len(stamps) > 2 and all(a < b for a, b in zip(stamps, stamps[1:]))


def _in_presentation_order(frames: Iterator[av.VideoFrame], depth: int) -> Iterator[av.VideoFrame]:
    """Re-stamp frames whose timestamps came in decode order.

    AVI stores frames in decode order and no timestamps; FFmpeg numbers the packets, so a decoder
    that reorders (B-frames) gives out frames in presentation order still carrying their packets'
    numbers (1, 4, 3, 5, 2, ...), and no muxer takes those (a piece of such a film remuxed into
    Matroska keeps the numbers). Each frame leaves ``depth`` frames late with the smallest
    timestamp not yet given out: the same timestamps, in order, whenever no frame is displayed
    more than ``depth`` places from where it was decoded (H.264 reorders at most 16, in practice
    2-4). In-order timestamps come out unchanged. Frames without one keep none.
    """
    pending: deque[av.VideoFrame] = deque()
    stamps: list[int] = []

    def release() -> av.VideoFrame:
        frame = pending.popleft()
        if frame.pts is not None:
            frame.pts = heapq.heappop(stamps)
        return frame

    for frame in frames:
        pending.append(frame)
        if frame.pts is not None:
            heapq.heappush(stamps, frame.pts)
        if len(pending) > depth:
            yield release()
    while pending:
        yield release()


def _declared_end(stream) -> float | None:
    """When the video stream says it ends, in seconds on its own timeline, if the file states it:
    its start plus its duration, or Matroska's ``DURATION`` tag, which FFmpeg writes as the end of
    the track's last frame (not its length: a piece cut from 25 s on says 50 s, not 25 s)."""
    if stream.duration:
        first = stream.start_time or 0
        return float((first + stream.duration) * stream.time_base)
    tag = (stream.metadata or {}).get("DURATION") or (stream.metadata or {}).get("duration")
    if tag:  # Matroska: "HH:MM:SS.nnnnnnnnn"
        try:
            h, m, sec = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + float(sec)
        except ValueError:
            return None
    return None


# --- planes --------------------------------------------------------------------------------------
_SUBSAMPLING = {"420": (2, 2), "422": (2, 1), "444": (1, 1)}


def _yuv_layout(pix_fmt: str) -> tuple[str, int, bool] | None:
    """'yuv420p10le' -> ('420', 10, False); 'yuvj422p' -> ('422', 8, True); None if not planar YUV."""
    name = pix_fmt
    full = name.startswith("yuvj")
    if full:
        name = "yuv" + name[4:]
    if not name.startswith("yuv") or len(name) < 7 or name[6] != "p" or name[3:6] not in _SUBSAMPLING:
        return None
    rest = name[7:]
    if rest == "":
        return name[3:6], 8, full
    if rest.endswith("le") and rest[:-2].isdigit():
        return name[3:6], int(rest[:-2]), full
    return None


def _pix_fmt_name(sub: str, bit_depth: int) -> str:
    return f"yuv{sub}p" + ("" if bit_depth == 8 else f"{bit_depth}le")


@dataclass
class Planes:
    """Numpy code-value planes of a planar YUV frame.

    ``y`` is ``(H, W)``; ``u``/``v`` are ``(ceil(H/sy), ceil(W/sx))`` for the subsampling of the
    pixel format; dtype uint8 for 8 bit, uint16 (native order, values < 2**bit_depth) above.
    ``matrix`` is "bt601" or "bt709" (``color.matrix_for``).
    """

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    bit_depth: int
    full_range: bool
    matrix: str

    @property
    def subsampling(self) -> str:
        h, w = self.y.shape
        ch, cw = self.u.shape
        if (ch, cw) == (h, w):
            return "444"
        if ch == h:
            return "422"
        return "420"

    @property
    def pix_fmt(self) -> str:
        return _pix_fmt_name(self.subsampling, self.bit_depth)


def _plane_view(frame: av.VideoFrame, i: int, dtype) -> np.ndarray:
    plane = frame.planes[i]
    item = np.dtype(dtype).itemsize
    arr = np.frombuffer(plane, dtype=dtype)
    return arr.reshape(-1, plane.line_size // item)[: plane.height, : plane.width]


def frame_to_planes(frame: av.VideoFrame, pix_fmt: str) -> Planes:
    """A frame -> its Y, U, V code-value planes in the layout of ``pix_fmt`` (planar YUV).

    No conversion when the frame already has that layout (``yuvj*`` counts as its ``yuv*`` twin,
    marked full range): the planes are copied out bit for bit. Otherwise the frame is converted
    with ``frame.reformat`` keeping its range (RGB sources become limited range, BT.601/709 by
    size); a YUV source narrower than ``pix_fmt`` is converted at its own depth and its code values
    widened exactly (``_widen_codes``). Handles line padding and odd sizes (chroma ``ceil(w/2)``).
    """
    want = _yuv_layout(pix_fmt)
    if want is None:
        raise ValueError(f"pix_fmt must be planar YUV (yuv420p, yuv422p10le, ...), got {pix_fmt!r}")
    sub, bit_depth, want_full = want
    src = frame.format.name
    have = _yuv_layout(src)
    full = is_full_range(src, frame.color_range)
    matrix = matrix_for(frame.height, _COLORSPACE_NAMES.get(frame.colorspace))
    # a narrower YUV source is converted at its own depth and widened exactly afterwards: swscale's
    # direct conversion to yuv422p10le gave different pictures run to run (3 in 30 of one frame)
    widen_from = have[1] if have is not None and have[1] < bit_depth else None
    if have is None or have[:2] != (sub, widen_from or bit_depth):
        is_rgb = have is None and not src.startswith("gray")
        if is_rgb:
            full = want_full
        frame = frame.reformat(
            format=_pix_fmt_name(sub, widen_from or bit_depth),
            src_colorspace="itu709" if matrix == "bt709" else "itu601",
            dst_colorspace="itu709" if matrix == "bt709" else "itu601",
            src_color_range=_RANGE_PC if (full or is_rgb) else _RANGE_TV,
            dst_color_range=_RANGE_PC if full else _RANGE_TV,
        )
    if widen_from:
        dtype = np.uint8 if widen_from == 8 else np.dtype("<u2")
        y, u, v = (_widen_codes(_plane_view(frame, i, dtype), widen_from, bit_depth, bool(full)) for i in range(3))
        return Planes(y=y, u=u, v=v, bit_depth=bit_depth, full_range=bool(full), matrix=matrix)
    dtype = np.uint8 if bit_depth == 8 else np.dtype("<u2")
    y, u, v = (np.array(_plane_view(frame, i, dtype), dtype=dtype if bit_depth == 8 else np.uint16)
               for i in range(3))
    return Planes(y=y, u=u, v=v, bit_depth=bit_depth, full_range=bool(full), matrix=matrix)


_AVCOL_SPACE = {"bt709": 1, "bt601": 6}


def _widen_codes(codes: np.ndarray, bits: int, depth: int, full_range: bool) -> np.ndarray:
    """Code values at ``bits`` -> the same at ``depth`` > ``bits`` (uint16), exactly: shifted left
    (limited range: 16 -> 64, 235 -> 940), full range with the top bits repeated below (255 -> 1023)."""
    src = codes.astype(np.uint16)
    wide = src << (depth - bits)
    if full_range:
        wide |= src >> (2 * bits - depth)
    return wide


def _widen(frame: av.VideoFrame, bits: int, depth: int, full_range: bool) -> av.VideoFrame:
    """A planar YUV frame at ``bits`` -> the same layout at ``depth`` (``_widen_codes``)."""
    out = av.VideoFrame(frame.width, frame.height, _pix_fmt_name(_yuv_layout(frame.format.name)[0], depth))
    src_type = np.uint8 if bits == 8 else np.dtype("<u2")
    for i in range(3):
        _plane_view(out, i, np.dtype("<u2"))[...] = _widen_codes(_plane_view(frame, i, src_type), bits, depth,
                                                                 full_range)
    return out


def planes_to_frame(planes: Planes, pix_fmt: str, like: av.VideoFrame) -> av.VideoFrame:
    """Planes -> a new ``pix_fmt`` frame with ``like``'s pts, time base and colour tags.

    Range and matrix tags come from ``planes``; primaries and transfer from ``like``. When the
    planes' own layout differs from ``pix_fmt`` (say 4:2:0 planes for a 4:4:4 writer) the frame is
    converted with ``reformat``, at the planes' depth when ``pix_fmt`` is deeper, whose code values
    are then widened exactly (``_widen``).
    """
    h, w = planes.y.shape
    natural = planes.pix_fmt
    frame = av.VideoFrame(w, h, natural)
    dtype = np.uint8 if planes.bit_depth == 8 else np.dtype("<u2")
    for i, arr in enumerate((planes.y, planes.u, planes.v)):
        dst = _plane_view(frame, i, dtype)
        if arr.shape != dst.shape:
            raise ValueError(f"plane {i} has shape {arr.shape}, {natural} at {w}x{h} needs {dst.shape}")
        dst[...] = arr
    rng = _RANGE_PC if planes.full_range else _RANGE_TV
    like_space = like.colorspace
    if _COLORSPACE_NAMES.get(like_space) and matrix_for(h, _COLORSPACE_NAMES[like_space]) == planes.matrix:
        space = like_space
    else:
        space = _AVCOL_SPACE[planes.matrix]
    frame.color_range, frame.colorspace = rng, space
    want = _yuv_layout(pix_fmt)
    if want is None:
        raise ValueError(f"pix_fmt must be planar YUV, got {pix_fmt!r}")
    sub, depth = want[:2]
    if sub != _yuv_layout(natural)[0] or depth < planes.bit_depth:
        # the chroma layout through swscale, at the planes' own depth when widening: its direct
        # conversion to yuv422p10le gave different pictures run to run (3 in 30 of one frame)
        cs = "itu709" if planes.matrix == "bt709" else "itu601"
        frame = frame.reformat(format=_pix_fmt_name(sub, min(depth, planes.bit_depth)), src_colorspace=cs,
                               dst_colorspace=cs, src_color_range=rng, dst_color_range=rng)
        frame.color_range, frame.colorspace = rng, space
    if depth > planes.bit_depth:
        frame = _widen(frame, planes.bit_depth, depth, planes.full_range)
        frame.color_range, frame.colorspace = rng, space
    frame.color_primaries, frame.color_trc = like.color_primaries, like.color_trc
    frame.pts, frame.time_base = like.pts, like.time_base
    return frame


# --- encode --------------------------------------------------------------------------------------
def x264_params(cpuinfo: str | None = None) -> str:
    """Extra x264 parameters for this CPU: ``asm=AVX2`` where the CPU has AVX-512, else none.

    With its AVX-512 code, the x264 in PyAV's wheels did not give the same output twice for the
    same frames (2-13 distinct files in 10-25 encodes of an 854x480 clip, a code value or two apart);
    capped at AVX2 every encode was identical, and no slower (``scripts/bench_pieces.py --only
    encode-repeat``). Only where AVX2 is there too, since x264 does not check flags it is given."""
    flags = cpu_flags(cpuinfo)
    return "asm=AVX2" if "avx512bw" in flags and "avx2" in flags else ""


def writer_pix_fmt(codec: str, info: VideoInfo) -> str:
    """The pixel format a ``VideoWriter`` encodes in for this source and codec."""
    layout = _yuv_layout(info.pix_fmt)
    deep = info.bit_depth > 8
    even_w, even_h = info.width % 2 == 0, info.height % 2 == 0
    if codec == "prores":
        return "yuv422p10le" if even_w else "yuv444p10le"
    if codec == "ffv1":
        sub = layout[0] if layout else "444"
        depth = 8 if not deep else min(16, max(10, info.bit_depth))
        if depth not in (8, 10, 12, 16):
            depth = 16
        return _pix_fmt_name(sub, depth)
    if codec == "h264":
        sub = "420" if (even_w and even_h) else "444"
        return _pix_fmt_name(sub, 10 if deep else 8)
    raise ValueError(f"unknown codec {codec!r}; choose from {', '.join(ENCODERS)}")


def container_for(dst: str | Path, container_format: str | None = None) -> str | None:
    """The muxer name for ``dst``: ``container_format`` if given, else by extension (None: FFmpeg guesses)."""
    return container_format or CONTAINERS.get(Path(dst).suffix.lower())


def film_output_problem(dst: str | Path, codec: str) -> str | None:
    """Why ``dst`` cannot hold a film encoded with ``codec`` (None when it can), found before any
    frame is coloured rather than when the muxer writes its header."""
    suffix = Path(dst).suffix.lower()
    fmt = container_for(dst)
    if fmt is None or fmt == "image2":
        return (f"{suffix or 'a name without an extension'} is not a film container filmcolor writes "
                "(.mkv, .mp4, .mov, .avi, .ts)")
    if _container_takes(fmt, codec):
        return None
    fits = [ext for ext in (".mkv", ".mp4", ".mov", ".avi") if _container_takes(CONTAINERS[ext], codec)]
    return f"a {suffix} file cannot hold {codec} video; use {' or '.join(fits)}"


@functools.lru_cache(maxsize=None)
def _container_takes(fmt: str, codec: str) -> bool:
    """Whether muxer ``fmt`` writes a file with a ``codec`` video stream (see ``carry.muxer_takes``)."""
    def add(scratch):
        vs = scratch.add_stream(ENCODERS[codec], rate=25)
        vs.width, vs.height, vs.pix_fmt = 64, 64, "yuv422p10le" if codec == "prores" else "yuv420p"
        return vs

    return carry.muxer_takes(fmt, add)


class VideoWriter:
    """Encode frames to ``dst`` with their source timestamps; copy the source's other streams.

    ``pix_fmt`` is the format frames given to ``write`` must have (see ``writer_pix_fmt``).
    Frames keep their pts/time base (VFR survives); size, frame rate, time base, sample aspect
    ratio, rotation and colour tags follow ``info``. Everything else the film keeps - audio and
    subtitle streams copied packet for packet from a second demuxer on ``src`` and interleaved with
    the video by timestamp, its labels and cover - is :class:`filmcolor.carry.Carried`'s work (a
    stream the container cannot hold is transcoded, converted or dropped there, with a ``warn``).
    ``tracks``: sound or subtitle files whose streams are added after the film's own (a scanned
    optical track beside an image sequence, an .srt), timed from the film's start.
    With ``start``/``duration`` only packets in
    ``[start, start + duration)`` are copied and every timestamp is shifted by ``-start``
    (frames passed to ``write`` come from ``decode(src, start, duration)`` with source timestamps).

    ``dst`` is written directly; on an exception inside ``with`` it is closed and deleted.
    Matroska stores milliseconds, so a source whose timestamps are not whole milliseconds is rounded
    to the nearest millisecond there (MP4/MOV keep the source time base exactly).
    """

    def __init__(self, src: str | Path, dst: str | Path, info: VideoInfo, *, codec: str = "h264",
                 crf: int = 18, preset: str = "veryfast", start: float | None = None,
                 duration: float | None = None, container_format: str | None = None,
                 warn: Callable[[str], None] | None = None, tracks: Sequence[str | Path] = ()) -> None:
        self.src, self.dst, self.info = Path(src), Path(dst), info
        self.codec = codec
        self._warn = warn or default_warn
        self.pix_fmt = writer_pix_fmt(codec, info)
        self._start = _to_fraction(start)  # None: no lower bound (keeps pre-roll packets at t < 0)
        self._t0 = self._start or Fraction(0)
        dur = _to_fraction(duration)
        self._t1 = None if dur is None else self._t0 + dur
        self._closed = False
        self._carried: list[carry.Carried] = []
        fmt = container_for(dst, container_format)
        # Matroska stores pts; FFmpeg's default "shift so dts >= 0" would move every stream by the
        # encoder's B-frame delay (or Opus pre-skip), so keep the source timestamps as they are.
        options = {"avoid_negative_ts": "disabled"} if fmt in ("matroska", "webm") else {}
        # The same frames give the same file: no random Matroska segment UID, no muxing date.
        options["fflags"] = "+bitexact"
        self._out = av.open(str(self.dst), "w", format=fmt, options=options)
        try:
            self._setup_video(crf, preset)
            self._carried.append(carry.Carried(self.src, info, self._out, self._vs, self._start, self._t1, self._warn))
            for track in tracks:  # added sound/subtitle files, after the film's own streams
                self._carried.append(carry.Carried(track, info, self._out, None, self._start, self._t1, self._warn,
                                                   tracks_only=True))
            for carried in self._carried:
                carried.write_covers()
        except BaseException:
            self._abort()
            raise
        self.frames_written = 0
        self._size = (info.width, info.height)
        self._last_pts: int | None = None
        self._last_t: Fraction | None = None
        self._went_back: list = []  # frames left out as going back in time: [first one's time (s), count]
        self._crowded = 0  # frames left out as falling on the tick before them (a varying rate into AVI's fixed one)

    # setup
    def _setup_video(self, crf: int, preset: str) -> None:
        info, out = self.info, self._out
        fmt = out.format.name
        rate = info.fps if info.fps and info.fps > 0 else Fraction(25)
        vs = out.add_stream(ENCODERS[self.codec], rate=rate)
        vs.width, vs.height, vs.pix_fmt = info.width, info.height, self.pix_fmt
        cc = vs.codec_context
        if fmt == "avi":  # AVI has no timestamps, only a frame rate
            cc.time_base = 1 / rate
        else:
            cc.time_base = info.time_base
            vs.time_base = info.time_base
        if info.sample_aspect_ratio:
            cc.sample_aspect_ratio = info.sample_aspect_ratio
        cc.color_range = _RANGE_PC if info.full_range else _RANGE_TV
        for attr in ("color_primaries", "color_trc", "colorspace"):
            value = getattr(info, attr)
            if value is not None:
                setattr(cc, attr, value)
        if info.rotation:
            vs.set_display_rotation(info.rotation)
        if info.interlaced:  # the container's field flag (Matroska FieldOrder, MOV 'fiel')
            cc.field_order = info.field_order
        if self.codec == "h264":
            vs.options = {"crf": str(crf), "preset": preset}
            # interlaced: field-coded (MBAFF) in the source's order, set at open since the frames
            # PyAV builds carry no field flags
            fields = ("tff=1" if info.top_field_first else "bff=1") if info.interlaced else ""
            params = [p for p in (x264_params(), fields) if p]
            if params:
                vs.options["x264-params"] = ":".join(params)
            if fmt == "avi":  # AVI stores frames in decoding order without pts: no reordering
                vs.options["bf"] = "0"
        elif self.codec == "ffv1":
            vs.options = {"level": "3", "slicecrc": "1", "g": "1"}
        elif self.codec == "prores":
            vs.options = {"profile": "3"}  # HQ
        cc.thread_type = "AUTO"
        self._vs = vs
        self._v_tb = cc.time_base

    # public
    def write(self, frame: av.VideoFrame) -> None:
        """Encode one frame (in ``pix_fmt``) at its own pts, shifted by ``-start`` when one was given.
        A frame whose time is not after the last one's (a recording spliced with its pieces
        overlapping: no encoder or muxer takes it) is left out, counted in ``frames_written`` only
        when written, and the count is told at ``close``."""
        if frame.format.name != self.pix_fmt and _yuv_layout(frame.format.name) != _yuv_layout(self.pix_fmt):
            raise ValueError(f"frame is {frame.format.name}, this writer encodes {self.pix_fmt}")
        if frame.pts is None or frame.time_base is None:
            raise ValueError("frame has no pts/time_base; give it the source frame's (planes_to_frame(like=...))")
        t = frame.pts * frame.time_base - self._t0
        size = (frame.width, frame.height)
        if size != self._size:  # a broadcast capture switching resolution: the encoder scales it
            w, h = self.info.width, self.info.height
            if size != (w, h):
                self._warn(f"{self.src}: the picture is {size[0]}x{size[1]} from {float(t):.2f} s on, the film "
                           f"{w}x{h}; those frames are scaled to {w}x{h}")
            self._size = size
        for carried in self._carried:
            carried.pump(t)
        pts = round(t / self._v_tb)
        if self._last_pts is not None and pts <= self._last_pts:  # no encoder or muxer takes it
            if t > self._last_t:  # later, but on the same tick of a constant-rate container (AVI)
                self._crowded += 1
            else:
                self._went_back = self._went_back or [float(t), 0]
                self._went_back[1] += 1
            return
        self._last_pts, self._last_t = pts, t
        old_pts, old_tb = frame.pts, frame.time_base
        frame.pts, frame.time_base = pts, self._v_tb
        try:
            packets = self._vs.encode(frame)
        finally:
            frame.pts, frame.time_base = old_pts, old_tb
        self._out.mux(packets)
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder, copy the remaining side packets, finish the file."""
        if self._closed:
            return
        self._closed = True
        if self._went_back:
            self._warn(f"{self.src}: {self._went_back[1]} frame(s) going back in time from {self._went_back[0]:.2f} s "
                       "(a splice in the recording, its pieces overlapping) left out")
        if self._crowded:
            rate = 1 / self._v_tb
            self._warn(f"{self.src}: {self._crowded} frame(s) left out: its frame rate varies, and at "
                       f"{self._out.format.name}'s constant {float(rate):.3g} fps they fall on the tick of the frame "
                       "before; a .mkv keeps every frame")
        try:
            self._out.mux(self._vs.encode(None))
            for carried in self._carried:
                carried.finish()
        finally:
            try:
                self._out.close()
            finally:
                for carried in self._carried:
                    carried.close()

    def _abort(self) -> None:
        self._closed = True
        for c in (self._out, *self._carried):
            if c is not None:
                try:
                    c.close()
                except Exception:  # noqa: BLE001 - already failing; the file is deleted below
                    pass
        self.dst.unlink(missing_ok=True)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._abort()
            return
        try:
            self.close()
        except BaseException:
            self.dst.unlink(missing_ok=True)
            raise
