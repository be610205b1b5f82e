"""What a re-encoded film keeps of its source's labels: tags, timecode and chapters.

Pure functions on plain values; ``media.VideoWriter`` applies them to the output container.

- :func:`carried_tags`: a container's or stream's metadata minus the tags a muxer or an encoder
  writes about *its own* file (``encoder``, MP4 brands, Matroska's ``DURATION`` and mkvmerge's
  statistics such as ``BPS``, MXF's writing application and UMIDs), which would be wrong once the
  picture is re-encoded or cut. Title,
  language, comment, date, handler name, timecode and any user tag pass unchanged.
- :func:`shift_timecode`: SMPTE timecode ``HH:MM:SS:FF`` (``;`` or ``.`` before the frames means
  drop-frame) moved on by a number of frames, so an excerpt from ``--start`` carries the timecode of
  its own first frame.
- :func:`carried_chapters`: chapters moved onto the output's timeline when only the stretch
  ``[t0, t1)`` of the film is written; chapters outside it are left out, the ones across an edge cut.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from pathlib import Path
from typing import Any, Mapping

# Tags that describe the file that holds them rather than the film (lower-cased).
_OWN_FILE_TAGS = frozenset({"encoder", "major_brand", "minor_version", "compatible_brands", "duration",
                            # MXF: the writing application and the identifiers of the old file and
                            # material (a coloured copy is new material and needs UMIDs of its own)
                            "operational_pattern_ul", "uid", "generation_uid", "company_name", "product_name",
                            "product_version", "product_version_num", "product_uid", "toolkit_version_num",
                            "application_platform", "material_package_umid", "file_package_umid",
                            "modification_date"})
# mkvmerge's statistics tags (BPS, NUMBER_OF_FRAMES, _STATISTICS_WRITING_APP, ... each also "-eng")
_STATISTICS = re.compile(r"^(bps|duration|number_of_frames|number_of_bytes|_statistics_\w*)(-\w+)?$")
# ... and, for a stream that is re-encoded, the tags that name the encoder that made it
_ENCODER_TAGS = frozenset({"vendor_id", "encoder_options"})
# FFmpeg's MP4/MOV muxer stores a timecode track's frames per second in one byte and fails the
# whole file, at its end, for more
MOV_TIMECODE_MAX_FPS = 255
_TIMECODE = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})([:;.,])(\d{2,3})$")


def carried_tags(tags: Mapping[str, str] | None, *, reencoded: bool = False) -> dict[str, str]:
    """The tags of ``tags`` that still hold for a copy of the film (see the module docstring).

    ``reencoded``: the stream is encoded afresh, so tags naming its old encoder go too.
    """
    kept = {}
    for key, value in (tags or {}).items():
        k = key.lower()
        if k in _OWN_FILE_TAGS or _STATISTICS.match(k) or (reencoded and k in _ENCODER_TAGS):
            continue
        kept[key] = value
    return kept


def timecode_key(tags: Mapping[str, str]) -> str | None:
    """The key under which ``tags`` holds a timecode (``timecode`` in MOV/MP4, ``TIMECODE`` in Matroska)."""
    return next((k for k in tags if k.lower() == "timecode"), None)


def _drop_per_minute(fps: int, drop: bool) -> int:
    return (fps // 30) * 2 if drop else 0  # 29.97 drops 2 frame numbers a minute, 59.94 drops 4


def timecode_to_frames(timecode: str, fps: int) -> int:
    """Frame count since 00:00:00:00 of SMPTE ``timecode`` at ``fps`` nominal frames per second.

    Raises ``ValueError`` for a string that is not a timecode or a frame field ``>= fps``.
    """
    m = _TIMECODE.match(timecode.strip())
    if not m or fps <= 0:
        raise ValueError(f"not a timecode at {fps} fps: {timecode!r}")
    hh, mm, ss, sep, ff = int(m[1]), int(m[2]), int(m[3]), m[4], int(m[5])
    if mm > 59 or ss > 59 or ff >= fps:
        raise ValueError(f"not a timecode at {fps} fps: {timecode!r}")
    drop = _drop_per_minute(fps, sep in ";.,")
    minutes = hh * 60 + mm
    return (hh * 3600 + mm * 60 + ss) * fps + ff - drop * (minutes - minutes // 10)


def frames_to_timecode(frames: int, fps: int, drop_frame: bool = False) -> str:
    """SMPTE timecode of frame number ``frames`` at ``fps`` nominal frames per second (24 h wrap)."""
    drop = _drop_per_minute(fps, drop_frame)
    if drop:
        per_10min = fps * 600 - drop * 9
        per_min = fps * 60 - drop
        tens, rest = divmod(frames, per_10min)
        frames += drop * 9 * tens + (drop * ((rest - drop) // per_min) if rest > drop else 0)
    ff = frames % fps
    ss = frames // fps % 60
    mm = frames // (fps * 60) % 60
    hh = frames // (fps * 3600) % 24
    return f"{hh:02d}:{mm:02d}:{ss:02d}{';' if drop else ':'}{ff:02d}"


def nominal_rate(fps: Fraction | float) -> int:
    """Timecode counts whole frames a second: 24 for 23.976, 30 for 29.97, 25 for 25."""
    return max(1, round(float(fps)))


def shift_timecode(timecode: str, frames: int, fps: Fraction | float) -> str:
    """``timecode`` moved on by ``frames`` frames, in the same (drop- or non-drop-frame) style.

    A string that is not a timecode at this rate comes back unchanged, untouched by a guess.
    """
    rate = nominal_rate(fps)
    try:
        start = timecode_to_frames(timecode, rate)
    except ValueError:
        return timecode
    drop = _TIMECODE.match(timecode.strip())[4] in ";.," and _drop_per_minute(rate, True) > 0
    return frames_to_timecode(start + frames, rate, drop)


def frames_before(start: float | Fraction, first: float | Fraction | None, fps: Fraction | float) -> int:
    """How many frames of a constant-rate film starting at ``first`` s come before time ``start`` s."""
    offset = (Fraction(start) - Fraction(first or 0)) * Fraction(fps)
    return max(0, math.ceil(offset - Fraction(1, 1000)))


def carried_chapters(chapters: list[dict[str, Any]], t0: Fraction | None = None,
                     t1: Fraction | None = None) -> list[dict[str, Any]]:
    """Chapters (PyAV's ``container.chapters()`` dicts) on the timeline of the stretch ``[t0, t1)``.

    Times stay in each chapter's own time base; a chapter is cut at the stretch's edges and left out
    when nothing of it is inside. Ids are renumbered from 1; metadata (the title) is kept.
    """
    out = []
    for ch in chapters:
        tb = Fraction(ch["time_base"])
        start, end = ch["start"], ch["end"]
        lo = 0 if t0 is None else math.floor(Fraction(t0) / tb)
        hi = None if t1 is None else math.floor(Fraction(t1) / tb)
        if end <= lo or (hi is not None and start >= hi):
            continue
        start, end = max(start, lo) - lo, (end if hi is None else min(end, hi)) - lo
        out.append({"id": len(out) + 1, "start": start, "end": end, "time_base": tb,
                    "metadata": dict(ch.get("metadata") or {})})
    return out


def sound_lead(time_reference: str | None, sample_rate: int | None, timecode: str | None,
               fps: Fraction | float | None) -> Fraction | None:
    """Seconds by which a Broadcast WAV's sound starts before the picture, from its ``time_reference``
    (samples since midnight, as a scanner or recorder writes it) and the picture's first-frame SMPTE
    ``timecode`` at ``fps``; negative when the sound starts later. None when either is unstated (a
    time reference of 0 is the usual unset value) or unreadable."""
    try:
        samples = int(time_reference or 0)
    except ValueError:
        return None
    if samples <= 0 or not sample_rate or not timecode or not fps:
        return None
    try:
        frames = timecode_to_frames(timecode, nominal_rate(fps))
    except ValueError:
        return None
    return Fraction(frames) / Fraction(fps).limit_denominator(1_000_000) - Fraction(samples, sample_rate)


_LANGUAGE_PART = re.compile(r"^[a-z]{2,3}$")


# ISO 639-1 -> 639-2 (bibliographic, as FFmpeg's muxers take it): MP4 and MOV store only three-letter
# codes and drop "en" without a word; the languages of the world's film archives, not all 184
ISO639_2 = {"en": "eng", "fr": "fre", "de": "ger", "es": "spa", "it": "ita", "pt": "por", "nl": "dut",
            "sv": "swe", "da": "dan", "no": "nor", "nb": "nob", "nn": "nno", "fi": "fin", "is": "ice",
            "pl": "pol", "cs": "cze", "sk": "slo", "hu": "hun", "ro": "rum", "bg": "bul", "hr": "hrv",
            "sr": "srp", "sl": "slv", "ru": "rus", "uk": "ukr", "el": "gre", "tr": "tur", "ar": "ara",
            "he": "heb", "fa": "per", "hi": "hin", "bn": "ben", "ta": "tam", "zh": "chi", "ja": "jpn",
            "ko": "kor", "th": "tha", "vi": "vie", "id": "ind", "ca": "cat", "eu": "baq", "gl": "glg",
            "ga": "gle", "cy": "wel", "la": "lat", "et": "est", "lv": "lav", "lt": "lit"}


def language_in_name(path: Any) -> str | None:
    """The language a sidecar file's name gives, as players read it, as a three-letter ISO 639-2
    code: ``reel.fr.srt`` -> ``"fre"``, ``reel.eng.wav`` -> ``"eng"`` (an unknown two-letter code is
    kept as it is); None when the part before the extension is no 2-3 letter code."""
    parts = Path(path).name.split(".")
    code = parts[-2].lower() if len(parts) >= 3 else ""
    return ISO639_2.get(code, code) if _LANGUAGE_PART.match(code) else None
