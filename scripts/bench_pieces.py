"""Micro-measurements behind single claims in docs/BENCHMARKS.md and docs/TRAINING.md, re-runnable:

    python scripts/bench_pieces.py                 # all of them
    python scripts/bench_pieces.py --only resize lab batch encode-repeat

- ``resize``: ``compose.resize_L`` 1080p -> render size (halving first) against one OpenCV area
  resize, ms and the L* difference on film-like texture.
- ``lab``: building the Lab image for compose at 960x540 (1080p chroma): ``cv2.merge`` vs filling
  the channels with NumPy, ms, and whether the arrays are equal.
- ``batch``: a 64 x 256 px training batch (``data.BatchStream``, no prefetch) cut on 1 and 2 threads.
- ``encode-repeat``: the same decoded frames through ``media.VideoWriter`` (H.264, run settings)
  ``--repeats`` times: how many distinct files and decoded pictures come out; then the same frames
  through plain PyAV with x264's own CPU detection and with ``media.x264_params()`` (the writer's
  cap at AVX2 on AVX-512 CPUs), with the median encode time of each.
- ``listing``: ``sequences.image_sequence`` on a folder of 100,000 empty numbered DPX files, read
  afresh and then from the cache (a folder unchanged for two seconds), seconds.
- ``pictures``: one 854x480 photo encoded as PNG (zlib default vs level 3, the writer's), deflate
  TIFF and DPX, 8 and 16 bit, ms and kB; then the sample film coloured end to end as H.264 and as
  each ``--frames-as`` format (one model, same run), seconds and the ratio to H.264.
- ``sampling``: ``media.sample_frames`` (12 frames, what ``run`` looks at first) on a synthetic
  1-minute 1080p film with 10 s GOPs, within its decoding budget and without one, against decoding
  the whole film, seconds and distinct frames.
- ``preview``: the frames ``run --preview 6`` looks at, on the sample and the B&W clips in
  ``../shared/data/clips/bw``: one pass (``preview.sample_film``: the shown frames also give the bars
  and the colour check) against the two passes preview made before (a seek and decode to each of the
  6 times, then ``look.look_at``'s 12 frames), median of 3, seconds.
- ``hue``: ``color.hue_variety`` (the "in colour already" test) on 12 frames sampled from each clip in
  ``../shared/data/clips``, per cent per frame.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import av
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from filmcolor import compose, data, media, synth  # noqa: E402


def ms(fn: Callable[[], object], n: int = 20) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return 1000 * (time.perf_counter() - t0) / n


def texture(h: int, w: int, hi: float = 100.0) -> np.ndarray:
    noise = np.random.default_rng(0).uniform(0, hi, (h, w)).astype(np.float32)
    return cv2.GaussianBlur(noise, (0, 0), 3)


def bench_resize() -> None:
    L = texture(1080, 1920)
    one = cv2.resize(L, (341, 192), interpolation=cv2.INTER_AREA)
    diff = np.abs(compose.resize_L(L, 192, 341) - one)
    t_one = ms(lambda: cv2.resize(L, (341, 192), interpolation=cv2.INTER_AREA))
    t_ours = ms(lambda: compose.resize_L(L, 192, 341))
    print(f"resize 1080p -> 192x341: one area resize {t_one:.2f} ms, resize_L {t_ours:.2f} ms; "
          f"|difference| mean {diff.mean():.3f}, max {diff.max():.3f} L*")


def bench_lab() -> None:
    L = texture(540, 960)
    ab = np.random.default_rng(1).uniform(-40, 40, (2, 192, 341)).astype(np.float32)
    ab_up = compose.resize_ab(ab, 540, 960)

    def fill() -> np.ndarray:
        lab = np.empty((540, 960, 3), np.float32)
        lab[..., 0], lab[..., 1:] = L, ab_up
        return lab

    same = np.array_equal(fill(), compose._lab(L, ab_up))
    print(f"Lab at 960x540: NumPy fill {ms(fill):.2f} ms, cv2.merge {ms(lambda: compose._lab(L, ab_up)):.2f} ms; "
          f"equal: {same}")


def bench_batch() -> None:
    images = [cv2.resize(synth.synthetic_frame(i, 480, 360), (455, 341)) for i in range(64)]
    for threads in (1, 2):
        stream = data.BatchStream(images, 64, 256, np.random.default_rng(1), prefetch=0, threads=threads)
        try:
            print(f"batch 64 x 256 px, {threads} thread(s): {ms(lambda: next(stream), 15):.1f} ms")
        finally:
            stream.close()


def _x264_repeat(frames: list[av.VideoFrame], params: str, repeats: int) -> tuple[int, int, float]:
    """Encode ``frames`` ``repeats`` times with plain PyAV at the run's H.264 settings: distinct
    files, distinct decoded pictures, median seconds."""
    import io

    files, pictures, times = set(), set(), []
    for _ in range(repeats):
        buf = io.BytesIO()
        t = time.perf_counter()
        with av.open(buf, "w", format="mp4") as out:
            vs = out.add_stream("libx264", rate=24)
            vs.width, vs.height, vs.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
            vs.options = {"crf": "18", "preset": "veryfast", **({"x264-params": params} if params else {})}
            vs.codec_context.thread_type = "AUTO"
            for i, f in enumerate(frames):
                f.pts = i
                out.mux(vs.encode(f))
            out.mux(vs.encode(None))
        times.append(time.perf_counter() - t)
        files.add(hashlib.md5(buf.getvalue()).hexdigest())
        with av.open(io.BytesIO(buf.getvalue())) as c:
            pictures.add(hashlib.md5(b"".join(f.to_ndarray(format="yuv420p").tobytes()
                                              for f in c.decode(video=0))).hexdigest())
    return len(files), len(pictures), float(np.median(times))


def bench_encode_repeat(repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = synth.make_clip(Path(tmp) / "a.mp4", frames=23, width=854, height=480, color=False, audio=())
        info = media.probe(src)
        pix = media.writer_pix_fmt("h264", info)
        decoded = list(media.decode(src))
        planes = [media.frame_to_planes(f, pix) for f in decoded]
        files, pictures = set(), set()
        for r in range(repeats):
            dst = Path(tmp) / f"out{r}.mp4"
            with media.VideoWriter(src, dst, info) as w:
                for f, p in zip(decoded, planes):
                    w.write(media.planes_to_frame(p, pix, f))
            files.add(hashlib.md5(dst.read_bytes()).hexdigest())
            with av.open(str(dst)) as c:
                pictures.add(hashlib.md5(b"".join(f.to_ndarray(format="yuv420p").tobytes()
                                                  for f in c.decode(video=0))).hexdigest())
        print(f"H.264 of the same 23 frames (854x480), {repeats} encodes through media.VideoWriter "
              f"(x264-params {media.x264_params()!r}): {len(files)} distinct files, {len(pictures)} distinct "
              "decoded pictures")
    sample = ROOT / "samples" / "steamboat_willie_1928.mp4"
    with av.open(str(sample)) as c:
        frames = list(c.decode(video=0))
    for params in ("", media.x264_params()):
        n_files, n_pictures, sec = _x264_repeat(frames, params, repeats)
        print(f"plain PyAV, {sample.name} ({len(frames)} frames), x264-params {params!r}: {repeats} encodes, "
              f"{n_files} distinct files, {n_pictures} distinct decoded pictures, median {sec * 1000:.0f} ms")


def bench_listing(files: int = 100_000) -> None:
    from filmcolor import sequences

    with tempfile.TemporaryDirectory() as tmp:
        for n in range(files):
            open(f"{tmp}/reel.{n:07d}.dpx", "wb").close()
        time.sleep(2.1)  # a folder changed in the last two seconds is always listed afresh
        t0 = time.perf_counter()
        seq = sequences._listed.__wrapped__(Path(tmp), None)
        fresh = time.perf_counter() - t0
        sequences.image_sequence(tmp)  # fills the cache
        t0 = time.perf_counter()
        sequences.image_sequence(tmp)
        cached = time.perf_counter() - t0
    print(f"listing {seq.count} numbered files: {fresh:.2f} s read, {cached * 1000:.2f} ms from the cache")


def bench_pictures() -> None:
    from fractions import Fraction

    from filmcolor.config import RunConfig
    from filmcolor.inference import Colorizer
    from filmcolor.pipeline import colorize_file

    photo = sorted((ROOT.parent / "shared" / "data" / "photos" / "val").glob("*.jpg"))
    rgb = cv2.imread(str(photo[0]))[..., ::-1] if photo else synth.synthetic_frame(0, 854, 480)
    rgb = np.ascontiguousarray(cv2.resize(np.ascontiguousarray(rgb), (854, 480)))
    for codec, pix_fmt, options in (("png", "rgb24", {}), ("png", "rgb24", {"compression_level": "3"}),
                                    ("png", "rgb48be", {"compression_level": "3"}),
                                    ("tiff", "rgb24", {"compression_algo": "deflate"}),
                                    ("tiff", "rgb48le", {"compression_algo": "deflate"}), ("dpx", "rgb24", {}),
                                    ("dpx", "gbrp10le", {})):
        cc = av.CodecContext.create(codec, "w")
        cc.width, cc.height, cc.pix_fmt, cc.time_base, cc.options = 854, 480, pix_fmt, Fraction(1, 24), options
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
        size = sum(p.size for p in cc.encode(frame))
        print(f"{codec} {pix_fmt} {options or ''}: {ms(lambda: cc.encode(frame), 10):.1f} ms, {size / 1000:.0f} kB")
    sample = ROOT / "samples" / "steamboat_willie_1928.mp4"
    config = RunConfig()
    colorizer = Colorizer.from_config(config)
    with tempfile.TemporaryDirectory() as tmp:
        colorize_file(sample, Path(tmp) / "warm.mp4", config, colorizer=colorizer)
        times = {}
        for fmt in (None, "dpx", "tiff", "png"):
            t0 = time.perf_counter()
            r = colorize_file(sample, Path(tmp) / (fmt or "h264.mp4"), RunConfig(frames_as=fmt), colorizer=colorizer)
            times[fmt or "h264"] = time.perf_counter() - t0
        print(f"{sample.name} ({r.frames} frames) end to end: " + ", ".join(
            f"{k} {v:.2f} s ({v / times['h264']:.2f}x)" for k, v in times.items()))


def bench_sampling() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        film = synth.make_clip(Path(tmp) / "hd.mp4", frames=1440, width=1920, height=1080, fps=24, audio=(),
                               keyint=240, color=False)
        runs, budget = {}, media.SAMPLE_SHARE
        for name, share in (("within the budget", budget), ("no budget", 1e9)):
            media.SAMPLE_SHARE = share
            t0 = time.perf_counter()
            frames = media.sample_frames(film, 12)
            runs[name] = (time.perf_counter() - t0, len({f.pts for f in frames}))
        media.SAMPLE_SHARE = budget
        t0 = time.perf_counter()
        total = sum(1 for _ in media.decode(film))
        whole = time.perf_counter() - t0
    print("sampling 12 frames of a 1-minute 1080p film (10 s GOPs): " + ", ".join(
        f"{k} {sec:.2f} s ({n} frames)" for k, (sec, n) in runs.items()) + f"; decoding all {total}: {whole:.2f} s")


def _two_pass_preview_frames(src: Path, info, n: int, config) -> int:
    """What preview did before it sampled once: each of ``n`` times decoded from a seek, then the
    12 frames of ``look.look_at`` for the bars and the colour check (the baseline of ``preview``)."""
    from filmcolor import look

    span = float(info.duration)
    shown = 0
    for k in range(n):
        frames = media.decode(src, start=span * (k + 0.5) / n)
        try:
            for frame in frames:
                frame.to_ndarray(format="rgb24")
                shown += 1
                break
        finally:
            frames.close()
    look.look_at(src, info, config)
    return shown


def bench_preview(n: int = 6) -> None:
    from filmcolor import preview
    from filmcolor.config import RunConfig

    config = RunConfig()
    clips = [ROOT / "samples" / "steamboat_willie_1928.mp4",
             *sorted((ROOT.parent / "shared" / "data" / "clips" / "bw").glob("*.mp4"))]
    for clip in clips:
        info = media.probe(clip)
        times = {}
        for name, fn in (("two passes", lambda: _two_pass_preview_frames(clip, info, n, config)),
                         ("one pass", lambda: preview.sample_film(clip, info, n, config))):
            runs = []
            for _ in range(3):
                t0 = time.perf_counter()
                fn()
                runs.append(time.perf_counter() - t0)
            times[name] = sorted(runs)[1]
        print(f"preview frames of {clip.name}: two passes {times['two passes']:.3f} s, one pass "
              f"{times['one pass']:.3f} s ({times['two passes'] / times['one pass']:.2f}x)")


def bench_hue() -> None:
    from filmcolor import color

    for clip in sorted((ROOT.parent / "shared" / "data" / "clips").glob("*/*.*")):
        shares = [color.hue_variety(p.u, p.v) for p in media.sample_planes(clip, 12)]
        print(f"{clip.parent.name}/{clip.name}: " + " ".join(f"{v:.1f}" for v in shares))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    pieces = ("resize", "lab", "batch", "encode-repeat", "listing", "pictures", "sampling", "preview", "hue")
    ap.add_argument("--only", nargs="+", choices=pieces, default=pieces)
    ap.add_argument("--repeats", type=int, default=25, help="encodes for encode-repeat")
    args = ap.parse_args()
    for name in args.only:
        {"resize": bench_resize, "lab": bench_lab, "batch": bench_batch,
         "encode-repeat": lambda: bench_encode_repeat(args.repeats), "listing": bench_listing,
         "pictures": bench_pictures, "sampling": bench_sampling, "preview": bench_preview,
         "hue": bench_hue}[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
