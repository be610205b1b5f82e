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
from helpers import grey_pictures, write_grey_frames, write_pictures

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


def test_two_reels_in_one_folder_are_named_not_one_coloured_without_a_word(tmp_path):
    # the larger (or, at a tie, whichever the file system listed first) was taken as the film
    two = _scans(tmp_path / "two", [f"reel{r}_{n:04d}.tif" for r in "AB" for n in range(1, 11)])
    with pytest.raises(InputError, match=r"holds more than one image sequence: reelA_\*.tif \(10 pictures\) and "
                                         r"reelB_\*.tif \(10 pictures\); put each reel in a folder of its own"):
        sequences.image_sequence(two)
    assert sequences.image_sequence(two, gaps_ok=True).rivals == ("reelB_*.tif (10 pictures)",)
    # a scanner's JPEG proxies beside its scans, and a few numbered strays: the scans are the film
    proxies = _scans(tmp_path / "p", [f"r_{n:04d}.{ext}" for n in range(1, 11) for ext in ("jpg", "tif")]
                     + ["thumb1.png", "thumb2.png"], bits=8)
    seq = sequences.image_sequence(proxies)
    assert (seq.pattern, seq.count, seq.rivals) == ("r_%04d.tif", 10, ())


@pytest.mark.parametrize("suffix", [".tif", ".dpx", ".mkv"])
def test_grey_scans_and_masters_are_full_range_as_ffmpeg_reads_them(tmp_path, suffix):
    # grey TIFF, DPX and FFV1 state no range; taken as video range (16-235), their shadows and highlights were
    # crushed: the output kept their code values but was tagged video range, and the network saw L* stretched
    ramp = np.tile(np.arange(256, dtype=np.uint8), (16, 1))
    if suffix == ".mkv":
        src = tmp_path / "master.mkv"
        with av.open(str(src), "w") as c:
            s = c.add_stream("ffv1", rate=24)
            s.width, s.height, s.pix_fmt = 256, 16, "gray"
            for _ in range(3):
                for p in s.encode(av.VideoFrame.from_ndarray(ramp, format="gray")):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
    else:
        src = tmp_path / "reel"
        write_pictures(src / f"r.%04d{suffix}", {".tif": "tiff"}.get(suffix, suffix[1:]), "gray", [ramp] * 3,
                       source_format="gray")
    info = media.probe(src)
    assert info.full_range and info.pix_fmt == "gray"
    grey = av.VideoFrame.from_ndarray(ramp, format="gray")  # grey a video codec gives: its spec's video range
    assert media.state_grey_range(grey, "h264").color_range == 1 and media.state_grey_range(grey, "h264") is grey
    assert media.state_grey_range(av.VideoFrame.from_ndarray(ramp, format="gray"), "tiff").color_range == 2
    frame = next(media.decode(src))  # decoding states the range the codec implies
    planes = media.frame_to_planes(frame, "yuv444p")
    assert planes.full_range and np.array_equal(planes.y[0], np.arange(256))  # black at 0, white at 255


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
    write_pictures(folder / "reel.%07d.dpx", "dpx", "gbrp10be" if big_endian else "gbrp10le", grey_pictures(n),
                   first=first)
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
    write_pictures(tmp_path / "ff.dpx", "dpx", "gbrp10le", grey_pictures(1))  # FFmpeg's own: no film/TV header
    assert sequences.scan_header(tmp_path / "ff.dpx") == sequences.ScanHeader()
    assert sequences.scan_header(big / "missing.dpx") == sequences.ScanHeader()
    assert sequences._bcd_word("10:00:05;01") == 0x10000541 and sequences._bcd_word("1:00:00:00") is None


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
    assert len(said) == 1 and "the pictures are coded as printing density (log), not video levels" in said[0]
    assert said[0].endswith("--scan-transfer log shows them at video levels first")
    # an excerpt from the reel's own timecode carries the timecode of its first frame
    r = pipeline.colorize_file(reel, tmp_path / "tail.mkv", config.with_overrides(start=4 / 25), warn=said.append)
    assert r.frames == 4 and read_labels(tmp_path / "tail.mkv")["timecode"] == "01:00:00:04"


# --- a film written as numbered pictures (--frames-as) ----------------------------------------------
def _cli(*args):
    from click.testing import CliRunner

    from filmcolor.cli import main

    return CliRunner().invoke(main, ["run", *map(str, args)], catch_exceptions=False)


