"""Segments: a film split at keyframes, coloured in parallel and joined equals a single run."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from filmcolor import synth, weights
from filmcolor.batch import batch, read_manifest, MANIFEST_NAME
from filmcolor.config import RunConfig
from filmcolor.model import UNetGenerator
from filmcolor.pipeline import colorize_file
from filmcolor.segments import plan_segments, safe_cuts


def make_gop_clip(path: Path, frames: int = 60, width: int = 64, height: int = 48, fps: int = 25,
                  gop: int = 8) -> Path:
    """A B&W synthetic film with B-frames, a keyframe every ``gop`` frames and an AAC tone."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"crf": "16", "preset": "ultrafast",
                      "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=2"}
        a = out.add_stream("aac", rate=48000)
        a.layout, a.format = "stereo", "fltp"
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(synth.synthetic_frame(i, width, height, color=False), format="rgb24")
            f = f.reformat(format="yuv420p")
            f.pts, f.time_base = i, Fraction(1, fps)
            out.mux(vs.encode(f))
        out.mux(vs.encode())
        for fr in synth._tone(frames / fps, 48000, "fltp", "stereo", 220.0, a.codec_context.frame_size or 1024):
            out.mux(a.encode(fr))
        out.mux(a.encode())
    return path


def _streams(path: Path):
    with av.open(str(path)) as c:
        audio = [(p.pts, p.dts, bytes(p)) for p in c.demux(c.streams.audio[0]) if p.size]
    with av.open(str(path)) as c:
        frames = [(f.pts, f.to_ndarray()) for f in c.decode(video=0)]
    return audio, frames


def test_safe_cuts_skip_open_gop_keyframes():
    # decode order (pts, keyframe): I0 P3 B1 B2 | I4 P7 B5 B6 | I10 B8 B9 (open GOP: B8, B9 precede I10)
    packets = [(0, True), (3, False), (1, False), (2, False), (4, True), (7, False), (5, False), (6, False),
               (10, True), (8, False), (9, False)]
    assert safe_cuts(packets) == [0, 4, 11]


def test_plan_segments_on_keyframes(tmp_path):
    src = make_gop_clip(tmp_path / "clip.mp4", frames=60, gop=8)
    plan = plan_segments(src, 3, overlap=12)
    assert plan.frames == 60 and len(plan.segments) == 3
    segs = plan.segments
    assert segs[0].keep_start == 0 and segs[-1].keep_end == 60
    for s, t in zip(segs, segs[1:]):
        assert s.keep_end == t.keep_start and t.keep_start % 8 == 0  # contiguous, on keyframes
        assert t.keep_start - t.start >= 12 and t.start % 8 == 0      # lead-in of at least `overlap`
    few = plan_segments(src, 100, overlap=0)  # never more segments than keyframes
    assert len(few.segments) == 8


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    return weights.save_generator(UNetGenerator(ngf=4, num_downs=5), path, "unet", {"ngf": 4, "num_downs": 5})


@pytest.mark.slow
@pytest.mark.parametrize("codec", ["h264", "ffv1"])
def test_three_segments_equal_a_plain_run(tmp_path, tiny_model, codec):
    """Frames, timestamps and audio equal a plain run's. The colours are compared exactly on the
    lossless codec (away from the seams: within 1 code, the float rounding of different batch slices
    in the worker processes). With H.264 the joined film is a second x264 encode of (nearly) the same
    frames, whose rate control does not reproduce the first bit for bit, so there only the mean
    difference is bounded."""
    src_dir = tmp_path / "reels"
    src_dir.mkdir()
    src = make_gop_clip(src_dir / "film.mp4", frames=60, gop=8)
    cfg = RunConfig(model=str(tiny_model), device="cpu", render_size=64, codec=codec)
    plain = colorize_file(src, tmp_path / "plain.mp4", cfg)

    out = tmp_path / "out"
    rep = batch(src_dir, out, cfg, segments=3, jobs=2)  # segments coloured by 2 worker processes
    assert rep.exit_code == 0, rep.to_dict()
    assert read_manifest(out / MANIFEST_NAME)["film.mp4"]["segments"] == 3
    joined = out / "film.color.mp4"
    assert not [p for p in out.rglob(".*") if p.name != ".filmcolor-batch.lock"]  # intermediates removed

    audio_p, frames_p = _streams(plain.dst)
    audio_s, frames_s = _streams(joined)
    assert len(frames_s) == len(frames_p) == 60
    assert [p for p, _ in frames_s] == [p for p, _ in frames_p]          # timestamps
    assert audio_s == audio_p and len(audio_p) > 50                       # audio packets, bit for bit
    seams = {s.keep_start for s in plan_segments(src, 3).segments[1:]}
    for i, ((_, a), (_, b)) in enumerate(zip(frames_p, frames_s)):
        diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
        if codec == "ffv1" and all(abs(i - s) > 2 for s in seams):
            assert diff.max() <= 1, f"frame {i}: differs by {diff.max()}"
        assert diff.mean() < 1.0


