"""Text subtitles between the forms containers hold them in, cue by cue.

MP4 and MOV hold text subtitles only as ``mov_text`` (3GPP timed text), Matroska as SubRip (and
ASS, WebVTT); neither takes the other's. A film that changes container would lose its subtitles,
so :func:`convert` turns one cue's packet payload into the other form, keeping its text and line
breaks (styling - italics, fonts, positions - is not carried over). Timing stays on the packet.
"""

from __future__ import annotations

import re

# codec names PyAV reports for text subtitles, by the form of their packets
_PLAIN = frozenset({"subrip", "srt", "text", "webvtt"})
_ASS = frozenset({"ass", "ssa"})
_TX3G = frozenset({"mov_text"})
TEXT_CODECS = _PLAIN | _ASS | _TX3G
# the text subtitle codec each container holds (None: none at all)
TARGETS = {"mp4": "mov_text", "mov": "mov_text", "ipod": "mov_text", "matroska": "subrip"}

_MARKUP = re.compile(r"<[^>]*>|\{\\[^}]*\}")  # SubRip/WebVTT tags and ASS override blocks


def cue_text(codec: str, payload: bytes) -> str:
    """The plain text of one cue (lines joined by ``\\n``) from a ``codec`` packet's payload."""
    if codec in _TX3G:  # 16-bit text length, the text, then optional style boxes
        size = int.from_bytes(payload[:2], "big")
        text = payload[2:2 + size].decode("utf-8", "replace")
    elif codec in _ASS:  # Matroska's ASS: ReadOrder,Layer,Style,Name,MarginL,MarginR,MarginV,Effect,Text
        text = payload.decode("utf-8", "replace").split(",", 8)[-1]
        text = text.replace("\\N", "\n").replace("\\n", "\n").replace("\\h", " ")
    else:
        text = payload.decode("utf-8", "replace")
    text = _MARKUP.sub("", text).replace("\r\n", "\n")
    return "\n".join(line.strip() for line in text.strip().split("\n"))


def payload(codec: str, text: str) -> bytes:
    """One cue's packet payload in ``codec`` (``mov_text`` or ``subrip``) for plain ``text``."""
    data = text.encode("utf-8")
    if codec in _TX3G:
        return len(data).to_bytes(2, "big") + data
    return data


def convert(src_codec: str, dst_codec: str, data: bytes) -> bytes:
    """A ``src_codec`` cue payload as a ``dst_codec`` one (see the module docstring)."""
    return payload(dst_codec, cue_text(src_codec, data))