def _luma601(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        rgb = next(c.decode(video=0)).reformat(format="rgb48le").to_ndarray().astype(np.float64) / 64  # 10-bit
    return rgb @ np.array([0.299, 0.587, 0.114]), rgb


def test_a_dpx_reel_comes_back_as_dpx_under_its_own_names_with_its_own_luminance(tmp_path):
    from helpers import tiny_model

    model = tiny_model(tmp_path / "tiny.safetensors")
    reel = _dpx_reel(tmp_path / "reel1", 6, fps=25.0, timecode=0x01000000)
    r = _cli(reel, "--frames-as", "dpx", "--model", model, "--set", "render_size=48")
    assert r.exit_code == 0, r.output
    assert f"wrote {tmp_path / 'reel1.color'}/: 6 frames" in r.stderr
    out = tmp_path / "reel1.color"
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in reel.iterdir())  # conform by name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reel1", "reel1.color", "tiny.safetensors"]
    with av.open(str(out / "reel.0086403.dpx")) as c:
        assert next(c.decode(video=0)).format.name == "gbrp10le"  # 10-bit stays 10-bit
    y_out, rgb = _luma601(out / "reel.0086403.dpx")
    y_in, _ = _luma601(reel / "reel.0086403.dpx")
    assert np.abs(y_out - y_in).max() <= 1.5  # the scan's own luminance, within a 10-bit code
    assert np.abs(rgb[..., 0] - rgb[..., 2]).mean() > 4  # and coloured
    # each coloured scan states the rate and its own timecode, as its scan did (conform reads them)
    assert sequences.scan_header(out / "reel.0086403.dpx") == sequences.ScanHeader(Fraction(25), "01:00:00:03")
    head = (out / "reel.0086403.dpx").read_bytes()[:2048]
    assert struct.unpack_from("<I", head, 1712)[0] == 86403 and head[1928] == 0  # frame position; progressive
    info = media.probe(out)
    assert (info.fps, info.timecode, info.bit_depth) == (25, "01:00:00:00", 10)
    r = _cli(reel, "--frames-as", "dpx", "--model", model, "--set", "render_size=48", "--start", "01:00:00:02",
             "-o", tmp_path / "tail")
    assert r.exit_code == 0 and sorted(p.name for p in (tmp_path / "tail").iterdir())[0] == "reel.0086402.dpx"
    assert sequences.scan_header(tmp_path / "tail" / "reel.0086402.dpx").timecode == "01:00:00:02"


def test_a_film_as_pictures_keeps_its_sound_and_subtitles_beside_them(tmp_path):
    from filmcolor import pipeline
    from filmcolor.config import RunConfig
    from helpers import tiny_model

    model = tiny_model(tmp_path / "tiny.safetensors")
    film = synth.make_clip(tmp_path / "reel.mp4", frames=25, width=64, height=48, fps=25, rotation=90,
                           subtitles=True, color=False)
    config = RunConfig(model=str(model), render_size=48, start=0.4, duration=0.4, frames_as="tiff")
    said: list[str] = []
    r = pipeline.colorize_file(film, None, config, warn=said.append)
    assert said == [f"{film}: subtitle stream 2 (mov_text) cannot go into matroska; converted to subrip (the text "
                    "and timing; not the styling)"]
    out = tmp_path / "reel.color"
    assert (r.dst, r.frames, r.kind) == (out, 10, "frames")
    # an excerpt's pictures are numbered by their place in the film (frame 11 is 0.4 s in)
    assert sorted(p.name for p in out.iterdir()) == [f"reel.{n:07d}.tif" for n in range(11, 21)] + ["reel.mka"]
    import tifffile

    picture = tifffile.imread(out / "reel.0000011.tif")
    assert picture.shape == (64, 48, 3) and picture.dtype == np.uint8  # turned upright: no rotation flag
    with av.open(str(out / "reel.mka")) as c:
        kinds = sorted(s.type for s in c.streams)
        audio = [p for p in c.demux(audio=0) if p.pts is not None]
    assert kinds == ["audio", "subtitle"]
    assert float(audio[-1].pts * audio[-1].time_base) == pytest.approx(0.4, abs=0.05)  # the excerpt's sound
    assert float(audio[0].pts * audio[0].time_base) <= 0.03  # from the first picture on