def test_segments_of_a_dv_tape_are_remuxed_where_matroska_cannot_hold_dv(tmp_path, tiny_model):
    """DV cannot go into Matroska, where segments are cut to; those pieces go into NUT. The joined
    film has every frame and stays interlaced, bottom field first like the tape."""
    from filmcolor import media
    from filmcolor.segments import colorize_segmented

    src = tmp_path / "tape.dv"
    with av.open(str(src), "w") as c:  # DV: every frame a keyframe, so any cut is safe
        s = c.add_stream("dvvideo", rate=25)
        s.width, s.height, s.pix_fmt = 720, 576, "yuv420p"
        for i in range(30):
            img = synth.synthetic_frame(i, 720, 576, color=False)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    cfg = RunConfig(model=str(tiny_model), device="cpu", render_size=64)
    result = colorize_segmented(src, tmp_path / "tape.color.mkv", cfg, segments=2)
    assert result.frames == 30
    info = media.probe(result.dst)
    assert info.field_order == media.FIELD_BB
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tape.color.mkv", "tape.dv"]  # no pieces left


def _archive_film(path: Path, codec: str, options: dict, pix_fmt: str, frames: int = 40) -> Path:
    """A B&W film as archives hold them: MPEG-2 in an MPEG program stream (DVD, broadcast capture)
    or DNxHR in MOV (an Avid master), each with its sound, a keyframe every 8 frames."""
    with av.open(str(path), "w") as c:
        v = c.add_stream(codec, rate=25, options=options)
        v.width, v.height, v.pix_fmt = 320, 240, pix_fmt
        v.codec_context.gop_size = 8
        a = c.add_stream("mp2" if path.suffix == ".mpg" else "pcm_s16le", rate=48000)
        a.layout = "stereo"
        for i in range(frames):
            img = synth.synthetic_frame(i, 320, 240, color=False)
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format=pix_fmt)):
                c.mux(p)
            tone = (np.sin(np.arange(1920) / 9.0) * 8000).astype(np.int16)
            sound = av.AudioFrame.from_ndarray(np.stack([tone, tone]).T.reshape(1, -1), format="s16", layout="stereo")
            sound.sample_rate, sound.pts = 48000, i * 1920
            for p in a.encode(sound):
                c.mux(p)
        for stream in (v, a):
            for p in stream.encode():
                c.mux(p)
    return path


@pytest.mark.parametrize("name,codec,options,pix_fmt", [
    # the demuxer's seek in a program stream (by bytes) landed past the keyframe: "segment 1: copied 0 of 16
    # packets", and the film failed (exit 3) with a segment coloured
    ("dvd.mpg", "mpeg2video", {}, "yuv420p"),
    # neither Matroska nor NUT holds DNxHD: "unexpected error: 'nut' format does not support 'dnxhd' codec"
    ("master.mov", "dnxhd", {"profile": "dnxhr_lb"}, "yuv422p"),
])
def test_segments_of_films_in_archive_formats_join_into_what_a_plain_run_writes(tmp_path, tiny_model, name, codec,
                                                                                options, pix_fmt):
    from filmcolor.segments import colorize_segmented

    src = _archive_film(tmp_path / name, codec, options, pix_fmt)
    assert len(plan_segments(src, 3).segments) == 3
    cfg = RunConfig(model=str(tiny_model), device="cpu", render_size=64, smooth="off")
    plain = colorize_file(src, tmp_path / "plain.mkv", cfg)
    result = colorize_segmented(src, tmp_path / "parts.mkv", cfg, segments=3)
    assert result.frames == plain.frames == 40
    audio_p, frames_p = _streams(plain.dst)
    audio_s, frames_s = _streams(result.dst)
    assert [p for p, _ in frames_s] == [p for p, _ in frames_p] and audio_s == audio_p
    assert max(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean() for (_, a), (_, b) in zip(frames_p, frames_s)) < 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "plain.mkv", "parts.mkv"])  # no pieces left


