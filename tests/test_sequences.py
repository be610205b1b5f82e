"""Image sequences: a folder of numbered scans read as one film, and what a DPX header states."""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from filmcolor import media, sequences, synth
from filmcolor.errors import InputError
from helpers import write_grey_frames

def _scans(folder: Path, names: list[str], bits: int = 16) -> Path:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        grey = synth.synthetic_frame(i, 64, 48, color=False)[..., 0]
        cv2.imwrite(str(folder / name), grey.astype(np.uint16) * 257 if bits == 16 else grey)
    return folder


def test_image_sequence_finds_the_numbering(tmp_path):
    padded = _scans(tmp_path / "a", [f"reel 50%_{n:07d}.tif" for n in range(86400, 86410)] + ["notes.tif"])
    seq = sequences.image_sequence(padded)
    assert (seq.pattern, seq.first, seq.count) == ("reel 50%%_%07d.tif", 86400, 10)  # '%' escaped for FFmpeg
    unpadded = _scans(tmp_path / "b", [f"f{n}.png" for n in range(1, 13)], bits=8)
    assert (sequences.image_sequence(unpadded).pattern, sequences.image_sequence(unpadded).count) == ("f%d.png", 12)
    stray = _scans(tmp_path / "c", [f"s{n:03d}.png" for n in range(5)] + ["s7.png"], bits=8)
    assert (sequences.image_sequence(stray).pattern, sequences.image_sequence(stray).count) == ("s%03d.png", 5)
    assert sequences.image_sequence(_scans(tmp_path / "d", ["only1.png"], bits=8)) is None
    gaps = _scans(tmp_path / "e", [f"g{n:02d}.png" for n in (1, 2, 3, 6, 7)], bits=8)
    with pytest.raises(InputError, match=r"g%02d.png has gaps: frame 4 and 1 more missing"):
        sequences.image_sequence(gaps)


def test_a_folder_of_scans_reads_as_one_film(tmp_path):
    folder = _scans(tmp_path / "reel1", [f"reel1_{n:07d}.tif" for n in range(86400, 86412)])
    info = media.probe(folder, "25")
    assert (info.format_name, info.is_still, info.fps, info.bit_depth) == ("image2", False, 25, 16)
    frames = list(media.decode(folder, fps="25"))
    assert [f.pts * f.time_base for f in frames] == [Fraction(k, 25) for k in range(12)]
    assert [f.pts * f.time_base for f in media.decode(folder, start=0.2, duration=0.2, fps="25")] == \
        [Fraction(k, 25) for k in range(5, 10)]
    with pytest.raises(InputError, match="without an image sequence"):
        media.probe(_scans(tmp_path / "none", ["x.png"], bits=8))