def test_a_picture_folder_appears_whole_or_not_at_all(tmp_path, monkeypatch):
    from helpers import tiny_model

    model = tiny_model(tmp_path / "tiny.safetensors")
    reel = _dpx_reel(tmp_path / "reel1", 6)
    args = ("--frames-as", "png", "--model", model, "--set", "render_size=48")
    out = tmp_path / "graded"
    real_picture = sequences.SequenceWriter._picture

    def fail_part_way(self, frame, number, timecode):  # in a picture-writing thread
        if number == 86403:
            raise OSError(28, "No space left on device")
        real_picture(self, frame, number, timecode)

    monkeypatch.setattr(sequences.SequenceWriter, "_picture", fail_part_way)
    r = _cli(reel, "-o", out, *args)
    assert r.exit_code == 3 and "No space left on device" in r.stderr  # a failure part-way, not bad input
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reel1", "tiny.safetensors"]  # no half folder
    monkeypatch.undo()

    assert _cli(reel, "-o", out, *args).exit_code == 0 and len(list(out.iterdir())) == 6
    r = _cli(reel, "-o", out, *args)
    assert r.exit_code == 2 and "already exists (use --overwrite" in r.stderr
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert _cli(reel, "-o", out, "--overwrite", *args).exit_code == 0  # its own pictures: replaced
    assert sorted(before) == sorted(p.name for p in out.iterdir())
    (out / "notes.txt").write_text("grading notes")
    r = _cli(reel, "-o", out, "--overwrite", *args)
    assert r.exit_code == 2 and "holds other files (notes.txt)" in r.stderr and (out / "notes.txt").is_file()
    r = _cli(reel, "-o", reel / "sub", *args)
    assert r.exit_code == 2 and "never writes into its input" in r.stderr
    photo = tmp_path / "still.png"
    import cv2

    cv2.imwrite(str(photo), np.full((32, 32), 90, np.uint8))
    r = _cli(photo, *args)
    assert r.exit_code == 2 and "is a photo; --frames-as writes the pictures of a film" in r.stderr
    assert _cli(reel, "--preview", "2", *args).exit_code == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_eval_scores_a_folder_of_colour_scans_like_a_film(tmp_path):
    import cv2
    from click.testing import CliRunner

    from filmcolor.cli import main
    from helpers import tiny_model

    folder = tmp_path / "ref"
    folder.mkdir()
    for i in range(6):
        cv2.imwrite(str(folder / f"c_{i:03d}.png"), synth.synthetic_frame(i, 64, 48, color=True)[..., ::-1])
    r = CliRunner().invoke(main, ["eval", str(folder), "--model", str(tiny_model(tmp_path / "t.safetensors")),
                                  "--set", "render_size=48", "--json", "-q"])
    assert r.exit_code == 0, r.output
    import json

    clip = json.loads(r.stdout)["clips"][0]
    assert clip["frames"] == 6 and clip["reference"]["colourfulness"] > 20 and clip["grey"]["colourfulness"] < 0.01


def test_openexr_scans_are_named_as_linear_light(tmp_path):
    from filmcolor import pipeline
    from filmcolor.config import RunConfig
    from helpers import tiny_model

    linear = [(grey.astype(np.float32) / 255) ** 2.2 for grey in grey_pictures(3)]
    folder = write_pictures(tmp_path / "vfx" / "shot.%04d.exr", "exr", "gbrpf32le", linear, source_format="rgbf32le")
    said: list[str] = []
    config = RunConfig(model=str(tiny_model(tmp_path / "t.safetensors")), render_size=48)
    assert pipeline.colorize_file(folder, None, config, warn=said.append).frames == 3
    assert said == [f"{folder}: the pictures are coded as linear light, not video levels, and are coloured as "
                    "stored (the colour comes out weak); --scan-transfer linear shows them at video levels first"]


# --- sound beside the scans, and added tracks ---------------------------------------------------------
def _wav(path: Path, seconds: float, rate: int = 48000) -> Path:
    """A mono 16-bit WAV tone (how a scanned optical track is delivered)."""
    import wave

    t = np.arange(int(seconds * rate)) / rate
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2").tobytes())
    return path


def _sound(path: Path) -> tuple[list[str], float]:
    """The audio codecs of a file and how long its first audio stream lasts (last packet's end)."""
    with av.open(str(path)) as c:
        codecs = [s.codec_context.name for s in c.streams.audio]
        if not codecs:
            return [], 0.0
        end = max(float((p.pts + (p.duration or 0)) * p.time_base) for p in c.demux(audio=0) if p.pts is not None)
    return codecs, end


def test_a_scanned_reel_keeps_the_sound_file_delivered_inside_its_folder(tmp_path):
    from helpers import tiny_model

    model = tiny_model(tmp_path / "tiny.safetensors")
    reel = _dpx_reel(tmp_path / "reel1", 12, fps=24.0)
    _wav(reel / "reel1_optical.wav", 0.5)  # 12 frames at 24 fps: half a second
    args = ("--model", model, "--set", "render_size=48")
    assert _cli(reel, *args).exit_code == 0
    assert _sound(tmp_path / "reel1.color.mkv") == (["pcm_s16le"], pytest.approx(0.5, abs=0.01))
    assert _cli(reel, "--start", "0.25", "-o", tmp_path / "tail.mkv", *args).exit_code == 0
    assert _sound(tmp_path / "tail.mkv")[1] == pytest.approx(0.25, abs=0.03)  # the excerpt's own sound
    assert _cli(reel, "--frames-as", "dpx", *args).exit_code == 0
    assert _sound(tmp_path / "reel1.color" / "reel1.mka") == (["pcm_s16le"], pytest.approx(0.5, abs=0.01))


