"""subtitles.py: one cue's text between SubRip, ASS, WebVTT and MP4's mov_text."""

from __future__ import annotations

import pytest

from filmcolor import subtitles


@pytest.mark.parametrize("codec,data,text", [
    ("subrip", b"<i>Steady</i> as she goes,\r\n<font color=\"#ff0\">Captain</font>", "Steady as she goes,\nCaptain"),
    ("srt", b"{\\an8}Top line", "Top line"),
    ("ass", b"3,0,Default,,0,0,0,,{\\i1}Steady{\\i0} as she goes,\\NCaptain", "Steady as she goes,\nCaptain"),
    ("webvtt", b"<v Pete>Steady</v> as she goes", "Steady as she goes"),
    ("mov_text", b"\x00\x13Steady as she goes," + b"\x00\x00\x00\x0cstyl\x00\x00", "Steady as she goes,"),
    ("mov_text", b"\x00\x00", ""),  # an "end of cue" sample
])
def test_cue_text(codec, data, text):
    assert subtitles.cue_text(codec, data) == text


def test_payloads_round_trip():
    text = "Steady as she goes,\nCaptain — ü"
    tx3g = subtitles.payload("mov_text", text)
    assert tx3g[:2] == len(text.encode()).to_bytes(2, "big")
    assert subtitles.cue_text("mov_text", tx3g) == text
    assert subtitles.convert("mov_text", "subrip", tx3g) == text.encode()
    assert subtitles.convert("subrip", "mov_text", b"<b>Captain</b>") == b"\x00\x07Captain"
    assert subtitles.TARGETS["mp4"] == "mov_text" and subtitles.TARGETS["matroska"] == "subrip"