def _dpx_reel(folder: Path, n: int, first: int = 86400, *, fps: float | None = None, timecode: int | None = None,
              transfer: int | None = None, big_endian: bool = False) -> Path:
    """``n`` 10-bit DPX scans numbered from ``first``, their headers stating ``fps`` (television
    header), a BCD ``timecode`` (0xHHMMSSFF, the first scan's; each next scan one frame on, within
    the second) and a ``transfer`` code, as a film scanner writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    with av.open(str(folder / "reel.%07d.dpx"), "w", format="image2", options={"start_number": str(first)}) as out:
        vs = out.add_stream("dpx", rate=24)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "gbrp10be" if big_endian else "gbrp10le"
        write_grey_frames(out, vs, n)
    order = ">" if big_endian else "<"
    for k, path in enumerate(sorted(folder.iterdir())):
        scan = path.read_bytes()
        assert scan[:4] == (b"SDPX" if big_endian else b"XPDS") and struct.unpack_from(order + "I", scan, 4)[0] == 1664
        # FFmpeg writes no film/television header: add one (unset fields all ones), the picture after it
        head, industry = bytearray(scan[:1664]), bytearray(b"\xff" * 384)
        struct.pack_into(order + "I", head, 4, 2048)  # offset to the picture
        struct.pack_into(order + "I", head, 16, len(scan) + 384)  # file size
        struct.pack_into(order + "I", head, 28, 384)  # industry header length
        struct.pack_into(order + "I", head, 808, 2048)  # image element 1's data offset
        if fps is not None:
            struct.pack_into(order + "f", industry, 1940 - 1664, fps)
        if timecode is not None:
            struct.pack_into(order + "I", industry, 1920 - 1664, timecode + k)
        if transfer is not None:
            head[801] = transfer
        path.write_bytes(bytes(head + industry) + scan[1664:])
    return folder


def test_a_dpx_header_gives_the_frame_rate_timecode_and_transfer(tmp_path):
    ntsc = _dpx_reel(tmp_path / "a", 2, fps=29.97, timecode=0x10000500 | 0x40, transfer=1)  # 0x40: drop-frame
    assert sequences.scan_header(ntsc / "reel.0086401.dpx") == \
        sequences.ScanHeader(Fraction(30000, 1001), "10:00:05;01", "printing density (log)")
    big = _dpx_reel(tmp_path / "b", 2, fps=25.0, timecode=0x01000000, transfer=3, big_endian=True)
    assert sequences.scan_header(big / "reel.0086401.dpx") == \
        sequences.ScanHeader(Fraction(25), "01:00:00:01", "logarithmic")
    # a frames field past the rate is no time code; unset fields (all ones) state nothing
    assert sequences.scan_header(_dpx_reel(tmp_path / "c", 1, fps=24.0, timecode=0x01000024) /
                                 "reel.0086400.dpx") == sequences.ScanHeader(Fraction(24))
    assert sequences.scan_header(_dpx_reel(tmp_path / "d", 2) / "reel.0086400.dpx") == sequences.ScanHeader()
    with av.open(str(tmp_path / "ff.dpx"), "w", format="image2") as out:  # FFmpeg's own: no film/TV header
        vs = out.add_stream("dpx", rate=24)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "gbrp10le"
        write_grey_frames(out, vs, 1)
    assert sequences.scan_header(tmp_path / "ff.dpx") == sequences.ScanHeader()
    assert sequences.scan_header(big / "missing.dpx") == sequences.ScanHeader()


def test_a_dpx_reel_plays_at_its_stated_rate_from_its_stated_timecode(tmp_path):
    reel = _dpx_reel(tmp_path / "reel", 6, fps=25.0, timecode=0x01000000)
    info = media.probe(reel)
    assert (info.fps, info.timecode) == (25, "01:00:00:00")
    assert [f.pts * f.time_base for f in media.decode(reel)] == [Fraction(k, 25) for k in range(6)]
    assert media.probe(reel, "24").fps == 24  # --fps wins over the header
    assert media.seconds_at(info, "01:00:00:04") == pytest.approx(4 / 25)
    assert media.probe(_dpx_reel(tmp_path / "plain", 3)).fps == 24  # nothing stated: 24


def test_a_coloured_dpx_reel_keeps_its_rate_and_timecode_and_log_scans_are_named(tmp_path):
    from filmcolor import pipeline
    from filmcolor.config import RunConfig
    from helpers import read_labels, tiny_model

    model = tiny_model(tmp_path / "tiny.safetensors")
    reel = _dpx_reel(tmp_path / "reel", 8, fps=25.0, timecode=0x01000000, transfer=1)
    config = RunConfig(model=str(model), render_size=48)
    said: list[str] = []
    r = pipeline.colorize_file(reel, tmp_path / "reel.mov", config, warn=said.append)
    assert r.frames == 8 and read_labels(tmp_path / "reel.mov")["timecode"] == "01:00:00:00"
    with av.open(str(tmp_path / "reel.mov")) as c:
        assert c.streams.video[0].average_rate == 25
    assert len(said) == 1 and "coded as printing density (log), not video levels" in said[0]
    # an excerpt from the reel's own timecode carries the timecode of its first frame
    r = pipeline.colorize_file(reel, tmp_path / "tail.mkv", config.with_overrides(start=4 / 25), warn=said.append)
    assert r.frames == 4 and read_labels(tmp_path / "tail.mkv")["timecode"] == "01:00:00:04"
