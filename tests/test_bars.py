"""Black bars (letterbox, pillarbox): found across a film, left black, only the picture coloured."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from filmcolor import bars, color, compose, look, media, pipeline, preview, synth
from filmcolor.config import RunConfig
from helpers import tiny_model


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("model") / "tiny.safetensors")


def config(model_path: Path, **kw) -> RunConfig:
    kw.setdefault("codec", "ffv1")  # lossless, so the picture can be compared code for code
    return RunConfig(model=str(model_path), device="cpu", render_size=48, batch_size=4, **kw)


def boxed(h: int, w: int, top: int, left: int, ph: int, pw: int, level: float = 60.0) -> np.ndarray:
    """An L* frame: black everywhere but a textured picture of ``ph x pw`` at ``(top, left)``."""
    L = np.zeros((h, w), np.float32)
    y, x = np.mgrid[0:ph, 0:pw]
    L[top:top + ph, left:left + pw] = level + 20 * np.sin(x / 3.0) * np.cos(y / 5.0)
    return L


def uv(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    with av.open(str(path)) as c:
        return [(p.u, p.v) for p in (media.frame_to_planes(f, "yuv420p") for f in c.decode(video=0))]


# --- finding the picture ---------------------------------------------------------------------------
def test_a_pillarbox_and_a_letterbox_are_found_and_a_full_picture_is_whole():
    assert bars.find_picture([boxed(120, 214, 0, 27, 120, 160)]) == bars.Area(0, 26, 120, 162, (120, 214))
    assert bars.find_picture([boxed(120, 160, 20, 0, 80, 160)]) == bars.Area(20, 0, 80, 160, (120, 160))
    whole = bars.find_picture([boxed(120, 160, 0, 0, 120, 160)])
    assert whole == bars.Area.whole_frame(120, 160) and whole.whole


def test_dust_in_a_bar_does_not_make_it_picture_but_a_line_of_picture_does():
    L = boxed(100, 200, 0, 40, 100, 120)
    L[50, 5] = L[10, 190] = 90.0  # two bright specks in the bars: dust
    assert bars.find_picture([L]) == bars.Area(0, 40, 100, 120, (100, 200))
    L[:, 37] = 50.0  # a whole column of picture beside it (2 black columns between): the picture's own edge
    assert bars.find_picture([L]).left == 36


def test_a_dark_edge_of_one_frame_is_picture_when_another_frame_is_bright_there():
    night = boxed(90, 160, 0, 0, 90, 160)
    night[:, :30] = 2.0  # a night scene: the left of the picture is nearly black
    day = boxed(90, 160, 0, 0, 90, 160)
    assert bars.find_picture([night]).left == 30  # one frame alone cannot tell
    assert bars.find_picture([night, day]).whole  # across the film the columns hold picture
    assert bars.find_picture([night, np.zeros((10, 10), np.float32)]).left == 30  # another size: not counted


def test_a_black_or_nearly_black_film_is_coloured_whole_rather_than_trusted():
    assert bars.find_picture([]) is None
    assert bars.find_picture([np.zeros((90, 160), np.float32)] * 3) is None
    assert bars.find_picture([boxed(200, 200, 90, 90, 20, 20)]) is None  # a spot of light is not a picture


def test_an_area_maps_onto_chroma_planes_and_turns_with_the_frame():
    area = bars.Area(2, 4, 7, 9, (11, 15))  # odd sizes: chroma planes of ceil(h/2) x ceil(w/2)
    rows, cols = area.on_plane(6, 8)
    assert (rows, cols) == (slice(1, 5), slice(2, 7))  # every picture pixel's chroma sample is inside
    assert area.on_plane(11, 15) == area.slices()  # 4:4:4
    frame = np.zeros(area.frame, bool)
    frame[area.slices()] = True
    for turns in range(1, 4):
        turned = np.rot90(frame, turns)
        t = area.turned(turns)
        assert t.frame == turned.shape and turned[t.slices()].all() and turned.sum() == t.height * t.width
    assert area.turned(4) == area


# --- sampling a film --------------------------------------------------------------------------------
def test_frames_are_sampled_across_the_film_or_the_stretch_asked(tmp_path):
    film = synth.make_clip(tmp_path / "film.mp4", frames=100, audio=(), keyint=50)
    times = [float(f.pts * f.time_base) for f in media.sample_frames(film, 8)]
    assert len(times) == 8 and times == sorted(set(times))  # distinct, in order
    assert times[0] < 0.5 and times[-1] > 3.5  # from the start to the end of the 4 s film
    part = [float(f.pts * f.time_base) for f in media.sample_frames(film, 4, start=1.0, duration=1.0)]
    assert len(part) == 4 and all(1.0 <= t < 2.0 for t in part)
    assert media.sample_frames(tmp_path / "missing.mp4", 4) == []


def test_sampling_a_film_beyond_the_budget_costs_its_keyframes(tmp_path, monkeypatch):
    film = synth.make_clip(tmp_path / "film.mp4", frames=100, audio=(), keyint=50)
    monkeypatch.setattr(media, "SAMPLE_PIXELS", 1)  # as if it were a long HD film: 10% of its frames, 10
    times = [float(f.pts * f.time_base) for f in media.sample_frames(film, 8)]
    assert times == [0.0, 2.0]  # one frame decoded per seek: the two keyframes, each once


# --- colouring inside the bars ------------------------------------------------------------------------
def test_the_picture_inside_bars_gets_the_colours_it_gets_without_them(tmp_path, model_path):
    boxed_film = synth.make_clip(tmp_path / "boxed.mkv", codec="ffv1", width=96, height=48, bars=(0, 16),
                                 color=False, audio=(), frames=8)
    bare_film = synth.make_clip(tmp_path / "bare.mkv", codec="ffv1", width=64, height=48, color=False, audio=(),
                                frames=8)
    boxed = pipeline.colorize_file(boxed_film, tmp_path / "boxed.color.mkv", config(model_path))
    bare = pipeline.colorize_file(bare_film, tmp_path / "bare.color.mkv", config(model_path))
    assert boxed.area == bars.Area(0, 16, 48, 64, (48, 96)) and bare.area is None
    got, want = uv(boxed.dst), uv(bare.dst)
    assert len(got) == len(want) == 8
    for (u, v), (u0, v0) in zip(got, want):
        assert np.array_equal(u[:, 8:40], u0) and np.array_equal(v[:, 8:40], v0)  # the same colours, code for code
        assert np.ptp(u0) > 0  # (the model does colour the picture)
        for plane in (u, v):  # the bars stay black: no colour at all
            assert (plane[:, :8] == 128).all() and (plane[:, 40:] == 128).all()
    whole = pipeline.colorize_file(boxed_film, tmp_path / "whole.mkv", config(model_path, bars="off"))
    assert whole.area is None
    assert any(not np.array_equal(u[:, 8:40], w[0][:, 8:40]) for (u, _), w in zip(got, uv(whole.dst)))


def test_a_turned_film_is_cropped_in_its_stored_frame(tmp_path, model_path):
    film = synth.make_clip(tmp_path / "turned.mp4", width=96, height=48, bars=(0, 16), color=False, audio=(),
                           frames=6, rotation=90)
    result = pipeline.colorize_file(film, tmp_path / "turned.color.mp4", config(model_path, codec="h264"))
    assert result.area == bars.Area(0, 16, 48, 64, (48, 96)) and result.frames == 6
    # shown upright the film is 48x96 with its bars above and below: a named area is measured there
    named = pipeline.colorize_file(film, tmp_path / "named.mp4", config(model_path, codec="h264", bars="48x64+0+16"))
    assert named.area == result.area
    for u, v in uv(result.dst):
        assert np.abs(u[:, :6].astype(int) - 128).max() <= 1 and np.abs(v[:, 42:].astype(int) - 128).max() <= 1


def test_a_photo_in_a_black_mount_keeps_the_mount_grey(tmp_path, model_path):
    picture = synth.synthetic_frame(0, 64, 48, color=False)
    mounted = np.zeros((80, 96, 3), np.uint8)
    mounted[16:64, 16:80] = picture
    cv2.imwrite(str(tmp_path / "mounted.png"), mounted)
    cv2.imwrite(str(tmp_path / "bare.png"), picture)
    cfg = config(model_path, codec="h264")
    result = pipeline.colorize_file(tmp_path / "mounted.png", tmp_path / "out.png", cfg)
    assert result.area == bars.Area(16, 16, 48, 64, (80, 96))
    out = cv2.imread(str(result.dst)).astype(int)
    bare = cv2.imread(str(pipeline.colorize_file(tmp_path / "bare.png", tmp_path / "bare.out.png", cfg).dst))
    assert (out[:16] == out[:16, :, :1]).all() and (out[:, 80:] == out[:, 80:, :1]).all()  # grey mount
    assert np.abs(out[16:64, 16:80] - bare.astype(int)).max() <= 1  # the picture as it is coloured alone
    assert np.ptp(out[16:64, 16:80, 2] - out[16:64, 16:80, 0]) > 0


def test_a_preview_colours_what_the_run_colours(tmp_path, model_path):
    film = synth.make_clip(tmp_path / "boxed.mp4", width=96, height=48, bars=(0, 16), color=False, audio=(),
                           frames=6)
    result = preview.write_preview(film, tmp_path / "sheet.png", 2, config(model_path))
    assert result.area == bars.Area(0, 16, 48, 64, (48, 96))
    sheet = cv2.imread(str(result.dst)).astype(int)
    colour = sheet[:, 96:]  # B&W | colour, 96 px each
    assert (np.abs(colour[:, :14] - colour[:, :14, :1]) <= 1).all()  # grey bars
    assert np.ptp(colour[:, 20:76, 2] - colour[:, 20:76, 0]) > 0  # a coloured picture


def test_a_segmented_film_is_cropped_alike_in_every_segment(tmp_path, model_path):
    from filmcolor.segments import colorize_segmented

    film = synth.make_clip(tmp_path / "reel.mp4", width=96, height=48, bars=(0, 16), color=False, audio=(),
                           frames=40, keyint=10)
    cfg = config(model_path, smooth="off")
    whole = pipeline.colorize_file(film, tmp_path / "one.mkv", cfg)
    parts = colorize_segmented(film, tmp_path / "parts.mkv", cfg, segments=2)
    assert parts.area == whole.area == bars.Area(0, 16, 48, 64, (48, 96))
    for (u, v), (u0, v0) in zip(uv(parts.dst), uv(whole.dst)):
        assert np.array_equal(u, u0) and np.array_equal(v, v0)


def test_eval_scores_the_picture_as_run_colours_it(tmp_path, model_path):
    from filmcolor.evaluate import evaluate

    film = synth.make_clip(tmp_path / "ref.mkv", codec="ffv1", width=96, height=48, bars=(0, 16), audio=(), frames=6)
    result = evaluate([film], config(model_path, smooth="off"))
    clip = result["clips"][0]
    assert clip["picture"] == str(bars.Area(0, 16, 48, 64, (48, 96))) and clip["frames"] == 6
    assert 0 < clip["output"]["ciede2000"] and clip["output"]["colourfulness"] > 0
    assert result["settings"]["bars"] == "auto"
    whole = evaluate([film], config(model_path, smooth="off", bars="off"))
    assert "picture" not in whole["clips"][0] and whole["settings"]["bars"] == "off"


def test_the_cli_says_where_the_picture_was_and_takes_bars_off(tmp_path, model_path):
    from click.testing import CliRunner

    from filmcolor.cli import main

    film = synth.make_clip(tmp_path / "boxed.mp4", width=96, height=48, bars=(0, 16), color=False, audio=(),
                           frames=6)
    common = ["--model", str(model_path), "--set", "render_size=48", "--device", "cpu"]
    r = CliRunner().invoke(main, ["run", str(film), "-o", str(tmp_path / "a.mp4"), *common])
    assert r.exit_code == 0, r.output
    assert "only the picture coloured, 64x48 at (16, 0) of 96x48" in " ".join(r.stderr.split())
    r = CliRunner().invoke(main, ["run", str(film), "-o", str(tmp_path / "b.mp4"), "--bars", "off", *common])
    assert r.exit_code == 0 and "black bars" not in r.stderr
    r = CliRunner().invoke(main, ["run", str(film), "--bars", "maybe", *common])
    assert r.exit_code == 2


def test_colours_inside_black_bars_come_from_the_picture_alone():
    """Compose: the a/b given for an area lands in it; outside, the chroma is neutral."""
    L = boxed(40, 80, 0, 20, 40, 40)
    area = bars.find_picture([L])
    ab = np.full((2, 10, 10), 30.0, np.float32)
    rgb = compose.compose_rgb(L, ab, area)
    lab = color.rgb_to_lab_np(rgb)
    assert np.abs(lab[:, 20:60, 1:] - 30).mean() < 3 and np.abs(lab[:, :20, 1:]).max() < 1


def test_bars_get_neutral_chroma_whatever_the_source_had_there():
    """A tinted transfer (U/V off neutral everywhere): the bars of the coloured film are black, not tinted."""
    y = np.full((48, 96), 16, np.uint8)
    y[:, 16:80] = 120
    planes = media.Planes(y=y, u=np.full((24, 48), 110, np.uint8), v=np.full((24, 48), 140, np.uint8), bit_depth=8,
                          full_range=False, matrix="bt601")
    area = bars.Area(0, 16, 48, 64, (48, 96))
    u, v = compose.compose_planes(planes, np.full((2, 12, 16), 20.0, np.float32), area=area)
    assert (u[:, :8] == 128).all() and (v[:, 40:] == 128).all()
    assert (v[:, 8:40] > 135).all()  # a = b = +20 inside: warm


def test_device_compose_of_an_area_matches_the_host(tmp_path):
    from filmcolor.inference import Colorizer
    from helpers import tiny_generator

    film = synth.make_clip(tmp_path / "boxed.mkv", codec="ffv1", width=98, height=50, bars=(0, 18), color=False,
                           audio=(), frames=2)
    col = Colorizer(tiny_generator(), "cpu", "fp32", batch_size=2, render_size=24, workers=1)
    frames = list(media.decode(film))
    area = look.picture_area(film, media.probe(film), RunConfig())
    assert area == bars.Area(0, 18, 50, 62, (50, 98))
    host = list(pipeline._frame_items(frames, "yuv420p", col, area=area))
    device = list(pipeline._frame_items(frames, "yuv420p", col, chroma_L=False, area=area))
    rng = np.random.default_rng(3)
    for a, b in zip(host, device):
        assert a.L.shape == (24, 30) and np.array_equal(a.L, b.L)  # the picture at render size
        a.ab = b.ab = rng.normal(0, 15, (2,) + a.L.shape).astype(np.float32)
        pa = media.frame_to_planes(pipeline._compose_frame(a, "yuv420p", 0, col), "yuv420p")
        pb = media.frame_to_planes(pipeline._compose_frame(b, "yuv420p", 0, col), "yuv420p")
        for x, z in ((pa.u, pb.u), (pa.v, pb.v)):
            assert np.abs(x.astype(int) - z.astype(int)).max() <= 2
            assert (z[:, :9] == 128).all() and (z[:, 40:] == 128).all()


def test_deflicker_evens_out_the_picture_and_leaves_the_bars_black(tmp_path, model_path):
    src = tmp_path / "flicker.mkv"
    rng = np.random.default_rng(0)
    gains, offsets = 1 + 0.15 * rng.uniform(-1, 1, 20), 12 * rng.uniform(-1, 1, 20)  # brightness pumping
    with av.open(str(src), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 96, 48, "yuv420p"
        for i, (gain, offset) in enumerate(zip(gains, offsets)):
            picture = np.zeros((48, 96, 3), np.uint8)
            picture[:, 16:80] = np.clip(synth.synthetic_frame(0, 64, 48, color=False) * gain + offset, 0, 255)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    with av.open(str(src)) as c:
        before = [float(media.frame_to_planes(f, "yuv420p").y[:, 16:80].mean()) for f in c.decode(video=0)]
    result = pipeline.colorize_file(src, tmp_path / "out.mkv", config(model_path, deflicker=True))
    assert result.area == bars.Area(0, 16, 48, 64, (48, 96))
    with av.open(str(result.dst)) as c:
        ys = [media.frame_to_planes(f, "yuv420p").y for f in c.decode(video=0)]
    after = [float(y[:, 16:80].mean()) for y in ys]
    assert np.var(np.diff(after)) < 0.25 * np.var(np.diff(before))  # the pumping is evened out
    assert all((y[:, :16] == 16).all() and (y[:, 80:] == 16).all() for y in ys)  # the bars stay video black


def test_a_batch_records_where_each_reel_was_coloured(tmp_path, model_path):
    import json

    from filmcolor.batch import batch

    reels = tmp_path / "reels"
    reels.mkdir()
    synth.make_clip(reels / "boxed.mp4", width=96, height=48, bars=(0, 16), color=False, audio=(), frames=6)
    synth.make_clip(reels / "bare.mp4", width=64, height=48, color=False, audio=(), frames=6)
    cfg = config(model_path, codec="h264")
    report = batch(reels, tmp_path / "out", cfg)
    picture = {r.rel: r.picture for r in report.results}
    assert picture == {"boxed.mp4": "64x48 at (16, 0) of 96x48", "bare.mp4": None}
    manifest = [json.loads(line) for line in report.manifest.read_text().splitlines() if line.strip()]
    assert {m["input"]: m["picture"] for m in manifest} == picture
    again = batch(reels, tmp_path / "out", cfg)  # resumed: nothing redone, the record kept
    assert {r.status for r in again.results} == {"skipped"} and {r.rel: r.picture for r in again.results} == picture


def test_subtitles_in_a_letterbox_bar_and_a_logo_in_a_pillarbox_bar_are_not_picture():
    subtitled = boxed(120, 200, 20, 0, 70, 200)  # letterbox: picture rows 20-89, bars 0-19 and 90-119
    subtitled[100:108, 60:140] = 95.0  # a burnt-in subtitle in the lower bar, 10 black rows below the picture
    plain = boxed(120, 200, 20, 0, 70, 200)
    assert bars.find_picture([plain, subtitled]) == bars.Area(20, 0, 70, 200, (120, 200))
    logo = boxed(120, 200, 0, 40, 120, 120)  # pillarbox: picture columns 40-159
    logo[8:20, 176:192] = 80.0  # a channel's logo in the right bar
    assert bars.find_picture([logo]) == bars.Area(0, 40, 120, 120, (120, 200))
    split = boxed(120, 200, 0, 0, 120, 200)
    split[:, 99:101] = 0.0  # a black line 2 columns wide through the picture is part of it
    assert bars.find_picture([split]).whole


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_colours_the_picture_inside_bars_as_the_cpu_does(tmp_path, model_path):
    from filmcolor.inference import Colorizer, resolve_device
    from helpers import tiny_generator

    film = synth.make_clip(tmp_path / "boxed.mkv", codec="ffv1", width=128, height=64, bars=(0, 24), color=False,
                           audio=(), frames=12)
    cpu = Colorizer(tiny_generator(), "cpu", "fp32", batch_size=4, render_size=48, workers=1)
    gpu = Colorizer(tiny_generator(), resolve_device("cuda"), "fp32", batch_size=4, render_size=48, auto_batch=True)
    assert gpu.on_device_compose
    a = pipeline.colorize_file(film, tmp_path / "cpu.mkv", config(model_path), colorizer=cpu)
    b = pipeline.colorize_file(film, tmp_path / "gpu.mkv", config(model_path, device="cuda"), colorizer=gpu)
    assert a.area == b.area == bars.Area(0, 24, 64, 80, (64, 128))
    for (ua, va), (ub, vb) in zip(uv(a.dst), uv(b.dst)):
        for x, z in ((ua, ub), (va, vb)):
            assert np.abs(x.astype(int) - z.astype(int)).max() <= 3
            assert (z[:, :12] == 128).all() and (z[:, 52:] == 128).all()


def test_a_10_bit_film_s_bars_get_10_bit_neutral_chroma(tmp_path, model_path):
    film = synth.make_clip(tmp_path / "deep.mkv", codec="ffv1", pix_fmt="yuv422p10le", width=96, height=48,
                           bars=(0, 16), color=False, audio=(), frames=4)
    result = pipeline.colorize_file(film, tmp_path / "deep.color.mkv", config(model_path))
    assert result.area == bars.Area(0, 16, 48, 64, (48, 96))
    with av.open(str(result.dst)) as c:
        frames = list(c.decode(video=0))
    assert frames[0].format.name == "yuv422p10le"
    for frame in frames:
        p = media.frame_to_planes(frame, "yuv422p10le")
        assert p.u.shape == (48, 48) and (p.u[:, :8] == 512).all() and (p.v[:, 40:] == 512).all()
        assert np.ptp(p.u[:, 8:40]) > 0


def test_a_picture_area_can_be_named_when_auto_cannot_find_it(tmp_path, model_path):
    """A white mount is no black bar: --bars WxH+X+Y names the picture; outside it stays uncoloured."""
    from filmcolor.errors import SettingsError

    picture = synth.synthetic_frame(0, 64, 48, color=False)
    mounted = np.full((80, 96, 3), 235, np.uint8)  # a print's white margin
    mounted[16:64, 16:80] = picture
    cv2.imwrite(str(tmp_path / "print.png"), mounted)
    cv2.imwrite(str(tmp_path / "bare.png"), picture)
    auto = pipeline.colorize_file(tmp_path / "print.png", tmp_path / "auto.png", config(model_path))
    assert auto.area is None  # not found: a white margin is not black
    named = pipeline.colorize_file(tmp_path / "print.png", tmp_path / "named.png",
                                   config(model_path, bars="64x48+16+16"))
    assert named.area == bars.Area(16, 16, 48, 64, (80, 96))
    out = cv2.imread(str(named.dst)).astype(int)
    bare = cv2.imread(str(pipeline.colorize_file(tmp_path / "bare.png", tmp_path / "b.png", config(model_path)).dst))
    assert (out[:16] == out[:16, :, :1]).all() and np.abs(out[16:64, 16:80] - bare.astype(int)).max() <= 1
    film = synth.make_clip(tmp_path / "boxed.mp4", width=96, height=48, bars=(0, 16), color=False, audio=(), frames=4)
    result = pipeline.colorize_file(film, tmp_path / "f.mp4", config(model_path, codec="h264", bars="40x48+20+0"))
    assert result.area == bars.Area(0, 20, 48, 40, (48, 96))
    with pytest.raises(SettingsError, match="does not fit the 96x48 frame"):
        pipeline.colorize_file(film, tmp_path / "g.mp4", config(model_path, bars="100x48+0+0"))
    assert not (tmp_path / "g.mp4").exists()
    with pytest.raises(ValueError, match="WxH"):
        RunConfig(bars="64x48")