def test_segmented_run_keeps_the_films_labels(tmp_path, tiny_model):
    """Pieces carry no labels; the join takes them from the source, as a plain run does."""
    from filmcolor.segments import colorize_segmented
    from helpers import labelled_film, read_labels

    src = labelled_film(tmp_path / "reel.mkv", color=False)
    assert len(plan_segments(src, 2).segments) == 2
    cfg = RunConfig(model=str(tiny_model), device="cpu", render_size=64)
    result = colorize_segmented(src, tmp_path / "reel.color.mkv", cfg, segments=2)
    assert result.frames == 50
    assert read_labels(result.dst) == read_labels(src)


def _avi_with_b_frames(path: Path, frames: int = 60) -> Path:
    """H.264 with B-frames in AVI: FFmpeg stamps its packets in decode order (see media.decode)."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        vs.options = {"crf": "16", "preset": "medium", "x264-params": "bframes=3:keyint=10:min-keyint=10:scenecut=0"}
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(synth.synthetic_frame(i, 64, 48, color=False), format="rgb24")
            f = f.reformat(format="yuv420p")
            f.pts = i
            out.mux(vs.encode(f))
        out.mux(vs.encode())
    return path


@pytest.mark.parametrize("make", [
    lambda d: make_gop_clip(d / "film.mp4", frames=150, gop=25),  # pieces start 2 and 4 s in
    lambda d: _avi_with_b_frames(d / "film.avi"),
], ids=["mp4-6s", "avi-b-frames"])
def test_segments_that_start_seconds_into_the_film(tmp_path, tiny_model, make):
    """A piece that starts seconds into the film used to be taken for a truncated file: Matroska's
    DURATION tag is where the track ends, and it was added to the piece's start. AVI pieces carry
    decode-order timestamps that the decoder must put back in order."""
    from filmcolor.segments import colorize_segmented

    src = make(tmp_path)
    plan = plan_segments(src, 3)
    assert len(plan.segments) == 3
    result = colorize_segmented(src, tmp_path / "out.mkv", RunConfig(model=str(tiny_model), device="cpu",
                                                                    render_size=64), segments=3)
    with av.open(str(result.dst)) as c:
        times = [f.pts * f.time_base for f in c.decode(video=0)]
    assert len(times) == plan.frames and times == sorted(times) and len(set(times)) == len(times)


def test_a_run_asked_for_parts_it_cannot_have_says_so(tmp_path, tiny_model):
    # a stretch, or a folder of scans, was coloured in one part without a word: the user who asked for
    # parts to resume a stop would find none after one
    from filmcolor.segments import colorize_segmented

    src = make_gop_clip(tmp_path / "film.mp4", frames=48, gop=8)
    cfg = RunConfig(model=str(tiny_model), device="cpu", render_size=64, smooth="off")
    said: list[str] = []
    result = colorize_segmented(src, tmp_path / "part.mp4", dataclasses.replace(cfg, start=0.4), segments=3,
                                warn=said.append)
    assert result.frames == 38 and said == [f"{src}: a stretch (--start/--duration) is coloured in one part, not 3: "
                                            "a stopped run starts it again"]
    said.clear()
    colorize_segmented(src, tmp_path / "whole.mp4", cfg, segments=3, warn=said.append)
    assert said == []  # parts, as asked


def test_a_reel_of_scans_is_coloured_in_parts_that_a_stopped_run_resumes(tmp_path, tiny_model, monkeypatch):
    """A feature as DPX or TIFF scans ran in one part: a stop meant starting again. The parts are now
    planned from the file list (every picture is a safe cut), read in place as stretches of the reel,
    and joined with the reel's own sound file into what a plain run writes."""
    import cv2

    from filmcolor import segments
    from filmcolor.segments import colorize_segmented

    reel = tmp_path / "reel7"
    reel.mkdir()
    for i in range(40):
        cv2.imwrite(str(reel / f"reel7_{86400 + i:07d}.png"), synth.synthetic_frame(i, 64, 48, color=False))
    with av.open(str(reel / "reel7.wav"), "w") as c:  # the reel's scanned sound, delivered inside its folder
        a = c.add_stream("pcm_s16le", rate=8000)
        a.layout = "mono"
        sound = av.AudioFrame.from_ndarray(np.zeros((1, 12800), np.int16), format="s16", layout="mono")
        sound.sample_rate, sound.pts = 8000, 0
        for p in a.encode(sound):
            c.mux(p)
    cfg = RunConfig(model=str(tiny_model), device="cpu", render_size=64, codec="ffv1", sequence_fps="25")
    plain = colorize_file(reel, tmp_path / "plain.mkv", cfg)
    real, coloured = segments.colorize_segment, []

    def stopped_at_the_third(src_, seg, work, config, area):
        if seg.index == 2:
            raise KeyboardInterrupt
        coloured.append(seg.index)
        return real(src_, seg, work, config, area)

    monkeypatch.setattr(segments, "colorize_segment", stopped_at_the_third)
    dst = tmp_path / "parts.mkv"
    with pytest.raises(KeyboardInterrupt):
        colorize_segmented(reel, dst, cfg, segments=3)
    assert coloured == [0, 1] and not dst.exists()
    monkeypatch.setattr(segments, "colorize_segment", lambda *a: coloured.append(a[1].index) or real(*a))
    said: list[str] = []
    result = colorize_segmented(reel, dst, cfg, segments=3, warn=said.append)
    assert coloured == [0, 1, 2] and any("resuming: 2 of 3 segments" in w for w in said)
    assert result.frames == plain.frames == 40
    audio_p, frames_p = _streams(plain.dst)
    audio_s, frames_s = _streams(result.dst)
    assert [p for p, _ in frames_s] == [p for p, _ in frames_p] and audio_s == audio_p and audio_p
    assert max(np.abs(a.astype(np.int16) - b.astype(np.int16)).max() for (_, a), (_, b) in zip(frames_p, frames_s)) <= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parts.mkv", "plain.mkv", "reel7"]  # parts removed