def test_add_track_adds_a_sound_or_subtitle_file_after_the_films_own(tmp_path):
    from helpers import tiny_model

    model = tiny_model(tmp_path / "tiny.safetensors")
    film = synth.make_clip(tmp_path / "reel.mp4", frames=25, fps=25, color=False)  # with its own AAC
    (tmp_path / "reel.en.srt").write_text("1\n00:00:00,100 --> 00:00:00,600\nA title card\n", encoding="utf-8")
    wav = _wav(tmp_path / "commentary.wav", 1.0)
    args = ("--model", model, "--set", "render_size=48")
    r = _cli(film, "--add-track", wav, "--add-track", tmp_path / "reel.en.srt", *args)
    assert r.exit_code == 0, r.output
    with av.open(str(tmp_path / "reel.color.mp4")) as c:
        streams = [(s.type, s.codec_context.name) for s in c.streams]
        cue = next(bytes(p) for p in c.demux(subtitles=0) if p.size > 2)
    # the film's own sound first, then the added PCM as it is; the SubRip cue as MP4's mov_text
    assert streams == [("video", "h264"), ("audio", "aac"), ("audio", "pcm_s16le"), ("subtitle", "mov_text")]
    assert b"A title card" in cue
    r = _cli(film, "--add-track", tmp_path / "missing.wav", "-o", tmp_path / "x.mkv", *args)
    assert r.exit_code == 1 and "missing.wav: no such file" in r.stderr
    r = _cli(film, "--add-track", film.with_suffix(".srt"), "-o", tmp_path / "x.mkv", *args)
    assert r.exit_code == 1
    silent = synth.make_clip(tmp_path / "silent.mkv", frames=3, audio=())
    r = _cli(film, "--add-track", silent, "-o", tmp_path / "x.mkv", *args)
    assert r.exit_code == 1 and "silent.mkv: holds no sound or subtitle stream to add" in r.stderr
    assert not (tmp_path / "x.mkv").exists()


def _bwf(path: Path, seconds: float, time_reference: int, rate: int = 48000) -> Path:
    """A Broadcast WAV (bext chunk) whose sound starts ``time_reference`` samples after midnight."""
    with av.open(str(path), "w", format="wav", options={"write_bext": "1"}) as out:
        out.metadata["time_reference"] = str(time_reference)
        stream = out.add_stream("pcm_s16le", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, int(seconds * rate)), np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts = rate, 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def test_a_broadcast_wav_is_laid_against_the_pictures_timecode(tmp_path):
    from helpers import tiny_model

    model = tiny_model(tmp_path / "tiny.safetensors")
    reel = _dpx_reel(tmp_path / "reel1", 12, fps=24.0, timecode=0x01000000)  # 01:00:00:00, half a second
    _bwf(reel / "reel1.wav", 1.0, 3600 * 48000 - 24000)  # the recorder ran half a second before frame one
    assert _cli(reel, "--model", model, "--set", "render_size=48").exit_code == 0
    with av.open(str(tmp_path / "reel1.color.mkv")) as c:
        packets = [p for p in c.demux(audio=0) if p.pts is not None]
        first = float(packets[0].pts * packets[0].time_base)
    # the pre-roll is cut (packet by packet: the first whole packet after frame one keeps its own time)
    assert 0 <= first < 0.1
    assert _sound(tmp_path / "reel1.color.mkv")[1] == pytest.approx(0.5, abs=0.03)
    (reel / "reel1.wav").unlink()
    _bwf(reel / "reel1.wav", 1.0, 0)  # no time reference: laid from the first frame, all of it
    assert _cli(reel, "--model", model, "--set", "render_size=48", "--overwrite").exit_code == 0
    assert _sound(tmp_path / "reel1.color.mkv")[1] == pytest.approx(1.0, abs=0.03)


def test_a_dpx_run_that_cannot_fit_on_its_disk_is_refused_before_colouring(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    from filmcolor import pipeline
    from filmcolor.config import RunConfig
    from filmcolor.errors import OutputError
    from helpers import tiny_model

    reel = _dpx_reel(tmp_path / "reel1", 6)
    one = sequences.picture_bytes("dpx", 64, 48, 10)
    assert one == 2048 + 4 * 64 * 48  # header, then three 10-bit samples to a 32-bit word
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9, 5 * one))  # room for 5 of 6
    config = RunConfig(model=str(tiny_model(tmp_path / "t.safetensors")), render_size=48)
    with pytest.raises(OutputError, match=r"6 DPX pictures need 0\.0 GB; .* has 0\.0 GB free"):
        pipeline.colorize_file(reel, tmp_path / "out", config.with_overrides(frames_as="dpx"))
    said: list[str] = []  # TIFF: deflate may well fit it, so it only warns
    r = pipeline.colorize_file(reel, tmp_path / "out", config.with_overrides(frames_as="tiff"), warn=said.append)
    assert r.frames == 6 and len(said) == 1 and "6 TIFF pictures take up to" in said[0]
    with av.open(str(tmp_path / "out" / "reel.0086400.tif")) as c:  # and the picture sizes were right
        assert next(c.decode(video=0)).format.name == "rgb48le"
    monkeypatch.undo()
    pipeline.colorize_file(reel, tmp_path / "dpx", config.with_overrides(frames_as="dpx"))
    assert {p.stat().st_size for p in (tmp_path / "dpx").iterdir()} == {one}  # the estimate is exact


