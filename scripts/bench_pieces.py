"""Micro-measurements behind single claims in docs/BENCHMARKS.md and docs/TRAINING.md, re-runnable:

    python scripts/bench_pieces.py                 # all of them
    python scripts/bench_pieces.py --only resize lab batch encode-repeat

- ``resize``: ``compose.resize_L`` 1080p -> render size (halving first) against one OpenCV area
  resize, ms and the L* difference on film-like texture.
- ``lab``: building the Lab image for compose at 960x540 (1080p chroma): ``cv2.merge`` vs filling
  the channels with NumPy, ms, and whether the arrays are equal.
- ``batch``: a 64 x 256 px training batch (``data.BatchStream``, no prefetch) cut on 1 and 2 threads.
- ``encode-repeat``: the same decoded frames through ``media.VideoWriter`` (H.264, run settings)
  ``--repeats`` times: how many distinct files and decoded pictures come out.
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
        print(f"H.264 of the same 23 frames (854x480), {repeats} encodes: {len(files)} distinct files, "
              f"{len(pictures)} distinct decoded pictures")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="+", choices=("resize", "lab", "batch", "encode-repeat"),
                    default=("resize", "lab", "batch", "encode-repeat"))
    ap.add_argument("--repeats", type=int, default=25, help="encodes for encode-repeat")
    args = ap.parse_args()
    for name in args.only:
        {"resize": bench_resize, "lab": bench_lab, "batch": bench_batch,
         "encode-repeat": lambda: bench_encode_repeat(args.repeats)}[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
