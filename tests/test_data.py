"""Training data: film frame sampling, split by film, prepared cache, batches and damage (tiny, CPU)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from filmcolor import data
from filmcolor.synth import make_clip, synthetic_frame


def _write_film(path: Path, frames: list[np.ndarray], fps: int = 10) -> Path:
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"crf": "10", "preset": "ultrafast"}
        for i, rgb in enumerate(frames):
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            f.pts, f.time_base = i, Fraction(1, fps)
            for p in vs.encode(f):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
    return path


def test_sample_film_skips_black_grey_and_duplicates(tmp_path):
    a = synthetic_frame(0, 96, 64)
    b, c = np.ascontiguousarray(a[::-1]), np.ascontiguousarray(a[:, ::-1])  # clearly different luma
    grey = synthetic_frame(6, 96, 64, color=False)
    black = np.full_like(a, 4)
    frames = [a, a, black, grey, b, b, black, c]
    film = _write_film(tmp_path / "f.mp4", frames)
    s = data.sample_film(film, max_frames=100, max_side=256)
    assert s.candidates == len(frames)
    assert s.skipped == {"black": 2, "grey": 1, "duplicate": 2}
    assert len(s.frames) == 3
    for got, want in zip(s.frames, (a, b, c)):
        assert got.shape == want.shape and got.dtype == np.uint8
        assert np.abs(got.astype(int) - want).mean() < 6  # codec rounding only


def test_sample_film_spreads_frames_and_bounds_size(tmp_path):
    film = make_clip(tmp_path / "c.mp4", frames=24, width=96, height=64, audio=())
    s = data.sample_film(film, max_frames=6, max_side=32)
    assert s.candidates == 6 and len(s.frames) == 6  # every 4th frame: the square has moved each time
    assert all(f.shape == (32, 48, 3) for f in s.frames)


def test_a_letterboxed_film_gives_its_picture_only_at_full_size(tmp_path):
    film = make_clip(tmp_path / "wide.mp4", frames=12, width=160, height=120, bars=(30, 0), audio=())
    s = data.sample_film(film, max_frames=4, max_side=48)
    assert s.picture == "160x60 at (0, 30) of 160x120" and len(s.frames) == 4
    assert all(f.shape == (48, 128, 3) for f in s.frames)  # the picture's short side is max_side
    assert min(float(f[:4].mean()) for f in s.frames) > 20  # no black bar left at the top
    plain = data.sample_film(make_clip(tmp_path / "plain.mp4", frames=12, width=160, height=60, audio=()), 4, 48)
    assert plain.picture is None and plain.frames[0].shape == (48, 128, 3)


def test_split_by_film_holds_out_whole_films():
    films = [Path(f"film{i}.mp4") for i in range(5)]
    train, val = data.split_by_film(films, 0.2, seed=3)
    assert len(val) == 1 and sorted(train + val) == sorted(films) and not set(train) & set(val)
    assert data.split_by_film(films, 0.2, seed=3) == (train, val)
    assert data.split_by_film(films[:1]) == (films[:1], [])
    assert len(data.split_by_film(films[:2], 0.9)[1]) == 1  # always keeps one film to train on


def test_load_sources_caches_shards(tmp_path):
    import cv2

    for i in range(3):
        cv2.imwrite(str(tmp_path / f"p{i}.png"), synthetic_frame(3 * i, 80, 60)[..., ::-1])
    make_clip(tmp_path / "film.mp4", frames=12, width=96, height=64, audio=())
    cache = tmp_path / "cache"
    first = data.load_sources([tmp_path], max_side=48, film_frames=4, cache=cache)
    assert not first.cached and len(first) == 3 + 4
    assert first.origins.count(str(tmp_path / "film.mp4")) == 4
    second = data.load_sources([tmp_path], max_side=48, film_frames=4, cache=cache)
    assert second.cached and second.origins == first.origins and second.films == first.films
    for x, y in zip(first.images, second.images):
        np.testing.assert_array_equal(x, y)
    other = data.load_sources([tmp_path], max_side=40, film_frames=4, cache=cache)  # other settings, other key
    assert not other.cached and len(list(cache.iterdir())) == 2


def test_one_damaged_photo_or_film_is_left_out_not_the_whole_data_set(tmp_path):
    import cv2

    for i in range(2):
        cv2.imwrite(str(tmp_path / f"p{i}.png"), synthetic_frame(3 * i, 80, 60)[..., ::-1])
    (tmp_path / "torn.jpg").write_bytes(b"\xff\xd8\xff\xe0 not much of a photo")
    make_clip(tmp_path / "film.mp4", frames=12, width=96, height=64, audio=())
    (tmp_path / "torn.mp4").write_bytes((tmp_path / "film.mp4").read_bytes()[:300])
    cache = tmp_path / "cache"
    first = data.load_sources([tmp_path], max_side=48, film_frames=4, cache=cache)
    assert len(first) == 2 + 4
    assert set(first.unreadable) == {str(tmp_path / "torn.jpg"), str(tmp_path / "torn.mp4")}
    assert first.unreadable[str(tmp_path / "torn.jpg")] == "not a readable image"
    second = data.load_sources([tmp_path], max_side=48, film_frames=4, cache=cache)
    assert second.cached and second.unreadable == first.unreadable  # the cache remembers what it left out


def test_batch_stream_prefetch_is_reproducible():
    images = [synthetic_frame(i, 80, 64) for i in range(4)]
    inline = data.BatchStream(images, 3, 32, np.random.default_rng(1), prefetch=0, damage=0.5)
    ahead = data.BatchStream(images, 3, 32, np.random.default_rng(1), prefetch=2, damage=0.5)
    got = [(next(inline), next(ahead)) for _ in range(3)]
    ahead.close()
    for x, y in got:
        assert torch.equal(x.rgb, y.rgb) and x.damage_seed == y.damage_seed and x.rgb.shape == (3, 3, 32, 32)
    # crops cut on several threads: the very same batches (the random draws stay in one thread)
    cut = data.BatchStream(images, 3, 32, np.random.default_rng(1), prefetch=2, damage=0.5, threads=2)
    try:
        assert all(torch.equal(next(cut).rgb, x.rgb) for x, _ in got)
    finally:
        cut.close()
    assert any(not torch.equal(got[0][0].rgb[0], got[0][0].rgb[i]) for i in (1, 2))  # not one crop repeated
    rng = np.random.default_rng(99)
    rng.bit_generator.state = got[1][0].rng_state  # resume after the second batch
    again = next(data.BatchStream(images, 3, 32, rng, prefetch=0, damage=0.5))
    assert torch.equal(again.rgb, got[2][0].rgb)


def test_film_damage_changes_only_l_and_is_deterministic():
    L = torch.linspace(-0.8, 0.8, 4 * 32 * 32).view(4, 1, 32, 32)
    assert data.film_damage(L, 0.0, 1) is L
    d1, d2 = data.film_damage(L, 1.0, 7), data.film_damage(L, 1.0, 7)
    assert torch.equal(d1, d2) and d1.shape == L.shape
    assert d1.min() >= -1 and d1.max() <= 1
    assert (d1 - L).abs().mean() > 0.01
    assert not torch.equal(data.film_damage(L, 1.0, 8), d1)


def test_a_folder_of_colour_dpx_scans_is_a_film_to_train_on(tmp_path):
    import cv2

    from helpers import write_pictures

    colour = [synthetic_frame(i, 96, 64) for i in range(12)]
    reel = write_pictures(tmp_path / "technicolor" / "reel2" / "r2.%06d.dpx", "dpx", "gbrp10le", colour, first=1001)
    numbered_photos = tmp_path / "stills"  # numbered PNGs are photos (camera rolls are numbered too)
    numbered_photos.mkdir()
    for i in range(3):
        cv2.imwrite(str(numbered_photos / f"IMG_{i:04d}.png"), synthetic_frame(3 * i, 80, 60)[..., ::-1])
    assert data.list_films([tmp_path]) == [reel] and len(data.list_images([tmp_path])) == 3
    cache = tmp_path / "cache"
    got = data.load_sources([tmp_path], max_side=48, film_frames=4, cache=cache)
    assert len(got) == 3 + 4 and got.origins.count(str(reel)) == 4
    assert got.films[str(reel)]["kept"] == 4 and not got.unreadable
    assert not data.is_greyscale(got.images[-1])
    (reel / "r2.001005.dpx").write_bytes((reel / "r2.001006.dpx").read_bytes())  # a scan redone
    assert not data.load_sources([tmp_path], max_side=48, film_frames=4, cache=cache).cached