def test_an_anamorphic_scan_keeps_its_pixel_aspect_in_and_out(tmp_path):
    from helpers import tiny_model

    # CinemaScope: squeezed 2:1 on the film
    reel = write_pictures(tmp_path / "scope" / "s.%04d.dpx", "dpx", "gbrp10le", grey_pictures(3), sar=Fraction(2, 1))
    args = ("--model", tiny_model(tmp_path / "t.safetensors"), "--set", "render_size=48")
    assert _cli(reel, *args).exit_code == 0
    assert media.probe(tmp_path / "scope.color.mkv").sample_aspect_ratio == 2
    for fmt, name in (("dpx", "s.0001.dpx"), ("png", "s.0001.png")):
        r = _cli(reel, "--frames-as", fmt, "-o", tmp_path / fmt, *args)
        assert r.exit_code == 0 and "not square" not in r.stderr
        assert media.probe(tmp_path / fmt / name).sample_aspect_ratio == 2


def test_a_long_gap_holds_one_picture_under_many_numbers_written_by_several_workers_at_once(tmp_path):
    """A film whose timestamps jump 200 frames (a lost stretch): the picture before the gap is written
    again under each missing number, by the writer's worker threads at the same time. Each worker
    converts with its own swscale context; one shared per frame crashed FFmpeg (a segfault or a hang)."""
    from fractions import Fraction

    from helpers import tiny_model

    src = tmp_path / "gap.mkv"
    with av.open(str(src), "w") as c:
        vs = c.add_stream("ffv1", rate=25)
        vs.width, vs.height, vs.pix_fmt, vs.time_base = 64, 48, "yuv420p", Fraction(1, 25)
        for pts in (0, 1, 2, 203, 204):
            frame = av.VideoFrame.from_ndarray(synth.synthetic_frame(pts, 64, 48), format="rgb24").reformat(
                format="yuv420p")
            frame.pts, frame.time_base = pts, Fraction(1, 25)
            for packet in vs.encode(frame):
                c.mux(packet)
        for packet in vs.encode():
            c.mux(packet)
    r = _cli(src, "--frames-as", "png", "--model", tiny_model(tmp_path / "t.safetensors"), "--set", "render_size=48",
             "--smooth", "off")
    assert r.exit_code == 0, r.output
    out = sorted((tmp_path / "gap.color").glob("*.png"))
    assert len(out) == 205
    held = {out[n].read_bytes() for n in range(2, 203)}
    assert len(held) == 1  # every missing number holds the same picture


def test_a_damaged_scan_keeps_every_other_picture_under_its_own_number(tmp_path):
    from helpers import tiny_model

    reel = _dpx_reel(tmp_path / "reel1", 10, fps=24.0, timecode=0x01000000)
    torn = reel / "reel.0086404.dpx"
    torn.write_bytes(torn.read_bytes()[:3000])  # a scan cut short: FFmpeg cannot decode it
    r = _cli(reel, "--frames-as", "dpx", "--model", tiny_model(tmp_path / "t.safetensors"), "--set", "render_size=48")
    assert r.exit_code == 0 and "damaged" in r.stderr
    out = tmp_path / "reel1.color"
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in reel.iterdir())  # none shifted

    def picture(n: int) -> np.ndarray:
        with av.open(str(out / f"reel.{n:07d}.dpx")) as c:
            return next(c.decode(video=0)).to_ndarray(format="rgb48le")

    np.testing.assert_array_equal(picture(86404), picture(86403))  # the previous picture, held
    assert not np.array_equal(picture(86405), picture(86404))
    y_in, _ = _luma601(reel / "reel.0086407.dpx")
    y_out, _ = _luma601(out / "reel.0086407.dpx")
    assert np.abs(y_out - y_in).max() <= 1.5  # scan 86407 under 86407, not 86406's picture
    assert sequences.scan_header(out / "reel.0086404.dpx").timecode == "01:00:00:04"