def test_an_interrupted_segmented_run_resumes_with_the_segments_it_finished(tmp_path, tiny_model, monkeypatch):
    from filmcolor import segments
    from filmcolor.segments import colorize_segmented

    src = make_gop_clip(tmp_path / "reel.mp4", frames=60)
    dst = tmp_path / "reel.color.mkv"
    cfg = RunConfig(model=str(tiny_model), device="cpu", render_size=64, smooth="ema")
    assert len(plan_segments(src, 3).segments) == 3
    real = segments.colorize_segment
    coloured: list[int] = []

    def stopped_at_the_third(src_, seg, work, config, area):
        if seg.index == 2:
            raise KeyboardInterrupt  # Ctrl-C while the third segment is coloured
        coloured.append(seg.index)
        return real(src_, seg, work, config, area)

    monkeypatch.setattr(segments, "colorize_segment", stopped_at_the_third)
    told: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        colorize_segmented(src, dst, cfg, segments=3, warn=told.append)
    assert not dst.exists() and coloured == [0, 1]
    assert told and told[-1].startswith(f"{src}: 2 of 3 coloured segments kept in ") and "resumes" in told[-1]
    work = [p for p in tmp_path.iterdir() if ".segwork-" in p.name]
    assert len(work) == 1 and sorted(p.name for p in work[0].glob("col*.nut")) == ["col0000.nut", "col0001.nut"]

    def counting(src_, seg, work_, config, area):
        coloured.append(seg.index)
        return real(src_, seg, work_, config, area)

    monkeypatch.setattr(segments, "colorize_segment", counting)
    said: list[str] = []
    done: list[tuple[int, int]] = []
    result = colorize_segmented(src, dst, cfg, segments=3, warn=said.append, progress=lambda a, b: done.append((a, b)))
    assert coloured == [0, 1, 2] and result.frames == 60  # only the missing segment was coloured
    assert any("resuming: 2 of 3 segments" in w for w in said) and done[-1] == (60, 60)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reel.color.mkv", "reel.mp4"]  # work folder gone
    fresh = colorize_segmented(src, tmp_path / "fresh.mkv", cfg, segments=3)
    assert _streams(fresh.dst)[1] and [p for p, _ in _streams(fresh.dst)[1]] == [p for p, _ in _streams(dst)[1]]
    for (_, a), (_, b) in zip(_streams(fresh.dst)[1], _streams(dst)[1]):
        assert np.array_equal(a, b)  # the resumed film is the one an uninterrupted run makes
    # other settings: the work of the first run is of no use and goes
    with pytest.raises(KeyboardInterrupt):
        monkeypatch.setattr(segments, "colorize_segment", stopped_at_the_third)
        colorize_segmented(src, tmp_path / "again.mkv", cfg, segments=3)
    coloured.clear()
    monkeypatch.setattr(segments, "colorize_segment", counting)
    colorize_segmented(src, tmp_path / "again.mkv", dataclasses.replace(cfg, saturation=1.5), segments=3)
    assert coloured == [0, 1, 2] and not [p for p in tmp_path.iterdir() if ".segwork-" in p.name]


