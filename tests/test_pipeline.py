"""Pipeline, inference and compose on CPU with a tiny random model and tiny synthetic clips."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from filmcolor import color, compose, media, outputs, pipeline, preview, stills, synth
from filmcolor.config import RunConfig
from filmcolor.errors import InputError, OutputError, ProcessingError
from filmcolor.inference import Colorizer, pad_to_multiple, resolve_device
from helpers import sha256, tiny_generator, tiny_model


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("model") / "tiny.safetensors")


@pytest.fixture(scope="module")
def colorizer() -> Colorizer:
    return Colorizer(tiny_generator(), "cpu", "fp32", batch_size=4, render_size=48)


def config(model_path: Path, **kw) -> RunConfig:
    return RunConfig(model=str(model_path), device="cpu", render_size=48, batch_size=4, **kw)


def video_frames(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as c:
        return list(c.decode(video=0))


def audio_packets(path: Path) -> list[list[tuple[bytes, float]]]:
    """Per audio stream: (payload, pts in seconds) of every packet."""
    with av.open(str(path)) as c:
        streams = list(c.streams.audio)
        if not streams:
            return []
        out: dict[int, list] = {s.index: [] for s in streams}
        for p in c.demux(streams):
            if p.size:
                out[p.stream.index].append((bytes(p), float(p.pts * p.time_base)))
        return [out[s.index] for s in streams]


def psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


def listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


# --- inference --------------------------------------------------------------------------------------
@pytest.mark.parametrize("hw, expected", [((48, 64), (48, 64)), ((480, 854), (48, 85)), ((101, 51), (95, 48)),
                                          ((24, 24), (48, 48))])
def test_render_shape_keeps_aspect(colorizer, hw, expected):
    assert colorizer.render_shape(*hw) == expected


@pytest.mark.parametrize("hw", [(37, 53), (48, 48), (5, 7)])
def test_pad_to_multiple_odd_sizes(hw):
    x = torch.arange(hw[0] * hw[1], dtype=torch.float32).reshape(1, 1, *hw)
    padded, (l, r, t, b) = pad_to_multiple(x, 32)
    assert padded.shape[-2] % 32 == 0 and padded.shape[-1] % 32 == 0
    assert torch.equal(padded[..., t:t + hw[0], l:l + hw[1]], x)  # the crop gives the image back


def test_predict_ab_shapes_and_batch_independence(colorizer):
    rng = np.random.default_rng(0)
    L = rng.uniform(0, 100, (5, 37, 53)).astype(np.float32)
    ab = colorizer.predict_ab(L)
    assert ab.shape == (5, 2, 37, 53) and ab.dtype == np.float32
    assert np.isfinite(ab).all() and np.abs(ab).max() <= 110.0 + 1e-3
    assert np.abs(ab).mean() > 5  # the tiny model's bias makes colour, not grey
    one = colorizer.predict_ab(L[2:3])
    np.testing.assert_allclose(one[0], ab[2], atol=1e-3)


def test_saturation_multiplies_the_predicted_ab():
    L = np.random.default_rng(2).uniform(0, 100, (3, 48, 64)).astype(np.float32)
    gen = tiny_generator()
    base = Colorizer(gen, "cpu", "fp32", batch_size=4, render_size=48).predict_ab(L)
    vivid = Colorizer(gen, "cpu", "fp32", batch_size=4, render_size=48, saturation=1.5).predict_ab(L)
    np.testing.assert_array_equal(vivid, base * np.float32(1.5))
    assert not Colorizer(gen, "cpu", "fp32", render_size=48, saturation=0.0).predict_ab(L).any()
    with pytest.raises(ValueError, match="saturation"):
        Colorizer(gen, "cpu", "fp32", render_size=48, saturation=-0.1)
    with pytest.raises(ValueError, match="saturation"):
        RunConfig(saturation=3.5)


def test_oom_halves_batch_and_retries(monkeypatch):
    col = Colorizer(tiny_generator(), "cpu", "fp32", batch_size=8, render_size=48)
    L = np.random.default_rng(1).uniform(0, 100, (8, 48, 64)).astype(np.float32)
    expected = col.predict_ab(L)
    real, calls, halvings = col._forward, [], []

    def flaky(x):
        calls.append(len(x))
        if len(x) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return real(x)

    monkeypatch.setattr(col, "_forward", flaky)
    col.on_oom = lambda old, new: halvings.append((old, new))
    got = col.predict_ab(L)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert halvings == [(8, 4), (4, 2)]
    assert col.batch_size == 2  # remembered for the rest of the film
    assert calls == [8, 4, 2, 2, 2, 2]  # every frame predicted exactly once after the failures


def test_oom_at_batch_one_fails_never_grey(monkeypatch):
    col = Colorizer(tiny_generator(), "cpu", "fp32", batch_size=4, render_size=48)

    def always(_x):
        raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    monkeypatch.setattr(col, "_forward", always)
    with pytest.raises(ProcessingError, match="out of memory"):
        col.predict_ab(np.zeros((3, 48, 48), np.float32))
    assert col.batch_size == 1


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


# --- compose -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("bits, full", [(8, False), (10, False), (8, True)])
def test_compose_planes_grey_ab_gives_mid_chroma_and_keeps_y(bits, full):
    rng = np.random.default_rng(2)
    dtype = np.uint8 if bits == 8 else np.uint16
    lo, hi = (0, (1 << bits)) if full else (16 << (bits - 8), (235 << (bits - 8)) + 1)
    y = rng.integers(lo, hi, (47, 63)).astype(dtype)
    mid = 1 << (bits - 1)
    planes = media.Planes(y=y.copy(), u=np.full((24, 32), mid, dtype), v=np.full((24, 32), mid, dtype),
                          bit_depth=bits, full_range=full, matrix="bt601")
    u, v = compose.compose_planes(planes, np.zeros((2, 30, 40), np.float32))
    assert u.shape == (24, 32) and u.dtype == dtype
    assert np.abs(u.astype(int) - mid).max() <= 2 << (bits - 8) and np.abs(v.astype(int) - mid).max() <= 2 << (bits - 8)
    assert np.array_equal(planes.y, y)  # never modified
    u2, v2 = compose.compose_planes(planes, np.stack([np.full((30, 40), 40.0), np.full((30, 40), -30.0)]).astype(np.float32))
    assert v2.astype(int).mean() > mid + (5 << (bits - 8))  # +a (red) raises Cr
    assert u2.astype(int).mean() > mid  # -b (blue) raises Cb


def test_compose_rgb_keeps_L():
    L = np.tile(np.linspace(20, 80, 64, dtype=np.float32), (48, 1))
    ab = np.stack([np.full((12, 16), 10.0), np.full((12, 16), 15.0)]).astype(np.float32)
    rgb = compose.compose_rgb(L, ab)
    assert rgb.shape == (48, 64, 3)
    np.testing.assert_allclose(color.rgb_to_lab_np(rgb)[..., 0], L, atol=1.0)


# --- streaming helpers ---------------------------------------------------------------------------------
def test_prefetch_is_bounded_and_propagates_errors():
    produced = []

    def gen():
        for i in range(100):
            produced.append(i)
            yield i

    it = pipeline.prefetch(gen(), 3)
    assert next(it) == 0
    time.sleep(0.2)
    assert len(produced) <= 3 + 2  # queue size + one in hand + one being put
    it.close()

    def bad():
        yield 1
        raise InputError("x.mp4", "broken")

    with pytest.raises(InputError, match="broken"):
        list(pipeline.prefetch(bad(), 2))
    assert not [t for t in threading.enumerate() if t.name == "filmcolor-decode" and t.is_alive()]


def test_default_output_names():
    assert outputs.default_output(Path("/x/movie.mp4")) == Path("/x/movie.color.mp4")
    assert outputs.default_output(Path("reel.MKV")) == Path("reel.color.MKV")
    assert outputs.default_output(Path("photo.JPG")) == Path("photo.color.png")
    assert outputs.default_output(Path("clip.webm")) == Path("clip.color.mkv")


# --- video end to end -------------------------------------------------------------------------------------
CLIPS = [
    # name, size, fps, audio streams, vfr, source codec, output codec
    ("even.mp4", (64, 48), 25, ("aac",), False, "libx264", "h264"),
    ("odd.mkv", (63, 47), Fraction(24000, 1001), ("libopus", "pcm_s16le"), False, "ffv1", "h264"),
    ("vfr.mov", (64, 48), Fraction(30000, 1001), ("aac",), True, "libx264", "h264"),
    ("lossless.mkv", (64, 48), 25, (), False, "libx264", "ffv1"),
]


@pytest.mark.parametrize("name, size, fps, audio, vfr, src_codec, codec", CLIPS, ids=[c[0] for c in CLIPS])
def test_video_keeps_frames_timestamps_luma_audio_and_adds_colour(tmp_path, model_path, name, size, fps, audio,
                                                                    vfr, src_codec, codec):
    src = synth.make_clip(tmp_path / name, frames=20, width=size[0], height=size[1], fps=fps, audio=audio,
                          vfr=vfr, color=False, codec=src_codec)
    before = sha256(src)
    seen = []
    result = pipeline.colorize_file(src, config=config(model_path, codec=codec),
                                    progress=lambda d, t: seen.append((d, t)))
    assert result.dst == tmp_path / f"{Path(name).stem}.color{Path(name).suffix}" and result.dst.is_file()
    assert result.frames == 20 and result.kind == "video"
    assert seen[-1] == (20, 20) and [d for d, _ in seen] == list(range(1, 21))
    assert sha256(src) == before
    assert listing(tmp_path) == {name, result.dst.name}  # no temp leftovers

    fin, fout = video_frames(src), video_frames(result.dst)
    assert len(fout) == len(fin) == 20
    tol = 0.0011 if name.endswith(".mkv") else 1e-9  # Matroska stores milliseconds
    for a, b in zip(fin, fout):
        assert abs(float(a.pts * a.time_base) - float(b.pts * b.time_base)) <= tol
        assert (b.width, b.height) == (a.width, a.height)
    pix = media.writer_pix_fmt(codec, media.probe(src))
    worst, chroma = float("inf"), []
    for a, b in zip(fin, fout):
        pa, pb = media.frame_to_planes(a, pix), media.frame_to_planes(b, pix)
        worst = min(worst, psnr(pa.y, pb.y, (1 << pa.bit_depth) - 1))
        mid = 1 << (pb.bit_depth - 1)
        chroma.append(np.abs(pb.v.astype(int) - mid).mean() + np.abs(pb.u.astype(int) - mid).mean())
    assert worst >= 40.0, f"luma PSNR {worst:.1f} dB"
    if codec == "ffv1":
        assert worst == float("inf")  # lossless: the source's Y plane, bit for bit
    assert min(chroma) > 3.0, "output has no colour"

    ain, aout = audio_packets(src), audio_packets(result.dst)
    assert len(aout) == len(audio)
    for pin, pout in zip(ain, aout):
        assert [p for p, _ in pout] == [p for p, _ in pin]  # identical payloads
        assert all(abs(ti - to) <= tol + 1e-6 for (_, ti), (_, to) in zip(pin, pout))


def test_segment_start_duration(tmp_path, model_path):
    src = synth.make_clip(tmp_path / "a.mp4", frames=25, color=False)
    result = pipeline.colorize_file(src, tmp_path / "seg.mp4", config(model_path, start=0.2, duration=0.4))
    assert result.frames == 10 and len(video_frames(result.dst)) == 10


@pytest.mark.parametrize("start,duration,first", [(0.4, 0.4, 10), (None, 0.3, 0), (1.2, None, 30)])
def test_a_stretch_counts_from_the_first_frame_where_the_streams_clock_does_not_start_at_zero(
        tmp_path, model_path, start, duration, first):
    # an MPEG program stream (DVD, broadcast capture) starts its clock at 0.5 s, a transport stream anywhere;
    # --start was read on that clock (--start 0.4 coloured from the first frame on) and a --duration alone
    # ended before the first frame: "no decodable video frames". Players and ffmpeg -ss count from the film's
    # start, and the demuxer's seek there lands past the keyframe asked for
    src = synth.make_clip(tmp_path / "dvd.mpg", codec="mpeg2video", frames=50, color=False, audio=("ac3",))
    with av.open(str(src)) as c:
        assert c.streams.video[0].start_time * c.streams.video[0].time_base >= Fraction(1, 2)
    source = [f.to_ndarray(format="gray") for f in video_frames(src)]
    result = pipeline.colorize_file(src, tmp_path / "out.mkv", config(model_path, codec="ffv1", start=start,
                                                                       duration=duration))
    want = source[first:] if duration is None else source[first:first + round(duration * 25)]
    got = [f.to_ndarray(format="gray") for f in video_frames(result.dst)]
    assert result.frames == len(got) == len(want)
    assert all(np.array_equal(a, b) for a, b in zip(got, want))  # the film's own luminance, frame for frame


def test_a_stretch_of_a_film_whose_demuxer_cannot_seek_by_time_keeps_its_sound(tmp_path, model_path):
    # an FLV without an index refuses a seek by time (EPERM) and is left part-way through: the run failed
    # with "cannot write: Operation not permitted" (exit 3), and once that was caught, the stretch had no sound
    src = synth.make_clip(tmp_path / "web.flv", codec="flv", frames=50, width=64, height=48, color=False,
                          audio=("libmp3lame",))
    with av.open(str(src)) as c, pytest.raises(av.error.FFmpegError):
        c.seek(0, backward=True, any_frame=True)
    result = pipeline.colorize_file(src, tmp_path / "out.mkv", config(model_path, start=0.5, duration=1.0))
    assert result.frames == len(video_frames(result.dst)) == 25
    with av.open(str(result.dst)) as c:
        seconds = sum(f.samples for f in c.decode(audio=0)) / c.streams.audio[0].sample_rate
    assert abs(seconds - 1.0) < 0.1


def _spliced_capture(path: Path, second_from: int, second_size: tuple[int, int]) -> Path:
    """Two 40-frame MPEG-TS recordings joined byte for byte, as a capture of a broadcast or a tape
    is spliced: the second begins at frame ``second_from`` (before 40: their pictures and sound
    overlap in time) and may have another picture size."""
    pieces = []
    for k, (start, (w, h)) in enumerate([(0, (96, 64)), (second_from, second_size)]):
        piece = path.with_name(f"piece{k}.ts")
        with av.open(str(piece), "w") as c:
            v = c.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
            v.width, v.height, v.pix_fmt = w, h, "yuv420p"
            a = c.add_stream("aac", rate=48000)
            a.layout = "stereo"
            for i in range(start, start + 40):
                frame = av.VideoFrame.from_ndarray(synth.synthetic_frame(i, w, h, color=False), format="rgb24")
                frame = frame.reformat(format="yuv420p")
                frame.pts, frame.time_base = i * 3600, Fraction(1, 90000)
                for p in v.encode(frame):
                    c.mux(p)
            for i in range(start * 48000 // 25 // 1024, (start + 40) * 48000 // 25 // 1024):
                sound = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
                sound.sample_rate, sound.pts = 48000, i * 1024
                for p in a.encode(sound):
                    c.mux(p)
            for stream in (v, a):
                for p in stream.encode():
                    c.mux(p)
        pieces.append(piece.read_bytes())
    path.write_bytes(b"".join(pieces))
    return path


@pytest.mark.parametrize("second_from,size,frames", [(40, (128, 72), 80), (37, (96, 64), 77)])
def test_a_spliced_capture_is_coloured_whole_even_where_its_pieces_overlap_in_time(tmp_path, model_path,
                                                                                  second_from, size, frames):
    # the second piece's sound repeated the first's last packets, and with overlapping pieces its first
    # frames went back in time: no muxer takes either, and the whole film failed ("cannot write: Invalid
    # argument", exit 3). What goes back in time is left out, with a warning; the rest keeps its place
    src = _spliced_capture(tmp_path / "capture.ts", second_from, size)
    warnings: list[str] = []
    result = pipeline.colorize_file(src, tmp_path / "out.mkv", config(model_path), warn=warnings.append)
    times = [f.time for f in video_frames(result.dst)]
    assert result.frames == len(times) == frames and times == sorted(set(times))
    went_back = [w for w in warnings if "going back in time" in w and "left out" in w]
    assert any("audio stream 1" in w for w in went_back)  # the AAC encoder's lead-in repeats the splice's sound
    frames_back = [w for w in went_back if "frame(s)" in w]
    assert frames_back == ([f"{src}: 3 frame(s) going back in time from 1.48 s (a splice in the recording, its "
                            "pieces overlapping) left out"] if second_from < 40 else [])
    with av.open(str(result.dst)) as c:
        stamps = [p.dts for p in c.demux(audio=0) if p.size]
    assert stamps == sorted(set(stamps)) and len(stamps) > 60


def test_a_film_with_an_alpha_channel_is_said_to_come_out_opaque(tmp_path, model_path):
    # ProRes 4444 (a graphics or titles master) lost its transparency without a word
    src = tmp_path / "titles.mov"
    with av.open(str(src), "w") as c:
        s = c.add_stream("prores_ks", rate=24, options={"profile": "4"})
        s.width, s.height, s.pix_fmt = 64, 48, "yuva444p10le"
        for i in range(3):
            rgba = np.dstack([synth.synthetic_frame(i, 64, 48, color=False), np.full((48, 64), 200, np.uint8)])
            for p in s.encode(av.VideoFrame.from_ndarray(rgba, format="rgba").reformat(format="yuva444p10le")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    warnings: list[str] = []
    result = pipeline.colorize_file(src, tmp_path / "out.mkv", config(model_path), warn=warnings.append)
    assert result.frames == 3
    assert [w for w in warnings if "alpha" in w] == [
        f"{src}: its pictures have an alpha channel (yuva444p12le); the coloured film is opaque"]
    plain = synth.make_clip(tmp_path / "plain.mp4", frames=3, color=False)
    warnings.clear()
    pipeline.colorize_file(plain, tmp_path / "plain.color.mp4", config(model_path), warn=warnings.append)
    assert not [w for w in warnings if "alpha" in w]


def test_a_variable_rate_film_into_avi_leaves_out_the_frames_its_fixed_rate_cannot_place(tmp_path, model_path):
    # AVI has one frame rate: frames of a variable-rate film that fall on the tick of the one before failed the
    # whole film ("cannot write: Invalid argument"); they are left out, said so, and a .mkv keeps them all
    src = synth.make_clip(tmp_path / "phone.mp4", frames=50, vfr=True, color=False)
    warnings: list[str] = []
    avi = pipeline.colorize_file(src, tmp_path / "out.avi", config(model_path), warn=warnings.append)
    left_out = 50 - avi.frames
    assert 0 < left_out < 10 and avi.frames == len(video_frames(avi.dst))
    assert [w for w in warnings if "left out" in w] == [
        f"{src}: {left_out} frame(s) left out: its frame rate varies, and at avi's constant 16.9 fps they fall on "
        "the tick of the frame before; a .mkv keeps every frame"]
    warnings.clear()
    mkv = pipeline.colorize_file(src, tmp_path / "out.mkv", config(model_path), warn=warnings.append)
    assert mkv.frames == 50 and not [w for w in warnings if "left out" in w]


def test_every_smoothing_mode_runs(tmp_path, model_path):
    src = synth.make_clip(tmp_path / "a.mp4", frames=8, color=False)
    for mode in ("off", "ema", "flow"):
        r = pipeline.colorize_file(src, tmp_path / f"{mode}.mp4", config(model_path, smooth=mode))
        assert r.frames == 8


# --- atomic output, refusals ---------------------------------------------------------------------------------
@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failure_mid_film_leaves_nothing(tmp_path, model_path, monkeypatch, exc):
    src = synth.make_clip(tmp_path / "a.mp4", frames=20, color=False)
    before = listing(tmp_path)
    real, n = compose.compose_planes, [0]

    def failing(*a, **k):
        n[0] += 1
        if n[0] == 7:
            raise exc
        return real(*a, **k)

    monkeypatch.setattr(compose, "compose_planes", failing)
    with pytest.raises(type(exc)):
        pipeline.colorize_file(src, config=config(model_path))
    assert listing(tmp_path) == before  # neither the output nor a temp file
    assert not [t for t in threading.enumerate() if t.name == "filmcolor-decode" and t.is_alive()]


def test_only_temps_of_runs_known_dead_are_removed_before_a_new_one_is_written(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that no process holds now
    here, elsewhere = outputs.process_space(), "0" * 8 if outputs.process_space() != "0" * 8 else "1" * 8
    dst = tmp_path / "reel.color.mp4"
    names = {
        f".reel.color.filmcolor-{gone.pid}@{here}-ab12cd34.part.mp4": False,       # its run was killed: removed
        f".reel.color.filmcolor-{os.getppid()}@{here}-ab12cd34.part.mp4": True,    # a run still going
        f".reel.color.filmcolor-{gone.pid}@{elsewhere}-ab12cd34.part.mp4": True,   # another machine's run
        f".other.color.filmcolor-{gone.pid}@{here}-ab12cd34.part.mp4": True,       # another output's
        ".reel.color.filmcolor-123-ab12cd34.part.mp4": True,                      # no machine named: unknown
    }
    for name in names:
        (tmp_path / name).write_bytes(b"half a film")
    folder = tmp_path / "reel.color"  # a picture folder's: the one a run had moved aside stays while it is the
    aside = tmp_path / f".reel.color.filmcolor-{gone.pid}@{here}-ab12cd34.old"  # only copy
    aside.mkdir()
    (aside / "0001.png").write_bytes(b"picture")
    assert outputs.remove_dead_runs_temps(dst) == [tmp_path / next(iter(names))]
    assert {p.name for p in tmp_path.iterdir()} == {n for n, kept in names.items() if kept} | {aside.name}
    outputs.remove_dead_runs_temps(folder)
    assert aside.is_dir()
    folder.mkdir()  # the new folder took its place before the kill: the old one is garbage now
    assert outputs.remove_dead_runs_temps(folder) == [aside]
    with outputs.atomic_output(dst) as tmp:  # the check runs before every write
        assert outputs.left_by_dead_run(tmp.name) is False  # its own, alive
        tmp.write_bytes(b"film")
    assert dst.read_bytes() == b"film"


def test_refuses_to_write_over_input_even_with_overwrite(tmp_path, model_path):
    src = synth.make_clip(tmp_path / "a.mp4", frames=4, color=False)
    before = sha256(src)
    os.link(src, tmp_path / "hardlink.mp4")
    for dst in (src, tmp_path / "." / "a.mp4", tmp_path / "hardlink.mp4"):
        with pytest.raises(OutputError, match="input"):
            pipeline.colorize_file(src, dst, config(model_path, overwrite=True))
    assert sha256(src) == before
    assert listing(tmp_path) == {"a.mp4", "hardlink.mp4"}


def test_refuses_existing_output_unless_overwrite(tmp_path, model_path):
    src = synth.make_clip(tmp_path / "a.mp4", frames=4, color=False)
    dst = tmp_path / "a.color.mp4"
    dst.write_bytes(b"precious")
    with pytest.raises(OutputError, match="exists"):
        pipeline.colorize_file(src, config=config(model_path))
    assert dst.read_bytes() == b"precious"
    pipeline.colorize_file(src, config=config(model_path, overwrite=True))
    assert len(video_frames(dst)) == 4


def test_output_folder_must_exist(tmp_path, model_path):
    src = synth.make_clip(tmp_path / "a.mp4", frames=4, color=False)
    with pytest.raises(OutputError, match="does not exist"):
        pipeline.colorize_file(src, tmp_path / "nope" / "b.mp4", config(model_path))


@pytest.mark.parametrize("make, cause", [
    (lambda d: d / "missing.mp4", "no such file"),
    (lambda d: (d / "sub").mkdir() or d / "sub", "directory"),
    (lambda d: (d / "empty.mp4").write_bytes(b"") or d / "empty.mp4", "empty"),
    (lambda d: [(d / "text.mp4").write_text("hello, not a film\n" * 50), d / "text.mp4"][1], "not a media file"),
])
def test_bad_inputs_raise_input_error(tmp_path, model_path, make, cause):
    src = make(tmp_path)
    before = listing(tmp_path)
    with pytest.raises(InputError, match=cause):
        pipeline.colorize_file(src, config=config(model_path))
    assert listing(tmp_path) == before


# --- stills and preview ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, grey, bits", [("g8.png", True, 8), ("c8.jpg", False, 8), ("g16.png", True, 16),
                                              ("c16.tif", False, 16), ("g8.tiff", True, 8)])
def test_stills(tmp_path, model_path, name, grey, bits):
    src = synth.make_photo(tmp_path / name, width=65, height=47, grey=grey, bits=bits)
    result = pipeline.colorize_file(src, config=config(model_path))
    assert result.kind == "still" and result.dst == tmp_path / f"{Path(name).stem}.color.png"
    out = cv2.imread(str(result.dst), cv2.IMREAD_UNCHANGED)
    assert out.shape == (47, 65, 3)
    assert out.dtype == (np.uint16 if bits == 16 else np.uint8)
    L_src = stills.read_still(src).L
    rgb_out = out[..., ::-1].astype(np.float32) / (65535.0 if bits == 16 else 255.0)
    lab = color.rgb_to_lab_np(rgb_out)
    assert np.abs(lab[..., 0] - L_src).mean() < 1.0  # the photo's own lightness
    assert np.hypot(lab[..., 1], lab[..., 2]).mean() > 5  # and colour
    assert listing(tmp_path) == {name, result.dst.name}


def test_unreadable_still(tmp_path, model_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(InputError, match="bad.png"):
        pipeline.colorize_file(bad, config=config(model_path))
    assert listing(tmp_path) == {"bad.png"}


def test_preview_png(tmp_path, model_path):
    src = synth.make_clip(tmp_path / "a.mp4", frames=30, width=64, height=48, color=False)
    result = preview.write_preview(src, None, 3, config(model_path))
    assert result.dst == tmp_path / "a.preview.png" and result.frames == 3
    sheet = cv2.imread(str(result.dst))
    assert sheet.shape == (3 * 48, 2 * 64, 3)
    left, right = sheet[:, :64].astype(int), sheet[:, 64:].astype(int)
    assert np.abs(left[..., 0] - left[..., 2]).max() <= 2  # B&W side is grey
    assert np.abs(right[..., 0] - right[..., 2]).mean() > 5  # colour side is not
    assert listing(tmp_path) == {"a.mp4", "a.preview.png"}  # no film encoded


def test_a_preview_reads_the_film_once_and_shows_frames_from_its_stretch(tmp_path, model_path, monkeypatch):
    src = synth.make_clip(tmp_path / "a.mp4", frames=50, width=256, height=48, audio=())  # 25 fps
    passes = []
    real = media.iter_sample_frames

    def counted(*args, **kwargs):
        passes.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(media, "iter_sample_frames", counted)
    monkeypatch.setattr(media, "sample_planes", lambda *a, **k: pytest.fail("the film was sampled twice"))
    shown = []
    monkeypatch.setattr(preview, "preview_sheet", lambda images, *a: shown.extend(images) or np.zeros((8, 8, 3)))
    result = preview.write_preview(src, None, 4, config(model_path).with_overrides(start=1.0))
    assert passes == [12] and result.frames == len(shown) == 4  # one pass, also enough frames for the bars
    # the red square moves 3 px a frame from x = 0 (synth.synthetic_frame): where it is tells the frame
    at = [int(np.argmax(img[24, :, 0].astype(int) - img[24, :, 1] > 120)) for img in shown]
    assert all(b > a for a, b in zip(at, at[1:])) and at[0] >= 3 * 25 - 2, at  # in order, all from 1 s on


@pytest.mark.parametrize("pix_fmt, codec, full", [("yuv420p10le", "ffv1", False), ("yuv420p", "libx264", True)],
                         ids=["10bit", "full-range"])
def test_deep_and_full_range_sources_keep_luma(tmp_path, model_path, pix_fmt, codec, full):
    src = synth.make_clip(tmp_path / "a.mkv", frames=6, pix_fmt=pix_fmt, codec=codec, full_range=full,
                          audio=(), color=False)
    info = media.probe(src)
    result = pipeline.colorize_file(src, config=config(model_path))
    out = media.probe(result.dst)
    assert (out.bit_depth, out.full_range) == (info.bit_depth, info.full_range)
    pix = media.writer_pix_fmt("h264", info)
    for a, b in zip(video_frames(src), video_frames(result.dst), strict=True):
        pa, pb = media.frame_to_planes(a, pix), media.frame_to_planes(b, pix)
        assert psnr(pa.y, pb.y, (1 << pa.bit_depth) - 1) >= 40.0
        mid = 1 << (pb.bit_depth - 1)
        assert np.abs(pb.v.astype(int) - mid).mean() > 3 << (pb.bit_depth - 8)


def test_still_alpha_is_kept(tmp_path, model_path):
    rgba = np.zeros((30, 40, 4), np.uint8)
    rgba[..., :3] = np.linspace(0, 255, 40, dtype=np.uint8)[None, :, None]
    rgba[..., 3] = 200
    src = tmp_path / "logo.png"
    cv2.imwrite(str(src), rgba)
    result = pipeline.colorize_file(src, config=config(model_path))
    out = cv2.imread(str(result.dst), cv2.IMREAD_UNCHANGED)
    assert out.shape == (30, 40, 4) and (out[..., 3] == 200).all()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["auto", "fp16", "fp32"])
def test_cuda_matches_cpu(precision):
    L = np.random.default_rng(3).uniform(0, 100, (5, 48, 85)).astype(np.float32)
    cpu = Colorizer(tiny_generator(), "cpu", "fp32", batch_size=4, render_size=48).predict_ab(L)
    gpu = Colorizer(tiny_generator(), resolve_device("cuda"), precision, batch_size=4, render_size=48).predict_ab(L)
    assert gpu.shape == cpu.shape and gpu.dtype == np.float32
    assert np.abs(gpu - cpu).mean() < (0.05 if precision == "fp32" else 2.0)


def _rotated_clip(path: Path, rotation: int, frames: int = 6) -> Path:
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        vs.options = {"preset": "ultrafast", "crf": "16"}
        vs.set_display_rotation(rotation)
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(synth.synthetic_frame(i, 64, 48, color=False), format="rgb24")
            f = f.reformat(format="yuv420p")
            f.pts = i
            out.mux(vs.encode(f))
        out.mux(vs.encode(None))
    return path


def test_rotated_film_is_coloured_upright_and_keeps_its_rotation(tmp_path, model_path, monkeypatch):
    src = _rotated_clip(tmp_path / "phone.mp4", 90)
    info = media.probe(src)
    assert info.rotation == 90 and media.quarter_turns(info.rotation) == 1
    col = Colorizer(tiny_generator(), "cpu", "fp32", batch_size=4, render_size=48)
    shapes, real = [], col.predict_ab
    monkeypatch.setattr(col, "predict_ab", lambda L: shapes.append(L.shape) or real(L))
    result = pipeline.colorize_file(src, config=config(model_path), colorizer=col)
    assert shapes and all(s[1:] == (64, 48) for s in shapes)  # the network saw the upright (portrait) picture
    out = media.probe(result.dst)
    assert (out.width, out.height, out.rotation) == (64, 48, 90)
    assert len(video_frames(result.dst)) == 6


def test_out_of_memory_at_batch_one_fails_the_film_cleanly(tmp_path, model_path, monkeypatch):
    src = synth.make_clip(tmp_path / "a.mp4", frames=6, color=False)
    col = Colorizer(tiny_generator(), "cpu", "fp32", batch_size=2, render_size=48)

    def always(_x):
        raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    monkeypatch.setattr(col, "_forward", always)
    with pytest.raises(ProcessingError, match=r"a\.mp4: out of memory"):
        pipeline.colorize_file(src, config=config(model_path), colorizer=col)
    assert listing(tmp_path) == {"a.mp4"}


def _interlaced_clip(path: Path, codec: str, options: dict[str, str] | None = None) -> Path:
    """Six 720x576 frames with a bar on the bottom field only (combing), as an interlaced stream."""
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = 720, 576, "yuv420p"
        s.options = options or {}
        for i in range(6):
            img = np.full((576, 720, 3), 40, np.uint8)
            img[1::2, 100 + 30 * i: 200 + 30 * i] = 220
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def _field_order_and_flags(path: Path) -> tuple[int, list[bool]]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = list(c.decode(s))
        return s.codec_context.field_order, [f.interlaced_frame for f in frames]


@pytest.mark.parametrize("make, order", [
    (lambda d: _interlaced_clip(d / "tape.dv", "dvvideo"), media.FIELD_BB),  # DV: bottom field first
    (lambda d: _interlaced_clip(d / "tff.mkv", "libx264", {"x264-params": "tff=1"}), media.FIELD_TT),
    (lambda d: _interlaced_clip(d / "bff.mkv", "libx264", {"x264-params": "bff=1"}), media.FIELD_BB),
])
def test_interlaced_source_stays_interlaced_in_its_field_order(tmp_path, model_path, make, order):
    src = make(tmp_path)
    info = media.probe(src)
    assert info.interlaced and info.field_order == order
    assert not media.probe(synth.make_clip(tmp_path / "p.mp4", frames=3)).interlaced
    warnings: list[str] = []
    h264 = pipeline.colorize_file(src, tmp_path / "out.mp4", config(model_path), warn=warnings.append).dst
    got_order, flags = _field_order_and_flags(h264)
    assert got_order == order and len(flags) == 6 and all(flags)  # field-coded, same order, every frame
    ffv1 = pipeline.colorize_file(src, tmp_path / "out.mkv", config(model_path, codec="ffv1"),
                                  warn=warnings.append).dst
    assert _field_order_and_flags(ffv1)[0] == order  # Matroska's FieldOrder
    assert warnings == []
    for g, r in zip(video_frames(ffv1), video_frames(src)):  # lossless: the fields' lines are the source's
        np.testing.assert_array_equal(g.to_ndarray(format="yuv420p")[:576], r.to_ndarray(format="yuv420p")[:576])


def test_interlaced_source_to_prores_warns_that_it_is_coded_progressive(tmp_path, model_path):
    src = _interlaced_clip(tmp_path / "tape.dv", "dvvideo")
    warnings: list[str] = []
    pipeline.colorize_file(src, tmp_path / "out.mov", config(model_path, codec="prores"), warn=warnings.append)
    assert len(warnings) == 1 and "interlaced" in warnings[0] and "tape.dv" in warnings[0]