def test_log_scans_are_shown_at_video_levels_before_colouring_when_asked(tmp_path):
    from filmcolor import color
    from helpers import tiny_model

    # a grey wedge in Cineon code values, black (95) to white (685), as a film scanner writes it
    codes = np.repeat(np.linspace(95, 685, 64).round().astype(np.uint16)[None, :], 48, axis=0)
    rgb16 = np.repeat((codes << 6 | codes >> 4)[..., None], 3, axis=2)  # 10 -> 16 bit
    reel = write_pictures(tmp_path / "log" / "w.%04d.dpx", "dpx", "gbrp10le", [rgb16] * 3, source_format="rgb48le")
    args = ("--model", tiny_model(tmp_path / "t.safetensors"), "--set", "render_size=48", "--codec", "ffv1")
    r = _cli(reel, "--scan-transfer", "log", "-o", tmp_path / "video.mkv", *args)
    assert r.exit_code == 0 and "warning" not in r.stderr, r.output
    with av.open(str(tmp_path / "video.mkv")) as c:
        frame = next(c.decode(video=0))
        assert frame.color_trc == 13  # tagged as what it now is: sRGB-coded video
        luma = frame.reformat(format="gray16le").to_ndarray()[24].astype(np.float64) / 65535
    want = color.scan_to_video(codes[24] / 1023, "log")
    assert np.abs(luma - want).max() < 0.01  # the wedge at video levels: black at 0, white at 1
    assert luma[0] < 0.01 and luma[-1] > 0.99 and abs(luma[32] - want[32]) < 0.01
    r = _cli(reel, "-o", tmp_path / "stored.mkv", *args)  # as stored: the wedge stays flat (95..685)
    with av.open(str(tmp_path / "stored.mkv")) as c:
        flat = next(c.decode(video=0)).reformat(format="gray16le").to_ndarray()[24].astype(np.float64) / 65535
    assert flat[0] > 0.05 and flat[-1] < 0.7


def test_scan_to_video_maps_the_cineon_references_and_linear_light():
    from filmcolor import color

    log = color.scan_to_video(np.array([95, 685, 1023]) / 1023, "log")
    assert log[0] == pytest.approx(0, abs=1e-9) and log[1] == pytest.approx(1) and log[2] == pytest.approx(1)  # clipped
    grey_card = color.cineon_to_linear(np.array([470.0]))[0]  # Kodak's 18% grey sits at code 470
    assert grey_card == pytest.approx(0.18, abs=0.01)
    assert color.scan_to_video(np.array([0.18]), "linear")[0] == pytest.approx(0.4614, abs=1e-3)
    lut = color.scan_to_video_lut16("log")
    assert lut.dtype == np.uint16 and lut.shape == (65536,) and np.all(np.diff(lut.astype(int)) >= 0)
    codes = np.arange(95, 686) / 1023  # between the references the way back is exact
    np.testing.assert_allclose(color.video_to_scan(color.scan_to_video(codes, "log"), "log"), codes, atol=1e-9)
    back = color.video_to_scan_lut16("log")[lut[np.round(codes * 65535).astype(np.uint16)]]
    assert np.abs(back / 65535 - codes).max() * 1023 < 0.05  # and through the 16-bit tables


def test_log_scans_come_back_as_log_dpx_and_as_video_level_tiff(tmp_path):
    from filmcolor import color
    from helpers import tiny_model

    reel = _dpx_reel(tmp_path / "reel1", 3, fps=24.0, transfer=1)  # printing density
    args = ("--model", tiny_model(tmp_path / "t.safetensors"), "--set", "render_size=48")
    assert _cli(reel, "--frames-as", "dpx", "-o", tmp_path / "stored", *args).exit_code == 0
    assert sequences.scan_header(tmp_path / "stored" / "reel.0086400.dpx").transfer == "printing density (log)"
    # shown at video levels for the network, coded back to log for the DI pipeline the scans came from
    assert _cli(reel, "--frames-as", "dpx", "--scan-transfer", "log", "-o", tmp_path / "dpx", *args).exit_code == 0
    out = tmp_path / "dpx" / "reel.0086401.dpx"
    assert sequences.scan_header(out).transfer == "printing density (log)"
    y_in, _ = _luma601(reel / "reel.0086401.dpx")  # 10-bit codes
    _, rgb = _luma601(out)
    inside = (y_in >= 100) & (y_in <= 680)  # between the reference black and white: nothing clipped
    # the film's own luminance where it is defined, at video levels: shown there, the coloured log
    # picture has the grey scan's luma (log codes are per channel, so its log 'luma' moves with colour)
    video_out = color.scan_to_video(rgb / 1023, "log") @ np.array([0.299, 0.587, 0.114])
    video_in = color.scan_to_video(y_in / 1023, "log")
    assert inside.mean() > 0.5 and np.abs(video_out - video_in)[inside].max() < 0.01
    assert np.abs(rgb[..., 0] - rgb[..., 2]).mean() > 2  # coloured
    assert _cli(reel, "--frames-as", "tiff", "--scan-transfer", "log", "-o", tmp_path / "tif", *args).exit_code == 0
    with av.open(str(tmp_path / "tif" / "reel.0086401.tif")) as c:  # TIFF: at video levels
        tif = next(c.decode(video=0)).to_ndarray(format="rgb48le").astype(np.float64) / 65535
    want = color.scan_to_video(y_in / 1023, "log")
    assert np.abs(tif @ np.array([0.299, 0.587, 0.114]) - want)[inside].max() < 0.01