def test_run_segments_colours_a_film_in_parts_from_the_command_line(tmp_path, tiny_model):
    from click.testing import CliRunner

    from filmcolor.cli import main

    src = make_gop_clip(tmp_path / "reel.mp4", frames=40)
    args = ["run", str(src), "--model", str(tiny_model), "--set", "render_size=64", "--segments", "3"]
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    assert r.exit_code == 0 and "40 frames" in r.stderr, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reel.color.mp4", "reel.mp4"]
    assert len(_streams(tmp_path / "reel.color.mp4")[1]) == 40
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    assert r.exit_code == 2 and "already exists" in r.stderr  # the output rule of a plain run
    r = CliRunner().invoke(main, args + ["--frames-as", "png", "-o", str(tmp_path / "p")], catch_exceptions=False)
    assert r.exit_code == 2 and "not with --frames-as" in r.stderr
    (tmp_path / "cards.srt").write_text("1\n00:00:00,100 --> 00:00:00,900\nA title card\n", encoding="utf-8")
    r = CliRunner().invoke(main, args + ["--add-track", str(tmp_path / "cards.srt"), "-o", str(tmp_path / "t.mkv")],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    with av.open(str(tmp_path / "t.mkv")) as c:  # the film's own sound, then the added subtitles
        assert [s.type for s in c.streams] == ["video", "audio", "subtitle"]
    (tmp_path / "reel.en.srt").write_text("1\n00:00:00,100 --> 00:00:00,900\nA card\n", encoding="utf-8")
    r = CliRunner().invoke(main, args + ["-o", str(tmp_path / "s.mkv")], catch_exceptions=False)
    with av.open(str(tmp_path / "s.mkv")) as c:  # a sidecar named after the film goes in by itself
        assert [(s.type, s.metadata.get("language")) for s in c.streams][-1] == ("subtitle", "eng")


def test_a_segmented_run_of_linear_footage_is_tagged_as_the_video_it_became(tmp_path, tiny_model):
    from filmcolor import media
    from filmcolor.segments import colorize_segmented

    src = tmp_path / "linear.mkv"  # FFV1 tagged linear light (as from an OpenEXR conversion), a keyframe a frame
    with av.open(str(src), "w") as c:
        vs = c.add_stream("ffv1", rate=25)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "gbrp16le"
        vs.codec_context.color_trc = 8
        for i in range(20):
            f = av.VideoFrame.from_ndarray(synth.synthetic_frame(i, 64, 48, color=False), format="rgb24")
            f = f.reformat(format="gbrp16le")
            f.pts = i
            c.mux(vs.encode(f))
        c.mux(vs.encode())
    assert media.probe(src).color_trc == 8
    cfg = RunConfig(model=str(tiny_model), device="cpu", render_size=64, scan_transfer="linear", codec="ffv1")
    result = colorize_segmented(src, tmp_path / "video.mkv", cfg, segments=2)
    assert result.frames == 20 and media.probe(result.dst).color_trc == 13
