"""What the temporal smoother costs per frame, alone, for each setting (CPU ms/frame, one thread).

    python scripts/bench_smooth.py samples/steamboat_willie_1928.mp4 \
        --variant ema --variant flow --variant flow:flow_scale=1.0 --variant flow:preset=fast

Decodes the film once, runs the packaged (or ``--model``) network once at the run preset's render
size, then times ``temporal.smooth`` over the same predictions for each ``--variant``
(``MODE[:KEY=VALUE,...]`` with keys ``lookahead``, ``flow_scale``, ``preset``). Compare the
numbers with the end-to-end CPU ms/frame of ``scripts/bench.py`` on the same clip.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from filmcolor import color, compose, media
from filmcolor.config import parse_overrides, run_config_from_preset
from filmcolor.inference import Colorizer
from filmcolor.temporal import FrameItem, smooth


def parse_variant(text: str) -> tuple[str, dict]:
    """``"flow:flow_scale=1.0,preset=fast"`` -> ``("flow", {"flow_scale": 1.0, "preset": "fast"})``."""
    mode, _, rest = text.partition(":")
    return mode, parse_overrides(filter(None, rest.split(",")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("film", type=Path)
    ap.add_argument("--model", default=None)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--variant", action="append", default=[], help="MODE[:KEY=VALUE,...] (repeatable)")
    ap.add_argument("--repeat", type=int, default=3, help="time each variant this often, keep the fastest")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    config = run_config_from_preset(model=args.model)
    colorizer = Colorizer.from_config(config)
    Ls = []
    for i, frame in enumerate(media.decode(args.film)):
        if i >= args.frames:
            break
        L = color.rgb_to_lab_np(frame.to_ndarray(format="rgb24").astype(np.float32) / 255)[..., 0]
        Ls.append(compose.resize_L(L, *colorizer.render_shape(*L.shape)))
    L = np.stack(Ls)
    ab = colorizer.predict_ab(L)
    print(f"{args.film.name}: {len(Ls)} frames at render size {L.shape[1]}x{L.shape[2]}")
    for text in args.variant or ["off", "ema", "flow"]:
        mode, opts = parse_variant(text)
        best = float("inf")
        for _ in range(args.repeat):
            items = [FrameItem(i, None, Ls[i], ab[i].copy()) for i in range(len(Ls))]
            t0 = time.process_time()
            for _item in smooth(iter(items), mode, config.smooth_strength, config.cut_threshold, **opts):
                pass
            best = min(best, time.process_time() - t0)
        print(f"{text:40s} {1000 * best / len(Ls):6.2f} CPU ms/frame")


if __name__ == "__main__":
    main()