def test_an_interlaced_films_dpx_pictures_say_they_hold_two_fields(tmp_path):
    from helpers import tiny_model

    tape = tmp_path / "tape.dv"
    with av.open(str(tape), "w") as c:  # DV: interlaced, bottom field first
        vs = c.add_stream("dvvideo", rate=25)
        vs.width, vs.height, vs.pix_fmt = 720, 576, "yuv420p"
        write_grey_frames(c, vs, 2)
    assert media.probe(tape).interlaced
    r = _cli(tape, "--frames-as", "dpx", "--model", tiny_model(tmp_path / "t.safetensors"), "--set", "render_size=48")
    assert r.exit_code == 0, r.output
    head = (tmp_path / "tape.color" / "tape.0000002.dpx").read_bytes()[:2048]
    assert head[1928] == 1 and struct.unpack_from("<I", head, 1712)[0] == 2  # 2:1 interlace; frame 2


def test_picture_names_keep_the_scans_own_spelling():
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        upper = _scans(Path(tmp) / "a", [f"R1_{n:04d}.TIFF" for n in range(3)], bits=8)
        assert sequences.frame_names(upper, "tiff") == ("R1_%04d.TIFF", 0)
        assert sequences.frame_names(upper, "png") == ("R1_%04d.png", 0)
        assert sequences.frame_names(Path(tmp) / "film.mov", "dpx") == ("film.%07d.dpx", 1)
        assert sequences.names_pattern("R1_%04d.TIFF").match("R1_0002.TIFF")


def test_a_films_subtitle_sidecars_go_into_its_coloured_copy(tmp_path):
    from filmcolor.batch import discover
    from helpers import tiny_model

    film = synth.make_clip(tmp_path / "reel.mkv", frames=25, fps=25, color=False)
    cue = "1\n00:00:00,100 --> 00:00:00,600\n{}\n"
    (tmp_path / "reel.srt").write_text(cue.format("A title card"), encoding="utf-8")
    (tmp_path / "reel.fr.srt").write_text(cue.format("Un carton"), encoding="utf-8")
    (tmp_path / "reel.notes.srt").write_text(cue.format("not a language"), encoding="utf-8")
    (tmp_path / "other.srt").write_text(cue.format("another film's"), encoding="utf-8")
    assert _cli(film, "--model", tiny_model(tmp_path / "t.safetensors"), "--set", "render_size=48").exit_code == 0
    with av.open(str(tmp_path / "reel.color.mkv")) as c:
        subs = [s.metadata.get("language") for s in c.streams.subtitles]
        texts = [bytes(p) for p in c.demux(subtitles=0) if p.size]
    assert subs == ["fre", None] and b"Un carton" in texts[0]  # sorted by file name; the name's language
    (tmp_path / "reel.de.srt").write_bytes(b"\x00\x01 not subtitles")  # a broken sidecar: named, left out
    r = _cli(film, "--model", tiny_model(tmp_path / "t.safetensors"), "--set", "render_size=48", "-o", tmp_path / "b.mkv")
    assert r.exit_code == 0 and "reel.de.srt: not a sound or subtitle file" in " ".join(r.stderr.split())
    with av.open(str(tmp_path / "b.mkv")) as c:
        assert len(c.streams.subtitles) == 2
    reels, ignored = discover(tmp_path, tmp_path / "out")
    assert {"other.srt", "reel.notes.srt"} <= set(ignored)  # reel.srt and reel.fr.srt go with the film:
    assert not {"reel.srt", "reel.fr.srt"} & set(ignored)  # not listed among the files left alone


def test_a_rescanned_frame_of_another_size_is_written_at_its_own_size(tmp_path):
    import cv2

    from helpers import tiny_model

    reel = tmp_path / "reel"
    reel.mkdir()
    for i in range(5):
        w, h = (80, 60) if i == 2 else (64, 48)  # frame 2 rescanned at a higher resolution
        cv2.imwrite(str(reel / f"m{i:03d}.png"), synth.synthetic_frame(i, w, h, color=False))
    r = _cli(reel, "--frames-as", "png", "--model", tiny_model(tmp_path / "t.safetensors"), "--set", "render_size=48")
    assert r.exit_code == 0 and r.stderr.count("written at its own size") == 1, r.output
    shapes = [cv2.imread(str(tmp_path / "reel.color" / f"m{i:03d}.png")).shape for i in range(5)]
    assert shapes == [(48, 64, 3)] * 2 + [(60, 80, 3)] + [(48, 64, 3)] * 2
    big = cv2.imread(str(tmp_path / "reel.color" / "m002.png")).astype(int)
    grey = cv2.imread(str(reel / "m002.png"), cv2.IMREAD_GRAYSCALE).astype(int)
    assert np.abs(big[..., 0] - big[..., 2]).mean() > 2  # coloured, and the scan's own picture:
    assert np.abs(cv2.cvtColor(big.astype(np.uint8), cv2.COLOR_BGR2GRAY).astype(int) - grey).mean() < 3


def test_an_excerpts_pcm_sound_is_cut_at_the_sample(tmp_path):
    import wave

    from helpers import tiny_model

    reel = _dpx_reel(tmp_path / "reel1", 24, fps=24.0)  # one second
    ramp = (np.arange(48000) % 30000).astype("<i2")  # every sample tells where it was
    with wave.open(str(reel / "reel1.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(ramp.tobytes())
    args = ("--model", tiny_model(tmp_path / "t.safetensors"), "--set", "render_size=48")
    r = _cli(reel, "--start", "0.25", "--duration", "0.5", "-o", tmp_path / "cut.mkv", *args)
    assert r.exit_code == 0 and "12 frames" in r.stderr, r.output
    with av.open(str(tmp_path / "cut.mkv")) as c:
        packets = [p for p in c.demux(audio=0) if p.size]
        got = np.frombuffer(b"".join(bytes(p) for p in packets), "<i2")
        first = float(packets[0].pts * packets[0].time_base)
    # FFmpeg's WAV reader hands out 4096-sample packets (85 ms): without the cut the excerpt's sound
    # started up to 85 ms late and ran up to 85 ms long
    assert first == 0 and np.array_equal(got, ramp[12000:36000])


@pytest.mark.cuda
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_log_dpx_pictures_out_on_the_gpu_match_the_cpu(tmp_path):
    """The GPU composes chroma on the device (16-bit 4:4:4 here); the pictures must match the CPU's."""
    from filmcolor import pipeline
    from filmcolor.config import RunConfig
    from helpers import tiny_model

    reel = _dpx_reel(tmp_path / "reel1", 6, fps=24.0, timecode=0x01000000, transfer=1)
    model = str(tiny_model(tmp_path / "t.safetensors"))
    for device in ("cpu", "cuda"):
        config = RunConfig(model=model, device=device, precision="fp32", render_size=48, scan_transfer="log",
                           frames_as="dpx")
        assert pipeline.colorize_file(reel, tmp_path / device, config).frames == 6
    for name in sorted(p.name for p in reel.iterdir()):
        with av.open(str(tmp_path / "cpu" / name)) as c1, av.open(str(tmp_path / "cuda" / name)) as c2:
            x = next(c1.decode(video=0)).to_ndarray(format="rgb48le").astype(int)
            y = next(c2.decode(video=0)).to_ndarray(format="rgb48le").astype(int)
        assert np.abs(x - y).max() <= 4 * 64  # within 4 ten-bit codes (resampling rounding)
        assert sequences.scan_header(tmp_path / "cuda" / name).transfer == "printing density (log)"


def test_bigtiff_scans_are_named_not_read_as_a_film_without_frames(tmp_path):
    # FFmpeg's TIFF reader does not read BigTIFF: "no decodable video frames", which sent a restorer looking
    # for damage in good scans
    tifffile = pytest.importorskip("tifffile")
    reel = tmp_path / "reel"
    reel.mkdir()
    for n in range(1, 4):
        tifffile.imwrite(reel / f"r_{n:04d}.tif", synth.synthetic_frame(n, 64, 48, color=False)[..., 0], bigtiff=True)
    with pytest.raises(InputError, match=r"its pictures are BigTIFF \(r_0001.tif\), which FFmpeg's TIFF reader does "
                                         r"not read \(every frame would be lost\); save them as plain TIFF or DPX"):
        media.probe(reel)
    floats = tmp_path / "floats"  # another TIFF FFmpeg's reader lacks: the picture it cannot decode is named
    floats.mkdir()
    for n in range(1, 4):
        tifffile.imwrite(floats / f"f_{n:04d}.tif", synth.synthetic_frame(n, 64, 48, color=False)[..., 0] / 255.0)
    with pytest.raises(InputError, match=r"FFmpeg cannot decode its first picture, f_0001.tif \(a kind of TIF it "
                                         r"does not read, e.g. floating-point samples\)"):
        media.probe(floats)
